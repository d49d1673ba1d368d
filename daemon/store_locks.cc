#include "daemon/store_locks.h"

#include <algorithm>
#include <functional>
#include <utility>

namespace ice::daemon {

StoreLocks::Guard::Guard(Guard&& o) noexcept
    : inline_(o.inline_), n_inline_(std::exchange(o.n_inline_, 0)), more_(std::move(o.more_)) {
  o.more_.clear();
}

StoreLocks::Guard& StoreLocks::Guard::operator=(Guard&& o) noexcept {
  if (this != &o) {
    Release();
    inline_ = o.inline_;
    n_inline_ = std::exchange(o.n_inline_, 0);
    more_ = std::move(o.more_);
    o.more_.clear();
  }
  return *this;
}

void StoreLocks::Guard::Add(RangeLock* lock, uint64_t ticket) {
  if (n_inline_ < inline_.size()) {
    inline_[n_inline_++] = {lock, ticket};
  } else {
    more_.push_back({lock, ticket});
  }
}

void StoreLocks::Guard::Release() {
  for (size_t i = 0; i < n_inline_; ++i) inline_[i].lock->Unlock(inline_[i].ticket);
  for (const Held& h : more_) h.lock->Unlock(h.ticket);
  n_inline_ = 0;
  more_.clear();
}

RangeLock& StoreLocks::For(const BlockDevice* store) {
  std::lock_guard g(mu_);
  std::unique_ptr<RangeLock>& lock = locks_[store];
  if (!lock) lock = std::make_unique<RangeLock>();
  return *lock;
}

StoreLocks::Guard StoreLocks::Lock(const BlockDevice& device, uint64_t begin, uint64_t end,
                                   RangeLock::Mode mode) {
  // Where each piece is stored; pieces contiguous on the same store are joined (a striped range
  // comes back chunk by chunk, but a stripe's chunks lie end to end on its device).
  std::array<StoredRange, 4> inline_ranges;
  std::vector<StoredRange> more;
  size_t n = 0;
  auto add = [&](const StoredRange& r) {
    for (size_t i = 0; i < std::min(n, inline_ranges.size()); ++i) {
      StoredRange& x = inline_ranges[i];
      if (x.store == r.store && x.offset_bytes + x.length_bytes == r.offset_bytes) {
        x.length_bytes += r.length_bytes;
        return;
      }
    }
    if (n < inline_ranges.size()) {
      inline_ranges[n] = r;
    } else {
      more.push_back(r);
    }
    ++n;
  };
  for (uint64_t pos = begin; pos < end;) {
    StoredRange r = device.Locate(pos, end - pos);
    r.length_bytes = std::clamp<uint64_t>(r.length_bytes, 1, end - pos);
    add(r);
    pos += r.length_bytes;
  }
  std::vector<StoredRange> all;  // only when a request maps to more than four stored ranges
  StoredRange* first = inline_ranges.data();
  if (!more.empty()) {
    all.assign(inline_ranges.begin(), inline_ranges.end());
    all.insert(all.end(), more.begin(), more.end());
    first = all.data();
  }
  std::sort(first, first + n, [](const StoredRange& a, const StoredRange& b) {
    if (a.store != b.store) return std::less<const BlockDevice*>()(a.store, b.store);
    return a.offset_bytes < b.offset_bytes;
  });
  Guard guard;
  for (size_t i = 0; i < n; ++i) {
    const StoredRange& r = first[i];
    RangeLock& lock = For(r.store);
    guard.Add(&lock, lock.Lock(r.offset_bytes, r.offset_bytes + r.length_bytes, mode));
  }
  return guard;
}

}  // namespace ice::daemon
