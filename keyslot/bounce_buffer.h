// Scratch buffers for en/decryption on the data path (the emulated hardware's write buffer, the
// fallback's bounce buffer), so that a request allocates nothing in steady state.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace ice {

// A buffer of kBytes owned by the calling thread for the lifetime of this object. Requests nest
// on one thread (a fallback write goes down through a default-key target that may bounce again),
// so each nesting depth has a buffer of its own: an inner request never overwrites the data an
// outer one is still writing. Per thread, the first kCachedDepths depths are kept for reuse; deeper
// nesting allocates. Not thread-safe by design: never hand the object to another thread.
class BounceBuffer {
 public:
  // A multiple of every data unit size (512 … 65536), so chunks never split a data unit.
  static constexpr size_t kBytes = 256 * 1024;

  BounceBuffer() {
    PerThread& t = Local();
    depth_ = t.depth++;
    if (depth_ >= kCachedDepths) {
      owned_ = std::make_unique<uint8_t[]>(kBytes);
      data_ = owned_.get();
      return;
    }
    if (t.buffers[depth_] == nullptr) t.buffers[depth_] = std::make_unique<uint8_t[]>(kBytes);
    data_ = t.buffers[depth_].get();
  }
  ~BounceBuffer() { --Local().depth; }
  BounceBuffer(const BounceBuffer&) = delete;
  BounceBuffer& operator=(const BounceBuffer&) = delete;

  uint8_t* data() const { return data_; }

 private:
  static constexpr unsigned kCachedDepths = 4;
  struct PerThread {
    std::array<std::unique_ptr<uint8_t[]>, kCachedDepths> buffers;
    unsigned depth = 0;
  };
  static PerThread& Local() {
    static thread_local PerThread per_thread;
    return per_thread;
  }

  unsigned depth_;
  uint8_t* data_;
  std::unique_ptr<uint8_t[]> owned_;
};

}  // namespace ice
