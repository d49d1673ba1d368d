#include "dm/targets/dust.h"

#include <cerrno>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/dm_targets/dm_target_test_env.h"

namespace ice::dm {
namespace {

using testing::Op;
using testing::Pattern;
using testing::Read;
using testing::TestEnv;
using testing::Write;

constexpr uint64_t kDevBytes = 1 << 20;  // 256 blocks of 4096

class Dust : public ::testing::Test {
 protected:
  Dust() : dev_(env_.AddDevice("disk", kDevBytes)) {}

  // A 4096-byte-block dust over the device from sector `offset`, 128 KiB long.
  std::unique_ptr<Target> Make(const std::string& offset = "0", const std::string& blksz = "4096") {
    auto t = env_.Create(kDustTarget, 256, {"disk", offset, blksz});
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? std::move(*t) : nullptr;
  }
  static std::string Msg(Target& t, std::vector<std::string> words) {
    auto r = t.Message(words);
    return r.ok() ? *r : "error " + ErrnoName(r.status().code()) + ": " + r.status().message();
  }
  static int MsgCode(Target& t, std::vector<std::string> words) {
    return t.Message(words).status().code();
  }

  TestEnv env_;
  std::shared_ptr<testing::RecordingDevice> dev_;
};

TEST_F(Dust, T5_BlockSizeRules) {
  auto code = [&](uint64_t sectors, const char* blksz) {
    return env_.Create(kDustTarget, sectors, {"disk", "0", blksz}).status().code();
  };
  EXPECT_EQ(code(256, "0"), EINVAL);
  EXPECT_EQ(code(256, "x"), EINVAL);
  EXPECT_EQ(code(256, "256"), EINVAL);   // at least 512
  EXPECT_EQ(code(256, "1536"), EINVAL);  // a power of two
  EXPECT_EQ(code(8, "8192"), EINVAL);    // no larger than the target
  EXPECT_EQ(code(8, "4096"), 0);
  EXPECT_EQ(code(256, "512"), 0);
  EXPECT_EQ(code(256, "131072"), 0);
  EXPECT_EQ(env_.Create(kDustTarget, 256, {"disk", "0"}).status().code(), EINVAL);
  EXPECT_EQ(env_.Create(kDustTarget, 256, {"disk", "0", "512", "x"}).status().code(), EINVAL);
  EXPECT_EQ(env_.Create(kDustTarget, 256, {"disk", "x", "512"}).status().code(), EINVAL);
  EXPECT_EQ(env_.Create(kDustTarget, 256, {"nodisk", "0", "512"}).status().code(), ENXIO);
  EXPECT_EQ(env_.Create(kDustTarget, 256, {"disk", "1800", "512"}).status().code(), EINVAL);
  // At most 1 GiB, however long the target.
  auto big = std::make_shared<MemoryBackend>(uint64_t{4} << 30);
  env_.devices.Add("big", big);
  const uint64_t four_gib_sectors = (uint64_t{4} << 30) / 512;
  EXPECT_EQ(env_.Create(kDustTarget, four_gib_sectors, {"big", "0", "2147483648"}).status().code(),
            EINVAL);
  EXPECT_TRUE(env_.Create(kDustTarget, four_gib_sectors, {"big", "0", "1073741824"}).ok());
}

TEST_F(Dust, T5_StartsDisabledAndStatusSaysSo) {
  auto t = Make("8");
  EXPECT_EQ(t->TableParams(), "disk 8 4096");
  EXPECT_EQ(t->StatusParams(), "disk bypass verbose");
  EXPECT_EQ(Msg(*t, {"addbadblock", "1"}), "");
  std::vector<uint8_t> buf(4096);
  EXPECT_TRUE(Read(*t, 0, buf).ok()) << "disabled: bad blocks read fine";
  EXPECT_EQ(Msg(*t, {"enable"}), "");
  EXPECT_EQ(t->StatusParams(), "disk fail_read_on_bad_block verbose");
  EXPECT_EQ(Read(*t, 0, buf).code(), EIO);
  EXPECT_EQ(Msg(*t, {"disable"}), "");
  EXPECT_TRUE(Read(*t, 0, buf).ok());
}

TEST_F(Dust, T5_ReadOfBadBlockFailsAndWriteClearsIt) {
  auto t = Make();
  ASSERT_EQ(Msg(*t, {"addbadblock", "2"}), "");
  ASSERT_EQ(Msg(*t, {"enable"}), "");
  std::vector<uint8_t> buf(4096);
  EXPECT_TRUE(Read(*t, 4096, buf).ok());
  EXPECT_EQ(Read(*t, 8192, buf).code(), EIO);
  EXPECT_EQ(Read(*t, 8192 + 1024, buf).code(), EIO);
  auto data = Pattern(4096, 1);
  EXPECT_TRUE(Write(*t, 8192, data).ok());
  EXPECT_EQ(dev_->Bytes(8192, 4096), data);
  EXPECT_EQ(Msg(*t, {"queryblock", "2"}), "dust_query_block: block 2 not found in badblocklist");
  EXPECT_TRUE(Read(*t, 8192, buf).ok());
  EXPECT_EQ(buf, data);
}

TEST_F(Dust, T5_BadBlockNumbersCountDeviceBlocksIncludingOffset) {
  auto t = Make("8");  // target byte 0 is device byte 4096: block 1
  ASSERT_EQ(Msg(*t, {"addbadblock", "0"}), "");
  ASSERT_EQ(Msg(*t, {"addbadblock", "2"}), "");
  ASSERT_EQ(Msg(*t, {"enable"}), "");
  std::vector<uint8_t> buf(4096);
  EXPECT_TRUE(Read(*t, 0, buf).ok()) << "device block 1";
  EXPECT_EQ(Read(*t, 4096, buf).code(), EIO) << "device block 2";
  // An offset that is not block aligned: a piece is judged by the block of its first byte.
  auto odd = Make("4");  // target byte 0 is device byte 2048
  ASSERT_EQ(Msg(*odd, {"addbadblock", "1"}), "");
  ASSERT_EQ(Msg(*odd, {"enable"}), "");
  EXPECT_TRUE(Read(*odd, 0, buf).ok()) << "starts in device block 0";
  EXPECT_EQ(Read(*odd, 4096, buf).code(), EIO) << "starts in device block 1";
}

TEST_F(Dust, T5_IOIsSplitAtBlockBoundaries) {
  auto t = Make();
  ASSERT_EQ(Msg(*t, {"addbadblock", "2", "1"}), "");
  ASSERT_EQ(Msg(*t, {"addbadblock", "3"}), "");
  ASSERT_EQ(Msg(*t, {"enable"}), "");
  std::vector<uint8_t> buf(4 * 4096);
  dev_->clear_seen();
  EXPECT_EQ(Read(*t, 0, buf).code(), EIO);
  // Every piece is attempted; the bad ones never reach the device.
  auto seen = dev_->seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].offset, 0u);
  EXPECT_EQ(seen[0].length, 4096u);
  EXPECT_EQ(seen[1].offset, 4096u);

  // A write over blocks 1-3: block 2 fails once (write fail count 1), block 3 is cleared.
  dev_->clear_seen();
  auto data = Pattern(3 * 4096, 2);
  EXPECT_EQ(Write(*t, 4096, data).code(), EIO);
  seen = dev_->seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].offset, 4096u);
  EXPECT_EQ(seen[1].offset, 3 * 4096u);
  EXPECT_EQ(Msg(*t, {"listbadblocks"}), "2\n");
  EXPECT_EQ(dev_->Bytes(3 * 4096, 4096), std::vector<uint8_t>(data.begin() + 8192, data.end()));

  // Unaligned requests split at the target's block boundaries too.
  dev_->clear_seen();
  std::vector<uint8_t> part(5000);
  EXPECT_TRUE(Read(*t, 100 * 4096 - 100, part).ok());
  seen = dev_->seen();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].length, 100u);
  EXPECT_EQ(seen[1].length, 4096u);
  EXPECT_EQ(seen[2].length, 804u);
}

TEST_F(Dust, T5_WriteFailCountDecrementsThenWriteClears) {
  auto t = Make();
  ASSERT_EQ(Msg(*t, {"addbadblock", "5", "2"}), "");
  ASSERT_EQ(Msg(*t, {"enable"}), "");
  auto data = Pattern(4096, 3);
  EXPECT_EQ(Write(*t, 5 * 4096, data).code(), EIO);
  EXPECT_EQ(Op(*t, IoOp::kDiscard, 5 * 4096, 4096).code(), EIO) << "discards are writes too";
  EXPECT_EQ(Msg(*t, {"queryblock", "5"}), "dust_query_block: block 5 found in badblocklist");
  EXPECT_TRUE(Write(*t, 5 * 4096, data).ok());
  EXPECT_EQ(Msg(*t, {"queryblock", "5"}), "dust_query_block: block 5 not found in badblocklist");
  EXPECT_EQ(dev_->Bytes(5 * 4096, 4096), data);
}

TEST_F(Dust, T5_DisabledWritesDoNotClear) {
  auto t = Make();
  ASSERT_EQ(Msg(*t, {"addbadblock", "1", "3"}), "");
  EXPECT_TRUE(Write(*t, 4096, Pattern(4096, 4)).ok());
  EXPECT_EQ(Msg(*t, {"countbadblocks"}), "countbadblocks: 1 badblock(s) found");
  ASSERT_EQ(Msg(*t, {"enable"}), "");
  // The write fail count was not consumed either.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Write(*t, 4096, Pattern(4096, 5)).code(), EIO);
  EXPECT_TRUE(Write(*t, 4096, Pattern(4096, 5)).ok());
  EXPECT_EQ(Msg(*t, {"countbadblocks"}), "countbadblocks: 0 badblock(s) found");
}

TEST_F(Dust, T5_MessageRepliesAreTheKernels) {
  auto t = Make();
  EXPECT_EQ(Msg(*t, {"countbadblocks"}), "countbadblocks: 0 badblock(s) found");
  EXPECT_EQ(Msg(*t, {"listbadblocks"}), "No blocks in badblocklist");
  EXPECT_EQ(Msg(*t, {"clearbadblocks"}), "dust_clear_badblocks: no badblocks found");
  EXPECT_EQ(Msg(*t, {"addbadblock", "60"}), "");
  EXPECT_EQ(Msg(*t, {"addbadblock", "7", "255"}), "");
  EXPECT_EQ(Msg(*t, {"AddBadBlock", "9"}), "") << "names are case-insensitive";
  EXPECT_EQ(Msg(*t, {"countbadblocks"}), "countbadblocks: 3 badblock(s) found");
  EXPECT_EQ(Msg(*t, {"listbadblocks"}), "7\n9\n60\n");
  EXPECT_EQ(Msg(*t, {"queryblock", "7"}), "dust_query_block: block 7 found in badblocklist");
  EXPECT_EQ(Msg(*t, {"queryblock", "8"}), "dust_query_block: block 8 not found in badblocklist");
  EXPECT_EQ(Msg(*t, {"removebadblock", "9"}), "");
  EXPECT_EQ(Msg(*t, {"listbadblocks"}), "7\n60\n");
  EXPECT_EQ(Msg(*t, {"clearbadblocks"}), "dust_clear_badblocks: badblocks cleared");
  EXPECT_EQ(Msg(*t, {"countbadblocks"}), "countbadblocks: 0 badblock(s) found");

  EXPECT_EQ(Msg(*t, {"addbadblock", "3"}), "");
  EXPECT_EQ(MsgCode(*t, {"addbadblock", "3"}), EINVAL) << "already in the list";
  EXPECT_EQ(MsgCode(*t, {"removebadblock", "4"}), EINVAL) << "not in the list";
  EXPECT_EQ(MsgCode(*t, {"addbadblock", "4", "256"}), EINVAL);
  EXPECT_EQ(MsgCode(*t, {"addbadblock", "x"}), EINVAL);
  EXPECT_EQ(MsgCode(*t, {"addbadblock", "4", "x"}), EINVAL);
  // Block numbers are bounded by the device's size in blocks (256 here), inclusive.
  EXPECT_EQ(Msg(*t, {"addbadblock", "256"}), "");
  EXPECT_EQ(MsgCode(*t, {"addbadblock", "257"}), EINVAL);
  EXPECT_EQ(MsgCode(*t, {"queryblock", "257"}), EINVAL);
  EXPECT_EQ(MsgCode(*t, {"addbadblock"}), EINVAL);
  EXPECT_EQ(MsgCode(*t, {"queryblock"}), EINVAL);
  EXPECT_EQ(MsgCode(*t, {"removebadblock", "3", "1"}), EINVAL);
  EXPECT_EQ(MsgCode(*t, {"frobnicate"}), EINVAL);
  EXPECT_EQ(MsgCode(*t, {"frobnicate", "1"}), EINVAL);
  EXPECT_EQ(MsgCode(*t, {"addbadblock", "1", "2", "3"}), EINVAL);
  EXPECT_EQ(MsgCode(*t, {}), EINVAL);
}

TEST_F(Dust, T5_QuietToggles) {
  auto t = Make();
  EXPECT_EQ(Msg(*t, {"quiet"}), "");
  EXPECT_EQ(t->StatusParams(), "disk bypass quiet");
  EXPECT_EQ(Msg(*t, {"enable"}), "");
  EXPECT_EQ(t->StatusParams(), "disk fail_read_on_bad_block quiet");
  EXPECT_EQ(Msg(*t, {"QUIET"}), "");
  EXPECT_EQ(t->StatusParams(), "disk fail_read_on_bad_block verbose");
}

// Hardening 14: the kernel's dust_map sends an empty flush (a write with REQ_PREFLUSH, at sector
// 0 of the mapped device) through dust_map_write like any write: remapped, sector 0 is <offset>
// minus the target's start sector, so the flush is judged by that block.
TEST_F(Dust, Hardening14_FlushGoesThroughTheWritePathAsTheKernels) {
  auto t = Make("8");  // <offset> 8 sectors: block 1 of 4096 bytes
  ASSERT_EQ(Msg(*t, {"addbadblock", "0"}), "");
  ASSERT_EQ(Msg(*t, {"addbadblock", "1", "1"}), "");  // write fail count 1
  // Disabled: flushes pass and leave the list alone.
  dev_->clear_seen();
  EXPECT_TRUE(Op(*t, IoOp::kFlush).ok());
  EXPECT_EQ(Msg(*t, {"countbadblocks"}), "countbadblocks: 2 badblock(s) found");
  ASSERT_EQ(Msg(*t, {"enable"}), "");
  // Enabled: the first flush fails (the count goes to 0) and reaches nothing; the next passes and
  // clears block 1, as a write would; block 0 is not the flush's.
  EXPECT_EQ(Op(*t, IoOp::kFlush).code(), EIO);
  EXPECT_EQ(Msg(*t, {"countbadblocks"}), "countbadblocks: 2 badblock(s) found");
  EXPECT_TRUE(Op(*t, IoOp::kFlush).ok());
  EXPECT_EQ(Msg(*t, {"listbadblocks"}), "0\n");
  std::vector<IoOp> reached;
  for (const testing::Seen& s : dev_->seen()) reached.push_back(s.op);
  EXPECT_EQ(reached, (std::vector<IoOp>{IoOp::kFlush, IoOp::kFlush}));
  EXPECT_TRUE(Op(*t, IoOp::kFlush).ok());

  // A target that does not start at sector 0: <offset> 16 - start 8 = sector 8, block 1 of 4096.
  auto shifted = kDustTarget.create(env_.env, TargetArgs{8, 256, {"disk", "16", "4096"}});
  ASSERT_TRUE(shifted.ok()) << shifted.status().ToString();
  Target& s = **shifted;
  ASSERT_EQ(Msg(s, {"addbadblock", "2"}), "");  // the block holding <offset>: not the flush's
  ASSERT_EQ(Msg(s, {"addbadblock", "1", "1"}), "");
  ASSERT_EQ(Msg(s, {"enable"}), "");
  EXPECT_EQ(Op(s, IoOp::kFlush).code(), EIO);
  // <offset> below the start sector wraps far beyond any block: flushes always pass.
  auto wraps = kDustTarget.create(env_.env, TargetArgs{64, 256, {"disk", "0", "4096"}});
  ASSERT_TRUE(wraps.ok()) << wraps.status().ToString();
  ASSERT_EQ(Msg(**wraps, {"addbadblock", "0", "5"}), "");
  ASSERT_EQ(Msg(**wraps, {"enable"}), "");
  EXPECT_TRUE(Op(**wraps, IoOp::kFlush).ok());
  EXPECT_EQ(Msg(**wraps, {"countbadblocks"}), "countbadblocks: 1 badblock(s) found");
}

TEST(TargetTypes, D7_DustDoesNotPassCrypto) {
  EXPECT_EQ(kDustTarget.name, "dust");
  EXPECT_FALSE(kDustTarget.passes_crypto);
}

}  // namespace
}  // namespace ice::dm
