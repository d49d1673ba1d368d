#include "daemon/range_lock.h"

#include <algorithm>

namespace ice::daemon {

bool RangeLock::Conflicts(uint64_t begin, uint64_t end, Mode mode) const {
  for (const Held& h : held_) {
    const bool overlap = h.begin < end && begin < h.end;
    if (overlap && (mode == Mode::kExclusive || h.mode == Mode::kExclusive)) return true;
  }
  return false;
}

uint64_t RangeLock::Lock(uint64_t begin, uint64_t end, Mode mode) {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return !Conflicts(begin, end, mode); });
  const uint64_t ticket = next_ticket_++;
  held_.push_back({ticket, begin, end, mode});
  return ticket;
}

void RangeLock::Unlock(uint64_t ticket) {
  {
    std::lock_guard lock(mu_);
    auto it =
        std::find_if(held_.begin(), held_.end(), [&](const Held& h) { return h.ticket == ticket; });
    if (it != held_.end()) {
      *it = held_.back();
      held_.pop_back();
    }
  }
  cv_.notify_all();
}

}  // namespace ice::daemon
