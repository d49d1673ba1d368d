#include "block/clock.h"

#include <algorithm>

namespace ice {

Clock& Clock::Real() {
  static SystemClock clock;
  return clock;
}

bool SystemClock::WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                            TimePoint deadline, const std::function<bool()>& done) {
  return cv.wait_until(lock, deadline, done);
}

Clock::TimePoint ManualClock::Now() const {
  std::lock_guard g(mu_);
  return now_;
}

bool ManualClock::WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                            TimePoint deadline, const std::function<bool()>& done) {
  {
    std::lock_guard g(mu_);
    waiters_.push_back({lock.mutex(), &cv});
  }
  // Advance() takes the waiter's mutex before notifying, so a check of Now() made under `lock`
  // cannot miss an advance.
  while (!done() && Now() < deadline) cv.wait(lock);
  lock.unlock();
  {
    std::unique_lock g(mu_);
    auto it = std::find_if(waiters_.begin(), waiters_.end(),
                           [&](const Waiter& w) { return w.cv == &cv && w.mutex == lock.mutex(); });
    if (it != waiters_.end()) waiters_.erase(it);
    notify_done_.wait(g, [this] { return notifying_ == 0; });
  }
  lock.lock();
  return done();
}

void ManualClock::Advance(Duration d) {
  std::vector<Waiter> to_wake;
  {
    std::lock_guard g(mu_);
    now_ += d;
    to_wake = waiters_;
    ++notifying_;
  }
  for (const Waiter& w : to_wake) {
    std::lock_guard g(*w.mutex);
    w.cv->notify_all();
  }
  std::lock_guard g(mu_);
  if (--notifying_ == 0) notify_done_.notify_all();
}

int ManualClock::waiters() const {
  std::lock_guard g(mu_);
  return static_cast<int>(waiters_.size());
}

}  // namespace ice
