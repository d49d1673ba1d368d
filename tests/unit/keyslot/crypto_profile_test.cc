#include "keyslot/crypto_profile.h"

#include <array>
#include <cerrno>
#include <chrono>
#include <future>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace ice {
namespace {

using std::chrono::milliseconds;

// Test double of the hardware below a profile: records every call, fails on demand.
class RecordingOps : public KeyslotOps {
 public:
  struct Call {
    char op;  // 'P'rogram or 'E'vict
    uint64_t key_id;
    std::optional<unsigned> slot;
    friend bool operator==(const Call&, const Call&) = default;
  };

  Status ProgramKey(const CryptoKey& key, unsigned slot) override {
    std::lock_guard lock(mu_);
    calls_.push_back({'P', key.id(), slot});
    if (fail_programs_ > 0) {
      --fail_programs_;
      return Status::Error(EIO, "injected program failure");
    }
    return Status::Ok();
  }
  Status EvictKey(const CryptoKey& key, std::optional<unsigned> slot) override {
    std::lock_guard lock(mu_);
    calls_.push_back({'E', key.id(), slot});
    return evict_result_;
  }

  void FailNextPrograms(int n) {
    std::lock_guard lock(mu_);
    fail_programs_ = n;
  }
  void SetEvictResult(Status s) {
    std::lock_guard lock(mu_);
    evict_result_ = std::move(s);
  }
  std::vector<Call> calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }
  void Clear() {
    std::lock_guard lock(mu_);
    calls_.clear();
  }

 private:
  mutable std::mutex mu_;
  std::vector<Call> calls_;
  int fail_programs_ = 0;
  Status evict_result_;
};

// An AES-256-XTS key whose bytes depend only on `seed` (halves differ, C2).
KeyPtr MakeKey(uint8_t seed) {
  std::array<uint8_t, 64> bytes;
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(seed + i);
  auto key = CryptoKey::Create(CryptoConfig{CryptoMode::kAes256Xts, 4096, 8, KeyType::kRaw}, bytes);
  EXPECT_TRUE(key.ok()) << key.status().ToString();
  return *key;
}

CryptoCapabilities XtsCaps() {
  CryptoCapabilities caps;
  caps.Add(CryptoMode::kAes256Xts, 4096);
  caps.max_dun_bytes = 8;
  caps.key_types = static_cast<uint8_t>(KeyType::kRaw);
  return caps;
}

Keyslot Get(CryptoProfile& p, const KeyPtr& key) {
  Result<Keyslot> slot = p.GetKeyslot(*key);
  EXPECT_TRUE(slot.ok()) << slot.status().ToString();
  return slot.ok() ? std::move(slot).value() : Keyslot();
}

// Waits (bounded) until `pred` holds, for state another thread reaches.
template <typename Pred>
bool Eventually(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

// The getter has gone to sleep for a slot (or is about to): it cannot proceed while every slot is
// held, so a short timed wait is only a check that it has not.
template <typename T>
bool StillBlocked(std::future<T>& f) {
  return f.wait_for(milliseconds(50)) == std::future_status::timeout;
}

using Call = RecordingOps::Call;

// ---- K2: hits ----

TEST(CryptoProfile, K2_HitDoesNotProgram) {
  RecordingOps ops;
  CryptoProfile p(XtsCaps(), 2, &ops);
  const KeyPtr a = MakeKey(1);
  Keyslot s1 = Get(p, a);
  Keyslot s2 = Get(p, a);
  ASSERT_TRUE(s1.has_slot() && s2.has_slot());
  EXPECT_EQ(s1.index(), 0u);
  EXPECT_EQ(s2.index(), 0u);
  EXPECT_EQ(p.Slots()[0].refs, 2);
  s1.Release();
  s2.Release();
  Keyslot s3 = Get(p, a);
  EXPECT_EQ(s3.index(), 0u);
  EXPECT_EQ(ops.calls(), (std::vector<Call>{{'P', a->id(), 0u}}));
  EXPECT_EQ(p.counters().programs, 1u);
  EXPECT_EQ(p.counters().hits, 2u);
}

TEST(CryptoProfile, K2_EqualBytesDifferentKeysUseTwoSlots) {
  RecordingOps ops;
  CryptoProfile p(XtsCaps(), 2, &ops);
  const KeyPtr a1 = MakeKey(7), a2 = MakeKey(7);
  Keyslot s1 = Get(p, a1);
  Keyslot s2 = Get(p, a2);
  EXPECT_NE(s1.index(), s2.index());
  EXPECT_EQ(p.counters().programs, 2u);
  EXPECT_EQ(p.counters().hits, 0u);
}

TEST(CryptoProfile, K2_HitTakesSlotOffIdleList) {
  RecordingOps ops;
  CryptoProfile p(XtsCaps(), 2, &ops);
  const KeyPtr a = MakeKey(1), b = MakeKey(2), c = MakeKey(3);
  Get(p, a);                   // slot 0, released at once: idle [1, 0]
  Get(p, b);                   // slot 1: idle [0, 1]
  Keyslot held_a = Get(p, a);  // hit on slot 0, which leaves the idle list: idle [1]
  EXPECT_EQ(held_a.index(), 0u);
  Keyslot sc = Get(p, c);
  EXPECT_EQ(sc.index(), 1u);
  EXPECT_EQ(p.Slots()[1].key_id, c->id());
}

// ---- K3: misses ----

TEST(CryptoProfile, K3_InitialIdleOrderIs0ToN) {
  RecordingOps ops;
  CryptoProfile p(XtsCaps(), 4, &ops);
  std::vector<KeyPtr> keys;
  std::vector<Keyslot> held;
  for (uint8_t i = 0; i < 4; ++i) {
    keys.push_back(MakeKey(i));
    held.push_back(Get(p, keys.back()));
    EXPECT_EQ(held.back().index(), i);
  }
  EXPECT_EQ(ops.calls(), (std::vector<Call>{{'P', keys[0]->id(), 0u},
                                            {'P', keys[1]->id(), 1u},
                                            {'P', keys[2]->id(), 2u},
                                            {'P', keys[3]->id(), 3u}}));
}

TEST(CryptoProfile, K3_MissTakesLruIdleSlot) {
  RecordingOps ops;
  CryptoProfile p(XtsCaps(), 3, &ops);
  const KeyPtr a = MakeKey(1), b = MakeKey(2), c = MakeKey(3), d = MakeKey(4);
  Keyslot sa = Get(p, a), sb = Get(p, b), sc = Get(p, c);
  sc.Release();
  sa.Release();
  sb.Release();  // idle [2, 0, 1]
  Keyslot sd = Get(p, d);
  EXPECT_EQ(sd.index(), 2u);
  EXPECT_EQ(p.Slots()[2].key_id, d->id());  // c's mapping was dropped
  Keyslot sc2 = Get(p, c);                  // a miss now: takes the next LRU slot
  EXPECT_EQ(sc2.index(), 0u);
  EXPECT_EQ(p.Slots()[0].key_id, c->id());
  EXPECT_EQ(p.counters().programs, 5u);
  EXPECT_EQ(p.counters().hits, 0u);
}

TEST(CryptoProfile, K3_WaitsWhenAllSlotsHeld) {
  RecordingOps ops;
  CryptoProfile p(XtsCaps(), 1, &ops);
  const KeyPtr a = MakeKey(1), b = MakeKey(2);
  Keyslot sa = Get(p, a);
  auto waiter = std::async(std::launch::async, [&] { return Get(p, b).index(); });
  ASSERT_TRUE(Eventually([&] { return p.counters().waits == 1; }));
  EXPECT_TRUE(StillBlocked(waiter));
  sa.Release();
  EXPECT_EQ(waiter.get(), 0u);  // the getter ended, and its handle released the slot
  EXPECT_EQ(p.Slots()[0].key_id, b->id());
  EXPECT_EQ(p.Slots()[0].refs, 0);
  EXPECT_EQ(p.counters().programs, 2u);
}

TEST(CryptoProfile, K3_WaiterReleasesTheLockSoHitsProceed) {
  RecordingOps ops;
  CryptoProfile p(XtsCaps(), 1, &ops);
  const KeyPtr a = MakeKey(1), b = MakeKey(2);
  Keyslot sa = Get(p, a);
  auto waiter = std::async(std::launch::async, [&] { return Get(p, b).index(); });
  ASSERT_TRUE(Eventually([&] { return p.counters().waits == 1; }));
  Keyslot sa2 = Get(p, a);  // would deadlock if the waiter slept holding the lock
  EXPECT_EQ(sa2.index(), 0u);
  EXPECT_EQ(p.counters().hits, 1u);
  sa.Release();
  EXPECT_TRUE(StillBlocked(waiter));  // one reference is still held
  sa2.Release();
  EXPECT_EQ(waiter.get(), 0u);
}

// Both getters sleep for an idle slot; the first to wake programs the key. The second, woken when a
// slot is next released (as the kernel, it sleeps for an idle slot, not for its key), finds the
// key on its re-look under the exclusive lock: one program, one hit.
TEST(CryptoProfile, K3_ConcurrentMissesOfOneKeyProgramItOnce) {
  RecordingOps ops;
  CryptoProfile p(XtsCaps(), 1, &ops);
  const KeyPtr a = MakeKey(1), b = MakeKey(2);
  Keyslot sa = Get(p, a);
  auto getter = [&] { return Get(p, b).index(); };
  auto t1 = std::async(std::launch::async, getter);
  auto t2 = std::async(std::launch::async, getter);
  ASSERT_TRUE(Eventually([&] { return p.counters().waits >= 2; }));
  sa.Release();
  EXPECT_EQ(t1.get(), 0u);
  EXPECT_EQ(t2.get(), 0u);
  EXPECT_EQ(ops.calls(), (std::vector<Call>{{'P', a->id(), 0u}, {'P', b->id(), 0u}}));
  EXPECT_EQ(p.counters().hits, 1u);
}

// ---- K4: release ----

TEST(CryptoProfile, K4_ReleaseGoesToTail) {
  RecordingOps ops;
  CryptoProfile p(XtsCaps(), 3, &ops);
  std::vector<KeyPtr> keys;
  for (uint8_t i = 0; i < 6; ++i) keys.push_back(MakeKey(i));
  Keyslot s0 = Get(p, keys[0]), s1 = Get(p, keys[1]), s2 = Get(p, keys[2]);
  s1.Release();
  s0.Release();
  s2.Release();  // idle [1, 0, 2]
  Keyslot d = Get(p, keys[3]), e = Get(p, keys[4]), f = Get(p, keys[5]);
  EXPECT_EQ(d.index(), 1u);
  EXPECT_EQ(e.index(), 0u);
  EXPECT_EQ(f.index(), 2u);
}

TEST(CryptoProfile, K4_KeyStaysProgrammedAfterRelease) {
  RecordingOps ops;
  CryptoProfile p(XtsCaps(), 2, &ops);
  const KeyPtr a = MakeKey(1);
  Get(p, a).Release();
  EXPECT_EQ(p.Slots()[0].key_id, a->id());
  EXPECT_EQ(p.Slots()[0].refs, 0);
  Keyslot s = Get(p, a);
  EXPECT_EQ(s.index(), 0u);
  EXPECT_EQ(p.counters().programs, 1u);
  EXPECT_EQ(p.counters().hits, 1u);
}

TEST(CryptoProfile, K4_SlotBecomesIdleOnlyAtZeroReferences) {
  RecordingOps ops;
  CryptoProfile p(XtsCaps(), 2, &ops);
  const KeyPtr a = MakeKey(1), b = MakeKey(2), c = MakeKey(3);
  Keyslot a1 = Get(p, a), a2 = Get(p, a);
  a1.Release();
  Keyslot sb = Get(p, b);
  EXPECT_EQ(sb.index(), 1u);  // slot 0 still referenced
  a2.Release();
  Keyslot sc = Get(p, c);
  EXPECT_EQ(sc.index(), 0u);
}

TEST(CryptoProfile, K4_KeyslotHandleReleasesExactlyOnce) {
  RecordingOps ops;
  CryptoProfile p(XtsCaps(), 2, &ops);
  const KeyPtr a = MakeKey(1), b = MakeKey(2);
  Keyslot s1 = Get(p, a);
  Keyslot moved(std::move(s1));
  EXPECT_FALSE(s1.has_slot());  // NOLINT(bugprone-use-after-move): checking the moved-from state
  EXPECT_EQ(p.Slots()[0].refs, 1);
  Keyslot other = Get(p, b);
  other = std::move(moved);  // releases b's slot, takes a's
  EXPECT_EQ(p.Slots()[0].refs, 1);
  EXPECT_EQ(p.Slots()[1].refs, 0);
  other.Release();
  other.Release();
  EXPECT_EQ(p.Slots()[0].refs, 0);
}

// ---- K5: program failure ----

TEST(CryptoProfile, K5_ProgramFailureKeepsSlotAtHeadWithOldMapping) {
  RecordingOps ops;
  CryptoProfile p(XtsCaps(), 2, &ops);
  const KeyPtr a = MakeKey(1), b = MakeKey(2), c = MakeKey(3), d = MakeKey(4);
  Get(p, a);  // idle [1, 0]
  Get(p, b);  // idle [0, 1]
  ops.FailNextPrograms(1);
  Result<Keyslot> failed = p.GetKeyslot(*c);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), EIO);
  EXPECT_EQ(p.Slots()[0].key_id, a->id());
  EXPECT_EQ(p.Slots()[0].refs, 0);
  EXPECT_EQ(p.counters().program_failures, 1u);
  EXPECT_EQ(p.counters().programs, 2u);
  Keyslot sd = Get(p, d);  // slot 0 is still the LRU head
  EXPECT_EQ(sd.index(), 0u);
  EXPECT_EQ(ops.calls().back(), (Call{'P', d->id(), 0u}));
}

TEST(CryptoProfile, K5_OldMappingStillHitsAfterFailure) {
  RecordingOps ops;
  CryptoProfile p(XtsCaps(), 1, &ops);
  const KeyPtr a = MakeKey(1), c = MakeKey(3);
  Get(p, a);
  ops.FailNextPrograms(1);
  EXPECT_FALSE(p.GetKeyslot(*c).ok());
  Keyslot sa = Get(p, a);
  EXPECT_EQ(sa.index(), 0u);
  EXPECT_EQ(p.counters().programs, 1u);
  EXPECT_EQ(p.counters().hits, 1u);
}

TEST(CryptoProfile, K5_FailureAmongWaitersFailsOneAndServesTheOther) {
  RecordingOps ops;
  CryptoProfile p(XtsCaps(), 1, &ops);
  const KeyPtr a = MakeKey(1), b = MakeKey(2), c = MakeKey(3);
  Keyslot sa = Get(p, a);
  ops.FailNextPrograms(1);
  auto get = [&](const KeyPtr& k) { return p.GetKeyslot(*k).status().code(); };
  auto tb = std::async(std::launch::async, get, b);
  auto tc = std::async(std::launch::async, get, c);
  ASSERT_TRUE(Eventually([&] { return p.counters().waits >= 2; }));
  sa.Release();
  const int rb = tb.get(), rc = tc.get();
  EXPECT_EQ(std::min(rb, rc), 0);
  EXPECT_EQ(std::max(rb, rc), EIO);
  EXPECT_EQ(p.counters().program_failures, 1u);
  EXPECT_EQ(p.counters().programs, 2u);
}

// ---- K6: eviction ----

TEST(CryptoProfile, K6_ZeroSlotProfileForwardsToItsEvict) {
  RecordingOps ops;
  CryptoProfile p(XtsCaps(), 0, &ops);
  const KeyPtr a = MakeKey(1);
  EXPECT_TRUE(p.EvictKey(*a).ok());
  ops.SetEvictResult(Status::Error(EIO, "below failed"));
  EXPECT_EQ(p.EvictKey(*a).code(), EIO);
  EXPECT_EQ(ops.calls(),
            (std::vector<Call>{{'E', a->id(), std::nullopt}, {'E', a->id(), std::nullopt}}));
}

TEST(CryptoProfile, K6_ZeroSlotProfileWithoutOpsReturnsOk) {
  CryptoProfile p(XtsCaps(), 0, nullptr);
  EXPECT_TRUE(p.EvictKey(*MakeKey(1)).ok());
}

TEST(CryptoProfile, K6_KeyInNoSlotIsANoop) {
  RecordingOps ops;
  CryptoProfile p(XtsCaps(), 2, &ops);
  const KeyPtr a = MakeKey(1);
  EXPECT_TRUE(p.EvictKey(*a).ok());
  EXPECT_TRUE(ops.calls().empty());
  EXPECT_EQ(p.counters().evictions, 0u);
}

TEST(CryptoProfile, K6_BusyKeyIsEbusyWithoutHardwareCallAndLosesItsMapping) {
  RecordingOps ops;
  CryptoProfile p(XtsCaps(), 2, &ops);
  const KeyPtr a = MakeKey(1);
  Keyslot sa = Get(p, a);
  ops.Clear();
  EXPECT_EQ(p.EvictKey(*a).code(), EBUSY);
  EXPECT_TRUE(ops.calls().empty());
  EXPECT_EQ(p.Slots()[0].key_id, 0u);
  EXPECT_EQ(p.Slots()[0].refs, 1);  // the holder keeps its reference
  sa.Release();                     // an idle slot with no key, at the idle tail: idle [1, 0]
  EXPECT_EQ(p.Slots()[0].refs, 0);
  Keyslot again = Get(p, a);  // a miss now
  EXPECT_EQ(again.index(), 1u);
  EXPECT_EQ(ops.calls(), (std::vector<Call>{{'P', a->id(), 1u}}));
  EXPECT_EQ(p.counters().evictions, 0u);
}

TEST(CryptoProfile, K6_IdleKeyIsEvictedAndUnmapped) {
  RecordingOps ops;
  CryptoProfile p(XtsCaps(), 2, &ops);
  const KeyPtr a = MakeKey(1);
  Get(p, a);
  ops.Clear();
  EXPECT_TRUE(p.EvictKey(*a).ok());
  EXPECT_EQ(ops.calls(), (std::vector<Call>{{'E', a->id(), 0u}}));
  EXPECT_EQ(p.Slots()[0].key_id, 0u);
  EXPECT_EQ(p.counters().evictions, 1u);
  EXPECT_TRUE(p.EvictKey(*a).ok());  // now in no slot: nothing done
  EXPECT_EQ(ops.calls().size(), 1u);
}

TEST(CryptoProfile, K6_HardwareEvictErrorStillDropsMapping) {
  RecordingOps ops;
  CryptoProfile p(XtsCaps(), 2, &ops);
  const KeyPtr a = MakeKey(1);
  Get(p, a);
  ops.SetEvictResult(Status::Error(EIO, "evict failed"));
  EXPECT_EQ(p.EvictKey(*a).code(), EIO);
  EXPECT_EQ(p.Slots()[0].key_id, 0u);
  EXPECT_EQ(p.counters().evictions, 0u);
  ops.Clear();
  Get(p, a);  // a miss: programmed again
  EXPECT_EQ(ops.calls().size(), 1u);
}

TEST(CryptoProfile, K6_EvictingOneKeyLeavesTheOthersMapped) {
  // Enough keys that some share a hash bucket, so unlinking from the middle of a chain is covered.
  constexpr unsigned kSlots = 32;
  RecordingOps ops;
  CryptoProfile p(XtsCaps(), kSlots, &ops);
  std::vector<KeyPtr> keys;
  for (unsigned i = 0; i < kSlots; ++i) {
    keys.push_back(MakeKey(static_cast<uint8_t>(i)));
    Get(p, keys.back());
  }
  for (size_t i = 0; i < keys.size(); i += 2) EXPECT_TRUE(p.EvictKey(*keys[i]).ok());
  ops.Clear();
  for (size_t i = 1; i < keys.size(); i += 2) Get(p, keys[i]);
  EXPECT_TRUE(ops.calls().empty());  // every odd key still hits
  for (size_t i = 0; i < keys.size(); i += 2) EXPECT_TRUE(p.EvictKey(*keys[i]).ok());
  EXPECT_TRUE(ops.calls().empty());  // the even keys are in no slot any more
  EXPECT_EQ(p.counters().evictions, kSlots / 2);
}

// ---- K7: reprogram all ----

TEST(CryptoProfile, K7_ReprogramsEveryMappedSlotInOrder) {
  RecordingOps ops;
  CryptoProfile p(XtsCaps(), 4, &ops);
  const KeyPtr a = MakeKey(1), b = MakeKey(2), c = MakeKey(3);
  Keyslot sa = Get(p, a);  // slot 0, held across the reset
  Get(p, b);               // slot 1
  Get(p, c);               // slot 2, then evicted
  ASSERT_TRUE(p.EvictKey(*c).ok());
  ops.Clear();
  p.ReprogramAllKeys();
  EXPECT_EQ(ops.calls(), (std::vector<Call>{{'P', a->id(), 0u}, {'P', b->id(), 1u}}));
  EXPECT_EQ(p.counters().programs, 5u);
  EXPECT_EQ(p.Slots()[0].refs, 1);
  EXPECT_EQ(p.Slots()[0].key_id, a->id());
}

TEST(CryptoProfile, K7_FailureIsCountedSkippedAndMappingKept) {
  RecordingOps ops;
  CryptoProfile p(XtsCaps(), 2, &ops);
  const KeyPtr a = MakeKey(1), b = MakeKey(2);
  Get(p, a);
  Get(p, b);
  ops.Clear();
  ops.FailNextPrograms(1);
  p.ReprogramAllKeys();
  EXPECT_EQ(ops.calls(), (std::vector<Call>{{'P', a->id(), 0u}, {'P', b->id(), 1u}}));
  EXPECT_EQ(p.counters().program_failures, 1u);
  EXPECT_EQ(p.counters().programs, 3u);
  EXPECT_EQ(p.Slots()[0].key_id, a->id());
  ops.Clear();
  Get(p, a);  // still mapped: a hit
  EXPECT_TRUE(ops.calls().empty());
}

TEST(CryptoProfile, K7_NoopWithZeroSlots) {
  RecordingOps ops;
  CryptoProfile p(XtsCaps(), 0, &ops);
  p.ReprogramAllKeys();
  EXPECT_TRUE(ops.calls().empty());
}

// ---- K8: passthrough ----

TEST(CryptoProfile, K8_PassthroughGetProgramsNothingAndSucceeds) {
  RecordingOps ops;
  CryptoProfile p(XtsCaps(), 0, &ops);
  Result<Keyslot> s = p.GetKeyslot(*MakeKey(1));
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->has_slot());
  s->Release();
  EXPECT_TRUE(ops.calls().empty());
  EXPECT_TRUE(p.Slots().empty());
  EXPECT_EQ(p.counters().programs + p.counters().hits, 0u);
}

TEST(CryptoProfile, K8_PassthroughAdvertisesCapabilities) {
  CryptoProfile p(XtsCaps(), 0, nullptr);
  EXPECT_EQ(p.num_slots(), 0u);
  EXPECT_EQ(p.capabilities(), XtsCaps());
  EXPECT_TRUE(p.SupportsNatively(CryptoConfig{CryptoMode::kAes256Xts, 4096, 8, KeyType::kRaw}));
  EXPECT_FALSE(p.SupportsNatively(CryptoConfig{CryptoMode::kAes256Xts, 512, 8, KeyType::kRaw}));
}

// ---- K11: lifecycle ----

TEST(CryptoProfile, K11_CompleteWhenConstructed) {
  RecordingOps ops;
  CryptoProfile p(XtsCaps(), 3, &ops);
  EXPECT_EQ(p.num_slots(), 3u);
  EXPECT_EQ(p.capabilities(), XtsCaps());
  ASSERT_EQ(p.Slots().size(), 3u);
  for (const SlotState& s : p.Slots()) {
    EXPECT_EQ(s.key_id, 0u);
    EXPECT_EQ(s.refs, 0);
  }
}

TEST(CryptoProfile, K11_ExpandToGrowsCapabilities) {
  CryptoProfile p(XtsCaps(), 0, nullptr);
  CryptoCapabilities more = XtsCaps();
  more.Add(CryptoMode::kAes256Xts, 512);
  more.max_dun_bytes = 16;
  p.ExpandTo(more);
  EXPECT_EQ(p.capabilities(), more);
  EXPECT_TRUE(p.SupportsNatively(CryptoConfig{CryptoMode::kAes256Xts, 512, 16, KeyType::kRaw}));
}

TEST(CryptoProfile, K11_DestroyWipesBookkeepingAndIsIdempotent) {
  RecordingOps ops;
  CryptoProfile p(XtsCaps(), 2, &ops);
  const KeyPtr a = MakeKey(1);
  Get(p, a);
  p.Destroy();
  EXPECT_TRUE(p.Slots().empty());
  EXPECT_EQ(p.num_slots(), 0u);
  EXPECT_FALSE(p.capabilities().HasAnyMode());
  p.Destroy();
  ops.Clear();
  p.ReprogramAllKeys();
  EXPECT_TRUE(p.EvictKey(*a).ok());
  EXPECT_TRUE(ops.calls().empty());  // no slot and no operations left
}  // the destructor destroys a third time

TEST(CryptoProfile, K11_DestroyingAPassthroughProfileTwiceIsHarmless) {
  CryptoProfile p(XtsCaps(), 0, nullptr);
  p.Destroy();
  p.Destroy();
  EXPECT_FALSE(p.capabilities().HasAnyMode());
}

// ---- Hardening 4: a dropped key leaves no mapping in any profile ----

bool Maps(const CryptoProfile& p, const CryptoKey& key) {
  for (const SlotState& s : p.Slots()) {
    if (s.key_id == key.id()) return true;
  }
  return false;
}

// The kernel leaves eviction to the key's owner, who reaches only the devices below it now; here
// the key's end evicts it from every profile it is in.
TEST(CryptoProfile, Hardening4_DroppingAKeyEvictsItFromEveryProfileThatMapsIt) {
  RecordingOps ops_a, ops_b, ops_c;
  CryptoProfile a(XtsCaps(), 2, &ops_a), b(XtsCaps(), 2, &ops_b), c(XtsCaps(), 2, &ops_c);
  KeyPtr key = MakeKey(1);
  const uint64_t id = key->id();
  Get(a, key);
  Get(b, key);
  ops_a.Clear();
  ops_b.Clear();
  key.reset();
  EXPECT_EQ(ops_a.calls(), (std::vector<Call>{{'E', id, 0u}}));
  EXPECT_EQ(ops_b.calls(), (std::vector<Call>{{'E', id, 0u}}));
  EXPECT_TRUE(ops_c.calls().empty());  // it never held the key
  for (const CryptoProfile* p : {&a, &b}) {
    EXPECT_EQ(p->Slots()[0].key_id, 0u);
    EXPECT_EQ(p->counters().evictions, 1u);
  }
  ops_a.Clear();
  a.ReprogramAllKeys();  // a stale mapping would program freed memory here
  EXPECT_TRUE(ops_a.calls().empty());
}

TEST(CryptoProfile, Hardening4_EvictEverywhereReachesEveryProfileAndKeepsK6) {
  RecordingOps ops_a, ops_b;
  CryptoProfile a(XtsCaps(), 2, &ops_a), b(XtsCaps(), 2, &ops_b);
  const KeyPtr key = MakeKey(1), other = MakeKey(2);
  Get(a, key);
  Get(a, other);
  Keyslot busy = Get(b, key);  // in use by I/O on b
  ops_a.Clear();
  ops_b.Clear();
  // K6 on each: the idle slot of a is evicted; b's busy slot answers EBUSY with no hardware call
  // and loses its mapping all the same.
  EXPECT_EQ(CryptoProfile::EvictEverywhere(*key).code(), EBUSY);
  EXPECT_EQ(ops_a.calls(), (std::vector<Call>{{'E', key->id(), 0u}}));
  EXPECT_TRUE(ops_b.calls().empty());
  EXPECT_FALSE(Maps(a, *key));
  EXPECT_FALSE(Maps(b, *key));
  EXPECT_TRUE(Maps(a, *other));
  EXPECT_EQ(b.Slots()[0].refs, 1);
  busy.Release();
  EXPECT_TRUE(CryptoProfile::EvictEverywhere(*key).ok());  // in no slot now: nothing to do
  EXPECT_EQ(ops_a.calls().size() + ops_b.calls().size(), 1u);
}

// A mapping moved by a later program (LRU victim) is recorded where it went.
TEST(CryptoProfile, Hardening4_AKeyReplacedInItsSlotIsNotEvictedAgain) {
  RecordingOps ops;
  CryptoProfile p(XtsCaps(), 1, &ops);
  KeyPtr a = MakeKey(1);
  const KeyPtr b = MakeKey(2);
  Get(p, a);
  Get(p, b);  // takes a's slot
  ops.Clear();
  a.reset();
  EXPECT_TRUE(ops.calls().empty());
  EXPECT_TRUE(Maps(p, *b));
}

// A profile torn down before the key forgets it: the key's end touches nothing (ASan checks).
TEST(CryptoProfile, Hardening4_AProfileDestroyedFirstIsForgottenByItsKeys) {
  KeyPtr key = MakeKey(1);
  RecordingOps ops;
  {
    auto p = std::make_unique<CryptoProfile>(XtsCaps(), 2, &ops);
    Get(*p, key);
  }
  ops.Clear();
  EXPECT_TRUE(CryptoProfile::EvictEverywhere(*key).ok());
  key.reset();
  EXPECT_TRUE(ops.calls().empty());
}

// Keys dropped, evicted everywhere and programmed while profiles come and go on other threads:
// ThreadSanitizer checks the lock order (placement mutex, profile lock, key placement) and ASan
// that no walk reaches a destroyed profile.
TEST(CryptoProfileStress, Hardening4_KeysDroppedWhileProfilesComeAndGo) {
  constexpr int kRounds = 2000;
  RecordingOps ops;
  CryptoProfile fixed(XtsCaps(), 2, &ops);
  const KeyPtr shared = MakeKey(200);
  std::atomic<bool> stop{false};
  std::thread churn([&] {  // profiles that map the shared key, then go away
    for (int i = 0; i < kRounds; ++i) {
      CryptoProfile p(XtsCaps(), 2, &ops);
      Get(p, shared);
    }
  });
  std::thread evictor([&] {
    while (!stop.load()) {
      CryptoProfile::EvictEverywhere(*shared);
      std::this_thread::yield();
    }
  });
  std::thread droppers([&] {  // keys programmed in the fixed profile and dropped
    for (int i = 0; i < kRounds; ++i) {
      KeyPtr k = MakeKey(static_cast<uint8_t>(i));
      Get(fixed, k);
      Get(fixed, shared);
    }
  });
  churn.join();
  droppers.join();
  stop.store(true);
  evictor.join();
  for (const SlotState& s : fixed.Slots()) {
    EXPECT_TRUE(s.key_id == 0 || s.key_id == shared->id());
    EXPECT_EQ(s.refs, 0);
  }
}

// ---- Concurrency ----

// Hardware double that checks the keyslot manager's promises to it: a slot is never programmed or
// evicted while an I/O uses it. Its key registers are plain memory, read by the I/O that holds the
// slot without a lock (as the emulated hardware does), so ThreadSanitizer also checks that the
// profile orders a program before the I/O that uses it and the I/O before the next program. (The
// users counts are relaxed so that they add no ordering of their own.)
class CheckingOps : public KeyslotOps {
 public:
  explicit CheckingOps(unsigned slots) : users(slots), key_in_slot(slots, 0) {}
  Status ProgramKey(const CryptoKey& key, unsigned slot) override {
    if (users[slot].load(std::memory_order_relaxed) != 0) busy_reprograms.fetch_add(1);
    key_in_slot[slot] = key.id();
    return Status::Ok();
  }
  Status EvictKey(const CryptoKey&, std::optional<unsigned> slot) override {
    if (users[*slot].load(std::memory_order_relaxed) != 0) busy_reprograms.fetch_add(1);
    key_in_slot[*slot] = 0;
    return Status::Ok();
  }
  std::vector<std::atomic<int>> users;
  std::vector<uint64_t> key_in_slot;
  std::atomic<uint64_t> busy_reprograms{0};
};

struct StressResult {
  uint64_t gets = 0, wrong_keys = 0, failures = 0;
};

StressResult RunGetPut(CryptoProfile& p, CheckingOps& ops, const std::vector<KeyPtr>& keys,
                       int threads, int iterations) {
  std::atomic<uint64_t> gets{0}, wrong{0}, failures{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::minstd_rand rng(t + 1);
      for (int i = 0; i < iterations; ++i) {
        const CryptoKey& key = *keys[rng() % keys.size()];
        Result<Keyslot> s = p.GetKeyslot(key);
        gets.fetch_add(1, std::memory_order_relaxed);
        if (!s.ok() || !s->has_slot()) {
          failures.fetch_add(1);
          continue;
        }
        const unsigned slot = s->index();
        ops.users[slot].fetch_add(1, std::memory_order_relaxed);
        if (ops.key_in_slot[slot] != key.id()) wrong.fetch_add(1);
        // Now and then hold the slot across a reschedule, as an I/O would, so that all slots are
        // sometimes held at once and getters wait.
        if (i % 16 == 0) std::this_thread::yield();
        ops.users[slot].fetch_sub(1, std::memory_order_relaxed);
      }
    });
  }
  for (auto& w : workers) w.join();
  return {gets.load(), wrong.load(), failures.load()};
}

std::vector<KeyPtr> StressKeys(int n) {
  std::vector<KeyPtr> keys;
  for (int i = 0; i < n; ++i) keys.push_back(MakeKey(static_cast<uint8_t>(i)));
  return keys;
}

TEST(CryptoProfileStress, ManyThreadsGetPut) {
  constexpr int kThreads = 8, kIterations = 20000;
  CheckingOps ops(3);
  CryptoProfile p(XtsCaps(), 3, &ops);
  const std::vector<KeyPtr> keys = StressKeys(16);
  const StressResult r = RunGetPut(p, ops, keys, kThreads, kIterations);
  EXPECT_EQ(r.gets, uint64_t{kThreads} * kIterations);
  EXPECT_EQ(r.failures, 0u);
  EXPECT_EQ(r.wrong_keys, 0u);
  EXPECT_EQ(ops.busy_reprograms.load(), 0u);
  const KeyslotCounters c = p.counters();
  EXPECT_EQ(c.hits + c.programs, r.gets);
  EXPECT_EQ(c.program_failures, 0u);
  RecordProperty("hits", std::to_string(c.hits));
  RecordProperty("waits", std::to_string(c.waits));
  for (const SlotState& s : p.Slots()) EXPECT_EQ(s.refs, 0);
}

TEST(CryptoProfileStress, GetPutWithConcurrentEvictions) {
  constexpr int kThreads = 4, kIterations = 10000;
  CheckingOps ops(3);
  CryptoProfile p(XtsCaps(), 3, &ops);
  const std::vector<KeyPtr> keys = StressKeys(6);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> evicted{0}, busy{0};
  std::thread evictor([&] {
    std::minstd_rand rng(99);
    while (!stop.load()) {
      const Status s = p.EvictKey(*keys[rng() % keys.size()]);
      if (s.ok()) {
        evicted.fetch_add(1);
      } else if (s.code() == EBUSY) {
        busy.fetch_add(1);
      }
      std::this_thread::yield();  // let the getters run between evictions
    }
  });
  const StressResult r = RunGetPut(p, ops, keys, kThreads, kIterations);
  stop.store(true);
  evictor.join();
  EXPECT_EQ(r.failures, 0u);
  EXPECT_EQ(r.wrong_keys, 0u);
  EXPECT_EQ(ops.busy_reprograms.load(), 0u);
  const KeyslotCounters c = p.counters();
  EXPECT_EQ(c.hits + c.programs, r.gets);
  RecordProperty("evicted", std::to_string(evicted.load()));
  RecordProperty("busy", std::to_string(busy.load()));
  for (const SlotState& s : p.Slots()) EXPECT_EQ(s.refs, 0);
}

}  // namespace
}  // namespace ice
