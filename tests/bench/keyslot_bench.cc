// The keyslot manager's cost per I/O: get + put of a slot, on a hit and on a miss that evicts.
#include <array>
#include <memory>
#include <vector>

#include <benchmark/benchmark.h>

#include "keyslot/crypto_profile.h"

namespace ice {
namespace {

class NoopOps : public KeyslotOps {
 public:
  Status ProgramKey(const CryptoKey&, unsigned) override { return Status::Ok(); }
  Status EvictKey(const CryptoKey&, std::optional<unsigned>) override { return Status::Ok(); }
};

KeyPtr MakeKey(int seed) {
  std::array<uint8_t, 64> bytes;
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(seed * 131 + i);
  return *CryptoKey::Create(CryptoConfig{CryptoMode::kAes256Xts, 4096, 8, KeyType::kRaw}, bytes);
}

CryptoCapabilities Caps() {
  CryptoCapabilities caps;
  caps.Add(CryptoMode::kAes256Xts, 4096);
  caps.max_dun_bytes = 8;
  caps.key_types = static_cast<uint8_t>(KeyType::kRaw);
  return caps;
}

// A profile with 8 slots holding 8 keys, shared by every thread of the hit benchmarks. Built once,
// before any thread reads it (a function-local static).
struct HitFixture {
  NoopOps ops;
  CryptoProfile profile{Caps(), 8, &ops};
  std::vector<KeyPtr> keys;
  HitFixture() {
    for (int i = 0; i < 8; ++i) {
      keys.push_back(MakeKey(i));
      Result<Keyslot> s = profile.GetKeyslot(*keys.back());  // programs it; released at once
    }
  }
};

HitFixture& Hits() {
  static HitFixture* fixture = new HitFixture();
  return *fixture;
}

// Every thread gets and puts the same key: the slot's refcount and the lock are shared.
void BM_HitSameKey(benchmark::State& state) {
  CryptoProfile& profile = Hits().profile;
  const CryptoKey& key = *Hits().keys[0];
  for (auto _ : state) {
    Result<Keyslot> s = profile.GetKeyslot(key);
    benchmark::DoNotOptimize(s);
  }
}
BENCHMARK(BM_HitSameKey)->Threads(1)->Threads(2)->UseRealTime();

// Each thread its own key in its own slot: only the profile's lock is shared.
void BM_HitOwnKey(benchmark::State& state) {
  CryptoProfile& profile = Hits().profile;
  const CryptoKey& key = *Hits().keys[state.thread_index()];
  for (auto _ : state) {
    Result<Keyslot> s = profile.GetKeyslot(key);
    benchmark::DoNotOptimize(s);
  }
}
BENCHMARK(BM_HitOwnKey)->Threads(2)->UseRealTime();

// One more key than slots, round-robin: with LRU every get misses and evicts the oldest key.
void BM_MissWithEviction(benchmark::State& state) {
  const int slots = static_cast<int>(state.range(0));
  NoopOps ops;
  CryptoProfile profile(Caps(), slots, &ops);
  std::vector<KeyPtr> keys;
  for (int i = 0; i <= slots; ++i) keys.push_back(MakeKey(i));
  size_t next = 0;
  for (auto _ : state) {
    Result<Keyslot> s = profile.GetKeyslot(*keys[next]);
    benchmark::DoNotOptimize(s);
    next = next + 1 == keys.size() ? 0 : next + 1;
  }
  state.counters["hits"] = static_cast<double>(profile.counters().hits);
}
BENCHMARK(BM_MissWithEviction)->Arg(4)->Arg(100);

}  // namespace
}  // namespace ice

BENCHMARK_MAIN();
