// The inlinecrypt target (rules I1–I6; mainline's dm-inlinecrypt).
#include "dm/targets/inlinecrypt.h"

#include <cerrno>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "dm/mapped_device.h"
#include "dm/table.h"
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
const std::vector<std::string> k4k = {"2", "sector_size:4096", "iv_large_sectors"};

class InlineCrypt : public ::testing::Test {
 protected:
  InlineCrypt()
      : caps_(testing::XtsCaps()),
        dev_(env_.AddDevice("ice0", kDevBytes, &caps_)),
        plain_(env_.AddDevice("plain", kDevBytes)),
        key_hex_(Hex(XtsKeyBytes(1))) {}

  Result<std::unique_ptr<Target>> Create(uint64_t sectors, const std::string& iv_offset,
                                         std::vector<std::string> opts = {},
                                         const std::string& dev = "ice0") {
    std::vector<std::string> args = {kXts, key_hex_, iv_offset, dev, "0"};
    args.insert(args.end(), opts.begin(), opts.end());
    return env_.Create(kInlineCryptTarget, sectors, args);
  }
  std::unique_ptr<Target> Make(uint64_t sectors, const std::string& iv_offset,
                               std::vector<std::string> opts = {},
                               const std::string& dev = "ice0") {
    auto t = Create(sectors, iv_offset, std::move(opts), dev);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? std::move(*t) : nullptr;
  }
  int Code(uint64_t sectors, const std::string& iv_offset, std::vector<std::string> opts) {
    return Create(sectors, iv_offset, std::move(opts)).status().code();
  }

  CryptoCapabilities caps_;
  TestEnv env_;
  std::shared_ptr<testing::RecordingDevice> dev_;
  std::shared_ptr<testing::RecordingDevice> plain_;
  std::string key_hex_;
};

TEST_F(InlineCrypt, I1_SyntaxCipherKeyAndOptions) {
  // aes-xts-plain64 only: not even default-key's Adiantum.
  for (const char* cipher : {"xchacha12,aes-adiantum-plain64", "aes-cbc-essiv:sha256", "x"}) {
    EXPECT_EQ(
        env_.Create(kInlineCryptTarget, 256, {cipher, key_hex_, "0", "ice0", "0"}).status().code(),
        EINVAL)
        << cipher;
  }
  EXPECT_EQ(env_.Create(kInlineCryptTarget, 256, {kXts, key_hex_, "0", "ice0"}).status().code(),
            EINVAL);
  EXPECT_EQ(env_.Create(kInlineCryptTarget, 256, {kXts, key_hex_ + "0", "0", "ice0", "0"})
                .status()
                .code(),
            EINVAL);
  EXPECT_TRUE(Create(256, "0", {"1", "keytype:raw"}).ok());
  EXPECT_EQ(Code(256, "0", {"1", "keytype:"}), EINVAL);
  EXPECT_EQ(Code(256, "0", {"1", "keytype:magic"}), EINVAL);
  EXPECT_EQ(Code(256, "0", {"1", "wrappedkey_v0"}), EINVAL) << "default-key's option, not ours";
  auto wrapped = Create(256, "0", {"1", "keytype:hw-wrapped"});
  EXPECT_EQ(wrapped.status().code(), EINVAL);
  EXPECT_NE(wrapped.status().message().find("raw keys only"), std::string::npos);
  EXPECT_TRUE(Create(256, "0",
                     {"4", "keytype:raw", "allow_discards", "sector_size:4096", "iv_large_sectors"})
                  .ok());
  EXPECT_EQ(Code(256, "0",
                 {"5", "keytype:raw", "allow_discards", "sector_size:4096", "iv_large_sectors",
                  "allow_discards"}),
            EINVAL);
}

TEST_F(InlineCrypt, I1_TheKeyringFormNamesARegistryKey) {
  CryptoConfig config{CryptoMode::kAes256Xts, 4096, 8, KeyType::kRaw};
  auto key = CryptoKey::Create(config, XtsKeyBytes(3));
  ASSERT_TRUE(key.ok());
  ASSERT_TRUE(env_.keys.Add("k3", std::move(*key)).ok());
  auto t = env_.Create(
      kInlineCryptTarget, 256,
      {kXts, ":64:logon:k3", "0", "ice0", "0", "2", "sector_size:4096", "iv_large_sectors"});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ((*t)->TableParams(),
            "aes-xts-plain64 :64:logon:k3 1 0 ice0 0 2 sector_size:4096 iv_large_sectors");
  EXPECT_EQ(env_.Create(kInlineCryptTarget, 256, {kXts, ":64:logon:nosuch", "0", "ice0", "0"})
                .status()
                .code(),
            ENOENT);
}

TEST_F(InlineCrypt, I2_SectorSizeAlignmentAndLogicalBlockSize) {
  for (const char* size : {"sector_size:256", "sector_size:8192", "sector_size:1000"}) {
    EXPECT_EQ(Code(256, "0", {"2", size, "iv_large_sectors"}), EINVAL) << size;
  }
  EXPECT_EQ(Code(256, "0", {"1", "sector_size:4096"}), EINVAL) << "needs iv_large_sectors";
  EXPECT_TRUE(Create(256, "0", {"1", "sector_size:512"}).ok());
  EXPECT_EQ(Code(12, "0", k4k), EINVAL) << "length not a multiple of the sector size";
  EXPECT_EQ(Code(256, "4", k4k), EINVAL) << "iv_offset not a multiple of the sector size";
  auto t = Make(256, "8", k4k);
  EXPECT_EQ(t->logical_block_size(), 4096u);
  EXPECT_EQ(Make(256, "3")->logical_block_size(), 512u);
}

TEST_F(InlineCrypt, I3_DunIsIvOffsetPlusSectorInSectorSizeUnits) {
  auto t = Make(256, "16", k4k);
  ASSERT_TRUE(Write(*t, 8192, Pattern(8192, 1)).ok());
  auto seen = dev_->seen();
  ASSERT_EQ(seen.size(), 1u);
  ASSERT_NE(seen[0].key, nullptr);
  EXPECT_EQ(seen[0].dun, Dun::FromU64((16 + 16) / 8));
  EXPECT_EQ(seen[0].key->config().data_unit_size, 4096u);
  // A request whose DUN is not a whole sector is killed (EIO) and never reaches the device.
  dev_->clear_seen();
  EXPECT_EQ(Write(*t, 512, Pattern(4096, 2)).code(), EIO);
  EXPECT_TRUE(dev_->seen().empty());
}

TEST_F(InlineCrypt, I3_OnHardwareTheMediumHoldsDmCryptsLayout) {
  auto backend = std::make_unique<MemoryBackend>(kDevBytes);
  MemoryBackend* medium = backend.get();
  auto hw = std::make_shared<HardwareDevice>(std::move(backend), 2, caps_, env_.clock);
  env_.devices.Add("hw", hw);
  auto t =
      env_.Create(kInlineCryptTarget, 1024,
                  {kXts, key_hex_, "20", "hw", "16", "2", "sector_size:4096", "iv_large_sectors"});
  EXPECT_EQ(t.status().code(), EINVAL) << "iv_offset 20 is not a whole 4096-byte sector";
  t = env_.Create(kInlineCryptTarget, 1024,
                  {kXts, key_hex_, "32", "hw", "16", "2", "sector_size:4096", "iv_large_sectors"});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  auto data = Pattern(4 * 4096, 9);
  ASSERT_TRUE(Write(**t, 8192, data).ok());
  std::vector<uint8_t> raw(data.size());
  ASSERT_TRUE(medium
                  ->Submit(IoRequest{.op = IoOp::kRead,
                                     .offset_bytes = 16 * 512 + 8192,
                                     .length_bytes = raw.size(),
                                     .read_buf = raw.data()})
                  .ok());
  EXPECT_EQ(raw, DmCryptXts(XtsKeyBytes(1), (32 + 16) / 8, 4096, data));
  std::vector<uint8_t> back(data.size());
  ASSERT_TRUE(Read(**t, 8192, back).ok());
  EXPECT_EQ(back, data);
}

TEST_F(InlineCrypt, I3_OverAPlainDeviceTheFallbackEncrypts) {
  auto t = Make(256, "0", k4k, "plain");
  auto data = Pattern(2 * 4096, 4);
  ASSERT_TRUE(Write(*t, 4096, data).ok());
  for (const auto& s : plain_->seen()) EXPECT_EQ(s.key, nullptr);
  EXPECT_EQ(plain_->Bytes(4096, data.size()), DmCryptXts(XtsKeyBytes(1), 1, 4096, data));
}

TEST_F(InlineCrypt, I4_DoesNotPassCryptoAndKillsARequestWithAContext) {
  EXPECT_FALSE(kInlineCryptTarget.passes_crypto);
  auto t = Make(256, "0", k4k);
  auto other = testing::MakeKey(7);
  EXPECT_EQ(Write(*t, 0, Pattern(4096, 1), CryptoContext{other.get(), Dun::FromU64(0)}).code(),
            EIO);
  EXPECT_TRUE(dev_->seen().empty());
  // Above it, a table has no crypto profile (D3): keyed I/O goes through the fallback there.
  MappedDevice md("md", env_.blk);
  auto table = Table::Create({"0 256 inlinecrypt " + std::string(kXts) + " " + key_hex_ +
                              " 0 ice0 0 2 sector_size:4096 iv_large_sectors"},
                             env_.env);
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  EXPECT_EQ((*table)->capabilities(), nullptr);
}

TEST_F(InlineCrypt, I4_FlushesPassDiscardsNeedAllowDiscardsZeroesAreEncrypted) {
  auto t = Make(256, "0", k4k);
  EXPECT_TRUE(Op(*t, IoOp::kFlush).ok());
  EXPECT_EQ(Op(*t, IoOp::kDiscard, 0, 4096).code(), EOPNOTSUPP);
  EXPECT_FALSE(t->supports_discard());
  ASSERT_TRUE(Op(*t, IoOp::kWriteZeroes, 4096, 4096).ok());
  auto seen = dev_->seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].op, IoOp::kFlush);
  EXPECT_EQ(seen[1].op, IoOp::kWrite) << "encrypted zeros (N5)";
  EXPECT_NE(seen[1].key, nullptr);
  auto d = Make(256, "0", {"1", "allow_discards"});
  EXPECT_TRUE(d->supports_discard());
  dev_->clear_seen();
  ASSERT_TRUE(Op(*d, IoOp::kDiscard, 0, 4096).ok());
  EXPECT_EQ(dev_->seen().at(0).key, nullptr);
}

TEST_F(InlineCrypt, I5_TheDestructorEvictsTheKeyEverywhere) {
  auto backend = std::make_unique<MemoryBackend>(kDevBytes);
  auto hw = std::make_shared<HardwareDevice>(std::move(backend), 2, caps_, env_.clock);
  env_.devices.Add("hw", hw);
  auto t = env_.Create(kInlineCryptTarget, 256, {kXts, key_hex_, "0", "hw", "0"}).value();
  ASSERT_TRUE(Write(*t, 0, Pattern(4096, 5)).ok());
  auto programmed = [&] {
    int n = 0;
    for (const SlotState& s : hw->crypto_profile()->Slots()) n += s.key_id != 0;
    return n;
  };
  EXPECT_EQ(programmed(), 1);
  EXPECT_EQ(hw->prepared_ciphers(), 1u);
  t.reset();
  EXPECT_EQ(programmed(), 0);
  EXPECT_EQ(hw->prepared_ciphers(), 0u);
}

TEST_F(InlineCrypt, I6_TableIsMainlinesLayoutWithoutTheKeyBytes) {
  EXPECT_EQ(Make(256, "0")->TableParams(), "aes-xts-plain64 - 1 0 ice0 0");
  EXPECT_EQ(
      Make(256, "8", {"4", "keytype:raw", "allow_discards", "sector_size:4096", "iv_large_sectors"})
          ->TableParams(),
      "aes-xts-plain64 - 1 8 ice0 0 3 allow_discards sector_size:4096 iv_large_sectors");
  EXPECT_EQ(Make(256, "0")->StatusParams(), "");
  EXPECT_EQ(kInlineCryptTarget.key_arg, 1);  // the table parser wipes it (hardening 8)
}

}  // namespace
}  // namespace ice::dm
