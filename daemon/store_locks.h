// Read-modify-write of data units is serialised where the bytes are stored (rule N3,
// hardening 12): an export's byte ranges are mapped down its stack to the devices that store
// them (BlockDevice::Locate) and locked there, so that a read-modify-write through one stack
// (lin0@k) excludes every other write to the same stored bytes through any other (hw0@k).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "block/block_device.h"
#include "daemon/range_lock.h"

namespace ice::daemon {

// Thread-safe.
class StoreLocks {
 public:
  // The ranges one request holds. Move-only; released when destroyed.
  class Guard {
   public:
    Guard() = default;
    Guard(Guard&& o) noexcept;
    Guard& operator=(Guard&& o) noexcept;
    ~Guard() { Release(); }

   private:
    friend class StoreLocks;
    struct Held {
      RangeLock* lock;
      uint64_t ticket;
    };
    void Add(RangeLock* lock, uint64_t ticket);
    void Release();
    // Most requests map to one stored range (a striped one to one per stripe): no allocation.
    std::array<Held, 4> inline_{};
    size_t n_inline_ = 0;
    std::vector<Held> more_;
  };

  // Locks [begin, end) of `device` in `mode`, range by range where it is stored. The stored
  // ranges are taken in one global order (store, then offset), so that requests holding several
  // cannot deadlock. The mapping is read once: a table swapped in while the guard is held may
  // map the range elsewhere (as a write in flight across a swap in the kernel).
  Guard Lock(const BlockDevice& device, uint64_t begin, uint64_t end, RangeLock::Mode mode);

 private:
  RangeLock& For(const BlockDevice* store);

  std::mutex mu_;  // guards locks_
  // One per store ever seen; never removed, so a guard's RangeLock* stays valid.
  std::unordered_map<const BlockDevice*, std::unique_ptr<RangeLock>> locks_;
};

}  // namespace ice::daemon
