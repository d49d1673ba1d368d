// Serialises read-modify-write of data units against other requests touching the same units
// (rule N3). Ranges are in bytes, half-open. Thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

namespace ice::daemon {

class RangeLock {
 public:
  enum class Mode { kShared, kExclusive };

  // Blocks until no held range overlapping [begin, end) conflicts (two ranges conflict when they
  // overlap and at least one is exclusive), then holds it. Returns a ticket for Unlock.
  uint64_t Lock(uint64_t begin, uint64_t end, Mode mode);
  void Unlock(uint64_t ticket);

  class Guard {
   public:
    Guard(RangeLock& lock, uint64_t begin, uint64_t end, Mode mode)
        : lock_(&lock), ticket_(lock.Lock(begin, end, mode)) {}
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
    ~Guard() { lock_->Unlock(ticket_); }

   private:
    RangeLock* lock_;
    uint64_t ticket_;
  };

 private:
  struct Held {
    uint64_t ticket, begin, end;
    Mode mode;
  };
  bool Conflicts(uint64_t begin, uint64_t end, Mode mode) const;  // REQUIRES: mu_ held
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Held> held_;  // few at a time: one per request in flight on the device
  uint64_t next_ticket_ = 1;
};

}  // namespace ice::daemon
