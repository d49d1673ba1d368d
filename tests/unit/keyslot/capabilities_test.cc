#include "keyslot/capabilities.h"

#include <climits>

#include <gtest/gtest.h>

namespace ice {
namespace {

constexpr uint8_t kRaw = static_cast<uint8_t>(KeyType::kRaw);
constexpr uint8_t kWrapped = static_cast<uint8_t>(KeyType::kHwWrapped);

CryptoCapabilities Xts(std::initializer_list<uint32_t> sizes, unsigned dun_bytes = 8,
                       uint8_t key_types = kRaw) {
  CryptoCapabilities caps;
  for (uint32_t s : sizes) caps.Add(CryptoMode::kAes256Xts, s);
  caps.max_dun_bytes = dun_bytes;
  caps.key_types = key_types;
  return caps;
}

CryptoConfig Config(CryptoMode mode, uint32_t dus, unsigned dun_bytes,
                    KeyType type = KeyType::kRaw) {
  return CryptoConfig{mode, dus, dun_bytes, type};
}

TEST(CryptoCapabilities, K1_SupportedIffSizeBitDunBytesAndKeyTypeAllMatch) {
  const CryptoCapabilities caps = Xts({512, 4096}, 8);
  EXPECT_TRUE(caps.SupportsNatively(Config(CryptoMode::kAes256Xts, 4096, 8)));
  EXPECT_TRUE(caps.SupportsNatively(Config(CryptoMode::kAes256Xts, 512, 1)));
  // Data unit size bit not set for the mode.
  EXPECT_FALSE(caps.SupportsNatively(Config(CryptoMode::kAes256Xts, 1024, 8)));
  // The size is set, but for another mode.
  EXPECT_FALSE(caps.SupportsNatively(Config(CryptoMode::kAes128CbcEssiv, 4096, 8)));
  // More DUN bytes than the maximum.
  EXPECT_FALSE(caps.SupportsNatively(Config(CryptoMode::kAes256Xts, 4096, 9)));
  // Unsupported key type.
  EXPECT_FALSE(caps.SupportsNatively(Config(CryptoMode::kAes256Xts, 4096, 8, KeyType::kHwWrapped)));
}

TEST(CryptoCapabilities, K1_MalformedDataUnitSizeNeverMatches) {
  const CryptoCapabilities caps = Xts({512, 4096});
  EXPECT_FALSE(caps.SupportsNatively(Config(CryptoMode::kAes256Xts, 4096 + 512, 8)));
  EXPECT_FALSE(caps.SupportsNatively(Config(CryptoMode::kAes256Xts, 0, 8)));
}

TEST(CryptoCapabilities, K1_EmptyCapabilitiesSupportNothing) {
  const CryptoCapabilities none;
  EXPECT_FALSE(none.HasAnyMode());
  EXPECT_FALSE(none.SupportsNatively(Config(CryptoMode::kAes256Xts, 4096, 8)));
}

TEST(CryptoCapabilities, AllHasEveryModeSizeDunAndKeyType) {
  const CryptoCapabilities all = CryptoCapabilities::All();
  EXPECT_TRUE(all.HasAnyMode());
  EXPECT_EQ(all.max_dun_bytes, UINT_MAX);
  EXPECT_EQ(all.key_types, kAllKeyTypes);
  for (int m = 0; m < kNumCryptoModes; ++m) {
    for (uint32_t dus = kMinDataUnitSize; dus <= kMaxDataUnitSize; dus *= 2) {
      for (KeyType t : {KeyType::kRaw, KeyType::kHwWrapped}) {
        EXPECT_TRUE(all.SupportsNatively(Config(static_cast<CryptoMode>(m), dus,
                                                ModeInfo(static_cast<CryptoMode>(m)).iv_size, t)));
      }
    }
  }
  // Exactly the sizes ice accepts (C3): 8 per mode.
  EXPECT_EQ(all.Pairs().size(), 8u * kNumCryptoModes);
}

TEST(CryptoCapabilities, K9_IntersectAndsMasksMinsDunAndAndsKeyTypes) {
  CryptoCapabilities parent = Xts({512, 4096}, 8, kRaw | kWrapped);
  parent.Add(CryptoMode::kAes128CbcEssiv, 4096);
  CryptoCapabilities child = Xts({4096, 8192}, 5, kRaw);
  parent.IntersectWith(&child);
  EXPECT_EQ(parent, Xts({4096}, 5, kRaw));  // ESSIV gone: child lacks it
}

TEST(CryptoCapabilities, K9_DunBytesIsTheMinimumEitherWay) {
  CryptoCapabilities parent = Xts({4096}, 4);
  const CryptoCapabilities child = Xts({4096}, 16);
  parent.IntersectWith(&child);
  EXPECT_EQ(parent.max_dun_bytes, 4u);
}

TEST(CryptoCapabilities, K9_MissingChildClearsEverything) {
  CryptoCapabilities parent = CryptoCapabilities::All();
  parent.IntersectWith(nullptr);
  EXPECT_EQ(parent, CryptoCapabilities());
  EXPECT_FALSE(parent.HasAnyMode());
  EXPECT_EQ(parent.max_dun_bytes, 0u);
  EXPECT_EQ(parent.key_types, 0);
}

TEST(CryptoCapabilities, K9_AllIntersectedWithChildIsTheChild) {
  CryptoCapabilities caps = CryptoCapabilities::All();
  const CryptoCapabilities child = Xts({512, 65536}, 8);
  caps.IntersectWith(&child);
  EXPECT_EQ(caps, child);
}

TEST(CryptoCapabilities, K10_SupersetHasCapabilities) {
  const CryptoCapabilities target = Xts({512, 4096}, 8, kRaw | kWrapped);
  const CryptoCapabilities reference = Xts({4096}, 8, kRaw);
  EXPECT_TRUE(HasCapabilities(&target, &reference));
  EXPECT_TRUE(HasCapabilities(&target, &target));
  EXPECT_FALSE(HasCapabilities(&reference, &target));
}

TEST(CryptoCapabilities, K10_MissingPairFails) {
  const CryptoCapabilities target = Xts({4096});
  CryptoCapabilities reference = Xts({4096});
  reference.Add(CryptoMode::kAes128CbcEssiv, 4096);
  EXPECT_FALSE(HasCapabilities(&target, &reference));
}

TEST(CryptoCapabilities, K10_SmallerDunFails) {
  const CryptoCapabilities target = Xts({4096}, 4);
  const CryptoCapabilities reference = Xts({4096}, 8);
  EXPECT_FALSE(HasCapabilities(&target, &reference));
}

TEST(CryptoCapabilities, K10_MissingKeyTypeFails) {
  const CryptoCapabilities target = Xts({4096}, 8, kRaw);
  const CryptoCapabilities reference = Xts({4096}, 8, kWrapped);
  EXPECT_FALSE(HasCapabilities(&target, &reference));
}

TEST(CryptoCapabilities, K10_MissingReferenceAlwaysSatisfied) {
  const CryptoCapabilities target = Xts({4096});
  EXPECT_TRUE(HasCapabilities(&target, nullptr));
  EXPECT_TRUE(HasCapabilities(nullptr, nullptr));
}

TEST(CryptoCapabilities, K10_MissingTargetSatisfiesOnlyMissingReference) {
  const CryptoCapabilities reference = Xts({4096});
  const CryptoCapabilities empty;
  EXPECT_FALSE(HasCapabilities(nullptr, &reference));
  EXPECT_FALSE(HasCapabilities(nullptr, &empty));
}

TEST(CryptoCapabilities, K10_MissingCapabilitiesNamesWhatWouldBeDropped) {
  CryptoCapabilities reference = Xts({512, 4096}, 8, kRaw | kWrapped);
  reference.Add(CryptoMode::kAes128CbcEssiv, 4096);
  const CryptoCapabilities target = Xts({512}, 4, kRaw);
  EXPECT_EQ(MissingCapabilities(&target, &reference),
            "aes-256-xts/4096, aes-128-cbc-essiv/4096, max DUN bytes 8 > 4, key types hw-wrapped");
  EXPECT_EQ(MissingCapabilities(&reference, &target), "");
  EXPECT_EQ(MissingCapabilities(&target, nullptr), "");
  EXPECT_EQ(MissingCapabilities(nullptr, nullptr), "");
}

TEST(CryptoCapabilities, K10_MissingCapabilitiesOfAMissingTargetIsEverything) {
  const CryptoCapabilities reference = Xts({4096}, 8);
  EXPECT_EQ(MissingCapabilities(nullptr, &reference),
            "aes-256-xts/4096, max DUN bytes 8 > 0, key types raw");
  const CryptoCapabilities empty;
  EXPECT_EQ(MissingCapabilities(nullptr, &empty), "inline encryption");
}

TEST(CryptoCapabilities, ToStringListsModesSizesDunAndKeys) {
  CryptoCapabilities caps = Xts({512, 4096}, 8);
  caps.Add(CryptoMode::kAes128CbcEssiv, 4096);
  EXPECT_EQ(caps.ToString(), "aes-256-xts:512,4096 aes-128-cbc-essiv:4096 dun_bytes=8 keys=raw");
  EXPECT_EQ(CryptoCapabilities().ToString(), "none");
  EXPECT_EQ(Xts({65536}, UINT_MAX, kAllKeyTypes).ToString(),
            "aes-256-xts:65536 dun_bytes=unlimited keys=raw,hw-wrapped");
}

TEST(CryptoCapabilities, PairsInModeThenSizeOrder) {
  CryptoCapabilities caps = Xts({4096, 512});
  caps.Add(CryptoMode::kAes128CbcEssiv, 1024);
  EXPECT_EQ(caps.Pairs(), (std::vector<std::string>{"aes-256-xts/512", "aes-256-xts/4096",
                                                    "aes-128-cbc-essiv/1024"}));
}

}  // namespace
}  // namespace ice
