#include "keyslot/crypto_key.h"

#include <gtest/gtest.h>
#include <openssl/crypto.h>

#include <cerrno>
#include <cstring>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

namespace ice {
namespace {

using Bytes = std::vector<uint8_t>;

// C7: a key cannot be printed, by design. (A KeyPtr can, as a pointer: that reveals nothing.)
template <typename T>
concept Streamable = requires(std::ostream& os, const T& value) {
  os << value;
};
static_assert(!Streamable<CryptoKey>, "CryptoKey must have no operator<< (C7)");
static_assert(Streamable<int>, "the detection idiom itself works");
static_assert(!std::is_copy_constructible_v<CryptoKey> && !std::is_copy_assignable_v<CryptoKey>,
              "a key owns its bytes and is not copyable");

Bytes Distinct(size_t n) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i + 1);
  return b;
}

CryptoConfig Config(CryptoMode mode, uint32_t data_unit_size = 4096, unsigned dun_bytes = 8) {
  return CryptoConfig{mode, data_unit_size, dun_bytes, KeyType::kRaw};
}

constexpr CryptoMode kAllModes[] = {CryptoMode::kAes256Xts, CryptoMode::kAes128CbcEssiv,
                                    CryptoMode::kAdiantum, CryptoMode::kSm4Xts};

TEST(CryptoKey, C1_HoldsItsConfigurationAndBytes) {
  for (CryptoMode mode : kAllModes) {
    const Bytes raw = Distinct(ModeInfo(mode).key_size);
    auto key = CryptoKey::Create(Config(mode, 8192, 5), raw);
    ASSERT_TRUE(key.ok()) << ModeInfo(mode).name << ": " << key.status().ToString();
    EXPECT_EQ((*key)->config(), Config(mode, 8192, 5));
    const auto bytes = (*key)->raw_bytes();
    EXPECT_EQ(Bytes(bytes.begin(), bytes.end()), raw);
  }
}

TEST(CryptoKey, C2_RawKeyMustBeExactlyTheModeKeySize) {
  for (CryptoMode mode : kAllModes) {
    const unsigned size = ModeInfo(mode).key_size;
    for (size_t bad : {size_t{0}, size_t{size - 1}, size_t{size + 1}, size_t{2 * size}}) {
      auto key = CryptoKey::Create(Config(mode), Distinct(bad));
      EXPECT_EQ(key.status().code(), EINVAL) << ModeInfo(mode).name << " " << bad;
    }
  }
}

TEST(CryptoKey, C2_XtsKeyWithEqualHalvesIsRefused) {
  for (CryptoMode mode : {CryptoMode::kAes256Xts, CryptoMode::kSm4Xts}) {
    const size_t half = ModeInfo(mode).key_size / 2;
    Bytes raw = Distinct(half);
    raw.insert(raw.end(), raw.begin(), raw.end());
    EXPECT_EQ(CryptoKey::Create(Config(mode), raw).status().code(), EINVAL);
    raw.back() ^= 1;  // one differing bit is enough
    EXPECT_TRUE(CryptoKey::Create(Config(mode), raw).ok());
  }
}

TEST(CryptoKey, C2_EqualHalvesAreFineOutsideXts) {
  // Only XTS splits its key into two; Adiantum's 32 bytes may repeat.
  Bytes raw = Distinct(16);
  raw.insert(raw.end(), raw.begin(), raw.end());
  EXPECT_TRUE(CryptoKey::Create(Config(CryptoMode::kAdiantum), raw).ok());
}

TEST(CryptoKey, C3_BadDataUnitSizeIsRefused) {
  const Bytes raw = Distinct(64);
  for (uint32_t bad : {0u, 256u, 1000u, 3072u, 131072u}) {
    EXPECT_EQ(CryptoKey::Create(Config(CryptoMode::kAes256Xts, bad), raw).status().code(), EINVAL)
        << bad;
  }
  for (uint32_t ok : {512u, 65536u}) {
    EXPECT_TRUE(CryptoKey::Create(Config(CryptoMode::kAes256Xts, ok), raw).ok()) << ok;
  }
}

TEST(CryptoKey, C3_DunBytesOutsideOneToIvSizeIsRefused) {
  for (CryptoMode mode : kAllModes) {
    const Bytes raw = Distinct(ModeInfo(mode).key_size);
    const unsigned iv = ModeInfo(mode).iv_size;
    EXPECT_EQ(CryptoKey::Create(Config(mode, 4096, 0), raw).status().code(), EINVAL);
    EXPECT_EQ(CryptoKey::Create(Config(mode, 4096, iv + 1), raw).status().code(), EINVAL);
    EXPECT_TRUE(CryptoKey::Create(Config(mode, 4096, 1), raw).ok());
    EXPECT_TRUE(CryptoKey::Create(Config(mode, 4096, iv), raw).ok());
  }
}

TEST(CryptoKey, C3_UnknownModeOrKeyTypeIsRefused) {
  CryptoConfig c = Config(CryptoMode::kAes256Xts);
  c.mode = static_cast<CryptoMode>(200);
  EXPECT_EQ(CryptoKey::Create(c, Distinct(64)).status().code(), EINVAL);
  c = Config(CryptoMode::kAes256Xts);
  c.key_type = static_cast<KeyType>(7);
  EXPECT_EQ(CryptoKey::Create(c, Distinct(64)).status().code(), EINVAL);
}

TEST(CryptoKey, C1_HardwareWrappedKeysAreRefused) {
  CryptoConfig c = Config(CryptoMode::kAes256Xts);
  c.key_type = KeyType::kHwWrapped;
  EXPECT_EQ(CryptoKey::Create(c, Distinct(64)).status().code(), EINVAL);
}

TEST(CryptoKey, K2_EqualBytesMakeDistinctKeys) {
  auto a = CryptoKey::Create(Config(CryptoMode::kAes256Xts), Distinct(64));
  auto b = CryptoKey::Create(Config(CryptoMode::kAes256Xts), Distinct(64));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE((*a)->id(), (*b)->id());
  EXPECT_NE(a->get(), b->get());
}

TEST(CryptoKey, C7_KeyIsCopiedNotReferenced) {
  Bytes raw = Distinct(64);
  auto key = CryptoKey::Create(Config(CryptoMode::kAes256Xts), raw);
  ASSERT_TRUE(key.ok());
  EXPECT_NE((*key)->raw_bytes().data(), raw.data());
  const Bytes original = raw;
  std::fill(raw.begin(), raw.end(), 0);  // the caller wipes its copy; the key keeps working
  const auto bytes = (*key)->raw_bytes();
  EXPECT_EQ(Bytes(bytes.begin(), bytes.end()), original);
}

TEST(CryptoKey, C7_ErrorMessagesNeverContainKeyBytes) {
  const std::string secret = "SECRET-KEY-MATERIAL-0123456789ab";  // 32 bytes: wrong for XTS
  const Bytes raw(secret.begin(), secret.end());
  const std::string hex_prefix = "5345435245";  // "SECRE" in hex
  auto key = CryptoKey::Create(Config(CryptoMode::kAes256Xts), raw);
  ASSERT_FALSE(key.ok());
  const std::string text = key.status().ToString();
  EXPECT_EQ(text.find("SECRE"), std::string::npos) << text;
  EXPECT_EQ(text.find(hex_prefix), std::string::npos) << text;
}

// The bytes live in OpenSSL's secure heap where it can be set up; there, reading the freed arena
// is defined (the arena stays mapped), so the wipe can be observed. The arena's allocator puts two
// free-list pointers (16 bytes) into a freed chunk; everything else must be zero.
TEST(CryptoKey, C7_BytesAreZeroedWhenTheKeyIsDropped) {
  const Bytes raw = Distinct(64);
  auto key = CryptoKey::Create(Config(CryptoMode::kAes256Xts), raw);
  ASSERT_TRUE(key.ok());
  const uint8_t* bytes = (*key)->raw_bytes().data();
  if (!CRYPTO_secure_allocated(bytes)) GTEST_SKIP() << "secure heap unavailable here";
  key = Status::Error(ECANCELED, "dropped");  // destroys the only reference
  int nonzero = 0, longest_run = 0, run = 0;
  for (size_t i = 0; i < raw.size(); ++i) {
    nonzero += bytes[i] != 0;
    run = bytes[i] == raw[i] ? run + 1 : 0;
    longest_run = std::max(longest_run, run);
  }
  EXPECT_LE(nonzero, 16);
  EXPECT_LT(longest_run, 4) << "key bytes survived the key";
}

}  // namespace
}  // namespace ice
