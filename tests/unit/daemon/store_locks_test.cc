#include "daemon/store_locks.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "block/memory_backend.h"

namespace ice::daemon {
namespace {

using Mode = RangeLock::Mode;

// A device whose bytes are stored on `store` from `start` (a stand-in for a linear mapping).
class Mapped final : public BlockDevice {
 public:
  Mapped(const BlockDevice& store, uint64_t start) : store_(store), start_(start) {}
  uint64_t size_bytes() const override { return 1 << 20; }
  Status Submit(const IoRequest&) override { return Status::Ok(); }
  StoredRange Locate(uint64_t offset, uint64_t length) const override {
    return store_.Locate(start_ + offset, length);
  }

 private:
  const BlockDevice& store_;
  uint64_t start_;
};

bool Becomes(const std::atomic<bool>& flag) {
  for (int i = 0; i < 2000 && !flag; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return flag;
}

// Hardening 12: a read-modify-write through one device excludes writes to the same stored bytes
// through another (lin0@k and hw0@k over hw0), and only those.
TEST(StoreLocks, Hardening12_AliasesOfTheSameStoredBytesExcludeEachOther) {
  MemoryBackend hw(1 << 20);
  Mapped lin(hw, 8192);
  StoreLocks locks;
  std::atomic<bool> got{false};
  {
    StoreLocks::Guard rmw = locks.Lock(lin, 0, 4096, Mode::kExclusive);  // hw bytes 8192..12288
    std::thread other([&] {
      StoreLocks::Guard w = locks.Lock(hw, 8192 + 2048, 8192 + 2049, Mode::kShared);
      got = true;
    });
    // The same stored bytes through hw0 wait; other bytes of hw0 do not.
    { StoreLocks::Guard elsewhere = locks.Lock(hw, 0, 8192, Mode::kShared); }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_FALSE(got.load());
    rmw = StoreLocks::Guard();  // released
    EXPECT_TRUE(Becomes(got));
    other.join();
  }
}

// A range that maps to many stored pieces is locked whole and released whole.
TEST(StoreLocks, Hardening12_ManyPiecesAreAllHeldAndReleased) {
  MemoryBackend a(1 << 20), b(1 << 20);
  // Alternating 512-byte pieces between two stores, not contiguous on either.
  class Checker final : public BlockDevice {
   public:
    Checker(const BlockDevice& a, const BlockDevice& b) : a_(a), b_(b) {}
    uint64_t size_bytes() const override { return 1 << 20; }
    Status Submit(const IoRequest&) override { return Status::Ok(); }
    StoredRange Locate(uint64_t offset, uint64_t) const override {
      const uint64_t piece = offset / 512;
      return {piece % 2 ? &b_ : &a_, piece * 1024 + offset % 512, 512 - offset % 512};
    }

   private:
    const BlockDevice& a_;
    const BlockDevice& b_;
  } checker(a, b);
  StoreLocks locks;
  std::atomic<bool> got{false};
  {
    StoreLocks::Guard g = locks.Lock(checker, 0, 16 * 512, Mode::kExclusive);
    std::thread t([&] {
      StoreLocks::Guard w = locks.Lock(b, 7 * 1024, 7 * 1024 + 1, Mode::kShared);  // piece 7
      got = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_FALSE(got.load());
    g = StoreLocks::Guard();
    EXPECT_TRUE(Becomes(got));
    t.join();
  }
  StoreLocks::Guard again = locks.Lock(checker, 0, 16 * 512, Mode::kExclusive);  // all released
}

}  // namespace
}  // namespace ice::daemon
