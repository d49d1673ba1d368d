// Why a control operation that waits (for in-flight I/O to drain, for another verb, for slow
// hardware) stops waiting: its deadline passed (the request's timeout) or it was cancelled (the
// client went away, the daemon is stopping). As a signal interrupts dmsetup's suspend in the
// kernel, an interrupted operation undoes what it began and changes nothing.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>

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
  // Locks `lock` (a deferred lock on a timed mutex), or returns Check's error when the interrupt
  // fires first.
  template <typename Lock>
  Status Acquire(Lock& lock, const char* what) const {
    while (!lock.try_lock_until(NextWake())) ICE_RETURN_IF_ERROR(Check(what));
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

}  // namespace ice
