#include "daemon/export.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include "keyslot/crypto_key.h"

namespace ice::daemon {
namespace {

uint64_t AlignDown(uint64_t v, uint64_t unit) { return v - v % unit; }
uint64_t AlignUp(uint64_t v, uint64_t unit) { return AlignDown(v + unit - 1, unit); }

// One data unit of scratch per thread for read-modify-write; grown once, then reused.
uint8_t* UnitBuffer(uint32_t unit) {
  thread_local std::vector<uint8_t> buf;
  if (buf.size() < unit) buf.resize(unit);
  return buf.data();
}

// Walks [offset, offset + length) in order as runs of whole units and pieces of a single unit:
// fn(pos, n, whole) for each, stopping at the first error.
template <typename Fn>
Status ForEachPiece(uint64_t offset, uint64_t length, uint64_t unit, Fn&& fn) {
  const uint64_t stop = offset + length;
  for (uint64_t pos = offset; pos < stop;) {
    const uint64_t unit_start = AlignDown(pos, unit);
    const bool whole = pos == unit_start && stop - pos >= unit;
    const uint64_t n =
        whole ? AlignDown(stop - pos, unit) : std::min(stop, unit_start + unit) - pos;
    ICE_RETURN_IF_ERROR(fn(pos, n, whole));
    pos += n;
  }
  return Status::Ok();
}

// Records one export operation's outcome and latency.
class Timed {
 public:
  Timed(DeviceStats& stats, StatOp op, uint64_t bytes)
      : stats_(stats), op_(op), bytes_(bytes), start_(std::chrono::steady_clock::now()) {}
  Status operator()(Status s) {
    stats_.Record(op_, bytes_, std::chrono::steady_clock::now() - start_, s.ok());
    return s;
  }

 private:
  DeviceStats& stats_;
  StatOp op_;
  uint64_t bytes_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

Export::Export(std::string name, dm::OpenDevice device, std::optional<KeyUse> key, BlkCrypto& blk,
               StoreLocks& locks, std::shared_ptr<DeviceStats> stats)
    : name_(std::move(name)),
      device_(std::move(device)),
      key_(std::move(key)),
      blk_(blk),
      locks_(locks),
      stats_(std::move(stats)) {
  unit_ = std::max<uint32_t>(1, device_->logical_block_size());
  if (key_) unit_ = std::max(unit_, key_->key()->config().data_unit_size);
  size_bytes_ = AlignDown(device_->size_bytes(), unit_);
}

bool Export::discards() const { return !keyed() && device_->supports_discard(); }

IoRequest Export::Request(IoOp op, uint64_t offset, uint64_t length) const {
  IoRequest r;
  r.op = op;
  r.offset_bytes = offset;
  r.length_bytes = length;
  if (key_ && op != IoOp::kFlush && op != IoOp::kDiscard) {
    const CryptoKey* k = key_->key().get();
    r.crypt = CryptoContext{k, Dun::FromU64(offset / k->config().data_unit_size)};
  }
  return r;
}

Status Export::Read(uint8_t* buf, uint64_t length, uint64_t offset) {
  Timed timed(*stats_, StatOp::kRead, length);
  if (offset % unit_ == 0 && length % unit_ == 0) {
    IoRequest r = Request(IoOp::kRead, offset, length);
    r.read_buf = buf;
    return timed(Submit(r));
  }
  return timed(ReadUnaligned(buf, length, offset));
}

// Partial units are read whole into scratch and copied out; the aligned middle goes straight
// into the caller's buffer. Holding the units shared keeps a concurrent read-modify-write of a
// neighbouring byte range from handing us a half-written unit.
Status Export::ReadUnaligned(uint8_t* buf, uint64_t length, uint64_t offset) {
  const uint64_t begin = AlignDown(offset, unit_), end = AlignUp(offset + length, unit_);
  StoreLocks::Guard g = LockUnits(begin, end, RangeLock::Mode::kShared);
  return ForEachPiece(offset, length, unit_, [&](uint64_t pos, uint64_t n, bool whole) {
    if (whole) {
      IoRequest r = Request(IoOp::kRead, pos, n);
      r.read_buf = buf + (pos - offset);
      return Submit(r);
    }
    const uint64_t unit_start = AlignDown(pos, unit_);
    uint8_t* scratch = UnitBuffer(unit_);
    IoRequest r = Request(IoOp::kRead, unit_start, unit_);
    r.read_buf = scratch;
    ICE_RETURN_IF_ERROR(Submit(r));
    std::memcpy(buf + (pos - offset), scratch + (pos - unit_start), n);
    return Status::Ok();
  });
}

Status Export::PatchUnit(const uint8_t* data, uint64_t length, uint64_t offset, bool fua) {
  const uint64_t unit_start = AlignDown(offset, unit_);
  uint8_t* scratch = UnitBuffer(unit_);
  IoRequest rd = Request(IoOp::kRead, unit_start, unit_);
  rd.read_buf = scratch;
  ICE_RETURN_IF_ERROR(Submit(rd));
  if (data) {
    std::memcpy(scratch + (offset - unit_start), data, length);
  } else {
    std::memset(scratch + (offset - unit_start), 0, length);
  }
  IoRequest wr = Request(IoOp::kWrite, unit_start, unit_);
  wr.write_buf = scratch;
  wr.fua = fua;
  return Submit(wr);
}

// Writes data (or zeros when buf is null). Aligned requests hold their units shared so that they
// never interleave with a read-modify-write of the same units; unaligned ones hold them
// exclusively from the first read to the last write.
Status Export::WriteOrZero(const uint8_t* buf, uint64_t length, uint64_t offset, bool fua) {
  const IoOp whole_op = buf ? IoOp::kWrite : IoOp::kWriteZeroes;
  const bool aligned = offset % unit_ == 0 && length % unit_ == 0;
  if (unit_ == 1 || aligned) {
    StoreLocks::Guard g;
    if (unit_ > 1) g = LockUnits(offset, offset + length, RangeLock::Mode::kShared);
    IoRequest r = Request(whole_op, offset, length);
    r.write_buf = buf;
    r.fua = fua;
    return Submit(r);
  }
  const uint64_t begin = AlignDown(offset, unit_), end = AlignUp(offset + length, unit_);
  StoreLocks::Guard g = LockUnits(begin, end, RangeLock::Mode::kExclusive);
  return ForEachPiece(offset, length, unit_, [&](uint64_t pos, uint64_t n, bool whole) {
    const uint8_t* data = buf ? buf + (pos - offset) : nullptr;
    if (!whole) return PatchUnit(data, n, pos, fua);
    IoRequest r = Request(whole_op, pos, n);
    r.write_buf = data;
    r.fua = fua;
    return Submit(r);
  });
}

Status Export::Write(const uint8_t* buf, uint64_t length, uint64_t offset, bool fua) {
  Timed timed(*stats_, StatOp::kWrite, length);
  return timed(WriteOrZero(buf, length, offset, fua));
}

Status Export::Zero(uint64_t length, uint64_t offset, bool fua) {
  Timed timed(*stats_, StatOp::kZero, length);
  return timed(WriteOrZero(nullptr, length, offset, fua));
}

Status Export::Flush() {
  Timed timed(*stats_, StatOp::kFlush, 0);
  return timed(Submit(Request(IoOp::kFlush, 0, 0)));
}

Status Export::Extents(uint64_t length, uint64_t offset,
                       const BlockDevice::ExtentSink& sink) const {
  if (keyed()) {
    sink(length, false);
    return Status::Ok();
  }
  return device_->Extents(offset, length, sink);
}

Status Export::Trim(uint64_t length, uint64_t offset, bool fua) {
  Timed timed(*stats_, StatOp::kTrim, length);
  if (!discards()) return timed(WriteOrZero(nullptr, length, offset, fua));
  // Trim is advisory: only whole units are discarded.
  const uint64_t begin = AlignUp(offset, unit_), end = AlignDown(offset + length, unit_);
  if (begin >= end) return timed(Status::Ok());
  StoreLocks::Guard g;
  if (unit_ > 1) g = LockUnits(begin, end, RangeLock::Mode::kShared);
  return timed(Submit(Request(IoOp::kDiscard, begin, end - begin)));
}

}  // namespace ice::daemon
