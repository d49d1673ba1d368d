// A sparse in-memory backend: the storage of `memory` hardware (demos, tests, benchmarks).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <shared_mutex>

#include "block/block_device.h"
#include "block/request.h"
#include "block/status.h"

namespace ice {

// A device of a fixed size whose bytes live in memory. Storage is allocated lazily in chunks of
// kChunkBytes on first write, so a large device costs only what has been written (plus one
// pointer per chunk); bytes never written read as zeros. Write-zeroes and discard release every
// chunk they cover whole and zero the parts of the others, so both read back as zeros.
//
// Thread-safe: requests to different chunks run in parallel; a read concurrent with a write to
// the same range returns, per chunk, either the old or the new bytes. A request spanning chunks
// is not atomic as a whole (no block device promises that). FLUSH and FUA are no-ops: there is
// nothing more durable to reach. A request carrying a crypto context fails with EIO: crypto is
// handled above backends.
class MemoryBackend final : public BlockDevice {
 public:
  static constexpr uint64_t kChunkBytes = 64 * 1024;
  // The largest device: its chunk table (one pointer a chunk, 1 GiB of address space here) is
  // allocated when the device is made, although its pages are touched only as chunks are written.
  static constexpr uint64_t kMaxSizeBytes = uint64_t{8} << 40;  // 8 TiB

  // EINVAL above kMaxSizeBytes, ENOMEM when the chunk table cannot be allocated; each message
  // names the size and the limit.
  static Result<std::unique_ptr<MemoryBackend>> Create(uint64_t size_bytes);
  // For sizes known to be small (tests): aborts, as `new` would, when the table cannot be had.
  explicit MemoryBackend(uint64_t size_bytes);
  ~MemoryBackend() override;
  MemoryBackend(const MemoryBackend&) = delete;
  MemoryBackend& operator=(const MemoryBackend&) = delete;

  uint64_t size_bytes() const override { return size_bytes_; }
  Status Submit(const IoRequest& req) override;
  bool supports_discard() const override { return true; }
  // Chunks never written (or released) are holes.
  Status Extents(uint64_t offset_bytes, uint64_t length_bytes,
                 const ExtentSink& sink) const override;

  // Bytes of chunk storage currently allocated (a multiple of kChunkBytes). Thread-safe.
  uint64_t allocated_bytes() const { return allocated_bytes_.load(std::memory_order_relaxed); }

 private:
  // Chunk i is guarded by stripe i % kStripes: consecutive chunks fall on different stripes, so
  // one large request and concurrent small ones spread over the locks. Each request holds at
  // most one stripe at a time, so there is no lock order to keep.
  static constexpr size_t kStripes = 256;
  struct alignas(64) Stripe {
    std::shared_mutex mu;
  };

  std::shared_mutex& StripeOf(uint64_t chunk) const { return stripes_[chunk % kStripes].mu; }

  static uint64_t NumChunks(uint64_t size_bytes) {
    return (size_bytes + kChunkBytes - 1) / kChunkBytes;
  }
  // The zeroed chunk table of a device of `size_bytes`, or nullptr.
  static uint8_t** AllocateChunkTable(uint64_t size_bytes);
  // Takes ownership of `chunks`, a table from AllocateChunkTable.
  MemoryBackend(uint64_t size_bytes, uint8_t** chunks);

  Status Read(uint64_t offset, uint64_t length, uint8_t* out);
  Status Write(uint64_t offset, uint64_t length, const uint8_t* in);
  // Write-zeroes and discard alike.
  void Zero(uint64_t offset, uint64_t length);

  const uint64_t size_bytes_;
  const uint64_t num_chunks_;
  // chunks_[i] is chunk i's storage or nullptr (all zeros). REQUIRES: StripeOf(i) held to read
  // the pointer (shared) or to change it or the bytes it points to (exclusive).
  uint8_t** chunks_;
  std::unique_ptr<Stripe[]> stripes_;
  std::atomic<uint64_t> allocated_bytes_{0};
};

}  // namespace ice
