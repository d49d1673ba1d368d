// Logging for every room: spdlog's default logger, whose sinks and level the daemon sets up
// (stderr or journald). Failed-I/O reasons go through ICE_LOG_RATELIMITED so that a storm of
// failures cannot flood the log. Nothing here ever formats key material: callers pass names.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include <spdlog/spdlog.h>

namespace ice {

// Allows one event per `interval`, counting the ones it suppressed. Thread-safe, lock-free.
class RateLimit {
 public:
  explicit RateLimit(std::chrono::milliseconds interval)
      : interval_ns_(interval.count() * 1000000) {}
  // True when the caller may log now; `suppressed` gets the number of events dropped since.
  bool Allow(uint64_t* suppressed);

 private:
  const int64_t interval_ns_;
  std::atomic<int64_t> next_ns_{0};
  std::atomic<uint64_t> dropped_{0};
};

}  // namespace ice

// Logs at `level` at most once a second per call site, noting how many lines were suppressed.
#define ICE_LOG_RATELIMITED(level, ...)                                                           \
  do {                                                                                            \
    static ::ice::RateLimit ice_rl_{std::chrono::seconds(1)};                                     \
    uint64_t ice_dropped_ = 0;                                                                    \
    if (ice_rl_.Allow(&ice_dropped_)) {                                                           \
      if (ice_dropped_ > 0) spdlog::log(level, "({} similar messages suppressed)", ice_dropped_); \
      spdlog::log(level, __VA_ARGS__);                                                            \
    }                                                                                             \
  } while (0)
