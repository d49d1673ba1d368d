#include "keyslot/crypto_mode.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace ice {
namespace {

TEST(CryptoMode, C2_ModeNamesKeySizesAndIvSizes) {
  struct Expected {
    CryptoMode mode;
    const char* name;
    unsigned key_size, iv_size;
  };
  const Expected modes[] = {{CryptoMode::kAes256Xts, "aes-256-xts", 64, 16},
                            {CryptoMode::kAes128CbcEssiv, "aes-128-cbc-essiv", 16, 16},
                            {CryptoMode::kAdiantum, "adiantum", 32, 32},
                            {CryptoMode::kSm4Xts, "sm4-xts", 32, 16}};
  for (const auto& e : modes) {
    const CryptoModeInfo& info = ModeInfo(e.mode);
    EXPECT_EQ(info.mode, e.mode);
    EXPECT_STREQ(info.name, e.name);
    EXPECT_EQ(info.key_size, e.key_size) << e.name;
    EXPECT_EQ(info.iv_size, e.iv_size) << e.name;
    EXPECT_EQ(ParseCryptoMode(e.name), e.mode);
  }
}

TEST(CryptoMode, C2_OpenSsl30ImplementsOnlyTheAesModes) {
  EXPECT_TRUE(ModeInfo(CryptoMode::kAes256Xts).implemented);
  EXPECT_TRUE(ModeInfo(CryptoMode::kAes128CbcEssiv).implemented);
  EXPECT_FALSE(ModeInfo(CryptoMode::kAdiantum).implemented);
  EXPECT_FALSE(ModeInfo(CryptoMode::kSm4Xts).implemented);
}

TEST(CryptoMode, C3_UnknownModeNameIsRejected) {
  for (const char* name : {"", "aes-256-cbc", "AES-256-XTS", "aes-xts-plain64", "aes-256-xts "}) {
    EXPECT_FALSE(ParseCryptoMode(name).has_value()) << name;
  }
}

TEST(CryptoMode, C1_KeyTypeNames) {
  EXPECT_STREQ(KeyTypeName(KeyType::kRaw), "raw");
  EXPECT_STREQ(KeyTypeName(KeyType::kHwWrapped), "hw-wrapped");
  EXPECT_EQ(ParseKeyType("raw"), KeyType::kRaw);
  EXPECT_EQ(ParseKeyType("hw-wrapped"), KeyType::kHwWrapped);
  EXPECT_FALSE(ParseKeyType("wrapped").has_value());
  EXPECT_FALSE(ParseKeyType("").has_value());
}

TEST(CryptoConfig, C1_ConfigurationPrintsAndCompares) {
  CryptoConfig a{CryptoMode::kAes256Xts, 4096, 8, KeyType::kRaw};
  EXPECT_EQ(a.ToString(), "aes-256-xts/4096 dun_bytes=8 raw");
  CryptoConfig b = a;
  EXPECT_EQ(a, b);
  b.dun_bytes = 5;
  EXPECT_NE(a, b);
  b = a;
  b.key_type = KeyType::kHwWrapped;
  EXPECT_NE(a, b);
  EXPECT_EQ(b.ToString(), "aes-256-xts/4096 dun_bytes=8 hw-wrapped");
}

TEST(CryptoConfig, C3_DataUnitSizeMustBeAPowerOfTwoIn512To65536) {
  CryptoConfig c;
  for (uint32_t ok : {512u, 1024u, 2048u, 4096u, 8192u, 16384u, 32768u, 65536u}) {
    c.data_unit_size = ok;
    EXPECT_TRUE(ValidateConfig(c).ok()) << ok;
  }
  for (uint32_t bad : {0u, 1u, 256u, 511u, 513u, 3000u, 4095u, 6144u, 131072u, 1u << 31}) {
    c.data_unit_size = bad;
    EXPECT_EQ(ValidateConfig(c).code(), EINVAL) << bad;
  }
}

TEST(CryptoConfig, C3_DunBytesMustBeWithinTheIvSize) {
  for (CryptoMode mode : {CryptoMode::kAes256Xts, CryptoMode::kAes128CbcEssiv,
                          CryptoMode::kAdiantum, CryptoMode::kSm4Xts}) {
    const unsigned iv = ModeInfo(mode).iv_size;
    CryptoConfig c{mode, 4096, 1, KeyType::kRaw};
    EXPECT_TRUE(ValidateConfig(c).ok());
    c.dun_bytes = iv;
    EXPECT_TRUE(ValidateConfig(c).ok());
    c.dun_bytes = 0;
    EXPECT_EQ(ValidateConfig(c).code(), EINVAL);
    c.dun_bytes = iv + 1;
    Status s = ValidateConfig(c);
    EXPECT_EQ(s.code(), EINVAL);
    EXPECT_NE(s.message().find("dun_bytes"), std::string::npos) << s.message();
  }
}

TEST(CryptoConfig, C3_UnknownModeOrKeyTypeIsRejected) {
  CryptoConfig c;
  c.mode = static_cast<CryptoMode>(kNumCryptoModes);
  EXPECT_EQ(ValidateConfig(c).code(), EINVAL);
  c = CryptoConfig{};
  c.key_type = static_cast<KeyType>(4);
  EXPECT_EQ(ValidateConfig(c).code(), EINVAL);
  c.key_type = static_cast<KeyType>(0);
  EXPECT_EQ(ValidateConfig(c).code(), EINVAL);
}

TEST(CryptoConfig, C3_HardwareWrappedIsAValidConfiguration) {
  // The configuration is valid (profiles can advertise it, K1); only ice's keys refuse it.
  CryptoConfig c{CryptoMode::kAes256Xts, 4096, 8, KeyType::kHwWrapped};
  EXPECT_TRUE(ValidateConfig(c).ok());
}

}  // namespace
}  // namespace ice
