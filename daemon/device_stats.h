// Per-device I/O statistics of the exports (rule P6: I/Os, bytes, errors, latency histograms).
// Lock-free; updated on the data path.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace ice::daemon {

enum class StatOp { kRead = 0, kWrite, kFlush, kZero, kTrim };
inline constexpr int kNumStatOps = 5;
const char* StatOpName(StatOp op);

class DeviceStats {
 public:
  // Upper bounds of the latency buckets in microseconds (Prometheus `le`), then +Inf.
  static constexpr std::array<uint64_t, 12> kBucketsUs = {10,   25,   50,   100,   250,   500,
                                                          1000, 2500, 5000, 10000, 50000, 250000};

  void Record(StatOp op, uint64_t bytes, std::chrono::nanoseconds latency, bool ok);

  struct OpSnapshot {
    uint64_t count = 0, bytes = 0, errors = 0;
    uint64_t latency_sum_ns = 0;
    std::array<uint64_t, kBucketsUs.size() + 1> buckets{};  // not cumulative
  };
  OpSnapshot Snapshot(StatOp op) const;

 private:
  struct Op {
    std::atomic<uint64_t> count{0}, bytes{0}, errors{0}, latency_sum_ns{0};
    std::array<std::atomic<uint64_t>, kBucketsUs.size() + 1> buckets{};
  };
  std::array<Op, kNumStatOps> ops_;
};

}  // namespace ice::daemon
