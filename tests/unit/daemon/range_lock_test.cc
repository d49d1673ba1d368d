#include "daemon/range_lock.h"

#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

namespace ice::daemon {
namespace {

using Mode = RangeLock::Mode;

// Starts a thread that takes [b, e) in `mode` and reports when it holds it.
struct Taker {
  std::atomic<bool> held{false};
  std::thread t;
  Taker(RangeLock& l, uint64_t b, uint64_t e, Mode m) {
    t = std::thread([&, b, e, m] {
      uint64_t ticket = l.Lock(b, e, m);
      held = true;
      l.Unlock(ticket);
    });
  }
  ~Taker() { t.join(); }
};

// Whether `flag` becomes true within a bounded wait.
bool Becomes(const std::atomic<bool>& flag) {
  for (int i = 0; i < 2000 && !flag; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return flag;
}

TEST(RangeLock, N3_SharedRangesDoNotBlockEachOther) {
  RangeLock l;
  uint64_t a = l.Lock(0, 8192, Mode::kShared);
  Taker b(l, 4096, 12288, Mode::kShared);
  EXPECT_TRUE(Becomes(b.held));
  l.Unlock(a);
}

TEST(RangeLock, N3_ExclusiveWaitsForOverlappingShared) {
  RangeLock l;
  uint64_t a = l.Lock(0, 8192, Mode::kShared);
  Taker b(l, 4096, 8192, Mode::kExclusive);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(b.held);  // still blocked while the overlapping range is held
  l.Unlock(a);
  EXPECT_TRUE(Becomes(b.held));
}

TEST(RangeLock, N3_SharedWaitsForOverlappingExclusive) {
  RangeLock l;
  uint64_t a = l.Lock(4096, 8192, Mode::kExclusive);
  Taker b(l, 0, 4097, Mode::kShared);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(b.held);
  l.Unlock(a);
  EXPECT_TRUE(Becomes(b.held));
}

TEST(RangeLock, N3_DisjointExclusiveRangesProceed) {
  RangeLock l;
  uint64_t a = l.Lock(0, 4096, Mode::kExclusive);
  Taker b(l, 4096, 8192, Mode::kExclusive);  // half-open: touching is not overlapping
  EXPECT_TRUE(Becomes(b.held));
  l.Unlock(a);
}

}  // namespace
}  // namespace ice::daemon
