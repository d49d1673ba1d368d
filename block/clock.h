// Time behind one small interface so that time-based behaviour (flakey intervals, delays,
// programming latency) is tested deterministically without sleeping.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <vector>

namespace ice {

class Clock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Duration = std::chrono::steady_clock::duration;

  Clock() = default;
  Clock(const Clock&) = delete;
  Clock& operator=(const Clock&) = delete;
  virtual ~Clock() = default;

  virtual TimePoint Now() const = 0;

  // Waits, with `lock` held on entry and exit, until `done()` holds or `deadline` passes; `done`
  // is checked again whenever `cv` is notified. Returns done().
  virtual bool WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                         TimePoint deadline, const std::function<bool()>& done) = 0;

  // The process-wide real clock.
  static Clock& Real();
};

// The steady clock of the machine.
class SystemClock final : public Clock {
 public:
  TimePoint Now() const override { return std::chrono::steady_clock::now(); }
  bool WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                 TimePoint deadline, const std::function<bool()>& done) override;
};

// A clock that moves only when told to. Thread-safe.
class ManualClock final : public Clock {
 public:
  TimePoint Now() const override;
  bool WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                 TimePoint deadline, const std::function<bool()>& done) override;
  // Moves time forward and wakes every waiter so that it re-checks its deadline.
  void Advance(Duration d);
  // The number of threads inside WaitUntil now (lets a test wait until a sleeper sleeps).
  int waiters() const;

 private:
  struct Waiter {
    std::mutex* mutex;
    std::condition_variable* cv;
  };
  // Lock order: a waiter's mutex, then mu_. Advance() never holds mu_ while it takes a waiter's
  // mutex, and a waiter leaves only once no Advance() is notifying (its mutex and cv may then go).
  mutable std::mutex mu_;  // Guards now_, waiters_, notifying_.
  std::condition_variable notify_done_;
  TimePoint now_{};
  std::vector<Waiter> waiters_;
  int notifying_ = 0;
};

}  // namespace ice
