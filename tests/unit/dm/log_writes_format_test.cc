#include "dm/log_writes_format.h"

#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace ice::logwrites {
namespace {

TEST(LogWritesFormat, I15_1_SuperBlockBytesAreTheKernels) {
  std::vector<uint8_t> block(512, 0xee);
  Super s;
  s.nr_entries = 0x0102030405060708ULL;
  s.sectorsize = 4096;
  EncodeSuper(s, block);
  // magic, version, nr_entries (le64), sectorsize (le32), then zeros to the end of the sector.
  const std::vector<uint8_t> head = {0x72, 0x68, 0x73, 0x77, 0x66, 0x73, 0x6a, 0x00,  // magic
                                     0x01, 0,    0,    0,    0,    0,    0,    0,     // version
                                     0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,  // entries
                                     0x00, 0x10, 0x00, 0x00};                         // 4096
  EXPECT_EQ(std::vector<uint8_t>(block.begin(), block.begin() + 28), head);
  for (size_t i = 28; i < block.size(); ++i) ASSERT_EQ(block[i], 0) << i;
  auto back = DecodeSuper(block);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->nr_entries, s.nr_entries);
  EXPECT_EQ(back->sectorsize, 4096u);
  EXPECT_EQ(back->magic, kMagic);
  EXPECT_EQ(back->version, 1u);
}

TEST(LogWritesFormat, I15_1_SuperBlockRefusals) {
  std::vector<uint8_t> block(512, 0);
  EXPECT_EQ(DecodeSuper(block).status().message(), "Magic doesn't match");
  Super s;
  s.version = 2;
  EncodeSuper(s, block);
  EXPECT_EQ(DecodeSuper(block).status().message(), "Version mismatch, wanted 1, have 2");
  s.version = 1;
  s.sectorsize = 1000;
  EncodeSuper(s, block);
  EXPECT_EQ(DecodeSuper(block).status().code(), EINVAL);
  EXPECT_EQ(DecodeSuper(std::span<const uint8_t>(block.data(), 20)).status().code(), EINVAL);
}

TEST(LogWritesFormat, I15_1_EntriesRoundTrip) {
  std::vector<uint8_t> block(512, 0xee);
  EntryHeader h{.sector = 123456789, .nr_sectors = 16, .flags = kFua | kMetadata, .data_len = 0};
  EncodeEntry(h, "", block);
  EntryHeader back = DecodeEntry(block);
  EXPECT_EQ(back.sector, h.sector);
  EXPECT_EQ(back.nr_sectors, h.nr_sectors);
  EXPECT_EQ(back.flags, h.flags);
  EXPECT_EQ(back.data_len, 0u);
  EXPECT_EQ(block[0], 0x15);  // 123456789 = 0x075bcd15, little-endian
  EXPECT_EQ(block[3], 0x07);
  EXPECT_EQ(block[8], 16);
  EXPECT_EQ(block[16], 0x12);
  for (size_t i = 32; i < block.size(); ++i) ASSERT_EQ(block[i], 0) << i;
  EXPECT_TRUE(EntryLooksValid(block));

  EntryHeader m{.sector = 0, .nr_sectors = 0, .flags = kMark, .data_len = 5};
  EncodeEntry(m, "fsync", block);
  EXPECT_EQ(std::string(block.begin() + 32, block.begin() + 37), "fsync");
  EXPECT_EQ(block[37], 0);
  EXPECT_EQ(MarkText(block), "fsync");
  EXPECT_EQ(DecodeEntry(block).data_len, 5u);
  EXPECT_TRUE(EntryLooksValid(block));
  // Mark text is only written for marks.
  EncodeEntry(EntryHeader{.sector = 1, .nr_sectors = 1, .flags = 0, .data_len = 0}, "x", block);
  EXPECT_EQ(block[32], 0);
}

TEST(LogWritesFormat, I15_1_ReplayLogsSanityRule) {
  std::vector<uint8_t> block(512, 0);
  EXPECT_FALSE(EntryLooksValid(block));  // no flags, no sectors: the end of a log
  EncodeEntry(EntryHeader{.sector = 0, .nr_sectors = 0, .flags = kFlush, .data_len = 0}, "", block);
  EXPECT_TRUE(EntryLooksValid(block));
  block[32] = 1;  // not zero-padded
  EXPECT_FALSE(EntryLooksValid(block));
  EncodeEntry(EntryHeader{.sector = 0, .nr_sectors = 0, .flags = kMark, .data_len = 1}, "a", block);
  EXPECT_TRUE(EntryLooksValid(block));
  EncodeEntry(EntryHeader{.sector = 0, .nr_sectors = 0, .flags = kMark | kFua, .data_len = 1}, "a",
              block);
  EXPECT_FALSE(EntryLooksValid(block));  // only a pure mark may carry text
}

TEST(LogWritesFormat, I15_1_FlagNamesAsReplayLogPrintsThem) {
  EXPECT_EQ(FlagNames(0), "NONE");
  EXPECT_EQ(FlagNames(kFlush), "FLUSH");
  EXPECT_EQ(FlagNames(kFlush | kFua), "FLUSH|FUA");
  EXPECT_EQ(FlagNames(kDiscard), "DISCARD");
  EXPECT_EQ(FlagNames(kMark), "MARK");
  EXPECT_EQ(FlagNames(kMetadata | kFua), "FUA|METADATA");
  EXPECT_EQ(FlagNames(0x40), "UNKNOWN.0x40");
  EXPECT_EQ(FlagNames(kFua | 0x300), "FUA|UNKNOWN.0x300");
  EXPECT_EQ(kFlush, 1u);
  EXPECT_EQ(kFua, 2u);
  EXPECT_EQ(kDiscard, 4u);
  EXPECT_EQ(kMark, 8u);
  EXPECT_EQ(kMetadata, 16u);
}

}  // namespace
}  // namespace ice::logwrites
