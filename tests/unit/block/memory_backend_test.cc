#include "block/memory_backend.h"

#include <cerrno>
#include <cstdint>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace ice {
namespace {

constexpr uint64_t kChunk = MemoryBackend::kChunkBytes;

// Bytes that differ with position and seed, so a misplaced copy shows.
std::vector<uint8_t> Pattern(uint64_t offset, uint64_t length, uint8_t seed) {
  std::vector<uint8_t> v(length);
  for (uint64_t i = 0; i < length; ++i) v[i] = static_cast<uint8_t>((offset + i) * 31 + seed);
  return v;
}

Status Write(BlockDevice& dev, uint64_t offset, const std::vector<uint8_t>& data) {
  IoRequest req;
  req.op = IoOp::kWrite;
  req.offset_bytes = offset;
  req.length_bytes = data.size();
  req.write_buf = data.data();
  return dev.Submit(req);
}

std::vector<uint8_t> Read(BlockDevice& dev, uint64_t offset, uint64_t length) {
  std::vector<uint8_t> v(length, 0xAA);
  IoRequest req;
  req.op = IoOp::kRead;
  req.offset_bytes = offset;
  req.length_bytes = length;
  req.read_buf = v.data();
  Status s = dev.Submit(req);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return v;
}

Status Op(BlockDevice& dev, IoOp op, uint64_t offset, uint64_t length) {
  IoRequest req;
  req.op = op;
  req.offset_bytes = offset;
  req.length_bytes = length;
  return dev.Submit(req);
}

bool AllZero(const std::vector<uint8_t>& v) {
  for (uint8_t b : v) {
    if (b != 0) return false;
  }
  return true;
}

// The extents a device reports for [offset, offset + length), as (length, hole) pairs.
std::vector<std::pair<uint64_t, bool>> ExtentsOf(const BlockDevice& dev, uint64_t offset,
                                                 uint64_t length) {
  std::vector<std::pair<uint64_t, bool>> out;
  EXPECT_TRUE(dev.Extents(offset, length,
                          [&](uint64_t n, bool hole) {
                            out.emplace_back(n, hole);
                            return true;
                          })
                  .ok());
  return out;
}

// Issue 19 (N6): chunks never written are holes, so that copies of the device stay sparse.
TEST(MemoryBackend, Issue19_ExtentsReportUnwrittenChunksAsHoles) {
  MemoryBackend dev(8 * kChunk);
  EXPECT_EQ(ExtentsOf(dev, 0, 8 * kChunk),
            (std::vector<std::pair<uint64_t, bool>>{{8 * kChunk, true}}));
  ASSERT_TRUE(Write(dev, 2 * kChunk + 100, Pattern(0, 10, 1)).ok());
  ASSERT_TRUE(Write(dev, 3 * kChunk, Pattern(0, 10, 1)).ok());
  EXPECT_EQ(ExtentsOf(dev, 0, 8 * kChunk),
            (std::vector<std::pair<uint64_t, bool>>{
                {2 * kChunk, true}, {2 * kChunk, false}, {4 * kChunk, true}}));
  EXPECT_EQ(ExtentsOf(dev, 2 * kChunk + 5, 10),
            (std::vector<std::pair<uint64_t, bool>>{{10, false}}));
  ASSERT_TRUE(Op(dev, IoOp::kDiscard, 2 * kChunk, 2 * kChunk).ok());
  EXPECT_EQ(ExtentsOf(dev, kChunk, 4 * kChunk),
            (std::vector<std::pair<uint64_t, bool>>{{4 * kChunk, true}}));
  // A sink that stops after one extent is not called again.
  int calls = 0;
  ASSERT_TRUE(Write(dev, 0, Pattern(0, 10, 1)).ok());
  ASSERT_TRUE(dev.Extents(0, 8 * kChunk, [&](uint64_t, bool) { return ++calls < 1; }).ok());
  EXPECT_EQ(calls, 1);
}

TEST(MemoryBackend, UnwrittenRangesReadAsZeros) {
  MemoryBackend dev(1 << 20);
  EXPECT_EQ(dev.size_bytes(), 1u << 20);
  EXPECT_TRUE(AllZero(Read(dev, 0, 1 << 20)));
  EXPECT_EQ(dev.allocated_bytes(), 0u);
}

TEST(MemoryBackend, RoundTripAtOddOffsetsAcrossChunks) {
  MemoryBackend dev(1 << 20);
  const uint64_t offset = kChunk - 3;
  const auto data = Pattern(offset, 2 * kChunk + 11, 7);
  ASSERT_TRUE(Write(dev, offset, data).ok());
  EXPECT_EQ(Read(dev, offset, data.size()), data);
  // The bytes around the write stay zero.
  EXPECT_TRUE(AllZero(Read(dev, 0, offset)));
  EXPECT_TRUE(AllZero(Read(dev, offset + data.size(), 1000)));
  // A read at another odd offset inside the written range.
  const auto part = Read(dev, offset + 12345, 777);
  EXPECT_EQ(part, std::vector<uint8_t>(data.begin() + 12345, data.begin() + 12345 + 777));
}

TEST(MemoryBackend, SparseUntilWritten) {
  MemoryBackend dev(uint64_t{1} << 30);
  EXPECT_EQ(dev.allocated_bytes(), 0u);
  const auto data = Pattern(512 << 20, 4096, 3);
  ASSERT_TRUE(Write(dev, 512 << 20, data).ok());
  EXPECT_EQ(dev.allocated_bytes(), kChunk);
  EXPECT_EQ(Read(dev, 512 << 20, 4096), data);
  EXPECT_TRUE(AllZero(Read(dev, (512 << 20) + 4096, 4096)));
}

TEST(MemoryBackend, TailChunkOfAnOddSizedDevice) {
  const uint64_t size = 3 * kChunk + 1000;
  MemoryBackend dev(size);
  const auto data = Pattern(size - 1500, 1500, 9);
  ASSERT_TRUE(Write(dev, size - 1500, data).ok());
  EXPECT_EQ(Read(dev, size - 1500, 1500), data);
  EXPECT_EQ(dev.allocated_bytes(), 2 * kChunk);
  // Zeroing up to the device's end releases the tail chunk, which is only 1000 bytes long.
  ASSERT_TRUE(Op(dev, IoOp::kWriteZeroes, 3 * kChunk, 1000).ok());
  EXPECT_EQ(dev.allocated_bytes(), kChunk);
  EXPECT_TRUE(AllZero(Read(dev, 3 * kChunk, 1000)));
}

void CheckZeroingOp(IoOp op) {
  MemoryBackend dev(8 * kChunk);
  const auto data = Pattern(0, 8 * kChunk, 5);
  ASSERT_TRUE(Write(dev, 0, data).ok());
  EXPECT_EQ(dev.allocated_bytes(), 8 * kChunk);
  // Covers the tail of chunk 1, chunks 2 and 3 whole, the head of chunk 4.
  const uint64_t start = kChunk + 100, end = 4 * kChunk + 50;
  ASSERT_TRUE(Op(dev, op, start, end - start).ok());
  EXPECT_EQ(dev.allocated_bytes(), 6 * kChunk);  // Whole chunks are released.
  EXPECT_TRUE(AllZero(Read(dev, start, end - start)));
  EXPECT_EQ(Read(dev, 0, start), std::vector<uint8_t>(data.begin(), data.begin() + start));
  EXPECT_EQ(Read(dev, end, 8 * kChunk - end), std::vector<uint8_t>(data.begin() + end, data.end()));
  // Released chunks are writable again.
  const auto again = Pattern(2 * kChunk + 1, 10, 1);
  ASSERT_TRUE(Write(dev, 2 * kChunk + 1, again).ok());
  EXPECT_EQ(Read(dev, 2 * kChunk + 1, 10), again);
  EXPECT_TRUE(AllZero(Read(dev, 2 * kChunk, 1)));
}

TEST(MemoryBackend, WriteZeroesReadsBackZerosAndReleasesWholeChunks) {
  CheckZeroingOp(IoOp::kWriteZeroes);
}

TEST(MemoryBackend, DiscardReadsBackZerosAndReleasesWholeChunks) {
  MemoryBackend dev(kChunk);
  EXPECT_TRUE(dev.supports_discard());
  CheckZeroingOp(IoOp::kDiscard);
}

TEST(MemoryBackend, N4_FlushAndFuaSucceed) {
  MemoryBackend dev(1 << 20);
  const auto data = Pattern(4096, 4096, 2);
  IoRequest req;
  req.op = IoOp::kWrite;
  req.offset_bytes = 4096;
  req.length_bytes = data.size();
  req.write_buf = data.data();
  req.fua = true;
  ASSERT_TRUE(dev.Submit(req).ok());
  EXPECT_TRUE(Op(dev, IoOp::kFlush, 0, 0).ok());
  EXPECT_EQ(Read(dev, 4096, 4096), data);
}

TEST(MemoryBackend, ConcurrentWritersToDisjointRanges) {
  constexpr int kThreads = 4;
  constexpr uint64_t kBlock = 5000;  // Not a divisor of the chunk: blocks straddle chunks.
  constexpr uint64_t kBlocksPerThread = 200;
  MemoryBackend dev(kThreads * kBlocksPerThread * kBlock);
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Interleaved: thread t owns blocks t, t + 4, t + 8, …, so neighbours share chunks.
      for (uint64_t i = 0; i < kBlocksPerThread; ++i) {
        const uint64_t offset = (i * kThreads + t) * kBlock;
        const auto data = Pattern(offset, kBlock, static_cast<uint8_t>(t));
        if (!Write(dev, offset, data).ok() || Read(dev, offset, kBlock) != data) ++failures[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;
  for (uint64_t b = 0; b < kThreads * kBlocksPerThread; ++b) {
    const uint64_t offset = b * kBlock;
    ASSERT_EQ(Read(dev, offset, kBlock),
              Pattern(offset, kBlock, static_cast<uint8_t>(b % kThreads)))
        << "block " << b;
  }
}

TEST(MemoryBackend, ReadsConcurrentWithWritesSeeWholeChunkVersions) {
  MemoryBackend dev(kChunk);
  constexpr int kVersions = 200;
  std::thread writer([&] {
    for (int v = 1; v <= kVersions; ++v) {
      ASSERT_TRUE(Write(dev, 0, std::vector<uint8_t>(kChunk, static_cast<uint8_t>(v))).ok());
      if (v % 50 == 0) {
        ASSERT_TRUE(Op(dev, IoOp::kDiscard, 0, kChunk).ok());
      }
    }
  });
  int torn = 0;
  for (int i = 0; i < kVersions; ++i) {
    const auto seen = Read(dev, 0, kChunk);
    for (uint8_t b : seen) {
      if (b != seen[0]) {
        ++torn;
        break;
      }
    }
  }
  writer.join();
  EXPECT_EQ(torn, 0);
}

TEST(MemoryBackend, CryptoContextIsRefusedWithEio) {
  MemoryBackend dev(1 << 20);
  std::vector<uint8_t> buf(4096, 1);
  for (IoOp op : {IoOp::kRead, IoOp::kWrite, IoOp::kWriteZeroes}) {
    IoRequest req;
    req.op = op;
    req.length_bytes = buf.size();
    req.read_buf = buf.data();
    req.write_buf = buf.data();
    req.crypt = CryptoContext{};
    Status s = dev.Submit(req);
    EXPECT_EQ(s.code(), EIO) << IoOpName(op);
    EXPECT_NE(s.message().find("crypto context"), std::string::npos) << s.ToString();
  }
  EXPECT_EQ(dev.allocated_bytes(), 0u);
}

TEST(MemoryBackend, RangeBeyondTheEndIsEinval) {
  MemoryBackend dev(1 << 20);
  std::vector<uint8_t> buf(4096);
  IoRequest req;
  req.op = IoOp::kWrite;
  req.offset_bytes = (1 << 20) - 4095;
  req.length_bytes = buf.size();
  req.write_buf = buf.data();
  EXPECT_EQ(dev.Submit(req).code(), EINVAL);
  req.offset_bytes = UINT64_MAX - 10;  // offset + length overflows.
  EXPECT_EQ(dev.Submit(req).code(), EINVAL);
  EXPECT_EQ(Op(dev, IoOp::kDiscard, 1 << 20, 1).code(), EINVAL);
  EXPECT_EQ(dev.allocated_bytes(), 0u);
}

}  // namespace
}  // namespace ice
