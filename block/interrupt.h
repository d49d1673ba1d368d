// Why a control operation that waits (for in-flight I/O to drain, for another verb, for slow
// hardware) stops waiting: its deadline passed (the request's timeout) or it was cancelled (the
// client went away, the daemon is stopping). As a signal interrupts dmsetup's suspend in the
// kernel, an interrupted operation undoes what it began and changes nothing.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <utility>

#include "block/status.h"

namespace ice {

// Thread-safe: Cancel() may come from any thread while another waits on the interrupt.
class Interrupt {
 public:
  using SteadyClock = std::chrono::steady_clock;
  // Waits look at the interrupt at least this often.
  static constexpr std::chrono::milliseconds kPoll{20};

  Interrupt() = default;  // fires only when cancelled
  Interrupt(const Interrupt&) = delete;
  Interrupt& operator=(const Interrupt&) = delete;

  // From `deadline` on, waits give up with ETIMEDOUT.
  void SetDeadline(SteadyClock::time_point deadline);
  // From now on, waits give up with ECANCELED.
  void Cancel();

  // OK while waiting may go on; otherwise ETIMEDOUT or ECANCELED saying that `what` gave up.
  Status Check(const char* what) const;

  // Waits on `cv` (with `lock` held on entry and exit) until done() holds: OK, or Check's error
  // when the interrupt fires first.
  template <typename CondVar, typename Lock, typename Done>
  Status Wait(CondVar& cv, Lock& lock, Done done, const char* what) const {
    while (!done()) {
      ICE_RETURN_IF_ERROR(Check(what));
      cv.wait_until(lock, NextWake());
    }
    return Status::Ok();
  }
  // An interrupt that never fires, for callers with nothing to give up on.
  static const Interrupt& Never();

 private:
  SteadyClock::time_point NextWake() const;

  static constexpr int64_t kNoDeadline = INT64_MAX;
  std::atomic<int64_t> deadline_ns_{kNoDeadline};  // steady clock, since its epoch
  std::atomic<bool> cancelled_{false};
};

// A mutex whose waiters can give up: Lock(stop) fails with the interrupt's error instead of
// waiting on. (std::timed_mutex would do, but ThreadSanitizer cannot see the locks its
// try_lock_until takes.) BasicLockable, so std::lock_guard takes it too. Thread-safe.
class InterruptibleMutex {
 public:
  InterruptibleMutex() = default;
  InterruptibleMutex(const InterruptibleMutex&) = delete;
  InterruptibleMutex& operator=(const InterruptibleMutex&) = delete;

  // OK once held; Check's error (nothing held) when `stop` fires first.
  Status Lock(const Interrupt& stop, const char* what);
  void lock() { (void)Lock(Interrupt::Never(), ""); }
  void unlock();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;  // guarded by mu_
};

// Holds an InterruptibleMutex, if Acquire got it, until destroyed. Move-only.
class InterruptibleLock {
 public:
  InterruptibleLock() = default;
  InterruptibleLock(InterruptibleLock&& o) noexcept : mu_(std::exchange(o.mu_, nullptr)) {}
  InterruptibleLock& operator=(InterruptibleLock&&) = delete;
  ~InterruptibleLock() {
    if (mu_ != nullptr) mu_->unlock();
  }
  // Takes `mu`, or returns the interrupt's error and holds nothing.
  Status Acquire(InterruptibleMutex& mu, const Interrupt& stop, const char* what) {
    ICE_RETURN_IF_ERROR(mu.Lock(stop, what));
    mu_ = &mu;
    return Status::Ok();
  }

 private:
  InterruptibleMutex* mu_ = nullptr;
};

}  // namespace ice
