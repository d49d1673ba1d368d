#include "dm/targets/default_key.h"

#include <cerrno>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "keyslot/hardware_device.h"
#include "tests/unit/dm_targets/dm_target_test_env.h"

namespace ice::dm {
namespace {

using testing::DmCryptXts;
using testing::Hex;
using testing::Op;
using testing::Pattern;
using testing::Read;
using testing::TestEnv;
using testing::Write;
using testing::XtsKeyBytes;

constexpr uint64_t kDevBytes = 1 << 20;
const char kXts[] = "aes-xts-plain64";

class DefaultKey : public ::testing::Test {
 protected:
  DefaultKey()
      : caps_(testing::XtsCaps()),
        dev_(env_.AddDevice("ice0", kDevBytes, &caps_)),
        plain_(env_.AddDevice("plain", kDevBytes)),
        key_hex_(Hex(XtsKeyBytes(1))) {}

  // default-key over ice0 from its start, `sectors` long, with `opts` after <start>.
  Result<std::unique_ptr<Target>> Create(uint64_t sectors, const std::string& iv_offset,
                                         std::vector<std::string> opts = {},
                                         const std::string& dev = "ice0",
                                         const std::string& start = "0") {
    std::vector<std::string> args = {kXts, key_hex_, iv_offset, dev, start};
    args.insert(args.end(), opts.begin(), opts.end());
    return env_.Create(kDefaultKeyTarget, sectors, args);
  }
  std::unique_ptr<Target> Make(uint64_t sectors, const std::string& iv_offset,
                               std::vector<std::string> opts = {},
                               const std::string& dev = "ice0") {
    auto t = Create(sectors, iv_offset, std::move(opts), dev);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? std::move(*t) : nullptr;
  }
  int Code(std::vector<std::string> args, uint64_t sectors = 256) {
    return env_.Create(kDefaultKeyTarget, sectors, std::move(args)).status().code();
  }

  CryptoCapabilities caps_;
  TestEnv env_;
  std::shared_ptr<testing::RecordingDevice> dev_;
  std::shared_ptr<testing::RecordingDevice> plain_;
  std::string key_hex_;
};

TEST_F(DefaultKey, T6_ArgumentErrors) {
  EXPECT_EQ(Code({kXts, key_hex_, "0", "ice0"}), EINVAL);
  EXPECT_EQ(Code({"aes-cbc-essiv:sha256", key_hex_, "0", "ice0", "0"}), EINVAL);
  EXPECT_EQ(Code({kXts, key_hex_ + "0", "0", "ice0", "0"}), EINVAL) << "odd length";
  EXPECT_EQ(Code({kXts, "zz" + key_hex_.substr(2), "0", "ice0", "0"}), EINVAL) << "not hex";
  EXPECT_EQ(Code({kXts, key_hex_.substr(0, 64), "0", "ice0", "0"}), EINVAL) << "32-byte key";
  EXPECT_EQ(Code({kXts, std::string(128, 'a'), "0", "ice0", "0"}), EINVAL) << "weak XTS key";
  EXPECT_EQ(Code({kXts, key_hex_, "x", "ice0", "0"}), EINVAL);
  EXPECT_EQ(Code({kXts, key_hex_, "0", "nope", "0"}), ENXIO);
  EXPECT_EQ(Code({kXts, key_hex_, "0", "ice0", "x"}), EINVAL);
  EXPECT_EQ(Code({kXts, key_hex_, "0", "ice0", "1800"}), EINVAL) << "beyond the device";
  // Options: at most 4, all of them present, each known.
  EXPECT_EQ(Create(256, "0",
                   {"5", "allow_discards", "allow_discards", "allow_discards", "allow_discards",
                    "allow_discards"})
                .status()
                .code(),
            EINVAL);
  EXPECT_EQ(Create(256, "0", {"2", "allow_discards"}).status().code(), EINVAL);
  EXPECT_EQ(Create(256, "0", {"1", "no_such_option"}).status().code(), EINVAL);
  for (const char* size : {"sector_size:256", "sector_size:8192", "sector_size:1000",
                           "sector_size:", "sector_size:4k"}) {
    EXPECT_EQ(Create(256, "0", {"2", size, "iv_large_sectors"}).status().code(), EINVAL) << size;
  }
  // default-key implements only the iv_large_sectors layout for large sectors.
  auto no_large = Create(256, "0", {"1", "sector_size:4096"});
  EXPECT_EQ(no_large.status().code(), EINVAL);
  EXPECT_NE(no_large.status().message().find("iv_large_sectors must be specified"),
            std::string::npos);
  EXPECT_TRUE(Create(256, "0", {"1", "sector_size:512"}).ok());
  // The length must be a multiple of the sector size.
  EXPECT_EQ(Create(12, "0", {"2", "sector_size:4096", "iv_large_sectors"}).status().code(), EINVAL);
  EXPECT_TRUE(Create(16, "0", {"2", "sector_size:4096", "iv_large_sectors"}).ok());
}

TEST_F(DefaultKey, T6_AdiantumAndWrappedKeysAreRefusedWithAReason) {
  auto adiantum =
      env_.Create(kDefaultKeyTarget, 256,
                  {"xchacha12,aes-adiantum-plain64", key_hex_.substr(0, 64), "0", "ice0", "0"});
  EXPECT_EQ(adiantum.status().code(), EINVAL);
  EXPECT_NE(adiantum.status().message().find("cannot compute"), std::string::npos)
      << adiantum.status().message();
  auto wrapped = Create(256, "0", {"1", "wrappedkey_v0"});
  EXPECT_EQ(wrapped.status().code(), EINVAL);
  EXPECT_NE(wrapped.status().message().find("raw keys only"), std::string::npos);
}

TEST_F(DefaultKey, T6_TargetTooSmallForADunIsRefused) {
  // One 4096-byte sector at iv_offset 0: the largest DUN is 0, which needs 0 DUN bytes.
  EXPECT_EQ(Create(8, "0", {"2", "sector_size:4096", "iv_large_sectors"}).status().code(), EINVAL);
  EXPECT_EQ(Create(1, "0").status().code(), EINVAL);
  EXPECT_TRUE(Create(1, "1").ok());
  EXPECT_TRUE(Create(8, "8", {"2", "sector_size:4096", "iv_large_sectors"}).ok());
}

TEST_F(DefaultKey, T6_DunIsIvOffsetPlusSectorOverSectorSize) {
  auto t = Make(256, "16", {"2", "sector_size:4096", "iv_large_sectors"});
  ASSERT_TRUE(Write(*t, 8192, Pattern(8192, 1)).ok());
  std::vector<uint8_t> buf(4096);
  ASSERT_TRUE(Read(*t, 4096, buf).ok());
  auto seen = dev_->seen();
  ASSERT_EQ(seen.size(), 2u);
  ASSERT_NE(seen[0].key, nullptr);
  EXPECT_EQ(seen[0].dun, Dun::FromU64((16 + 16) / 8));
  EXPECT_EQ(seen[0].offset, 8192u);
  EXPECT_EQ(seen[1].dun, Dun::FromU64((16 + 8) / 8));
  EXPECT_EQ(seen[0].key, seen[1].key);
  EXPECT_EQ(seen[0].key->config().data_unit_size, 4096u);
  EXPECT_EQ(t->logical_block_size(), 4096u);

  // 512-byte sectors: DUN = iv_offset + sector; the start moves the data, not the DUN.
  dev_->clear_seen();
  auto small = env_.Create(kDefaultKeyTarget, 64, {kXts, key_hex_, "1000", "ice0", "64"}).value();
  ASSERT_TRUE(Write(*small, 1024, Pattern(1024, 2)).ok());
  seen = dev_->seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].dun, Dun::FromU64(1002));
  EXPECT_EQ(seen[0].offset, 64 * 512u + 1024);
  EXPECT_EQ(small->logical_block_size(), 512u);
}

TEST_F(DefaultKey, T6_MisalignedDunFailsWithEio) {
  auto t = Make(256, "4", {"2", "sector_size:4096", "iv_large_sectors"});
  EXPECT_EQ(Write(*t, 0, Pattern(4096, 3)).code(), EIO);
  std::vector<uint8_t> buf(4096);
  EXPECT_EQ(Read(*t, 4096, buf).code(), EIO);
  EXPECT_TRUE(dev_->seen().empty());
}

TEST_F(DefaultKey, T6_DunBytesAreThoseOfTheLargestDun) {
  auto dun_bytes = [&](uint64_t sectors, const std::string& iv_offset) {
    auto t = Make(sectors, iv_offset, {"2", "sector_size:4096", "iv_large_sectors"});
    dev_->clear_seen();
    EXPECT_TRUE(Write(*t, 0, Pattern(4096, 4)).ok());
    return dev_->seen().at(0).key->config().dun_bytes;
  };
  EXPECT_EQ(dun_bytes(16, "0"), 1u);            // largest DUN 1
  EXPECT_EQ(dun_bytes(2048, "0"), 1u);          // 255
  EXPECT_EQ(dun_bytes(2048, "8"), 2u);          // 256
  EXPECT_EQ(dun_bytes(16, "34359738360"), 5u);  // 2^32
  EXPECT_EQ(dun_bytes(16, "34359738352"), 4u);  // 2^32 - 1
}

TEST_F(DefaultKey, T6_OnlyDataGetsTheKey) {
  auto t = Make(256, "0", {"1", "allow_discards"});
  ASSERT_TRUE(Op(*t, IoOp::kFlush).ok());
  ASSERT_TRUE(Op(*t, IoOp::kDiscard, 4096, 4096).ok());
  // N5 (ice): write-zeroes means "write encrypted zeros", so it takes the key like a write.
  ASSERT_TRUE(Op(*t, IoOp::kWriteZeroes, 8192, 4096).ok());
  auto seen = dev_->seen();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].op, IoOp::kFlush);
  EXPECT_EQ(seen[0].key, nullptr);
  EXPECT_EQ(seen[1].op, IoOp::kDiscard);
  EXPECT_EQ(seen[1].key, nullptr);
  EXPECT_EQ(seen[2].op, IoOp::kWrite) << "encrypted zeros are written";
  ASSERT_NE(seen[2].key, nullptr);
  EXPECT_EQ(seen[2].dun, Dun::FromU64(16));
  EXPECT_TRUE(t->supports_discard());
}

TEST_F(DefaultKey, T6_DiscardsNeedAllowDiscards) {
  auto t = Make(256, "0");
  EXPECT_EQ(Op(*t, IoOp::kDiscard, 0, 4096).code(), EOPNOTSUPP);
  EXPECT_TRUE(dev_->seen().empty());
  EXPECT_FALSE(t->supports_discard());
}

TEST_F(DefaultKey, T6_RequestWithAContextPassesUnchanged) {
  auto t = Make(256, "0", {}, "ice0");
  KeyPtr other = testing::MakeKey(9, 512);
  ASSERT_TRUE(Write(*t, 1024, Pattern(1024, 5), CryptoContext{other.get(), Dun::FromU64(77)}).ok());
  auto seen = dev_->seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].key, other.get());
  EXPECT_EQ(seen[0].dun, Dun::FromU64(77));
}

TEST_F(DefaultKey, T6_TablePrintsTheKeyAsADash) {
  EXPECT_EQ(Make(256, "0")->TableParams(), "aes-xts-plain64 - 0 ice0 0");
  EXPECT_EQ(Make(256, "0")->StatusParams(), "");
  EXPECT_EQ(Make(256, "8", {"3", "allow_discards", "sector_size:4096", "iv_large_sectors"})
                ->TableParams(),
            "aes-xts-plain64 - 8 ice0 0 3 allow_discards sector_size:4096 iv_large_sectors");
  EXPECT_EQ(Make(256, "8", {"2", "iv_large_sectors", "sector_size:2048"})->TableParams(),
            "aes-xts-plain64 - 8 ice0 0 2 sector_size:2048 iv_large_sectors");
  EXPECT_EQ(Make(256, "8", {"1", "iv_large_sectors"})->TableParams(), "aes-xts-plain64 - 8 ice0 0")
      << "as in the kernel, iv_large_sectors is printed only with a sector size";
  auto t = env_.Create(kDefaultKeyTarget, 64, {kXts, key_hex_, "5", "ice0", "128"}).value();
  EXPECT_EQ(t->TableParams(), "aes-xts-plain64 - 5 ice0 128");
  EXPECT_EQ(t->TableParams().find(key_hex_), std::string::npos);
}

TEST_F(DefaultKey, T6_KeyringFormUsesTheRegistrysKey) {
  KeyPtr key = testing::MakeKey(3, 4096, 4);
  ASSERT_TRUE(env_.keys.Add("disk-key", key).ok());
  const std::string ref = ":64:logon:disk-key";
  auto t = env_.Create(kDefaultKeyTarget, 256,
                       {kXts, ref, "0", "ice0", "0", "2", "sector_size:4096", "iv_large_sectors"})
               .value();
  EXPECT_EQ(t->TableParams(),
            "aes-xts-plain64 :64:logon:disk-key 0 ice0 0 2 sector_size:4096 iv_large_sectors");
  ASSERT_TRUE(Write(*t, 4096, Pattern(4096, 6)).ok());
  ASSERT_EQ(dev_->seen().size(), 1u);
  EXPECT_EQ(dev_->seen()[0].key, key.get()) << "the registry's key itself";
  EXPECT_EQ(dev_->seen()[0].dun, Dun::FromU64(1));
  EXPECT_EQ(env_.keys.Remove("disk-key").status().code(), EBUSY) << "N8: the table uses it";
  t.reset();
  EXPECT_TRUE(env_.keys.Remove("disk-key").ok());
}

TEST_F(DefaultKey, T6_KeyringFormChecksTheKey) {
  ASSERT_TRUE(env_.keys.Add("k4096", testing::MakeKey(4, 4096, 8)).ok());
  ASSERT_TRUE(env_.keys.Add("k512", testing::MakeKey(5, 512, 8)).ok());
  ASSERT_TRUE(env_.keys.Add("narrow", testing::MakeKey(6, 512, 1)).ok());
  std::vector<uint8_t> cbc(16, 7);
  cbc[0] = 1;
  ASSERT_TRUE(
      env_.keys
          .Add("cbc",
               CryptoKey::Create({CryptoMode::kAes128CbcEssiv, 512, 8, KeyType::kRaw}, cbc).value())
          .ok());
  auto code = [&](const std::string& ref, std::vector<std::string> opts = {},
                  uint64_t sectors = 256) {
    std::vector<std::string> args = {kXts, ref, "0", "ice0", "0"};
    args.insert(args.end(), opts.begin(), opts.end());
    return env_.Create(kDefaultKeyTarget, sectors, args).status().code();
  };
  EXPECT_EQ(code(":64:logon:k512"), 0);
  EXPECT_EQ(code(":32:logon:k512"), EINVAL) << "size";
  EXPECT_EQ(code(":64:user:k512"), EINVAL) << "key type";
  EXPECT_EQ(code(":64:logon:missing"), ENOENT);
  EXPECT_EQ(code(":64:logon"), EINVAL);
  EXPECT_EQ(code(":x:logon:k512"), EINVAL);
  EXPECT_EQ(code(":64:logon:k4096"), EINVAL) << "data unit size is not the sector size";
  EXPECT_EQ(code(":64:logon:k4096", {"2", "sector_size:4096", "iv_large_sectors"}), 0);
  EXPECT_EQ(code(":16:logon:cbc"), EINVAL) << "mode";
  EXPECT_EQ(code(":64:logon:narrow", {}, 256), 0);
  EXPECT_EQ(code(":64:logon:narrow", {}, 257), EINVAL) << "DUN 256 needs 2 bytes, the key has 1";
}

TEST_F(DefaultKey, T6_InlineKeyIsEvictedWhenTheTargetGoes) {
  // Over a plain device the fallback serves the key and keeps it in its pool (F2, F4).
  auto t = Make(256, "0", {}, "plain");
  ASSERT_TRUE(Write(*t, 0, Pattern(4096, 7)).ok());
  auto programmed = [&] {
    int n = 0;
    for (const SlotState& s : env_.blk.fallback().profile().Slots()) n += s.key_id != 0;
    return n;
  };
  EXPECT_EQ(programmed(), 1);
  t.reset();
  EXPECT_EQ(programmed(), 0);
}

TEST_F(DefaultKey, T6_OverAPlainDeviceTheFallbackWritesDmCryptsLayout) {
  auto t = Make(256, "16", {"2", "sector_size:4096", "iv_large_sectors"}, "plain");
  auto data = Pattern(3 * 4096, 8);
  ASSERT_TRUE(Write(*t, 4096, data).ok());
  for (const auto& s : plain_->seen()) EXPECT_EQ(s.key, nullptr);
  // --sector-size 4096 --iv-large-sectors: the tweak of a unit is its index, iv_offset included.
  EXPECT_EQ(plain_->Bytes(4096, data.size()), DmCryptXts(XtsKeyBytes(1), 16 / 8 + 1, 4096, data));
  std::vector<uint8_t> back(data.size());
  ASSERT_TRUE(Read(*t, 4096, back).ok());
  EXPECT_EQ(back, data);
}

TEST_F(DefaultKey, T6_OnHardwareTheMediumHoldsDmCryptsLayout) {
  for (const bool large : {true, false}) {
    auto backend = std::make_unique<MemoryBackend>(kDevBytes);
    MemoryBackend* medium = backend.get();
    auto hw = std::make_shared<HardwareDevice>(std::move(backend), 4, caps_, env_.clock);
    env_.devices.Add("hw", hw);
    std::vector<std::string> opts;
    if (large) opts = {"2", "sector_size:4096", "iv_large_sectors"};
    auto t = env_.Create(kDefaultKeyTarget, 1024,
                         [&] {
                           std::vector<std::string> a = {kXts, key_hex_, "24", "hw", "16"};
                           a.insert(a.end(), opts.begin(), opts.end());
                           return a;
                         }())
                 .value();
    auto data = Pattern(4 * 4096, large ? 9 : 10);
    ASSERT_TRUE(Write(*t, 8192, data).ok());
    std::vector<uint8_t> raw(data.size());
    IoRequest r{.op = IoOp::kRead,
                .offset_bytes = 16 * 512 + 8192,
                .length_bytes = raw.size(),
                .read_buf = raw.data()};
    ASSERT_TRUE(medium->Submit(r).ok());
    // With 4096-byte sectors the tweak is the unit index; with 512-byte ones the sector number.
    const uint64_t first = large ? (24 + 16) / 8 : 24 + 16;
    EXPECT_EQ(raw, DmCryptXts(XtsKeyBytes(1), first, large ? 4096 : 512, data)) << large;
    std::vector<uint8_t> back(data.size());
    ASSERT_TRUE(Read(*t, 8192, back).ok());
    EXPECT_EQ(back, data);
    // The key sits in a slot until the target goes.
    auto in_slots = [&] {
      int n = 0;
      for (const SlotState& s : hw->crypto_profile()->Slots()) n += s.key_id != 0;
      return n;
    };
    EXPECT_EQ(in_slots(), 1);
    t.reset();
    EXPECT_EQ(in_slots(), 0);
  }
}

TEST(TargetTypes, D7_DefaultKeyPassesCrypto) {
  EXPECT_EQ(kDefaultKeyTarget.name, "default-key");
  EXPECT_TRUE(kDefaultKeyTarget.passes_crypto);
}

}  // namespace
}  // namespace ice::dm
