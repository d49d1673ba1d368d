// The data path allocates nothing in steady state: counted by replacing the global operator new
// for this test binary and counting, on the calling thread only, inside a measured window.
#include <cstdlib>
#include <new>

#include <gtest/gtest.h>

#include "keyslot/blk_crypto.h"
#include "keyslot/hardware_device.h"
#include "tests/unit/keyslot_hw/test_util.h"

namespace {
thread_local bool t_counting = false;
thread_local long t_allocations = 0;
}  // namespace

// AddressSanitizer owns operator new itself; the count is only taken in ordinary builds.
#ifndef __SANITIZE_ADDRESS__
#define ICE_COUNT_ALLOCATIONS 1
// GCC cannot see that this new and these deletes are a matched malloc/free pair.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t n) {
  if (t_counting) ++t_allocations;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop
#endif

namespace ice {
namespace {

using testing::MakeKey;
using testing::Pattern;

long CountAllocations(const std::function<void()>& fn) {
  t_allocations = 0;
  t_counting = true;
  fn();
  t_counting = false;
  return t_allocations;
}

TEST(SteadyState, HardwareAndFallbackPathsAllocateNothing) {
#ifndef ICE_COUNT_ALLOCATIONS
  GTEST_SKIP() << "allocations are not counted under AddressSanitizer";
#endif
  BlkCrypto bc;
  HardwareDevice hw(std::make_unique<MemoryBackend>(4 << 20), 2,
                    testing::Caps(CryptoMode::kAes256Xts, 4096));
  auto native = MakeKey(CryptoMode::kAes256Xts, 4096, 8, 1);
  auto soft = MakeKey(CryptoMode::kAes128CbcEssiv, 4096, 8, 2);
  const auto data = Pattern(512 * 1024, 1);
  std::vector<uint8_t> back(data.size());
  auto io = [&] {
    for (const CryptoKey* key : {native.get(), soft.get()}) {
      const uint64_t off = key == native.get() ? 0 : 2 << 20;
      const CryptoContext ctx{key, Dun::FromU64(off / 4096)};
      EXPECT_TRUE(bc.Submit(hw, IoRequest{.op = IoOp::kWrite,
                                          .offset_bytes = off,
                                          .length_bytes = data.size(),
                                          .write_buf = data.data(),
                                          .crypt = ctx})
                      .ok());
      EXPECT_TRUE(bc.Submit(hw, IoRequest{.op = IoOp::kRead,
                                          .offset_bytes = off,
                                          .length_bytes = back.size(),
                                          .read_buf = back.data(),
                                          .crypt = ctx})
                      .ok());
      EXPECT_TRUE(bc.Submit(hw, IoRequest{.op = IoOp::kWriteZeroes,
                                          .offset_bytes = off,
                                          .length_bytes = 8192,
                                          .crypt = ctx})
                      .ok());
    }
  };
  io();  // warm-up: programs keys, fills the backend, makes the per-thread buffers
  EXPECT_EQ(CountAllocations(io), 0);
  EXPECT_EQ(hw.counters().slot_programs, 1u);
  EXPECT_GT(hw.counters().fallback_ios, 0u);
}

}  // namespace
}  // namespace ice
