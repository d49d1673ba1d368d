#include "dm/targets/flakey.h"

#include <cerrno>
#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/dm_targets/dm_target_test_env.h"

namespace ice::dm {
namespace {

using namespace std::chrono_literals;
using testing::Op;
using testing::Pattern;
using testing::Read;
using testing::TestEnv;
using testing::Write;

constexpr uint64_t kDevBytes = 1 << 20;
constexpr uint64_t kSectors = 1024;  // the target's length: 512 KiB

std::vector<std::string> Args(std::vector<std::string> words) {
  std::vector<std::string> a = {"disk", "0"};
  a.insert(a.end(), words.begin(), words.end());
  return a;
}

class Flakey : public ::testing::Test {
 protected:
  Flakey() : dev_(env_.AddDevice("disk", kDevBytes)) {}

  std::unique_ptr<Target> Make(std::vector<std::string> words) {
    auto t = env_.Create(kFlakeyTarget, kSectors, Args(std::move(words)));
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? std::move(*t) : nullptr;
  }
  Status Refused(std::vector<std::string> words) {
    return env_.Create(kFlakeyTarget, kSectors, Args(std::move(words))).status();
  }

  TestEnv env_;
  std::shared_ptr<testing::RecordingDevice> dev_;
};

TEST_F(Flakey, T2_ConstructorArguments) {
  EXPECT_EQ(env_.Create(kFlakeyTarget, kSectors, {"disk", "0", "1"}).status().code(), EINVAL);
  EXPECT_EQ(Refused({"0", "0"}).code(), EINVAL);  // total interval zero
  EXPECT_NE(Refused({"0", "0"}).message().find("Total (up + down) interval is zero"),
            std::string::npos);
  EXPECT_EQ(Refused({"4294967295", "1"}).code(), EINVAL);  // interval overflow
  EXPECT_EQ(Refused({"x", "1"}).code(), EINVAL);
  EXPECT_EQ(Refused({"1", "-1"}).code(), EINVAL);
  EXPECT_EQ(Refused({"4294967296", "0"}).code(), EINVAL);
  EXPECT_EQ(env_.Create(kFlakeyTarget, kSectors, {"disk", "x", "1", "1"}).status().code(), EINVAL);
  EXPECT_EQ(env_.Create(kFlakeyTarget, kSectors, {"nodisk", "0", "1", "1"}).status().code(), ENXIO);
  // The area must lie within the device.
  EXPECT_EQ(env_.Create(kFlakeyTarget, kSectors, {"disk", "1025", "1", "1"}).status().code(),
            EINVAL);
  EXPECT_TRUE(env_.Create(kFlakeyTarget, kSectors, {"disk", "1024", "1", "1"}).ok());
  EXPECT_TRUE(Make({"0", "1"}) != nullptr);
  EXPECT_TRUE(Make({"1", "0"}) != nullptr);
}

TEST_F(Flakey, T2_FeatureArgsCountWords) {
  EXPECT_TRUE(Make({"1", "1", "5", "corrupt_bio_byte", "32", "r", "1", "0"}) != nullptr);
  EXPECT_TRUE(Make({"1", "1", "0"}) != nullptr);
  // Eleven words (random_write_corrupt 0 is off, so it may be given again).
  EXPECT_TRUE(Make({"1", "1", "11", "corrupt_bio_byte", "1", "r", "0", "0", "random_read_corrupt",
                    "1", "random_write_corrupt", "0", "random_write_corrupt", "0"}) != nullptr);
  // The count is a number of words, 0-11, and must not exceed the words given.
  EXPECT_EQ(Refused({"1", "1", "12", "error_reads"}).code(), EINVAL);
  EXPECT_EQ(Refused({"1", "1", "2", "error_reads"}).code(), EINVAL);
  EXPECT_EQ(Refused({"1", "1", "x"}).code(), EINVAL);
  // corrupt_bio_byte takes four words; random_*_corrupt one.
  EXPECT_EQ(Refused({"1", "1", "4", "corrupt_bio_byte", "32", "r", "1"}).code(), EINVAL);
  EXPECT_EQ(Refused({"1", "1", "1", "random_read_corrupt", "5"}).code(), EINVAL);
  EXPECT_EQ(Refused({"1", "1", "5", "corrupt_bio_byte", "0", "r", "1", "0"}).code(), EINVAL);
  EXPECT_EQ(Refused({"1", "1", "5", "corrupt_bio_byte", "1", "x", "1", "0"}).code(), EINVAL);
  EXPECT_EQ(Refused({"1", "1", "5", "corrupt_bio_byte", "1", "r", "256", "0"}).code(), EINVAL);
  EXPECT_EQ(Refused({"1", "1", "2", "random_read_corrupt", "1000000001"}).code(), EINVAL);
  EXPECT_EQ(Refused({"1", "1", "1", "no_such_feature"}).code(), EINVAL);
  // As in the kernel, words after the counted group are ignored.
  auto t = Make({"1", "1", "1", "drop_writes", "extra"});
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->TableParams(), "disk 0 1 1 1 drop_writes");
}

TEST_F(Flakey, T2_RefusesAFeatureTwice) {
  for (const char* f : {"error_reads", "drop_writes", "error_writes"}) {
    EXPECT_EQ(Refused({"1", "1", "2", f, f}).code(), EINVAL) << f;
  }
  EXPECT_EQ(Refused({"1", "1", "10", "corrupt_bio_byte", "1", "r", "0", "0", "corrupt_bio_byte",
                     "2", "r", "0", "0"})
                .code(),
            EINVAL);
  EXPECT_EQ(Refused({"1", "1", "4", "random_read_corrupt", "5", "random_read_corrupt", "6"}).code(),
            EINVAL);
  EXPECT_EQ(
      Refused({"1", "1", "4", "random_write_corrupt", "5", "random_write_corrupt", "6"}).code(),
      EINVAL);
}

TEST_F(Flakey, T2_RefusesConflictingFeatures) {
  EXPECT_EQ(Refused({"1", "1", "2", "drop_writes", "error_writes"}).code(), EINVAL);
  EXPECT_EQ(Refused({"1", "1", "2", "error_writes", "drop_writes"}).code(), EINVAL);
  for (const char* f : {"drop_writes", "error_writes"}) {
    EXPECT_EQ(Refused({"1", "1", "6", f, "corrupt_bio_byte", "1", "w", "0", "0"}).code(), EINVAL)
        << f;
    EXPECT_EQ(Refused({"1", "1", "3", "random_write_corrupt", "1", f}).code(), EINVAL) << f;
    // Read corruption goes with them.
    EXPECT_TRUE(Make({"1", "1", "6", f, "corrupt_bio_byte", "1", "r", "0", "0"}) != nullptr) << f;
  }
  EXPECT_EQ(Refused({"1", "1", "6", "error_reads", "corrupt_bio_byte", "1", "r", "0", "0"}).code(),
            EINVAL);
  EXPECT_EQ(Refused({"1", "1", "3", "error_reads", "random_read_corrupt", "1"}).code(), EINVAL);
  EXPECT_TRUE(Make({"1", "1", "6", "error_reads", "corrupt_bio_byte", "1", "w", "0", "0"}) !=
              nullptr);
  EXPECT_TRUE(Make({"1", "1", "3", "error_reads", "random_write_corrupt", "1"}) != nullptr);
}

TEST_F(Flakey, T2_CycleStartsAtConstructionUpFirstInWholeSeconds) {
  env_.clock.Advance(123456ms);  // the cycle counts from construction, not from the clock's zero
  auto t = Make({"2", "3"});
  std::vector<uint8_t> buf(512);
  auto up = [&] { return Read(*t, 0, buf).ok(); };
  EXPECT_TRUE(up());
  env_.clock.Advance(1999ms);
  EXPECT_TRUE(up());
  env_.clock.Advance(1ms);  // 2 s: down
  EXPECT_FALSE(up());
  env_.clock.Advance(2999ms);  // 4.999 s
  EXPECT_FALSE(up());
  env_.clock.Advance(1ms);  // 5 s: up again
  EXPECT_TRUE(up());
  env_.clock.Advance(2s);  // 7 s: down
  EXPECT_FALSE(up());
}

TEST_F(Flakey, T2_UpIntervalPassesEverything) {
  auto t = Make({"5", "5", "1", "error_writes"});
  auto data = Pattern(4096, 1);
  EXPECT_TRUE(Write(*t, 0, data).ok());
  EXPECT_TRUE(Op(*t, IoOp::kFlush).ok());
  EXPECT_EQ(dev_->Bytes(0, 4096), data);
}

TEST_F(Flakey, T2_DownWithNoFeatureFailsReadsAndWrites) {
  auto t = Make({"0", "1"});
  EXPECT_EQ(t->TableParams(), "disk 0 0 1 2 error_reads error_writes");
  std::vector<uint8_t> buf(512);
  EXPECT_EQ(Read(*t, 0, buf).code(), EIO);
  EXPECT_EQ(Write(*t, 0, Pattern(512, 2)).code(), EIO);
  EXPECT_EQ(Op(*t, IoOp::kFlush).code(), EIO);
  EXPECT_EQ(Op(*t, IoOp::kDiscard, 0, 4096).code(), EIO);
  EXPECT_TRUE(dev_->seen().empty());
  // An explicit zero count, and features that are all off, mean the same.
  EXPECT_EQ(Make({"0", "1", "0"})->TableParams(), "disk 0 0 1 2 error_reads error_writes");
  EXPECT_EQ(Make({"0", "1", "2", "random_read_corrupt", "0"})->TableParams(),
            "disk 0 0 1 2 error_reads error_writes");
}

TEST_F(Flakey, T2_ErrorReadsAloneLetsWritesThrough) {
  auto t = Make({"0", "1", "1", "error_reads"});
  auto data = Pattern(4096, 3);
  EXPECT_TRUE(Write(*t, 4096, data).ok());
  EXPECT_TRUE(Op(*t, IoOp::kFlush).ok());
  EXPECT_EQ(dev_->Bytes(4096, 4096), data);
  std::vector<uint8_t> buf(4096);
  EXPECT_EQ(Read(*t, 4096, buf).code(), EIO);
}

TEST_F(Flakey, T2_ErrorWritesAloneLetsReadsThrough) {
  auto old = Pattern(4096, 4);
  dev_->Poke(0, old);
  auto t = Make({"0", "1", "1", "error_writes"});
  std::vector<uint8_t> buf(4096);
  EXPECT_TRUE(Read(*t, 0, buf).ok());
  EXPECT_EQ(buf, old);
  EXPECT_EQ(Write(*t, 0, Pattern(4096, 5)).code(), EIO);
  EXPECT_EQ(Op(*t, IoOp::kFlush).code(), EIO);
  EXPECT_EQ(Op(*t, IoOp::kWriteZeroes, 0, 4096).code(), EIO);
  EXPECT_EQ(dev_->Bytes(0, 4096), old);
}

TEST_F(Flakey, T2_DropWritesAcknowledgesAndKeepsOldData) {
  auto old = Pattern(8192, 6);
  dev_->Poke(0, old);
  auto t = Make({"0", "1", "1", "drop_writes"});
  EXPECT_TRUE(Write(*t, 0, Pattern(8192, 7), std::nullopt, /*fua=*/true).ok());
  EXPECT_TRUE(Op(*t, IoOp::kFlush).ok());
  EXPECT_TRUE(Op(*t, IoOp::kDiscard, 0, 4096).ok());
  EXPECT_TRUE(Op(*t, IoOp::kWriteZeroes, 0, 4096).ok());
  EXPECT_TRUE(dev_->seen().empty()) << "nothing reached the device";
  std::vector<uint8_t> buf(8192);
  EXPECT_TRUE(Read(*t, 0, buf).ok());  // reads pass with drop_writes alone
  EXPECT_EQ(buf, old);
}

TEST_F(Flakey, T2_RemapsByTheOffset) {
  auto t = env_.Create(kFlakeyTarget, 16, {"disk", "8", "1", "0"}).value();
  auto data = Pattern(1024, 8);
  ASSERT_TRUE(Write(*t, 512, data).ok());
  EXPECT_EQ(dev_->Bytes(4096 + 512, 1024), data);
  ASSERT_TRUE(Op(*t, IoOp::kFlush).ok());
  EXPECT_EQ(dev_->seen().back().op, IoOp::kFlush);
  EXPECT_EQ(dev_->seen().back().offset, 0u);
}

TEST_F(Flakey, T2_CorruptBioByteOnReadsAfterSuccess) {
  auto old = Pattern(4096, 9);
  dev_->Poke(0, old);
  auto t = Make({"0", "1", "5", "corrupt_bio_byte", "32", "r", "1", "0"});
  std::vector<uint8_t> buf(4096);
  ASSERT_TRUE(Read(*t, 0, buf).ok());
  auto expected = old;
  expected[31] = 1;
  EXPECT_EQ(buf, expected);
  EXPECT_EQ(dev_->Bytes(0, 4096), old) << "the medium is not touched";
  // A byte past the request's data is not there to corrupt.
  std::vector<uint8_t> small(16);
  ASSERT_TRUE(Read(*t, 0, small).ok());
  EXPECT_EQ(small, std::vector<uint8_t>(old.begin(), old.begin() + 16));
  // Writes pass untouched.
  auto data = Pattern(4096, 10);
  ASSERT_TRUE(Write(*t, 0, data).ok());
  EXPECT_EQ(dev_->Bytes(0, 4096), data);
  // A failed read is not corrupted (nor is its error hidden).
  dev_->set_fail(true);
  std::vector<uint8_t> failed(4096, 0xEE);
  EXPECT_EQ(Read(*t, 0, failed).code(), EIO);
  EXPECT_EQ(failed, std::vector<uint8_t>(4096, 0xEE));
}

TEST_F(Flakey, T2_CorruptionOnlyWhenFlagsMatch) {
  auto old = Pattern(512, 11);
  dev_->Poke(0, old);
  // Flags 1 (REQ_OP_WRITE's bit) never match a read.
  auto reads = Make({"0", "1", "5", "corrupt_bio_byte", "1", "r", "0", "1"});
  std::vector<uint8_t> buf(512);
  ASSERT_TRUE(Read(*reads, 0, buf).ok());
  EXPECT_EQ(buf, old);
  // Flags REQ_FUA (1 << 17): only FUA writes are corrupted.
  auto writes = Make({"0", "1", "5", "corrupt_bio_byte", "2", "w", "0", "131072"});
  auto data = Pattern(512, 12);
  ASSERT_TRUE(Write(*writes, 0, data).ok());
  EXPECT_EQ(dev_->Bytes(0, 512), data);
  ASSERT_TRUE(Write(*writes, 0, data, std::nullopt, /*fua=*/true).ok());
  auto expected = data;
  expected[1] = 0;
  EXPECT_EQ(dev_->Bytes(0, 512), expected);
}

TEST_F(Flakey, T2_CorruptedWriteIsAPrivateCopyWithoutCryptoContext) {
  auto caps = testing::XtsCaps();
  auto crypto_dev = env_.AddDevice("ice0", kDevBytes, &caps);
  auto t = env_.Create(kFlakeyTarget, kSectors,
                       {"ice0", "0", "0", "1", "5", "corrupt_bio_byte", "100", "w", "171", "0"})
               .value();
  KeyPtr key = testing::MakeKey(1);
  auto data = Pattern(8192, 13);
  const auto original = data;
  ASSERT_TRUE(Write(*t, 4096, data, CryptoContext{key.get(), Dun::FromU64(1)}).ok());
  EXPECT_EQ(data, original) << "the caller's buffer is never modified";
  ASSERT_EQ(crypto_dev->seen().size(), 1u);
  EXPECT_EQ(crypto_dev->seen()[0].key, nullptr) << "D8: the corrupted copy has no crypto context";
  auto expected = original;
  expected[99] = 171;
  EXPECT_EQ(crypto_dev->Bytes(4096, 8192), expected);
}

TEST_F(Flakey, T2_OtherRequestsKeepTheirCryptoContext) {
  auto caps = testing::XtsCaps();
  auto crypto_dev = env_.AddDevice("ice0", kDevBytes, &caps);
  // Down from the start, corrupting only FUA writes.
  auto t = env_.Create(kFlakeyTarget, kSectors,
                       {"ice0", "8", "0", "1", "5", "corrupt_bio_byte", "1", "w", "0", "131072"})
               .value();
  KeyPtr key = testing::MakeKey(2);
  ASSERT_TRUE(Write(*t, 4096, Pattern(4096, 14), CryptoContext{key.get(), Dun::FromU64(7)}).ok());
  std::vector<uint8_t> buf(4096);
  ASSERT_TRUE(Read(*t, 4096, buf, CryptoContext{key.get(), Dun::FromU64(7)}).ok());
  auto seen = crypto_dev->seen();
  ASSERT_EQ(seen.size(), 2u);
  for (const auto& s : seen) {
    EXPECT_EQ(s.key, key.get());
    EXPECT_EQ(s.dun, Dun::FromU64(7)) << "D8: remapping never changes the DUN";
    EXPECT_EQ(s.offset, 8192u);
  }
}

TEST_F(Flakey, T2_RandomReadCorruptChangesOneByteOfSuccessfulReads) {
  auto old = Pattern(4096, 15);
  dev_->Poke(0, old);
  auto t = Make({"0", "1", "2", "random_read_corrupt", "1000000000"});
  int reads_changed = 0;
  for (int i = 0; i < 32; ++i) {
    std::vector<uint8_t> buf(4096);
    ASSERT_TRUE(Read(*t, 0, buf).ok());
    int diff = 0;
    for (size_t j = 0; j < buf.size(); ++j) diff += buf[j] != old[j];
    EXPECT_LE(diff, 1);
    reads_changed += diff;
  }
  EXPECT_GT(reads_changed, 16) << "P = 10^9 / 10^9 corrupts every read (a random value may "
                                  "equal the old one)";
  EXPECT_EQ(dev_->Bytes(0, 4096), old);
  // Writes pass untouched.
  auto data = Pattern(4096, 16);
  ASSERT_TRUE(Write(*t, 0, data).ok());
  EXPECT_EQ(dev_->Bytes(0, 4096), data);
}

TEST_F(Flakey, T2_RandomWriteCorruptChangesOneByteOfAPrivateCopy) {
  auto t = Make({"0", "1", "2", "random_write_corrupt", "1000000000"});
  int writes_changed = 0;
  for (int i = 0; i < 32; ++i) {
    auto data = Pattern(4096, static_cast<uint8_t>(i));
    const auto original = data;
    ASSERT_TRUE(Write(*t, 0, data).ok());
    EXPECT_EQ(data, original);
    auto stored = dev_->Bytes(0, 4096);
    int diff = 0;
    for (size_t j = 0; j < stored.size(); ++j) diff += stored[j] != original[j];
    EXPECT_LE(diff, 1);
    writes_changed += diff;
  }
  EXPECT_GT(writes_changed, 16);
  // P = 0 never corrupts, and random_read_corrupt 0 is not an active feature.
  auto never = Make({"0", "1", "4", "random_write_corrupt", "0", "drop_writes", "error_reads"});
  EXPECT_EQ(never->TableParams(), "disk 0 0 1 2 error_reads drop_writes");
}

// Hardening 14 (T2, T7): the table is mainline's flakey_status, exactly: " %u" and " <feature>"
// after the four fields, no trailing space (kernel 6.1 ended every field with a space, and knew
// neither error_reads nor random_*_corrupt), features in a fixed order whatever the order given.
// The examples of notes/real-kernel.md; a table without features prints what mainline records.
TEST_F(Flakey, Hardening14_TableIsMainlinesFlakeyStatusExactly) {
  auto make = [&](std::vector<std::string> a) {
    return env_.Create(kFlakeyTarget, kSectors, a).value()->TableParams();
  };
  EXPECT_EQ(make({"disk", "0", "60", "0"}), "disk 0 60 0 2 error_reads error_writes");
  EXPECT_EQ(make({"disk", "0", "0", "1", "1", "drop_writes"}), "disk 0 0 1 1 drop_writes");
  EXPECT_EQ(make({"disk", "0", "5", "5", "5", "corrupt_bio_byte", "32", "w", "1", "0"}),
            "disk 0 5 5 5 corrupt_bio_byte 32 w 1 0");
  EXPECT_EQ(
      make({"disk", "0", "0", "1", "6", "corrupt_bio_byte", "32", "r", "1", "0", "drop_writes"}),
      "disk 0 0 1 6 drop_writes corrupt_bio_byte 32 r 1 0");
  EXPECT_EQ(make({"disk", "8", "3", "4", "9", "random_write_corrupt", "7", "CORRUPT_BIO_BYTE", "3",
                  "W", "9", "0", "Random_Read_Corrupt", "5"}),
            "disk 8 3 4 9 corrupt_bio_byte 3 w 9 0 random_read_corrupt 5 random_write_corrupt 7");
  EXPECT_EQ(make({"disk", "0", "1", "1", "2", "error_reads", "Error_Writes"}),
            "disk 0 1 1 2 error_reads error_writes");
}

TEST_F(Flakey, T2_StatusIsEmpty) {
  EXPECT_EQ(Make({"1", "1", "1", "drop_writes"})->StatusParams(), "");
  EXPECT_EQ(Make({"1", "1"})->Message({"anything"}).status().code(), EINVAL);
}

// Hardening 10: a corrupted write loses its crypto context, as in the kernel (above): the target
// warns of it whenever write corruption is set, and only then.
TEST_F(Flakey, Hardening10_WriteCorruptionWarnsOfPlaintextOnKeyedPaths) {
  for (const std::vector<std::string>& words : {
           std::vector<std::string>{"1", "1", "5", "corrupt_bio_byte", "32", "w", "1", "0"},
           {"1", "1", "5", "CORRUPT_BIO_BYTE", "1", "W", "0", "131072"},
           {"1", "1", "2", "random_write_corrupt", "1"},
           {"1", "1", "4", "random_write_corrupt", "1000000000", "random_read_corrupt", "5"},
       }) {
    const std::string warning = Make(words)->Warning();
    EXPECT_NE(warning.find("without the crypto context"), std::string::npos) << warning;
    EXPECT_NE(warning.find("plaintext"), std::string::npos) << warning;
    EXPECT_NE(warning.find("cannot know whether keyed writes will come"), std::string::npos)
        << warning;
  }
  for (const std::vector<std::string>& words : {
           std::vector<std::string>{"1", "1"},
           {"1", "1", "5", "corrupt_bio_byte", "32", "r", "1", "0"},
           {"1", "1", "2", "random_write_corrupt", "0"},
           {"1", "1", "2", "random_read_corrupt", "7"},
           {"1", "1", "1", "drop_writes"},
           {"1", "1", "1", "error_writes"},
       }) {
    EXPECT_EQ(Make(words)->Warning(), "") << words.size();
  }
}

TEST(TargetTypes, D7_FlakeyPassesCrypto) {
  EXPECT_EQ(kFlakeyTarget.name, "flakey");
  EXPECT_TRUE(kFlakeyTarget.passes_crypto);
}

}  // namespace
}  // namespace ice::dm
