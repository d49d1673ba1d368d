#include "dm/targets/striped.h"

#include <atomic>
#include <cerrno>
#include <string>

#include "dm/split.h"
#include "dm/table.h"
#include "dm/targets/linear.h"

namespace ice::dm {
namespace {

struct Stripe {
  DeviceRef dev;
  uint64_t physical_start_sectors = 0;
};

class StripedTarget final : public Target {
 public:
  StripedTarget(const TargetEnv& env, std::vector<Stripe> stripes, uint64_t chunk_sectors)
      : blk_(*env.blk),
        stripes_(std::move(stripes)),
        chunk_bytes_(chunk_sectors * kSectorBytes),
        errors_(new std::atomic<uint32_t>[stripes_.size()]) {
    for (size_t i = 0; i < stripes_.size(); ++i) errors_[i].store(0, std::memory_order_relaxed);
  }

  Status Map(const IoRequest& req) override {
    if (req.op == IoOp::kFlush) return Flush(req);
    // A crypto request may only be split at data unit boundaries: check them all before any
    // piece is sent, so that a refused request changes nothing.
    if (req.crypt) {
      for (uint64_t pos = NextChunk(req.offset_bytes); pos < req.end_bytes(); pos += chunk_bytes_) {
        if (!CanSplitAt(req, pos - req.offset_bytes)) {
          return Status::Error(EINVAL, "striped: chunk boundary at byte " + std::to_string(pos) +
                                           " splits a data unit of a crypto request");
        }
      }
    }
    uint64_t pos = req.offset_bytes;
    while (pos < req.end_bytes()) {
      const ChunkPiece p = Piece(pos, req.end_bytes() - pos);
      Status s = Submit(p.stripe, SplitPiece(req, pos - req.offset_bytes, p.length, p.dev_offset));
      if (!s.ok()) return s;
      pos += p.length;
    }
    return Status::Ok();
  }

  std::string TableParams() const override {
    std::string s =
        std::to_string(stripes_.size()) + " " + std::to_string(chunk_bytes_ / kSectorBytes);
    for (const Stripe& st : stripes_) {
      s += " " + st.dev.name + " " + std::to_string(st.physical_start_sectors);
    }
    return s;
  }

  std::string StatusParams() const override {
    std::string s = std::to_string(stripes_.size()) + " ";
    for (const Stripe& st : stripes_) s += st.dev.name + " ";
    s += "1 ";
    for (size_t i = 0; i < stripes_.size(); ++i) {
      s += errors_[i].load(std::memory_order_relaxed) != 0 ? 'D' : 'A';
    }
    return s;
  }

  std::optional<StoredRange> Locate(uint64_t offset, uint64_t length) const override {
    const ChunkPiece p = Piece(offset, length);
    return LocateOn(stripes_[p.stripe].dev, p.dev_offset, 0, p.length);
  }

  std::vector<DeviceRef> Devices() const override {
    std::vector<DeviceRef> out;
    out.reserve(stripes_.size());
    for (const Stripe& st : stripes_) out.push_back(st.dev);
    return out;
  }

  bool supports_discard() const override {
    for (const Stripe& st : stripes_) {
      if (!st.dev.device->supports_discard()) return false;
    }
    return true;
  }

 private:
  // The stripe holding byte `pos` of the target, where on its device, and how many of the next
  // `length` bytes stay in the same chunk.
  struct ChunkPiece {
    size_t stripe;
    uint64_t dev_offset;
    uint64_t length;
  };
  ChunkPiece Piece(uint64_t pos, uint64_t length) const {
    const uint64_t chunk = pos / chunk_bytes_;
    const uint64_t in_chunk = pos % chunk_bytes_;
    const size_t stripe = static_cast<size_t>(chunk % stripes_.size());
    return {stripe,
            stripes_[stripe].physical_start_sectors * kSectorBytes +
                (chunk / stripes_.size()) * chunk_bytes_ + in_chunk,
            std::min(chunk_bytes_ - in_chunk, length)};
  }

  uint64_t NextChunk(uint64_t pos) const { return (pos / chunk_bytes_ + 1) * chunk_bytes_; }

  // As the kernel, one flush per stripe; every stripe gets it even when one fails.
  Status Flush(const IoRequest& req) {
    Status first;
    for (size_t i = 0; i < stripes_.size(); ++i) {
      Status s = Submit(i, req);
      if (first.ok() && !s.ok()) first = s;
    }
    return first;
  }

  Status Submit(size_t stripe, const IoRequest& piece) {
    Status s = blk_.Submit(*stripes_[stripe].dev.device, piece);
    // The kernel's stripe_end_io: a failure (other than "not supported") marks every stripe on
    // the failing device.
    if (!s.ok() && s.code() != EOPNOTSUPP) {
      for (size_t i = 0; i < stripes_.size(); ++i) {
        if (stripes_[i].dev.device == stripes_[stripe].dev.device) {
          errors_[i].fetch_add(1, std::memory_order_relaxed);
        }
      }
    }
    return s;
  }

  BlkCrypto& blk_;
  const std::vector<Stripe> stripes_;
  const uint64_t chunk_bytes_;
  std::unique_ptr<std::atomic<uint32_t>[]> errors_;
};

Result<std::unique_ptr<Target>> CreateStriped(const TargetEnv& env, const TargetArgs& args) {
  const auto& a = args.args;
  if (a.size() < 2) return Status::Error(EINVAL, "not enough arguments");
  auto stripes = ParseUnsigned(a[0], "stripe count", UINT32_MAX);
  if (!stripes.ok() || *stripes == 0) {
    return Status::Error(EINVAL, "invalid stripe count '" + a[0] + "'");
  }
  auto chunk = ParseUnsigned(a[1], "chunk size", UINT32_MAX);
  if (!chunk.ok() || *chunk == 0) return Status::Error(EINVAL, "invalid chunk size '" + a[1] + "'");
  if (args.length_sectors % *stripes != 0) {
    return Status::Error(EINVAL, "target length " + std::to_string(args.length_sectors) +
                                     " not divisible by number of stripes " + a[0]);
  }
  const uint64_t width = args.length_sectors / *stripes;
  if (width % *chunk != 0) {
    return Status::Error(EINVAL, "target length " + std::to_string(args.length_sectors) +
                                     " not divisible by chunk size " + a[1] + " per stripe");
  }
  if (a.size() != 2 + 2 * static_cast<uint64_t>(*stripes)) {
    return Status::Error(EINVAL, "expected " + std::to_string(*stripes) +
                                     " destinations (<dev> <offset>), got " +
                                     std::to_string(a.size() - 2) + " arguments for them");
  }
  std::vector<Stripe> list;
  list.reserve(*stripes);
  for (unsigned i = 0; i < *stripes; ++i) {
    const std::string field = "stripe " + std::to_string(i) + " offset";
    ICE_ASSIGN_OR_RETURN(uint64_t offset, ParseU64(a[3 + 2 * i], field));
    ICE_ASSIGN_OR_RETURN(DeviceRef dev, GetDeviceArea(env, a[2 + 2 * i], offset, width));
    list.push_back({std::move(dev), offset});
  }
  return std::unique_ptr<Target>(new StripedTarget(env, std::move(list), *chunk));
}

}  // namespace

const TargetType kStripedTarget = {"striped", /*passes_crypto=*/true, CreateStriped};

}  // namespace ice::dm
