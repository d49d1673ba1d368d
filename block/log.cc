#include "block/log.h"

#include <cstdio>

namespace ice {

bool RateLimit::Allow(uint64_t* suppressed) {
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  int64_t end = window_end_ns_.load(std::memory_order_relaxed);
  // The first event after a window ends opens the next one; a race between two of them only lets
  // one more event through.
  if (now >= end && window_end_ns_.compare_exchange_strong(end, now + interval_ns_)) {
    in_window_.store(0, std::memory_order_relaxed);
  }
  if (in_window_.fetch_add(1, std::memory_order_relaxed) < burst_) {
    *suppressed = dropped_.exchange(0, std::memory_order_relaxed);
    return true;
  }
  dropped_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

std::string EscapeForLog(std::string_view untrusted, size_t max_bytes) {
  const std::string_view shown = untrusted.substr(0, max_bytes);
  std::string out;
  out.reserve(shown.size() + 16);
  for (const char c : shown) {
    const auto b = static_cast<unsigned char>(c);
    if (b >= 0x20 && b < 0x7f && c != '\\') {
      out.push_back(c);
    } else {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", b);
      out += hex;
    }
  }
  if (untrusted.size() > shown.size()) {
    out += "…(" + std::to_string(untrusted.size() - shown.size()) + " more bytes)";
  }
  return out;
}

}  // namespace ice
