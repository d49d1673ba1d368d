#include "daemon/device_stats.h"

namespace ice::daemon {

const char* StatOpName(StatOp op) {
  static const char* kNames[] = {"read", "write", "flush", "zero", "trim"};
  return kNames[static_cast<int>(op)];
}

void DeviceStats::Record(StatOp op, uint64_t bytes, std::chrono::nanoseconds latency, bool ok) {
  Op& o = ops_[static_cast<int>(op)];
  constexpr auto r = std::memory_order_relaxed;
  o.count.fetch_add(1, r);
  o.bytes.fetch_add(bytes, r);
  if (!ok) o.errors.fetch_add(1, r);
  const uint64_t ns = static_cast<uint64_t>(latency.count());
  o.latency_sum_ns.fetch_add(ns, r);
  size_t b = 0;
  while (b < kBucketsUs.size() && ns > kBucketsUs[b] * 1000) ++b;
  o.buckets[b].fetch_add(1, r);
}

DeviceStats::OpSnapshot DeviceStats::Snapshot(StatOp op) const {
  const Op& o = ops_[static_cast<int>(op)];
  constexpr auto r = std::memory_order_relaxed;
  OpSnapshot s;
  s.count = o.count.load(r);
  s.bytes = o.bytes.load(r);
  s.errors = o.errors.load(r);
  s.latency_sum_ns = o.latency_sum_ns.load(r);
  for (size_t i = 0; i < s.buckets.size(); ++i) s.buckets[i] = o.buckets[i].load(r);
  return s;
}

}  // namespace ice::daemon
