#include "block/memory_backend.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

namespace ice {

namespace {

// Calls fn(chunk, offset_in_chunk, length, done) for each piece of [offset, offset + length),
// `done` being the bytes of the request before that piece. Stops at the first non-OK Status.
template <typename Fn>
Status ForEachChunk(uint64_t offset, uint64_t length, Fn fn) {
  uint64_t done = 0;
  while (done < length) {
    const uint64_t pos = offset + done;
    const uint64_t chunk = pos / MemoryBackend::kChunkBytes;
    const uint64_t in_chunk = pos % MemoryBackend::kChunkBytes;
    const uint64_t n = std::min(length - done, MemoryBackend::kChunkBytes - in_chunk);
    ICE_RETURN_IF_ERROR(fn(chunk, in_chunk, n, done));
    done += n;
  }
  return Status::Ok();
}

}  // namespace

uint8_t** MemoryBackend::AllocateChunkTable(uint64_t size_bytes) {
  // calloc: a large table comes from fresh mmap'ed pages, so an unwritten device does not even
  // touch its table.
  return static_cast<uint8_t**>(
      std::calloc(std::max<uint64_t>(NumChunks(size_bytes), 1), sizeof(uint8_t*)));
}

Result<std::unique_ptr<MemoryBackend>> MemoryBackend::Create(uint64_t size_bytes) {
  const std::string limit = "at most " + std::to_string(kMaxSizeBytes) + " bytes (8 TiB)";
  if (size_bytes > kMaxSizeBytes) {
    return Status::Error(EINVAL, "a memory backing of " + std::to_string(size_bytes) +
                                     " bytes is too large: it holds " + limit);
  }
  uint8_t** chunks = AllocateChunkTable(size_bytes);
  if (chunks == nullptr) {
    return Status::Error(ENOMEM, "a memory backing of " + std::to_string(size_bytes) +
                                     " bytes: cannot allocate its chunk table of " +
                                     std::to_string(NumChunks(size_bytes) * sizeof(uint8_t*)) +
                                     " bytes");
  }
  return std::unique_ptr<MemoryBackend>(new MemoryBackend(size_bytes, chunks));
}

MemoryBackend::MemoryBackend(uint64_t size_bytes)
    : MemoryBackend(size_bytes, AllocateChunkTable(size_bytes)) {
  if (chunks_ == nullptr) std::abort();  // As `new` would: the device cannot exist without it.
}

MemoryBackend::MemoryBackend(uint64_t size_bytes, uint8_t** chunks)
    : size_bytes_(size_bytes),
      num_chunks_(NumChunks(size_bytes)),
      chunks_(chunks),
      stripes_(std::make_unique<Stripe[]>(kStripes)) {}

MemoryBackend::~MemoryBackend() {
  for (uint64_t i = 0; i < num_chunks_; ++i) std::free(chunks_[i]);
  std::free(chunks_);
}

Status MemoryBackend::Submit(const IoRequest& req) {
  if (req.crypt) {
    return Status::Error(
        EIO, std::string("memory backend got a crypto context on a ") + IoOpName(req.op));
  }
  if (req.op == IoOp::kFlush) return Status::Ok();
  if (req.offset_bytes > size_bytes_ || req.length_bytes > size_bytes_ - req.offset_bytes) {
    return Status::Error(EINVAL, std::string("memory backend: ") + IoOpName(req.op) + " of " +
                                     std::to_string(req.length_bytes) + " bytes at " +
                                     std::to_string(req.offset_bytes) + " is beyond its " +
                                     std::to_string(size_bytes_) + " bytes");
  }
  switch (req.op) {
    case IoOp::kRead:
      if (req.read_buf == nullptr && req.length_bytes > 0) break;
      return Read(req.offset_bytes, req.length_bytes, req.read_buf);
    case IoOp::kWrite:
      if (req.write_buf == nullptr && req.length_bytes > 0) break;
      return Write(req.offset_bytes, req.length_bytes, req.write_buf);
    case IoOp::kWriteZeroes:
    case IoOp::kDiscard:
      Zero(req.offset_bytes, req.length_bytes);
      return Status::Ok();
    case IoOp::kFlush:
      break;
  }
  return Status::Error(
      EINVAL, std::string("memory backend: ") + IoOpName(req.op) + " without a data buffer");
}

Status MemoryBackend::Extents(uint64_t offset, uint64_t length, const ExtentSink& sink) const {
  // Runs of chunks with the same state make one extent each.
  const uint64_t end = offset + length;
  uint64_t run_start = offset;
  bool run_hole = false;
  for (uint64_t pos = offset; pos < end;) {
    const uint64_t chunk = pos / kChunkBytes;
    const uint64_t next = std::min(end, (chunk + 1) * kChunkBytes);
    bool hole;
    {
      std::shared_lock g(StripeOf(chunk));
      hole = chunks_[chunk] == nullptr;
    }
    if (pos == offset) {
      run_hole = hole;
    } else if (hole != run_hole) {
      if (!sink(pos - run_start, run_hole)) return Status::Ok();
      run_start = pos;
      run_hole = hole;
    }
    pos = next;
  }
  sink(end - run_start, run_hole);
  return Status::Ok();
}

Status MemoryBackend::Read(uint64_t offset, uint64_t length, uint8_t* out) {
  return ForEachChunk(offset, length, [&](uint64_t chunk, uint64_t at, uint64_t n, uint64_t done) {
    std::shared_lock lock(StripeOf(chunk));
    const uint8_t* data = chunks_[chunk];
    if (data == nullptr) {
      std::memset(out + done, 0, n);
    } else {
      std::memcpy(out + done, data + at, n);
    }
    return Status::Ok();
  });
}

Status MemoryBackend::Write(uint64_t offset, uint64_t length, const uint8_t* in) {
  return ForEachChunk(offset, length, [&](uint64_t chunk, uint64_t at, uint64_t n, uint64_t done) {
    std::unique_lock lock(StripeOf(chunk));
    uint8_t*& data = chunks_[chunk];
    if (data == nullptr) {
      // A write covering the whole chunk overwrites every byte: no need to zero it first.
      void* p = n == kChunkBytes ? std::malloc(kChunkBytes) : std::calloc(1, kChunkBytes);
      if (p == nullptr) {
        return Status::Error(ENOMEM, "memory backend: cannot allocate a chunk for a write at " +
                                         std::to_string(offset + done));
      }
      data = static_cast<uint8_t*>(p);
      allocated_bytes_.fetch_add(kChunkBytes, std::memory_order_relaxed);
    }
    std::memcpy(data + at, in + done, n);
    return Status::Ok();
  });
}

void MemoryBackend::Zero(uint64_t offset, uint64_t length) {
  Status ignored =
      ForEachChunk(offset, length, [&](uint64_t chunk, uint64_t at, uint64_t n, uint64_t) {
        std::unique_lock lock(StripeOf(chunk));
        uint8_t*& data = chunks_[chunk];
        if (data == nullptr) return Status::Ok();
        // The last chunk of a device whose size is not a multiple of kChunkBytes is whole when the
        // piece reaches the device's end.
        const bool whole = at == 0 && (n == kChunkBytes || chunk * kChunkBytes + n == size_bytes_);
        if (whole) {
          std::free(data);
          data = nullptr;
          allocated_bytes_.fetch_sub(kChunkBytes, std::memory_order_relaxed);
        } else {
          std::memset(data + at, 0, n);
        }
        return Status::Ok();
      });
  (void)ignored;  // Zeroing cannot fail.
}

}  // namespace ice
