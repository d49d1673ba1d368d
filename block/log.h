// Logging for every room: spdlog's default logger, whose sinks and level the daemon sets up
// (stderr or journald). Failed-I/O reasons go through ICE_LOG_RATELIMITED so that a storm of
// failures cannot flood the log. Nothing here ever formats key material: callers pass names.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

namespace ice {

// Allows `burst` events per `interval`, counting the ones it suppressed. Thread-safe, lock-free.
class RateLimit {
 public:
  explicit RateLimit(std::chrono::milliseconds interval, uint32_t burst = 1)
      : interval_ns_(interval.count() * 1000000), burst_(burst) {}
  // True when the caller may log now; `suppressed` gets the number of events dropped since the
  // last one allowed.
  bool Allow(uint64_t* suppressed);

 private:
  const int64_t interval_ns_;
  const uint32_t burst_;
  std::atomic<int64_t> window_end_ns_{0};
  std::atomic<uint32_t> in_window_{0};
  std::atomic<uint64_t> dropped_{0};
};

// A string from outside (an export name a client sent) made safe for one log line: bytes outside
// printable ASCII and '\\' become \xNN escapes, so that it cannot forge lines or terminal
// sequences; cut to `max_bytes` of the original with "…(N more bytes)" saying so.
std::string EscapeForLog(std::string_view untrusted, size_t max_bytes = 128);

}  // namespace ice

// Logs at `level` at most once a second per call site, noting how many lines were suppressed.
#define ICE_LOG_RATELIMITED(level, ...) ICE_LOG_RATELIMITED_N(level, 1, __VA_ARGS__)
// The same with up to `burst` lines a second.
#define ICE_LOG_RATELIMITED_N(level, burst, ...)                                                  \
  do {                                                                                            \
    static ::ice::RateLimit ice_rl_{std::chrono::seconds(1), (burst)};                            \
    uint64_t ice_dropped_ = 0;                                                                    \
    if (ice_rl_.Allow(&ice_dropped_)) {                                                           \
      if (ice_dropped_ > 0) spdlog::log(level, "({} similar messages suppressed)", ice_dropped_); \
      spdlog::log(level, __VA_ARGS__);                                                            \
    }                                                                                             \
  } while (0)
