#include "keyslot/blk_crypto.h"

#include <cerrno>

#include <gtest/gtest.h>

#include "keyslot/hardware_device.h"
#include "tests/unit/keyslot_hw/test_util.h"

namespace ice {
namespace {

using testing::Borrowed;
using testing::HookedDevice;
using testing::MakeKey;
using testing::Pattern;

constexpr uint64_t kDevBytes = 8 << 20;
constexpr CryptoMode kXts = CryptoMode::kAes256Xts;
constexpr CryptoMode kEssiv = CryptoMode::kAes128CbcEssiv;

IoRequest WriteReq(uint64_t offset, const std::vector<uint8_t>& data, const CryptoKey& key,
                   Dun dun = {}) {
  return IoRequest{.op = IoOp::kWrite,
                   .offset_bytes = offset,
                   .length_bytes = data.size(),
                   .write_buf = data.data(),
                   .crypt = CryptoContext{&key, dun}};
}

IoRequest ReadReq(uint64_t offset, std::vector<uint8_t>& out, const CryptoKey& key, Dun dun = {}) {
  return IoRequest{.op = IoOp::kRead,
                   .offset_bytes = offset,
                   .length_bytes = out.size(),
                   .read_buf = out.data(),
                   .crypt = CryptoContext{&key, dun}};
}

// Hardware over a memory device the test can inspect.
struct Stack {
  explicit Stack(const CryptoCapabilities& caps, unsigned slots = 2)
      : medium(kDevBytes), hw(std::make_unique<Borrowed>(medium), slots, caps) {}
  HookedDevice medium;
  HardwareDevice hw;
};

TEST(BlkCrypto, C6_UnalignedOffsetOrLengthIsEinvalAndNothingDone) {
  BlkCrypto bc;
  Stack s(testing::Caps(kXts, 4096));
  auto key = MakeKey(kXts, 4096);
  const auto data = Pattern(8192, 1);
  EXPECT_EQ(bc.Submit(s.hw, WriteReq(512, data, *key)).code(), EINVAL);
  const auto short_data = Pattern(4096 + 512, 1);
  EXPECT_EQ(bc.Submit(s.hw, WriteReq(0, short_data, *key)).code(), EINVAL);
  std::vector<uint8_t> out(1024);
  EXPECT_EQ(bc.Submit(s.hw, ReadReq(0, out, *key)).code(), EINVAL);
  EXPECT_TRUE(s.medium.requests().empty());
  // The same through the fallback (a device with no profile).
  HookedDevice plain(kDevBytes);
  EXPECT_EQ(bc.Submit(plain, WriteReq(512, data, *key)).code(), EINVAL);
  EXPECT_TRUE(plain.requests().empty());
}

TEST(BlkCrypto, C6_CryptoIoWithoutDataIsEio) {
  BlkCrypto bc;
  Stack s(testing::Caps(kXts, 4096));
  auto key = MakeKey(kXts, 4096);
  const CryptoContext ctx{key.get(), {}};
  EXPECT_EQ(bc.Submit(s.hw, IoRequest{.op = IoOp::kFlush, .crypt = ctx}).code(), EIO);
  EXPECT_EQ(
      bc.Submit(
            s.hw,
            IoRequest{.op = IoOp::kDiscard, .offset_bytes = 0, .length_bytes = 4096, .crypt = ctx})
          .code(),
      EIO);
  const std::vector<uint8_t> none;
  EXPECT_EQ(bc.Submit(s.hw, WriteReq(0, none, *key)).code(), EIO);
  EXPECT_TRUE(s.medium.requests().empty());
}

TEST(BlkCrypto, RequestWithoutContextGoesStraightToTheDevice) {
  BlkCrypto bc;
  HookedDevice dev(kDevBytes);
  const auto data = Pattern(1000, 1);
  ASSERT_TRUE(bc.Submit(dev, IoRequest{.op = IoOp::kWrite,
                                       .offset_bytes = 3,
                                       .length_bytes = data.size(),
                                       .write_buf = data.data()})
                  .ok());
  ASSERT_TRUE(bc.Submit(dev, IoRequest{.op = IoOp::kFlush}).ok());
  ASSERT_EQ(dev.requests().size(), 2u);
  EXPECT_FALSE(dev.requests()[0].via_fallback);
  EXPECT_EQ(testing::RawRead(dev, 3, 1000), data);
}

TEST(BlkCrypto, NativeConfigurationGoesToTheHardware) {
  BlkCrypto bc;
  Stack s(testing::Caps(kXts, 4096));
  auto key = MakeKey(kXts, 4096);
  const auto data = Pattern(16384, 1);
  ASSERT_TRUE(bc.Submit(s.hw, WriteReq(0, data, *key)).ok());
  std::vector<uint8_t> back(data.size());
  ASSERT_TRUE(bc.Submit(s.hw, ReadReq(0, back, *key)).ok());
  EXPECT_EQ(back, data);
  const HardwareCounters c = s.hw.counters();
  EXPECT_EQ(c.fallback_ios, 0u);
  EXPECT_EQ(c.slot_programs, 1u);
  EXPECT_EQ(bc.fallback().profile().counters().programs, 0u);
}

// F1: a configuration the hardware lacks (a data unit size, a mode, DUN bytes) is done above it.
TEST(BlkCrypto, F1_UnsupportedConfigurationGoesThroughTheFallback) {
  struct Case {
    CryptoMode mode;
    uint32_t unit;
    unsigned dun_bytes;
  };
  for (const Case& k : {Case{kXts, 512, 8}, Case{kEssiv, 4096, 8}, Case{kXts, 4096, 9}}) {
    SCOPED_TRACE(std::string(ModeInfo(k.mode).name) + "/" + std::to_string(k.unit));
    BlkCrypto bc;
    Stack s(testing::Caps(kXts, 4096, 8));
    auto key = MakeKey(k.mode, k.unit, k.dun_bytes);
    const auto data = Pattern(16384, 2);
    ASSERT_TRUE(bc.Submit(s.hw, WriteReq(0, data, *key)).ok());
    std::vector<uint8_t> back(data.size());
    ASSERT_TRUE(bc.Submit(s.hw, ReadReq(0, back, *key)).ok());
    EXPECT_EQ(back, data);
    const HardwareCounters c = s.hw.counters();
    EXPECT_EQ(c.fallback_ios, 2u);
    EXPECT_EQ(c.slot_programs, 0u);
    EXPECT_EQ(bc.fallback().profile().counters().programs, 1u);
  }
}

TEST(BlkCrypto, F1_DeviceWithoutProfileUsesTheFallback) {
  BlkCrypto bc;
  HookedDevice dev(kDevBytes);  // e.g. a mapped device whose table has no crypto (nullptr)
  auto key = MakeKey(kEssiv, 4096);
  const auto data = Pattern(8192, 3);
  ASSERT_TRUE(bc.Submit(dev, WriteReq(4096, data, *key, Dun::FromU64(1))).ok());
  std::vector<uint8_t> back(data.size());
  ASSERT_TRUE(bc.Submit(dev, ReadReq(4096, back, *key, Dun::FromU64(1))).ok());
  EXPECT_EQ(back, data);
  for (const IoRequest& r : dev.requests()) {
    EXPECT_FALSE(r.crypt.has_value());
    EXPECT_TRUE(r.via_fallback);
  }
}

// F3 and C5: the hardware path, the fallback path and an independent AES computation write the
// same bytes (dm-crypt's aes-xts-plain64 with iv_large_sectors for XTS).
TEST(BlkCrypto, F3_HardwareAndFallbackWriteTheSameCiphertext) {
  for (CryptoMode mode : {kXts, kEssiv}) {
    for (uint32_t unit : {512u, 4096u, 8192u, 65536u}) {
      SCOPED_TRACE(std::string(ModeInfo(mode).name) + "/" + std::to_string(unit));
      BlkCrypto bc;
      Stack native(testing::Caps(mode, unit));
      HookedDevice plain(kDevBytes);
      auto key = MakeKey(mode, unit, 8, 40 + unit);
      const auto data = Pattern(std::max<size_t>(unit * 4, 512 * 1024), unit);
      const auto copy = data;
      const Dun dun = Dun::FromU64(0xFFFFFFFFull - 1);  // crosses a 32-bit boundary
      ASSERT_TRUE(bc.Submit(native.hw, WriteReq(0, data, *key, dun)).ok());
      ASSERT_TRUE(bc.Submit(plain, WriteReq(0, data, *key, dun)).ok());
      EXPECT_EQ(data, copy);
      const auto hw_bytes = testing::RawRead(native.medium, 0, data.size());
      EXPECT_EQ(hw_bytes, testing::RawRead(plain, 0, data.size()));
      EXPECT_EQ(hw_bytes,
                testing::ReferenceEncrypt(mode, testing::RawKey(mode, 40 + unit), unit, dun, data));
      EXPECT_EQ(native.hw.counters().fallback_ios, 0u);
    }
  }
}

// N5: write-zeroes with a context writes encrypted zeros (never a hole), in chunks whose DUNs
// follow on; both natively and through the fallback.
TEST(BlkCrypto, N5_WriteZeroesWritesEncryptedZeros) {
  for (bool native : {true, false}) {
    SCOPED_TRACE(native ? "native" : "fallback");
    BlkCrypto bc;
    Stack s(testing::Caps(kXts, native ? 4096 : 512));
    auto key = MakeKey(kXts, 4096);
    const size_t len = 1 << 20;
    ASSERT_TRUE(bc.Submit(s.hw, WriteReq(4096, Pattern(len, 1), *key, Dun::FromU64(5))).ok());
    ASSERT_TRUE(bc.Submit(s.hw, IoRequest{.op = IoOp::kWriteZeroes,
                                          .offset_bytes = 4096,
                                          .length_bytes = len,
                                          .crypt = CryptoContext{key.get(), Dun::FromU64(5)}})
                    .ok());
    std::vector<uint8_t> back(len);
    ASSERT_TRUE(bc.Submit(s.hw, ReadReq(4096, back, *key, Dun::FromU64(5))).ok());
    EXPECT_EQ(back, std::vector<uint8_t>(len, 0));
    const std::vector<uint8_t> zeros(len, 0);
    EXPECT_EQ(testing::RawRead(s.medium, 4096, len),
              testing::ReferenceEncrypt(kXts, testing::RawKey(kXts), 4096, Dun::FromU64(5), zeros));
    for (const IoRequest& r : s.medium.requests()) {
      EXPECT_NE(r.op, IoOp::kWriteZeroes);
      EXPECT_NE(r.op, IoOp::kDiscard);
    }
  }
}

TEST(BlkCrypto, N5_WriteZeroesMustBeAligned) {
  BlkCrypto bc;
  Stack s(testing::Caps(kXts, 4096));
  auto key = MakeKey(kXts, 4096);
  EXPECT_EQ(bc.Submit(s.hw, IoRequest{.op = IoOp::kWriteZeroes,
                                      .offset_bytes = 512,
                                      .length_bytes = 4096,
                                      .crypt = CryptoContext{key.get(), {}}})
                .code(),
            EINVAL);
}

TEST(BlkCrypto, F4_EvictGoesToTheDevicesProfileWhenNative) {
  BlkCrypto bc;
  Stack s(testing::Caps(kXts, 4096));
  auto key = MakeKey(kXts, 4096);
  ASSERT_TRUE(bc.Submit(s.hw, WriteReq(0, Pattern(4096, 1), *key)).ok());
  ASSERT_EQ(s.hw.slots()[0].key_id, key->id());
  EXPECT_TRUE(bc.EvictKey(s.hw, *key).ok());
  EXPECT_EQ(s.hw.slots()[0].key_id, 0u);
  EXPECT_EQ(s.hw.counters().slot_evictions, 1u);
  // An injected eviction failure is returned.
  ASSERT_TRUE(bc.Submit(s.hw, WriteReq(0, Pattern(4096, 1), *key)).ok());
  s.hw.FailNextEvictions(1);
  EXPECT_EQ(bc.EvictKey(s.hw, *key).code(), EIO);
  EXPECT_EQ(s.hw.slots()[0].key_id, 0u);
}

TEST(BlkCrypto, F4_EvictGoesToTheFallbackOtherwise) {
  BlkCrypto bc;
  Stack s(testing::Caps(kXts, 4096));
  auto key = MakeKey(kXts, 512);
  ASSERT_TRUE(bc.Submit(s.hw, WriteReq(0, Pattern(4096, 1), *key)).ok());
  ASSERT_EQ(bc.fallback().profile().Slots()[0].key_id, key->id());
  s.hw.FailNextEvictions(1);  // not consulted
  EXPECT_TRUE(bc.EvictKey(s.hw, *key).ok());
  EXPECT_EQ(bc.fallback().profile().Slots()[0].key_id, 0u);
  EXPECT_EQ(bc.fallback().profile().counters().evictions, 1u);
  HookedDevice plain(kDevBytes);  // no profile at all
  EXPECT_TRUE(bc.EvictKey(plain, *key).ok());
}

TEST(BlkCrypto, CheckServable) {
  BlkCrypto bc;
  CryptoCapabilities caps = testing::Caps(CryptoMode::kAdiantum, 4096, 32);
  caps.Add(kXts, 4096);
  caps.key_types |= static_cast<uint8_t>(KeyType::kHwWrapped);
  Stack s(caps);
  HookedDevice plain(kDevBytes);
  const CryptoConfig xts{kXts, 512, 8, KeyType::kRaw};
  EXPECT_TRUE(bc.CheckServable(s.hw, xts).ok());
  EXPECT_TRUE(bc.CheckServable(plain, xts).ok());
  const CryptoConfig adiantum{CryptoMode::kAdiantum, 4096, 32, KeyType::kRaw};
  EXPECT_TRUE(bc.CheckServable(s.hw, adiantum).ok());
  const Status no_software = bc.CheckServable(plain, adiantum);
  EXPECT_EQ(no_software.code(), ENOTSUP);
  EXPECT_NE(no_software.message().find("adiantum/4096"), std::string::npos)
      << no_software.message();
  const CryptoConfig wrapped{kXts, 4096, 8, KeyType::kHwWrapped};
  EXPECT_TRUE(bc.CheckServable(s.hw, wrapped).ok());
  const Status no_wrapped = bc.CheckServable(plain, wrapped);
  EXPECT_EQ(no_wrapped.code(), ENOTSUP);
  EXPECT_NE(no_wrapped.message().find("raw keys only"), std::string::npos);
  EXPECT_EQ(bc.CheckServable(plain, CryptoConfig{kXts, 4096, 17, KeyType::kRaw}).code(), EINVAL);
}

}  // namespace
}  // namespace ice
