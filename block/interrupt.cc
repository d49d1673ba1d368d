#include "block/interrupt.h"

#include <algorithm>
#include <cerrno>
#include <string>

namespace ice {

namespace {

int64_t SinceEpochNs(Interrupt::SteadyClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

void Interrupt::SetDeadline(SteadyClock::time_point deadline) {
  deadline_ns_.store(SinceEpochNs(deadline), std::memory_order_release);
}

void Interrupt::Cancel() { cancelled_.store(true, std::memory_order_release); }

Status Interrupt::Check(const char* what) const {
  if (cancelled_.load(std::memory_order_acquire)) {
    return Status::Error(ECANCELED, std::string(what) + " was cancelled");
  }
  const int64_t deadline = deadline_ns_.load(std::memory_order_acquire);
  if (deadline != kNoDeadline && SinceEpochNs(SteadyClock::now()) >= deadline) {
    return Status::Error(ETIMEDOUT, std::string(what) + " did not finish within the timeout");
  }
  return Status::Ok();
}

Interrupt::SteadyClock::time_point Interrupt::NextWake() const {
  const auto poll = SteadyClock::now() + kPoll;
  const int64_t deadline = deadline_ns_.load(std::memory_order_acquire);
  if (deadline == kNoDeadline) return poll;
  return std::min(poll, SteadyClock::time_point(std::chrono::nanoseconds(deadline)));
}

Status InterruptibleMutex::Lock(const Interrupt& stop, const char* what) {
  std::unique_lock g(mu_);
  ICE_RETURN_IF_ERROR(stop.Wait(
      cv_, g, [this] { return !held_; }, what));
  held_ = true;
  return Status::Ok();
}

void InterruptibleMutex::unlock() {
  {
    std::lock_guard g(mu_);
    held_ = false;
  }
  cv_.notify_one();
}

const Interrupt& Interrupt::Never() {
  static const Interrupt never;
  return never;
}

}  // namespace ice
