#include "keyslot/fallback.h"

#include <atomic>
#include <cerrno>
#include <thread>

#include <gtest/gtest.h>

#include "tests/unit/keyslot_hw/test_util.h"

namespace ice {
namespace {

using testing::HookedDevice;
using testing::MakeKey;
using testing::Pattern;

constexpr uint64_t kDevBytes = 8 << 20;
constexpr CryptoMode kXts = CryptoMode::kAes256Xts;
constexpr CryptoMode kEssiv = CryptoMode::kAes128CbcEssiv;

Status FbWrite(Fallback& fb, BlockDevice& dev, uint64_t offset, const std::vector<uint8_t>& data,
               const CryptoKey& key, Dun dun = {}, bool fua = false) {
  return fb.Submit(dev, IoRequest{.op = IoOp::kWrite,
                                  .offset_bytes = offset,
                                  .length_bytes = data.size(),
                                  .write_buf = data.data(),
                                  .fua = fua,
                                  .crypt = CryptoContext{&key, dun}});
}

Status FbRead(Fallback& fb, BlockDevice& dev, uint64_t offset, std::vector<uint8_t>& out,
              const CryptoKey& key, Dun dun = {}) {
  return fb.Submit(dev, IoRequest{.op = IoOp::kRead,
                                  .offset_bytes = offset,
                                  .length_bytes = out.size(),
                                  .read_buf = out.data(),
                                  .crypt = CryptoContext{&key, dun}});
}

TEST(Fallback, F1_WritesGoDownEncryptedWithoutContextAndReadsDecrypt) {
  for (CryptoMode mode : {kXts, kEssiv}) {
    for (uint32_t unit : {512u, 4096u, 16384u, 65536u}) {
      SCOPED_TRACE(std::string(ModeInfo(mode).name) + "/" + std::to_string(unit));
      Fallback fb(4);
      HookedDevice dev(kDevBytes);
      auto key = MakeKey(mode, unit, 8, unit + 7);
      const size_t len = std::max<size_t>(2 * unit, 600 * 1024 / unit * unit);  // > 2 chunks
      const auto plain = Pattern(len, unit);
      const auto copy = plain;
      const Dun dun = Dun::FromU64(1000);
      ASSERT_TRUE(FbWrite(fb, dev, unit, plain, *key, dun, /*fua=*/true).ok());
      EXPECT_EQ(plain, copy);  // the caller's buffer is never modified
      EXPECT_EQ(testing::RawRead(dev, unit, len),
                testing::ReferenceEncrypt(mode, testing::RawKey(mode, unit + 7), unit, dun, plain));
      const auto writes = dev.requests();
      ASSERT_GT(writes.size(), 1u);
      uint64_t covered = unit;
      for (const IoRequest& r : writes) {
        if (r.op != IoOp::kWrite) continue;
        EXPECT_FALSE(r.crypt.has_value());
        EXPECT_TRUE(r.via_fallback);
        EXPECT_TRUE(r.fua);
        EXPECT_EQ(r.offset_bytes, covered);
        covered += r.length_bytes;
      }
      EXPECT_EQ(covered, unit + len);

      std::vector<uint8_t> back(len);
      ASSERT_TRUE(FbRead(fb, dev, unit, back, *key, dun).ok());
      EXPECT_EQ(back, plain);
      const IoRequest last = dev.requests().back();
      EXPECT_EQ(last.op, IoOp::kRead);
      EXPECT_FALSE(last.crypt.has_value());
      EXPECT_TRUE(last.via_fallback);
    }
  }
}

TEST(Fallback, F1_FailedReadIsNotDecrypted) {
  Fallback fb(1);
  HookedDevice dev(kDevBytes);
  auto key = MakeKey(kXts, 4096);
  dev.set_hook([](const IoRequest& r) {
    if (r.op != IoOp::kRead) return Status::Ok();
    std::memset(r.read_buf, 0x5A, r.length_bytes);
    return Status::Error(EIO, "medium error");
  });
  std::vector<uint8_t> back(8192);
  EXPECT_EQ(FbRead(fb, dev, 0, back, *key).code(), EIO);
  EXPECT_EQ(back, std::vector<uint8_t>(8192, 0x5A));
  EXPECT_EQ(fb.profile().counters().programs, 0u);  // no slot was even taken
}

TEST(Fallback, F1_FailedWriteChunkStopsTheWrite) {
  Fallback fb(1);
  HookedDevice dev(kDevBytes);
  auto key = MakeKey(kXts, 4096);
  int writes = 0;
  dev.set_hook([&](const IoRequest& r) {
    if (r.op == IoOp::kWrite && ++writes == 2) return Status::Error(ENOSPC, "full");
    return Status::Ok();
  });
  EXPECT_EQ(FbWrite(fb, dev, 0, Pattern(1 << 20, 1), *key).code(), ENOSPC);
  EXPECT_EQ(writes, 2);
}

TEST(Fallback, F1_ModeWithoutSoftwareImplementationIsEopnotsupp) {
  Fallback fb(1);
  HookedDevice dev(kDevBytes);
  auto key = MakeKey(CryptoMode::kAdiantum, 4096);
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(FbWrite(fb, dev, 0, Pattern(4096, 1), *key).code(), EOPNOTSUPP);
  EXPECT_TRUE(dev.requests().empty());
}

TEST(Fallback, F2_Capabilities) {
  const CryptoCapabilities caps = Fallback::Capabilities();
  for (int m = 0; m < kNumCryptoModes; ++m) {
    const CryptoMode mode = static_cast<CryptoMode>(m);
    for (uint32_t unit = 512; unit <= 65536; unit *= 2) {
      EXPECT_EQ(caps.SupportsNatively({mode, unit, 32, KeyType::kRaw}), ModeInfo(mode).implemented)
          << ModeInfo(mode).name << "/" << unit;
    }
    EXPECT_FALSE(caps.SupportsNatively({mode, 4096, 8, KeyType::kHwWrapped}));
  }
  EXPECT_EQ(caps.max_dun_bytes, 32u);
  EXPECT_FALSE(caps.SupportsNatively({kXts, 256, 8, KeyType::kRaw}));
  EXPECT_FALSE(caps.SupportsNatively({kXts, 131072, 8, KeyType::kRaw}));
  EXPECT_EQ(Fallback(7).profile().num_slots(), 7u);
}

// F2: a key is prepared once per slot, not per I/O.
TEST(Fallback, F2_KeyPreparedOnceThenHits) {
  Fallback fb(4);
  HookedDevice dev(kDevBytes);
  auto key = MakeKey(kXts, 4096);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(FbWrite(fb, dev, 0, Pattern(4096, i), *key).ok());
  EXPECT_EQ(fb.profile().counters().programs, 1u);
  EXPECT_EQ(fb.profile().counters().hits, 9u);
}

// F2: the fallback's slot is held only while en/decrypting, never across the device I/O.
TEST(Fallback, F2_SlotNotHeldAcrossDeviceIo) {
  Fallback fb(2);
  HookedDevice dev(kDevBytes);
  auto key = MakeKey(kXts, 4096);
  int checked = 0;
  dev.set_hook([&](const IoRequest&) {
    for (const SlotState& s : fb.profile().Slots()) EXPECT_EQ(s.refs, 0);
    ++checked;
    return Status::Ok();
  });
  const auto plain = Pattern(1 << 20, 3);  // several chunks
  ASSERT_TRUE(FbWrite(fb, dev, 0, plain, *key).ok());
  std::vector<uint8_t> back(plain.size());
  ASSERT_TRUE(FbRead(fb, dev, 0, back, *key).ok());
  EXPECT_EQ(back, plain);
  EXPECT_GE(checked, 5);
  EXPECT_EQ(fb.profile().Slots()[0].key_id, key->id());  // still prepared
}

TEST(Fallback, F2_ManyKeysFewSlotsManyThreads) {
  Fallback fb(2);
  MemoryBackend dev(kDevBytes);
  std::vector<KeyPtr> keys;
  for (uint32_t i = 0; i < 16; ++i) keys.push_back(MakeKey(i % 2 ? kEssiv : kXts, 4096, 8, i + 1));
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        const uint64_t block = (i % 32) * 4 + t;
        const CryptoKey& key = *keys[block % 16];
        const auto data = Pattern(4096, block * 1000 + i);
        std::vector<uint8_t> back(4096);
        if (!FbWrite(fb, dev, block * 4096, data, key, Dun::FromU64(block)).ok() ||
            !FbRead(fb, dev, block * 4096, back, key, Dun::FromU64(block)).ok() || back != data) {
          ++failures;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  const KeyslotCounters c = fb.profile().counters();
  EXPECT_GE(c.programs, 16u);
  EXPECT_EQ(c.programs + c.hits, 4u * 500 * 2);
}

TEST(Fallback, F4_EvictKeyFromThePool) {
  Fallback fb(2);
  HookedDevice dev(kDevBytes);
  auto key = MakeKey(kXts, 4096);
  const auto data = Pattern(4096, 1);
  ASSERT_TRUE(FbWrite(fb, dev, 0, data, *key).ok());
  EXPECT_TRUE(fb.EvictKey(*key).ok());
  for (const SlotState& s : fb.profile().Slots()) EXPECT_EQ(s.key_id, 0u);
  EXPECT_EQ(fb.profile().counters().evictions, 1u);
  EXPECT_TRUE(fb.EvictKey(*key).ok());  // K6: not in a slot, nothing done
  std::vector<uint8_t> back(4096);
  ASSERT_TRUE(FbRead(fb, dev, 0, back, *key).ok());  // prepared again
  EXPECT_EQ(back, data);
  EXPECT_EQ(fb.profile().counters().programs, 2u);
}

}  // namespace
}  // namespace ice
