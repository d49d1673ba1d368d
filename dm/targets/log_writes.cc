#include "dm/targets/log_writes.h"

#include <strings.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "block/log.h"
#include "dm/log_writes_format.h"
#include "dm/table.h"
#include "dm/targets/linear.h"

namespace ice::dm {
namespace {

// A completed write (or discard, flush, mark) on its way to the log: the kernel's pending_block.
struct PendingBlock {
  uint64_t flags = 0;
  uint64_t sector = 0;      // in the log's sectors
  uint64_t nr_sectors = 0;  // in the log's sectors
  std::vector<uint8_t> data;
  std::string mark;
};

class LogWritesTarget final : public Target {
 public:
  LogWritesTarget(const TargetEnv& env, DeviceRef dev, DeviceRef logdev, uint32_t sectorsize)
      : blk_(*env.blk),
        dev_(std::move(dev)),
        logdev_(std::move(logdev)),
        sectorsize_(sectorsize),
        sector_units_(sectorsize / kSectorBytes),
        block_(sectorsize),
        next_sector_(sector_units_),
        end_sector_(logdev_.device->size_bytes() / kSectorBytes) {}

  // The kernel's dtr: what still waits for a flush is logged, then the end mark.
  ~LogWritesTarget() override {
    std::lock_guard g(mu_);
    for (PendingBlock& b : unflushed_) LogBlock(b);
    unflushed_.clear();
    PendingBlock end = MarkBlock(std::string(logwrites::kEndMark));
    LogBlock(end);
  }

  Status Map(const IoRequest& req) override {
    if (req.op == IoOp::kRead || !logging_enabled_.load(std::memory_order_acquire)) {
      return PassThrough(req);
    }
    if (req.op == IoOp::kFlush) return MapFlush(req);
    if (req.length_bytes == 0) return PassThrough(req);
    if (req.offset_bytes % sectorsize_ != 0 || req.length_bytes % sectorsize_ != 0) {
      return Status::Error(EINVAL, "log-writes: " + std::string(IoOpName(req.op)) + " at " +
                                       std::to_string(req.offset_bytes) + " is not aligned to " +
                                       std::to_string(sectorsize_) + "-byte sectors");
    }
    PendingBlock block;
    if (req.fua) block.flags |= logwrites::kFua;
    if (req.op == IoOp::kDiscard) block.flags |= logwrites::kDiscard;
    block.sector = req.offset_bytes / sectorsize_;
    block.nr_sectors = req.length_bytes / sectorsize_;
    Status s;
    if (req.op == IoOp::kDiscard) {
      // Logged whether or not it can reach the device (the kernel ends it at once then).
      if (dev_.device->supports_discard()) s = blk_.Submit(*dev_.device, req);
    } else {
      // Copied now: the caller's buffer is only ours until the request returns.
      if (req.op == IoOp::kWrite) {
        block.data.assign(req.write_buf, req.write_buf + req.length_bytes);
      } else {
        block.data.assign(req.length_bytes, 0);  // write-zeroes: logged as a write of zeros
      }
      s = blk_.Submit(*dev_.device, req);
    }
    Completed(std::move(block));
    return s;
  }

  std::string TableParams() const override { return dev_.name + " " + logdev_.name; }

  std::string StatusParams() const override {
    std::lock_guard g(mu_);
    std::string s = std::to_string(logged_entries_) + " " + std::to_string(next_sector_ - 1);
    if (!logging_enabled_.load(std::memory_order_relaxed)) s += " logging_disabled";
    return s;
  }

  Result<std::string> Message(const std::vector<std::string>& words) override {
    if (words.size() != 2) {
      return Status::Error(EINVAL,
                           "log-writes: Invalid log-writes message arguments, expect 2 arguments, "
                           "got " +
                               std::to_string(words.size()));
    }
    if (strcasecmp(words[0].c_str(), "mark") != 0) {
      return Status::Error(
          EINVAL, "log-writes: Unrecognised log writes target message received: " + words[0]);
    }
    std::lock_guard g(mu_);
    PendingBlock mark = MarkBlock(words[1]);
    LogBlock(mark);
    return std::string();
  }

  std::vector<DeviceRef> Devices() const override { return {dev_, logdev_}; }
  // The data device holds the bytes; the log holds copies of writes, which no RMW reads back.
  std::optional<StoredRange> Locate(uint64_t offset, uint64_t length) const override {
    return LocateOn(dev_, 0, offset, length);
  }
  bool supports_discard() const override { return true; }
  uint32_t logical_block_size() const override { return sectorsize_; }

 private:
  Status PassThrough(const IoRequest& req) {
    if (req.op == IoOp::kDiscard && !dev_.device->supports_discard()) return Status::Ok();
    return blk_.Submit(*dev_.device, req);
  }

  // A flush covers the writes that completed before it was submitted; they are logged, then the
  // flush, once it has completed.
  Status MapFlush(const IoRequest& req) {
    std::vector<PendingBlock> covered;
    {
      std::lock_guard g(mu_);
      covered.swap(unflushed_);
    }
    Status s = blk_.Submit(*dev_.device, req);
    std::lock_guard g(mu_);
    for (PendingBlock& b : covered) LogBlock(b);
    PendingBlock flush;
    flush.flags = logwrites::kFlush;
    LogBlock(flush);
    return s;
  }

  // The kernel's normal_end_io: a FUA write goes to the log at once, the others wait for a flush.
  void Completed(PendingBlock block) {
    std::lock_guard g(mu_);
    if ((block.flags & logwrites::kFua) != 0) {
      LogBlock(block);
    } else {
      unflushed_.push_back(std::move(block));
    }
  }

  PendingBlock MarkBlock(std::string name) const {
    PendingBlock b;
    b.flags = logwrites::kMark;
    // The kernel keeps one byte for the terminating zero: at most S - 33 bytes of the name.
    const size_t room = sectorsize_ - logwrites::kEntryHeaderBytes - 1;
    if (name.size() > room) name.resize(room);
    b.mark = std::move(name);
    return b;
  }

  // The kernel's log_writes_kthread for one block: take the next log position, write the header
  // and the data, and rewrite the super block after a FUA or a mark. REQUIRES: mu_ held.
  void LogBlock(const PendingBlock& block) {
    if (!logging_enabled_.load(std::memory_order_relaxed)) return;
    const uint64_t sector = next_sector_;
    if ((block.flags & logwrites::kDiscard) == 0) next_sector_ += block.nr_sectors * sector_units_;
    next_sector_ += sector_units_;
    // The kernel checks after advancing (an entry that would end exactly at the end is refused
    // too), and reads the size again while it is not known (a mapped device without a table).
    if (end_sector_ == 0) end_sector_ = logdev_.device->size_bytes() / kSectorBytes;
    if (end_sector_ != 0 && next_sector_ >= end_sector_) {
      spdlog::error("log-writes {}: Ran out of space on the logdev {}", dev_.name, logdev_.name);
      logging_enabled_.store(false, std::memory_order_release);
      return;
    }
    ++logged_entries_;
    logwrites::EntryHeader h;
    h.sector = block.sector;
    h.nr_sectors = block.nr_sectors;
    h.flags = block.flags;
    h.data_len = (block.flags & logwrites::kMark) != 0 ? block.mark.size() : 0;
    logwrites::EncodeEntry(h, block.mark, block_);
    Status s = WriteLog(sector, block_.data(), block_.size());
    if (s.ok() && !block.data.empty()) {
      s = WriteLog(sector + sector_units_, block.data.data(), block.data.size());
    }
    if (s.ok() && (block.flags & (logwrites::kFua | logwrites::kMark)) != 0) s = WriteSuper();
    if (!s.ok()) {
      spdlog::error("log-writes {}: Error writing log block: {}", dev_.name, s.ToString());
      logging_enabled_.store(false, std::memory_order_release);
    }
  }

  // REQUIRES: mu_ held.
  Status WriteSuper() {
    logwrites::Super super;
    super.nr_entries = logged_entries_;
    super.sectorsize = sectorsize_;
    logwrites::EncodeSuper(super, block_);
    return WriteLog(0, block_.data(), block_.size());
  }

  Status WriteLog(uint64_t sector, const uint8_t* data, uint64_t length) {
    IoRequest w;
    w.op = IoOp::kWrite;
    w.offset_bytes = sector * kSectorBytes;
    w.length_bytes = length;
    w.write_buf = data;
    return blk_.Submit(*logdev_.device, w);
  }

  BlkCrypto& blk_;
  const DeviceRef dev_;
  const DeviceRef logdev_;
  const uint32_t sectorsize_;
  const uint64_t sector_units_;  // 512-byte sectors in one log sector

  // Read without mu_ by Map, as the kernel reads logging_enabled without its lock.
  std::atomic<bool> logging_enabled_{true};

  // Guards everything below, and keeps the log's writes in the order the entries were taken.
  mutable std::mutex mu_;
  std::vector<PendingBlock> unflushed_;  // completed, waiting for a flush
  std::vector<uint8_t> block_;           // one log sector of scratch for headers and the super
  uint64_t logged_entries_ = 0;
  uint64_t next_sector_;  // in 512-byte sectors of the log device
  uint64_t end_sector_;   // the log device's size in 512-byte sectors; 0 while not known
};

Result<std::unique_ptr<Target>> CreateLogWrites(const TargetEnv& env, const TargetArgs& args) {
  if (args.args.size() < 2) return Status::Error(EINVAL, "log-writes: Invalid argument count");
  Result<DeviceRef> dev = GetDeviceArea(env, args.args[0], 0, args.length_sectors);
  if (!dev.ok()) return dev.status().WithContext("log-writes: Device lookup failed");
  Result<DeviceRef> logdev = env.devices->Find(args.args[1]);
  if (!logdev.ok()) return logdev.status().WithContext("log-writes: Log device lookup failed");
  const uint32_t sectorsize =
      std::max<uint32_t>(static_cast<uint32_t>(kSectorBytes), dev->device->logical_block_size());
  return std::unique_ptr<Target>(
      new LogWritesTarget(env, std::move(*dev), std::move(*logdev), sectorsize));
}

}  // namespace

const TargetType kLogWritesTarget{"log-writes", /*passes_crypto=*/false, &CreateLogWrites};

}  // namespace ice::dm
