#include "dm/targets/log_writes.h"

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "dm/log_writes_format.h"
#include "tests/unit/dm_targets/dm_target_test_env.h"

namespace ice::dm {
namespace {

using testing::Op;
using testing::Pattern;
using testing::TestEnv;
using testing::Write;
namespace lw = ice::logwrites;

constexpr uint64_t kDevBytes = 1 << 20;
constexpr uint64_t kLogBytes = 4 << 20;
constexpr uint64_t kSectors = kDevBytes / 512;

// One entry as a reader finds it on the log device.
struct Entry {
  lw::EntryHeader h;
  std::string mark;
  std::vector<uint8_t> data;
  uint64_t at_sector = 0;  // the header's position, in log sectors
};

// Reads `count` entries from the log (the super block is not trusted: it is only rewritten
// after FUA and mark entries, which the tests check on their own).
std::vector<Entry> ReadLog(testing::RecordingDevice& log, uint32_t sectorsize, size_t count) {
  std::vector<Entry> out;
  uint64_t pos = 1;
  for (size_t i = 0; i < count; ++i) {
    std::vector<uint8_t> block = log.Bytes(pos * sectorsize, sectorsize);
    Entry e;
    e.h = lw::DecodeEntry(block);
    e.at_sector = pos;
    if (e.h.flags & lw::kMark) e.mark = lw::MarkText(block);
    ++pos;
    if (!(e.h.flags & lw::kDiscard) && e.h.nr_sectors > 0) {
      e.data = log.Bytes(pos * sectorsize, e.h.nr_sectors * sectorsize);
      pos += e.h.nr_sectors;
    }
    out.push_back(std::move(e));
  }
  return out;
}

lw::Super ReadSuper(testing::RecordingDevice& log) {
  std::vector<uint8_t> block = log.Bytes(0, 512);
  auto s = lw::DecodeSuper(block);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? *s : lw::Super{};
}

bool SuperWritten(testing::RecordingDevice& log) {
  std::vector<uint8_t> block = log.Bytes(0, 512);
  return lw::DecodeSuper(block).ok();
}

class LogWrites : public ::testing::Test {
 protected:
  LogWrites() : dev_(env_.AddDevice("disk", kDevBytes)), log_(env_.AddDevice("log", kLogBytes)) {}

  std::unique_ptr<Target> Make() {
    auto t = env_.Create(kLogWritesTarget, kSectors, {"disk", "log"});
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? std::move(*t) : nullptr;
  }

  TestEnv env_;
  std::shared_ptr<testing::RecordingDevice> dev_, log_;
};

TEST_F(LogWrites, I15_1_ConstructorArgumentsAsTheKernel) {
  EXPECT_EQ(env_.Create(kLogWritesTarget, kSectors, {}).status().code(), EINVAL);
  Status one = env_.Create(kLogWritesTarget, kSectors, {"disk"}).status();
  EXPECT_EQ(one.code(), EINVAL);
  EXPECT_NE(one.message().find("Invalid argument count"), std::string::npos) << one.message();
  Status nodev = env_.Create(kLogWritesTarget, kSectors, {"nodisk", "log"}).status();
  EXPECT_FALSE(nodev.ok());
  EXPECT_NE(nodev.message().find("Device lookup failed"), std::string::npos) << nodev.message();
  Status nolog = env_.Create(kLogWritesTarget, kSectors, {"disk", "nolog"}).status();
  EXPECT_FALSE(nolog.ok());
  EXPECT_NE(nolog.message().find("Log device lookup failed"), std::string::npos);
  // The target must fit on <dev> (not on the log device, which the kernel never checks).
  EXPECT_EQ(env_.Create(kLogWritesTarget, kSectors + 1, {"disk", "log"}).status().code(), EINVAL);
  env_.AddDevice("tinylog", 8192);
  EXPECT_TRUE(env_.Create(kLogWritesTarget, kSectors, {"disk", "tinylog"}).ok());
  // Words after the second are ignored, as the kernel does.
  EXPECT_TRUE(env_.Create(kLogWritesTarget, kSectors, {"disk", "log", "extra"}).ok());
}

TEST_F(LogWrites, I15_1_DoesNotPassCryptoAsTheKernel) {
  // drivers/md/dm-log-writes.c's target_type sets no .features: no DM_TARGET_PASSES_CRYPTO.
  EXPECT_FALSE(kLogWritesTarget.passes_crypto);
  EXPECT_EQ(std::string(kLogWritesTarget.name), "log-writes");
}

TEST_F(LogWrites, I15_1_TableStatusAndDevices) {
  auto t = Make();
  EXPECT_EQ(t->TableParams(), "disk log");
  // next_sector starts at the first sector after the super block; status prints it minus one.
  EXPECT_EQ(t->StatusParams(), "0 0");
  ASSERT_TRUE(Write(*t, 4096, Pattern(4096, 1)).ok());
  ASSERT_TRUE(Op(*t, IoOp::kFlush).ok());
  // Two entries: the write (1 + 8 sectors) and the flush (1 sector), from sector 1.
  EXPECT_EQ(t->StatusParams(), "2 10");
  ASSERT_EQ(t->Devices().size(), 2u);
  EXPECT_EQ(t->Devices()[0].name, "disk");
  EXPECT_EQ(t->Devices()[1].name, "log");
  EXPECT_TRUE(t->supports_discard());
  EXPECT_EQ(t->logical_block_size(), 512u);
}

TEST_F(LogWrites, I15_1_WritesWaitForTheFlushThatCoversThem) {
  auto t = Make();
  const auto a = Pattern(4096, 1), b = Pattern(1024, 2);
  ASSERT_TRUE(Write(*t, 8192, a).ok());
  ASSERT_TRUE(Write(*t, 512, b).ok());
  // Completed, on the device, but not logged: the kernel logs them when a flush covers them.
  EXPECT_EQ(dev_->Bytes(8192, 4096), a);
  EXPECT_EQ(t->StatusParams(), "0 0");
  EXPECT_EQ(log_->Bytes(512, 512), std::vector<uint8_t>(512, 0));
  ASSERT_TRUE(Op(*t, IoOp::kFlush).ok());
  auto entries = ReadLog(*log_, 512, 3);
  EXPECT_EQ(entries[0].h.sector, 16u);  // 512-byte sectors of the device
  EXPECT_EQ(entries[0].h.nr_sectors, 8u);
  EXPECT_EQ(entries[0].h.flags, 0u);
  EXPECT_EQ(entries[0].h.data_len, 0u);
  EXPECT_EQ(entries[0].data, a);
  EXPECT_EQ(entries[1].h.sector, 1u);
  EXPECT_EQ(entries[1].h.nr_sectors, 2u);
  EXPECT_EQ(entries[1].data, b);
  EXPECT_EQ(entries[1].at_sector, 10u);
  EXPECT_EQ(entries[2].h.flags, lw::kFlush);
  EXPECT_EQ(entries[2].h.sector, 0u);
  EXPECT_EQ(entries[2].h.nr_sectors, 0u);
  EXPECT_EQ(entries[2].at_sector, 13u);
  // The flush went to <dev>, never to the log device.
  bool flushed_dev = false, flushed_log = false;
  for (const auto& s : dev_->seen()) flushed_dev |= s.op == IoOp::kFlush;
  for (const auto& s : log_->seen()) flushed_log |= s.op == IoOp::kFlush;
  EXPECT_TRUE(flushed_dev);
  EXPECT_FALSE(flushed_log);
  // A flush does not rewrite the super block (only FUA and mark entries do).
  EXPECT_FALSE(SuperWritten(*log_));
}

TEST_F(LogWrites, I15_1_FuaIsLoggedAtOnceAndRewritesTheSuper) {
  auto t = Make();
  ASSERT_TRUE(Write(*t, 0, Pattern(512, 3)).ok());  // waits for a flush
  ASSERT_TRUE(Write(*t, 4096, Pattern(2048, 4), std::nullopt, /*fua=*/true).ok());
  EXPECT_EQ(t->StatusParams(), "1 5");
  auto e = ReadLog(*log_, 512, 1);
  EXPECT_EQ(e[0].h.flags, lw::kFua);
  EXPECT_EQ(e[0].h.sector, 8u);
  EXPECT_EQ(e[0].data, Pattern(2048, 4));
  lw::Super s = ReadSuper(*log_);
  EXPECT_EQ(s.nr_entries, 1u);
  EXPECT_EQ(s.sectorsize, 512u);
  // The earlier write is logged after the FUA one, at the next flush.
  ASSERT_TRUE(Op(*t, IoOp::kFlush).ok());
  e = ReadLog(*log_, 512, 3);
  EXPECT_EQ(e[1].h.sector, 0u);
  EXPECT_EQ(e[1].h.flags, 0u);
  EXPECT_EQ(e[2].h.flags, lw::kFlush);
  EXPECT_EQ(ReadSuper(*log_).nr_entries, 1u);  // still: flushes leave the super alone
}

TEST_F(LogWrites, I15_1_MarksAreLoggedAtOnceWithTheirName) {
  auto t = Make();
  ASSERT_TRUE(Write(*t, 0, Pattern(512, 5)).ok());
  auto r = t->Message({"mark", "after-first"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "");
  ASSERT_TRUE(t->Message({"MaRk", "second"}).ok());  // strcasecmp, as the kernel
  auto e = ReadLog(*log_, 512, 2);
  EXPECT_EQ(e[0].h.flags, lw::kMark);
  EXPECT_EQ(e[0].h.nr_sectors, 0u);
  EXPECT_EQ(e[0].h.data_len, strlen("after-first"));
  EXPECT_EQ(e[0].mark, "after-first");
  EXPECT_EQ(e[1].at_sector, 2u);  // a mark takes its header sector only
  EXPECT_EQ(e[1].mark, "second");
  EXPECT_EQ(ReadSuper(*log_).nr_entries, 2u);
  // The header block is zero after the name.
  std::vector<uint8_t> block = log_->Bytes(512, 512);
  for (size_t i = 32 + strlen("after-first"); i < block.size(); ++i) ASSERT_EQ(block[i], 0) << i;

  EXPECT_EQ(t->Message({"mark"}).status().code(), EINVAL);
  EXPECT_EQ(t->Message({"mark", "a", "b"}).status().code(), EINVAL);
  Status bad = t->Message({"unmark", "a"}).status();
  EXPECT_EQ(bad.code(), EINVAL);
  EXPECT_NE(bad.message().find("Unrecognised log writes target message"), std::string::npos);
  // A name longer than a sector holds is cut to S - 33 bytes.
  ASSERT_TRUE(t->Message({"mark", std::string(600, 'x')}).ok());
  e = ReadLog(*log_, 512, 3);
  EXPECT_EQ(e[2].h.data_len, 512u - 33u);
  EXPECT_EQ(e[2].mark, std::string(512 - 33, 'x'));
}

TEST_F(LogWrites, I15_1_DiscardsAreLoggedWithoutDataAndWriteZeroesAsZeros) {
  auto t = Make();
  dev_->Poke(0, Pattern(8192, 9));
  ASSERT_TRUE(Op(*t, IoOp::kDiscard, 0, 4096).ok());
  ASSERT_TRUE(Op(*t, IoOp::kWriteZeroes, 4096, 1024).ok());
  ASSERT_TRUE(Op(*t, IoOp::kFlush).ok());
  auto e = ReadLog(*log_, 512, 3);
  EXPECT_EQ(e[0].h.flags, lw::kDiscard);
  EXPECT_EQ(e[0].h.sector, 0u);
  EXPECT_EQ(e[0].h.nr_sectors, 8u);
  EXPECT_TRUE(e[0].data.empty());
  EXPECT_EQ(e[1].at_sector, 2u);  // right after the discard's header
  EXPECT_EQ(e[1].h.flags, 0u);
  EXPECT_EQ(e[1].h.nr_sectors, 2u);
  EXPECT_EQ(e[1].data, std::vector<uint8_t>(1024, 0));
  EXPECT_EQ(e[2].h.flags, lw::kFlush);
  EXPECT_EQ(dev_->Bytes(4096, 1024), std::vector<uint8_t>(1024, 0));
  EXPECT_EQ(t->StatusParams(), "3 5");  // discards advance the log by their header only
}

TEST_F(LogWrites, I15_1_SectorsCountTheDevicesLogicalBlocks) {
  // A device with 4096-byte logical blocks: the log's sectors, its headers and its entries'
  // sector numbers are all 4096-byte units, as the kernel's bdev_logical_block_size.
  class BigBlockDevice final : public BlockDevice {
   public:
    uint64_t size_bytes() const override { return mem.size_bytes(); }
    Status Submit(const IoRequest& r) override { return mem.Submit(r); }
    uint32_t logical_block_size() const override { return 4096; }
    MemoryBackend mem{kDevBytes};
  };
  auto big = std::make_shared<BigBlockDevice>();
  env_.devices.Add("big", big);
  auto made = env_.Create(kLogWritesTarget, kSectors, {"big", "log"});
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  auto& t = **made;
  EXPECT_EQ(t.logical_block_size(), 4096u);
  EXPECT_EQ(Write(t, 0, Pattern(512, 1)).code(), EINVAL);  // not a whole sector
  ASSERT_TRUE(Write(t, 8192, Pattern(8192, 2), std::nullopt, true).ok());
  ASSERT_TRUE(t.Message({"mark", "m"}).ok());
  lw::Super s = ReadSuper(*log_);
  EXPECT_EQ(s.sectorsize, 4096u);
  EXPECT_EQ(s.nr_entries, 2u);
  auto e = ReadLog(*log_, 4096, 2);
  EXPECT_EQ(e[0].h.sector, 2u);
  EXPECT_EQ(e[0].h.nr_sectors, 2u);
  EXPECT_EQ(e[0].at_sector, 1u);
  EXPECT_EQ(e[0].data, Pattern(8192, 2));
  EXPECT_EQ(e[1].at_sector, 4u);
  // Status counts 512-byte sectors: the next entry would go at 4096-byte sector 5.
  EXPECT_EQ(t.StatusParams(), "2 39");
  ASSERT_TRUE(t.Message({"mark", std::string(5000, 'y')}).ok());
  e = ReadLog(*log_, 4096, 3);
  EXPECT_EQ(e[2].mark.size(), 4096u - 33u);
}

TEST_F(LogWrites, I15_1_AFlushCoversOnlyWritesCompletedBeforeItWasSubmitted) {
  // A device whose flushes wait until released, so a write can complete while one is in flight.
  class SlowFlushDevice final : public BlockDevice {
   public:
    uint64_t size_bytes() const override { return mem.size_bytes(); }
    Status Submit(const IoRequest& r) override {
      if (r.op == IoOp::kFlush) {
        std::unique_lock l(mu);
        in_flush = true;
        cv.notify_all();
        cv.wait(l, [&] { return released; });
        in_flush = false;
      }
      return mem.Submit(r);
    }
    void WaitInFlush() {
      std::unique_lock l(mu);
      cv.wait(l, [&] { return in_flush; });
    }
    void Release() {
      std::lock_guard l(mu);
      released = true;
      cv.notify_all();
    }
    MemoryBackend mem{kDevBytes};
    std::mutex mu;
    std::condition_variable cv;
    bool in_flush = false, released = false;
  };
  auto slow = std::make_shared<SlowFlushDevice>();
  env_.devices.Add("slow", slow);
  auto made = env_.Create(kLogWritesTarget, kSectors, {"slow", "log"});
  ASSERT_TRUE(made.ok());
  auto& t = **made;
  ASSERT_TRUE(Write(t, 0, Pattern(512, 1)).ok());  // a: before the flush
  std::thread flusher([&] { EXPECT_TRUE(Op(t, IoOp::kFlush).ok()); });
  slow->WaitInFlush();
  ASSERT_TRUE(Write(t, 512, Pattern(512, 2)).ok());                       // b: during it
  ASSERT_TRUE(Write(t, 1024, Pattern(512, 3), std::nullopt, true).ok());  // d: FUA, during it
  // Nothing of the flush is logged before it completes; the FUA write is, at once.
  auto e = ReadLog(*log_, 512, 1);
  EXPECT_EQ(e[0].h.flags, lw::kFua);
  slow->Release();
  flusher.join();
  e = ReadLog(*log_, 512, 3);
  EXPECT_EQ(e[1].h.sector, 0u);  // a
  EXPECT_EQ(e[2].h.flags, lw::kFlush);
  ASSERT_TRUE(Op(t, IoOp::kFlush).ok());
  e = ReadLog(*log_, 512, 5);
  EXPECT_EQ(e[3].h.sector, 1u);  // b, at the next flush
  EXPECT_EQ(e[4].h.flags, lw::kFlush);
}

TEST_F(LogWrites, I15_1_FailedWritesAreLoggedAsTheKernelDoes) {
  auto t = Make();
  dev_->set_fail(true);
  EXPECT_EQ(Write(*t, 0, Pattern(512, 1)).code(), EIO);
  dev_->set_fail(false);
  ASSERT_TRUE(Op(*t, IoOp::kFlush).ok());
  auto e = ReadLog(*log_, 512, 2);
  EXPECT_EQ(e[0].h.nr_sectors, 1u);
  EXPECT_EQ(e[1].h.flags, lw::kFlush);
}

TEST_F(LogWrites, I15_1_AFullLogDisablesLoggingNotIO) {
  env_.AddDevice("small", 8 * 512);  // super + 7 sectors
  auto made = env_.Create(kLogWritesTarget, kSectors, {"disk", "small"});
  ASSERT_TRUE(made.ok());
  auto& t = **made;
  ASSERT_TRUE(Write(t, 0, Pattern(2048, 1), std::nullopt, true).ok());  // sectors 1..5: fits
  EXPECT_EQ(t.StatusParams(), "1 5");
  // A 1-sector write would take sectors 6 and 7, the last two: refused, because the kernel
  // checks next_sector (now 8) >= the end (8) after advancing.
  ASSERT_TRUE(Write(t, 0, Pattern(512, 2), std::nullopt, true).ok());
  EXPECT_EQ(t.StatusParams(), "1 7 logging_disabled");
  // I/O goes on, unlogged.
  ASSERT_TRUE(Write(t, 4096, Pattern(512, 3)).ok());
  EXPECT_EQ(dev_->Bytes(4096, 512), Pattern(512, 3));
  ASSERT_TRUE(Op(t, IoOp::kFlush).ok());
  EXPECT_EQ(t.StatusParams(), "1 7 logging_disabled");
}

TEST_F(LogWrites, I15_1_TheEndOfATableLogsWhatWaitedAndTheEndMark) {
  {
    auto t = Make();
    ASSERT_TRUE(Write(*t, 0, Pattern(512, 1)).ok());
  }
  lw::Super s = ReadSuper(*log_);
  EXPECT_EQ(s.nr_entries, 2u);
  auto e = ReadLog(*log_, 512, 2);
  EXPECT_EQ(e[0].h.flags, 0u);
  EXPECT_EQ(e[0].data, Pattern(512, 1));
  EXPECT_EQ(e[1].h.flags, lw::kMark);
  EXPECT_EQ(e[1].mark, "dm-log-writes-end");
}

TEST_F(LogWrites, I15_1_ConcurrentWritersLogEveryCompletedWriteOnce) {
  auto t = Make();
  constexpr int kThreads = 8, kWrites = 200;
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      for (int j = 0; j < kWrites; ++j) {
        // Each write has its own sectors: two writes to one sector may log in either order.
        const uint64_t off = (static_cast<uint64_t>(i) * kWrites + j) * 512;
        EXPECT_TRUE(
            Write(*t, off, Pattern(512, static_cast<uint8_t>(i * 31 + j)), std::nullopt, j % 7 == 0)
                .ok());
        if (j % 10 == 9) {
          EXPECT_TRUE(Op(*t, IoOp::kFlush).ok());
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE(Op(*t, IoOp::kFlush).ok());
  ASSERT_TRUE(t->Message({"mark", "done"}).ok());
  lw::Super s = ReadSuper(*log_);
  const size_t flushes = kThreads * (kWrites / 10) + 1;
  EXPECT_EQ(s.nr_entries, kThreads * kWrites + flushes + 1);
  auto e = ReadLog(*log_, 512, s.nr_entries);
  // Replaying the log gives what is on the device.
  std::vector<uint8_t> replay(kDevBytes, 0);
  size_t writes = 0;
  for (const Entry& x : e) {
    if (x.h.flags & (lw::kFlush | lw::kMark)) continue;
    ++writes;
    std::memcpy(replay.data() + x.h.sector * 512, x.data.data(), x.data.size());
  }
  EXPECT_EQ(writes, static_cast<size_t>(kThreads * kWrites));
  EXPECT_EQ(e.back().mark, "done");
  EXPECT_EQ(replay, dev_->Bytes(0, kDevBytes));
}

}  // namespace
}  // namespace ice::dm
