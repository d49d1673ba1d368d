#include "keyslot/hardware_device.h"

#include <atomic>
#include <cerrno>
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "block/clock.h"
#include "block/memory_backend.h"
#include "tests/unit/keyslot_hw/test_util.h"

namespace ice {
namespace {

using testing::Borrowed;
using testing::HookedDevice;
using testing::MakeKey;
using testing::Pattern;
using testing::Read;
using testing::Write;

constexpr uint64_t kDevBytes = 8 << 20;
constexpr CryptoMode kXts = CryptoMode::kAes256Xts;
constexpr CryptoMode kEssiv = CryptoMode::kAes128CbcEssiv;

std::unique_ptr<HardwareDevice> MakeHw(unsigned slots, const CryptoCapabilities& caps,
                                       Clock& clock = Clock::Real()) {
  return std::make_unique<HardwareDevice>(std::make_unique<MemoryBackend>(kDevBytes), slots, caps,
                                          clock);
}

TEST(HardwareDevice, H1_NoCapabilitiesIsAPlainDevice) {
  auto hw = MakeHw(4, CryptoCapabilities());
  EXPECT_EQ(hw->crypto_profile(), nullptr);
  EXPECT_EQ(hw->num_slots(), 0u);
  EXPECT_TRUE(hw->slots().empty());
  const auto data = Pattern(4096, 1);
  ASSERT_TRUE(Write(*hw, 0, data).ok());
  std::vector<uint8_t> back(4096);
  ASSERT_TRUE(Read(*hw, 0, back).ok());
  EXPECT_EQ(back, data);
  // Nothing routes a context here; if one arrives, it is refused, not ignored.
  auto key = MakeKey(kXts, 4096);
  EXPECT_EQ(Write(*hw, 0, data, key.get()).code(), EIO);
}

TEST(HardwareDevice, H1_SlotsAndCapabilitiesFixedAtCreation) {
  const CryptoCapabilities caps = testing::Caps(kXts, 512 | 4096, 8);
  auto hw = MakeHw(3, caps);
  ASSERT_NE(hw->crypto_profile(), nullptr);
  EXPECT_EQ(hw->num_slots(), 3u);
  EXPECT_EQ(hw->crypto_profile()->capabilities(), caps);
  EXPECT_EQ(hw->slots().size(), 3u);
  EXPECT_EQ(hw->size_bytes(), kDevBytes);
}

// H2 with C5: what reaches the medium is the reference XTS/ESSIV output for the DUN; reading it
// back gives the plaintext; every data unit size and both implemented modes.
TEST(HardwareDevice, H2_RoundTripAndOnDiskFormat) {
  for (CryptoMode mode : {kXts, kEssiv}) {
    for (uint32_t unit : {512u, 1024u, 4096u, 65536u}) {
      SCOPED_TRACE(std::string(ModeInfo(mode).name) + "/" + std::to_string(unit));
      HookedDevice below(kDevBytes);
      HardwareDevice hw(std::make_unique<Borrowed>(below), 2, testing::Caps(mode, unit));
      auto key = MakeKey(mode, unit, 8, unit);
      const size_t len = std::max<size_t>(3 * unit, 300 * 1024 / unit * unit);  // > one chunk
      const auto plain = Pattern(len, unit);
      const Dun dun = Dun::FromU64(77);
      ASSERT_TRUE(Write(hw, unit, plain, key.get(), dun).ok());
      EXPECT_EQ(testing::RawRead(below, unit, len),
                testing::ReferenceEncrypt(mode, testing::RawKey(mode, unit), unit, dun, plain));
      std::vector<uint8_t> back(len);
      ASSERT_TRUE(Read(hw, unit, back, key.get(), dun).ok());
      EXPECT_EQ(back, plain);
      for (const IoRequest& r : below.requests()) EXPECT_FALSE(r.crypt.has_value());
    }
  }
}

TEST(HardwareDevice, H2_CallersWriteBufferUnchanged) {
  auto hw = MakeHw(1, testing::Caps(kXts, 4096));
  auto key = MakeKey(kXts, 4096);
  const auto plain = Pattern(512 * 1024, 3);
  const auto copy = plain;
  ASSERT_TRUE(Write(*hw, 0, plain, key.get()).ok());
  EXPECT_EQ(plain, copy);
}

TEST(HardwareDevice, H2_SlotHeldAcrossBackendIoThenReleased) {
  HookedDevice below(kDevBytes);
  HardwareDevice hw(std::make_unique<Borrowed>(below), 2, testing::Caps(kXts, 4096));
  auto key = MakeKey(kXts, 4096);
  int seen = 0;
  below.set_hook([&](const IoRequest&) {
    const auto slots = hw.slots();
    int held = 0;
    for (const SlotState& s : slots) {
      if (s.key_id == key->id()) held += s.refs;
    }
    EXPECT_EQ(held, 1);
    ++seen;
    return Status::Ok();
  });
  ASSERT_TRUE(Write(hw, 0, Pattern(8192, 1), key.get()).ok());
  std::vector<uint8_t> back(8192);
  ASSERT_TRUE(Read(hw, 0, back, key.get()).ok());
  EXPECT_EQ(seen, 2);
  for (const SlotState& s : hw.slots()) EXPECT_EQ(s.refs, 0);
}

TEST(HardwareDevice, H2_FailedBackendReadIsNotDecryptedAndSlotReleased) {
  HookedDevice below(kDevBytes);
  HardwareDevice hw(std::make_unique<Borrowed>(below), 1, testing::Caps(kXts, 4096));
  auto key = MakeKey(kXts, 4096);
  below.set_hook([](const IoRequest& r) {
    if (r.op != IoOp::kRead) return Status::Ok();
    std::memset(r.read_buf, 0xAB, r.length_bytes);
    return Status::Error(EIO, "medium error");
  });
  std::vector<uint8_t> back(4096);
  EXPECT_EQ(Read(hw, 0, back, key.get()).code(), EIO);
  EXPECT_EQ(back, std::vector<uint8_t>(4096, 0xAB));
  EXPECT_EQ(hw.slots()[0].refs, 0);
  EXPECT_EQ(hw.counters().errors, 1u);
}

TEST(HardwareDevice, C4_DunWiderThanDunBytesFailsWithEio) {
  auto hw = MakeHw(1, testing::Caps(kXts, 4096, 8));
  auto key = MakeKey(kXts, 4096, /*dun_bytes=*/1);
  const auto data = Pattern(2 * 4096, 1);
  // The last data unit's DUN (256) needs two bytes.
  EXPECT_EQ(Write(*hw, 0, data, key.get(), Dun::FromU64(255)).code(), EIO);
  EXPECT_EQ(testing::RawRead(*hw, 0, data.size()), std::vector<uint8_t>(data.size(), 0));
  EXPECT_TRUE(Write(*hw, 0, data, key.get(), Dun::FromU64(254)).ok());
}

TEST(HardwareDevice, C6_UnalignedCryptoIoIsEinval) {
  auto hw = MakeHw(1, testing::Caps(kXts, 4096));
  auto key = MakeKey(kXts, 4096);
  EXPECT_EQ(Write(*hw, 512, Pattern(4096, 1), key.get()).code(), EINVAL);
  EXPECT_EQ(Write(*hw, 0, Pattern(512, 1), key.get()).code(), EINVAL);
}

TEST(HardwareDevice, H3_ResetLosesNoData) {
  auto hw = MakeHw(4, testing::BothModes(4096));
  auto k1 = MakeKey(kXts, 4096, 8, 1);
  auto k2 = MakeKey(kEssiv, 4096, 8, 2);
  const auto d1 = Pattern(16384, 1), d2 = Pattern(16384, 2);
  ASSERT_TRUE(Write(*hw, 0, d1, k1.get()).ok());
  ASSERT_TRUE(Write(*hw, 65536, d2, k2.get(), Dun::FromU64(16)).ok());
  const uint64_t programs = hw->counters().slot_programs;
  const auto before = hw->slots();

  hw->Reset();
  const HardwareCounters c = hw->counters();
  EXPECT_EQ(c.resets, 1u);
  EXPECT_EQ(c.slot_programs, programs + 2);  // K7: every mapped slot again
  EXPECT_EQ(hw->slots()[0].key_id, before[0].key_id);
  EXPECT_EQ(hw->slots()[1].key_id, before[1].key_id);
  std::vector<uint8_t> b1(16384), b2(16384);
  ASSERT_TRUE(Read(*hw, 0, b1, k1.get()).ok());
  ASSERT_TRUE(Read(*hw, 65536, b2, k2.get(), Dun::FromU64(16)).ok());
  EXPECT_EQ(b1, d1);
  EXPECT_EQ(b2, d2);
  EXPECT_EQ(hw->counters().slot_programs, programs + 2);  // hits after the reset
}

// Writers and readers on four keys in two slots while another thread resets over and over: no
// error, no data change.
TEST(HardwareDevice, H3_ResetDuringConcurrentIoLosesNoDataAndNoErrors) {
  auto hw = MakeHw(2, testing::Caps(kXts, 4096));
  std::vector<KeyPtr> keys;
  for (uint32_t i = 0; i < 4; ++i) keys.push_back(MakeKey(kXts, 4096, 8, 100 + i));
  constexpr int kThreads = 3, kBlocksPerThread = 32, kOps = 1500;
  std::atomic<int> errors{0}, mismatches{0};
  std::atomic<bool> stop{false};
  std::thread resetter([&] {
    while (!stop.load()) hw->Reset();
  });
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&, t] {
      std::vector<uint32_t> gen(kBlocksPerThread, 0);
      for (int i = 0; i < kOps; ++i) {
        const int b = (i * 7) % kBlocksPerThread;
        const uint64_t block = t * kBlocksPerThread + b;
        const CryptoKey* key = keys[block % keys.size()].get();
        if (i % 2 == 0) {
          ++gen[b];
          if (!Write(*hw, block * 4096, Pattern(4096, block * 100000 + gen[b]), key,
                     Dun::FromU64(block))
                   .ok()) {
            ++errors;
          }
        } else if (gen[b] > 0) {
          std::vector<uint8_t> back(4096);
          if (!Read(*hw, block * 4096, back, key, Dun::FromU64(block)).ok()) ++errors;
          if (back != Pattern(4096, block * 100000 + gen[b])) ++mismatches;
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  stop = true;
  resetter.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_GT(hw->counters().resets, 0u);
  EXPECT_EQ(hw->counters().errors, 0u);
}

// K7/H3: crypto I/O that arrives during a reset waits until every slot is programmed again.
TEST(HardwareDevice, H3_ResetHoldsNewCryptoIoUntilReprogrammed) {
  ManualClock clock;
  auto hw = MakeHw(1, testing::Caps(kXts, 4096), clock);
  auto key = MakeKey(kXts, 4096);
  const auto data = Pattern(4096, 5);
  ASSERT_TRUE(Write(*hw, 0, data, key.get()).ok());
  hw->SetProgramLatency(std::chrono::milliseconds(10));

  std::thread resetter([&] { hw->Reset(); });
  ASSERT_TRUE(testing::WaitFor([&] { return clock.waiters() == 1; }));  // reprogramming
  std::atomic<bool> done{false};
  std::vector<uint8_t> back(4096);
  Status status;
  std::thread reader([&] {
    status = Read(*hw, 0, back, key.get());
    done = true;
  });
  // Plain I/O is not held.
  ASSERT_TRUE(testing::RawRead(*hw, 0, 4096) != data);
  EXPECT_FALSE(done.load());
  clock.Advance(std::chrono::milliseconds(10));
  resetter.join();
  reader.join();
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(back, data);
}

TEST(HardwareDevice, H3_FailNextProgramsFailsExactlyOneIo) {
  auto hw = MakeHw(1, testing::Caps(kXts, 4096));
  auto a = MakeKey(kXts, 4096, 8, 1);
  auto b = MakeKey(kXts, 4096, 8, 2);
  const auto da = Pattern(4096, 1), db = Pattern(4096, 2);
  ASSERT_TRUE(Write(*hw, 0, da, a.get()).ok());

  hw->FailNextPrograms(1);
  EXPECT_EQ(Write(*hw, 4096, db, b.get()).code(), EIO);
  EXPECT_EQ(testing::RawRead(*hw, 4096, 4096), std::vector<uint8_t>(4096, 0));  // not written
  // K5: the slot keeps its old key, which still works.
  EXPECT_EQ(hw->slots()[0].key_id, a->id());
  std::vector<uint8_t> back(4096);
  ASSERT_TRUE(Read(*hw, 0, back, a.get()).ok());
  EXPECT_EQ(back, da);
  ASSERT_TRUE(Write(*hw, 4096, db, b.get()).ok());
  ASSERT_TRUE(Read(*hw, 4096, back, b.get()).ok());
  EXPECT_EQ(back, db);
  ASSERT_TRUE(Read(*hw, 0, back, a.get()).ok());
  EXPECT_EQ(back, da);
  const HardwareCounters c = hw->counters();
  EXPECT_EQ(c.slot_program_failures, 1u);
  EXPECT_EQ(c.errors, 1u);
}

// ice deviation: a slot whose reprogramming failed after a reset fails its I/O (EIO) instead of
// using a lost key; the next successful reset heals it.
TEST(HardwareDevice, H3_FailedReprogramAfterResetFailsIoNotData) {
  auto hw = MakeHw(1, testing::Caps(kXts, 4096));
  auto key = MakeKey(kXts, 4096);
  const auto data = Pattern(4096, 9);
  ASSERT_TRUE(Write(*hw, 0, data, key.get()).ok());
  hw->FailNextPrograms(1);
  hw->Reset();
  std::vector<uint8_t> back(4096);
  EXPECT_EQ(Read(*hw, 0, back, key.get()).code(), EIO);
  EXPECT_EQ(Write(*hw, 0, Pattern(4096, 10), key.get()).code(), EIO);
  hw->Reset();
  ASSERT_TRUE(Read(*hw, 0, back, key.get()).ok());
  EXPECT_EQ(back, data);
}

TEST(HardwareDevice, H3_FailNextEvictionsReturnsEioButDropsMapping) {
  auto hw = MakeHw(2, testing::Caps(kXts, 4096));
  auto key = MakeKey(kXts, 4096);
  const auto data = Pattern(4096, 4);
  ASSERT_TRUE(Write(*hw, 0, data, key.get()).ok());
  hw->FailNextEvictions(1);
  EXPECT_EQ(hw->crypto_profile()->EvictKey(*key).code(), EIO);
  for (const SlotState& s : hw->slots()) EXPECT_NE(s.key_id, key->id());
  EXPECT_EQ(hw->counters().slot_evictions, 0u);
  // The key can come back; the data is intact.
  std::vector<uint8_t> back(4096);
  ASSERT_TRUE(Read(*hw, 0, back, key.get()).ok());
  EXPECT_EQ(back, data);
  EXPECT_TRUE(hw->crypto_profile()->EvictKey(*key).ok());
  EXPECT_EQ(hw->counters().slot_evictions, 1u);
}

// H3 latency on the device's clock: the getter that programs blocks until the clock moves; a hit
// never waits.
TEST(HardwareDevice, H3_ProgramLatencyOnTheDevicesClock) {
  ManualClock clock;
  auto hw = MakeHw(1, testing::Caps(kXts, 4096), clock);
  hw->SetProgramLatency(std::chrono::milliseconds(50));
  auto key = MakeKey(kXts, 4096);
  std::atomic<bool> done{false};
  Status status;
  std::thread writer([&] {
    status = Write(*hw, 0, Pattern(4096, 1), key.get());
    done = true;
  });
  ASSERT_TRUE(testing::WaitFor([&] { return clock.waiters() == 1; }));
  clock.Advance(std::chrono::milliseconds(49));
  EXPECT_FALSE(done.load());
  EXPECT_EQ(clock.waiters(), 1);
  clock.Advance(std::chrono::milliseconds(1));
  writer.join();
  ASSERT_TRUE(status.ok());
  std::vector<uint8_t> back(4096);
  EXPECT_TRUE(Read(*hw, 0, back, key.get()).ok());  // a hit: would block forever if it slept
  EXPECT_EQ(hw->counters().slot_hits, 1u);
}

// Whether `fn` returns while another thread waits on the hardware: run on its own thread and
// given far more time than it needs, so that a lock held across the wait shows as a failure
// rather than a hung suite (a hang detector, not a timing goal).
template <typename Fn>
bool ReturnsMeanwhile(Fn fn) {
  auto done = std::async(std::launch::async, fn);
  const bool returned = done.wait_for(std::chrono::seconds(20)) == std::future_status::ready;
  if (!returned) ADD_FAILURE() << "blocked while the hardware waits (a lock is held)";
  return returned;
}

// Hardening 3: programming latency is waited out before the profile's lock is taken, so that
// hits, hw info (slots, counters) and other keys' I/O go on while a slow program waits.
TEST(HardwareDevice, Hardening3_ProgramLatencyHoldsNoProfileLock) {
  ManualClock clock;
  auto hw = MakeHw(2, testing::Caps(kXts, 4096), clock);
  auto resident = MakeKey(kXts, 4096, 8, 1);
  ASSERT_TRUE(Write(*hw, 0, Pattern(4096, 1), resident.get()).ok());
  hw->SetProgramLatency(std::chrono::seconds(15));
  auto slow = MakeKey(kXts, 4096, 8, 2);
  std::thread writer([&] { EXPECT_TRUE(Write(*hw, 4096, Pattern(4096, 2), slow.get()).ok()); });
  ASSERT_TRUE(testing::WaitFor([&] { return clock.waiters() == 1; }));
  if (ReturnsMeanwhile([&] {
        std::vector<uint8_t> back(4096);
        EXPECT_TRUE(Read(*hw, 0, back, resident.get()).ok());  // a hit
        EXPECT_EQ(hw->slots().size(), 2u);
        EXPECT_EQ(hw->counters().slot_programs, 1u);
      })) {
    clock.Advance(std::chrono::seconds(15));
  } else {
    hw->Shutdown();  // lets the writer finish so that the test can end
  }
  writer.join();
  EXPECT_EQ(hw->counters().slot_programs, 2u);
}

// Hardening 3: a reset waits out the latency of every slot it reprograms while crypto I/O is held
// back (H3, K7), but holds no profile lock meanwhile: hw info is served.
TEST(HardwareDevice, Hardening3_ResetWaitsLatencyWithoutProfileLock) {
  ManualClock clock;
  auto hw = MakeHw(2, testing::Caps(kXts, 4096), clock);
  auto a = MakeKey(kXts, 4096, 8, 1), b = MakeKey(kXts, 4096, 8, 2);
  ASSERT_TRUE(Write(*hw, 0, Pattern(4096, 1), a.get()).ok());
  ASSERT_TRUE(Write(*hw, 4096, Pattern(4096, 2), b.get()).ok());
  hw->SetProgramLatency(std::chrono::seconds(10));
  std::thread resetter([&] { hw->Reset(); });
  ASSERT_TRUE(testing::WaitFor([&] { return clock.waiters() == 1; }));
  ReturnsMeanwhile([&] {
    EXPECT_EQ(hw->slots().size(), 2u);
    (void)hw->counters();
  });
  clock.Advance(std::chrono::seconds(19));  // two slots: 20 s in all
  EXPECT_EQ(clock.waiters(), 1);
  clock.Advance(std::chrono::seconds(1));
  resetter.join();
  std::vector<uint8_t> back(4096);
  ASSERT_TRUE(Read(*hw, 4096, back, b.get()).ok());
  EXPECT_EQ(back, Pattern(4096, 2));
}

// Hardening 3: the daemon's stop ends latency waits at once, so that no verb outlives it.
TEST(HardwareDevice, Hardening3_ShutdownEndsLatencyWaits) {
  auto hw = MakeHw(1, testing::Caps(kXts, 4096));
  hw->SetProgramLatency(std::chrono::hours(1));
  auto key = MakeKey(kXts, 4096);
  Status status;
  std::thread writer([&] { status = Write(*hw, 0, Pattern(4096, 1), key.get()); });
  hw->Shutdown();
  writer.join();  // would take an hour without the shutdown
  EXPECT_TRUE(status.ok()) << status.ToString();
}

TEST(HardwareDevice, H4_CountersByDirection) {
  auto hw = MakeHw(2, testing::Caps(kXts, 4096));
  auto key = MakeKey(kXts, 4096);
  ASSERT_TRUE(Write(*hw, 0, Pattern(8192, 1), key.get()).ok());
  ASSERT_TRUE(Write(*hw, 8192, Pattern(4096, 1)).ok());
  std::vector<uint8_t> back(4096);
  ASSERT_TRUE(Read(*hw, 0, back, key.get()).ok());
  ASSERT_TRUE(hw->Submit(IoRequest{.op = IoOp::kFlush}).ok());
  ASSERT_TRUE(
      hw->Submit(IoRequest{.op = IoOp::kDiscard, .offset_bytes = 0, .length_bytes = 4096}).ok());
  ASSERT_TRUE(
      hw->Submit(IoRequest{.op = IoOp::kWriteZeroes, .offset_bytes = 0, .length_bytes = 4096})
          .ok());
  const auto data = Pattern(4096, 2);
  ASSERT_TRUE(hw->Submit(IoRequest{.op = IoOp::kWrite,
                                   .offset_bytes = 0,
                                   .length_bytes = 4096,
                                   .write_buf = data.data(),
                                   .via_fallback = true})
                  .ok());
  EXPECT_EQ(Write(*hw, 512, Pattern(4096, 1), key.get()).code(), EINVAL);
  EXPECT_EQ(Write(*hw, 0, Pattern(4096, 1), key.get(), Dun::FromU64(1ull << 63)).code(), 0);
  const HardwareCounters c = hw->counters();
  EXPECT_EQ(c.writes, 5u);
  EXPECT_EQ(c.write_bytes, 8192u + 4096 + 4096 + 4096);
  EXPECT_EQ(c.reads, 1u);
  EXPECT_EQ(c.read_bytes, 4096u);
  EXPECT_EQ(c.flushes, 1u);
  EXPECT_EQ(c.discards, 1u);
  EXPECT_EQ(c.zeroes, 1u);
  EXPECT_EQ(c.fallback_ios, 1u);
  EXPECT_EQ(c.errors, 1u);
  EXPECT_EQ(c.slot_programs, 1u);
  EXPECT_EQ(c.slot_hits, 2u);
  EXPECT_EQ(c.resets, 0u);
}

// 16 keys on 2 slots from 4 threads, 10 000 I/Os; every block verified afterwards.
TEST(HardwareDevice, K3_ManyKeysFewSlotsManyThreads) {
  auto hw = MakeHw(2, testing::BothModes(512 | 4096));
  std::vector<KeyPtr> keys;
  for (uint32_t i = 0; i < 16; ++i) {
    keys.push_back(MakeKey(i % 2 ? kEssiv : kXts, i % 3 ? 4096 : 512, 8, 1000 + i));
  }
  constexpr int kThreads = 4, kOpsPerThread = 2500, kBlocks = 256;  // 4 KiB blocks
  auto key_of = [&](uint64_t block) { return keys[block % 16].get(); };
  auto dun_of = [&](uint64_t block) {
    return Dun::FromU64(block * 4096 / key_of(block)->config().data_unit_size);
  };
  std::atomic<int> failures{0};
  std::vector<std::vector<uint32_t>> gens(kThreads, std::vector<uint32_t>(kBlocks, 0));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      uint32_t x = t + 1;
      for (int i = 0; i < kOpsPerThread; ++i) {
        x = x * 1103515245 + 12345;
        const uint64_t block = ((x >> 8) % (kBlocks / kThreads)) * kThreads + t;  // t's blocks
        uint32_t& gen = gens[t][block];
        std::vector<uint8_t> buf(4096);
        if (i % 3 != 2 || gen == 0) {
          ++gen;
          if (!Write(*hw, block * 4096, Pattern(4096, block << 16 | gen), key_of(block),
                     dun_of(block))
                   .ok()) {
            ++failures;
          }
        } else if (!Read(*hw, block * 4096, buf, key_of(block), dun_of(block)).ok() ||
                   buf != Pattern(4096, block << 16 | gen)) {
          ++failures;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  for (uint64_t block = 0; block < kBlocks; ++block) {
    const uint32_t gen = gens[block % kThreads][block];
    if (gen == 0) continue;
    std::vector<uint8_t> buf(4096);
    ASSERT_TRUE(Read(*hw, block * 4096, buf, key_of(block), dun_of(block)).ok());
    EXPECT_EQ(buf, Pattern(4096, block << 16 | gen)) << "block " << block;
  }
  const HardwareCounters c = hw->counters();
  const uint64_t ios = c.reads + c.writes;
  EXPECT_GE(c.slot_programs, 16u);
  EXPECT_EQ(c.slot_hits + c.slot_programs, ios);  // every crypto I/O got exactly one slot
  EXPECT_EQ(c.slot_program_failures, 0u);
  EXPECT_EQ(c.errors, 0u);
  for (const SlotState& s : hw->slots()) EXPECT_EQ(s.refs, 0);
}

}  // namespace
}  // namespace ice
