#include "dm/targets/dust.h"

#include <strings.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "block/log.h"
#include "dm/split.h"
#include "dm/table.h"
#include "dm/targets/linear.h"

namespace ice::dm {
namespace {

constexpr uint64_t kMaxBlockBytes = uint64_t{1} << 30;  // the kernel's DUST_MAX_BLKSZ_SECTORS

Status Invalid(const std::string& what) { return Status::Error(EINVAL, "dust: " + what); }

bool WordIs(const std::string& word, const char* name) {
  return strcasecmp(word.c_str(), name) == 0;
}

class DustTarget final : public Target {
 public:
  DustTarget(const TargetEnv& env, DeviceRef dev, uint64_t begin_sectors, uint64_t start_sectors,
             uint32_t blksz)
      : blk_(env.blk),
        dev_(std::move(dev)),
        start_sectors_(start_sectors),
        blksz_(blksz),
        // The kernel's dust_map remaps an empty flush like any bio: sector 0 of the mapped
        // device, which dm_target_offset takes below the target's begin (wrapping when the target
        // does not start at 0), plus <offset>.
        flush_block_((start_sectors - begin_sectors) / (blksz / kSectorBytes)) {}

  Status Map(const IoRequest& req) override {
    if (req.op == IoOp::kFlush) {
      // A flush is a write to the kernel (REQ_OP_WRITE | REQ_PREFLUSH), so dust_map_write judges
      // it by that block: enabled, it fails while the block's write-fail count lasts and then
      // clears the block from the list, as a write would.
      ICE_RETURN_IF_ERROR(CheckBlock(req.op, flush_block_));
      return blk_->Submit(*dev_.device, req);
    }
    Status first_error;
    uint64_t done = 0;
    while (done < req.length_bytes) {
      const uint64_t offset = req.offset_bytes + done;
      const uint64_t piece = std::min(req.length_bytes - done, blksz_ - offset % blksz_);
      Status s = MapPiece(req, done, piece);
      if (!s.ok() && first_error.ok()) first_error = s;
      done += piece;
    }
    return first_error;
  }

  std::string TableParams() const override {
    return dev_.name + " " + std::to_string(start_sectors_) + " " + std::to_string(blksz_);
  }

  std::string StatusParams() const override {
    std::lock_guard g(mu_);
    return dev_.name + (enabled_ ? " fail_read_on_bad_block" : " bypass") +
           (quiet_ ? " quiet" : " verbose");
  }

  Result<std::string> Message(const std::vector<std::string>& words) override {
    switch (words.size()) {
      case 1:
        return Message1(words[0]);
      case 2:
      case 3:
        return MessageWithBlock(words);
      default:
        return Invalid("invalid number of arguments '" + std::to_string(words.size()) + "'");
    }
  }

  std::vector<DeviceRef> Devices() const override { return {dev_}; }
  std::optional<StoredRange> Locate(uint64_t offset, uint64_t length) const override {
    return LocateOn(dev_, start_sectors_ * kSectorBytes, offset, length);
  }
  bool supports_discard() const override { return dev_.device->supports_discard(); }

 private:
  // One piece of `req` that lies within one block: `skip` bytes from its start, `length` long.
  Status MapPiece(const IoRequest& req, uint64_t skip, uint64_t length) {
    // D8: dust does not pass crypto (D7), so a context here is unexpected; SplitPiece keeps its
    // DUN right all the same.
    const IoRequest out =
        SplitPiece(req, skip, length, start_sectors_ * kSectorBytes + req.offset_bytes + skip);
    ICE_RETURN_IF_ERROR(CheckBlock(req.op, out.offset_bytes / blksz_));
    return blk_->Submit(*dev_.device, out);
  }

  Status CheckBlock(IoOp op, uint64_t block) {
    std::lock_guard g(mu_);
    if (!enabled_) return Status::Ok();
    auto it = bad_.find(block);
    if (it == bad_.end()) return Status::Ok();
    if (op == IoOp::kRead) {
      return Status::Error(EIO, "dust: read of bad block " + std::to_string(block));
    }
    if (it->second > 0) {
      --it->second;
      return Status::Error(EIO, std::string("dust: ") + IoOpName(op) + " of bad block " +
                                    std::to_string(block) + " (write fail count now " +
                                    std::to_string(it->second) + ")");
    }
    bad_.erase(it);
    if (!quiet_) {
      ICE_LOG_RATELIMITED(spdlog::level::info,
                          "dust {}: block {} removed from badblocklist by write", dev_.name, block);
    }
    return Status::Ok();
  }

  Result<std::string> Message1(const std::string& word) {
    std::lock_guard g(mu_);
    if (WordIs(word, "addbadblock") || WordIs(word, "removebadblock") ||
        WordIs(word, "queryblock")) {
      return Invalid(word + " requires an additional argument");
    }
    if (WordIs(word, "disable")) {
      spdlog::info("dust {}: disabling read failures on bad sectors", dev_.name);
      enabled_ = false;
      return std::string();
    }
    if (WordIs(word, "enable")) {
      spdlog::info("dust {}: enabling read failures on bad sectors", dev_.name);
      enabled_ = true;
      return std::string();
    }
    if (WordIs(word, "countbadblocks")) {
      return "countbadblocks: " + std::to_string(bad_.size()) + " badblock(s) found";
    }
    if (WordIs(word, "clearbadblocks")) {
      const bool had = !bad_.empty();
      bad_.clear();
      return std::string(had ? "dust_clear_badblocks: badblocks cleared"
                             : "dust_clear_badblocks: no badblocks found");
    }
    if (WordIs(word, "quiet")) {
      quiet_ = !quiet_;
      return std::string();
    }
    if (WordIs(word, "listbadblocks")) {
      if (bad_.empty()) return std::string("No blocks in badblocklist");
      std::string list;
      for (const auto& [block, count] : bad_) list += std::to_string(block) + "\n";
      return list;
    }
    return Invalid("unrecognized message '" + word + "' received");
  }

  Result<std::string> MessageWithBlock(const std::vector<std::string>& words) {
    Result<uint64_t> block = ParseU64(words[1], "block");
    if (!block.ok()) return block.status().WithContext("dust");
    unsigned wr_fail_cnt = 0;
    if (words.size() == 3) {
      Result<uint64_t> n = ParseU64(words[2], "write fail count");
      if (!n.ok()) return n.status().WithContext("dust");
      if (*n > 255) return Invalid("selected write fail count out of range");
      wr_fail_cnt = static_cast<unsigned>(*n);
    }
    // The kernel's bound: the device's size in blocks, inclusive.
    if (*block > dev_.device->size_bytes() / blksz_) {
      return Invalid("selected block value out of range");
    }
    const std::string n = std::to_string(*block);
    std::lock_guard g(mu_);
    if (WordIs(words[0], "addbadblock")) {
      if (!bad_.emplace(*block, static_cast<uint8_t>(wr_fail_cnt)).second) {
        return Invalid("dust_add_block: block " + n + " already in badblocklist");
      }
      if (!quiet_) {
        spdlog::info("dust {}: dust_add_block: badblock added at block {} with write fail count {}",
                     dev_.name, n, wr_fail_cnt);
      }
      return std::string();
    }
    if (words.size() == 2 && WordIs(words[0], "removebadblock")) {
      if (bad_.erase(*block) == 0) {
        return Invalid("dust_remove_block: block " + n + " not found in badblocklist");
      }
      if (!quiet_) {
        spdlog::info("dust {}: dust_remove_block: badblock removed at block {}", dev_.name, n);
      }
      return std::string();
    }
    if (words.size() == 2 && WordIs(words[0], "queryblock")) {
      return "dust_query_block: block " + n +
             (bad_.count(*block) != 0 ? " found in badblocklist" : " not found in badblocklist");
    }
    return Invalid("unrecognized message '" + words[0] + "' received");
  }

  BlkCrypto* const blk_;
  const DeviceRef dev_;
  const uint64_t start_sectors_;
  const uint64_t blksz_;
  const uint64_t flush_block_;  // the block a flush is judged by

  mutable std::mutex mu_;            // guards everything below
  std::map<uint64_t, uint8_t> bad_;  // block -> write fail count, in order for listbadblocks
  bool enabled_ = false;             // the kernel's fail_read_on_bb
  bool quiet_ = false;
};

Result<std::unique_ptr<Target>> CreateDust(const TargetEnv& env, const TargetArgs& args) {
  const std::vector<std::string>& a = args.args;
  if (a.size() != 3) return Invalid("Invalid argument count");
  Result<uint64_t> blksz = ParseU64(a[2], "block size");
  if (!blksz.ok() || *blksz == 0 || *blksz > UINT32_MAX) {
    return Invalid("Invalid block size parameter '" + a[2] + "'");
  }
  if (*blksz < kSectorBytes) return Invalid("Block size must be at least 512");
  if ((*blksz & (*blksz - 1)) != 0) return Invalid("Block size must be a power of 2");
  if (*blksz > std::min(args.length_sectors * kSectorBytes, kMaxBlockBytes)) {
    return Invalid("Block size is too large");
  }
  Result<uint64_t> start = ParseU64(a[1], "device offset sector");
  if (!start.ok()) {
    return Invalid("Invalid device offset sector '" + a[1] + "'");
  }
  Result<DeviceRef> dev = GetDeviceArea(env, a[0], *start, args.length_sectors);
  if (!dev.ok()) return dev.status().WithContext("dust");
  return std::unique_ptr<Target>(std::make_unique<DustTarget>(
      env, std::move(*dev), args.start_sector, *start, static_cast<uint32_t>(*blksz)));
}

}  // namespace

const TargetType kDustTarget{"dust", /*passes_crypto=*/false, &CreateDust};

}  // namespace ice::dm
