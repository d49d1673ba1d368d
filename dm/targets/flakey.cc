#include "dm/targets/flakey.h"

#include <strings.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "dm/table.h"
#include "dm/targets/linear.h"

namespace ice::dm {
namespace {

constexpr unsigned kProbabilityBase = 1000000000;  // random_*_corrupt P counts per 10^9
constexpr unsigned kMaxFeatureWords = 11;

// The kernel's bi_opf bits that <flags> of corrupt_bio_byte is matched against.
constexpr uint32_t kReqOpRead = 0, kReqOpWrite = 1, kReqOpDiscard = 3, kReqOpWriteZeroes = 9;
constexpr uint32_t kReqFua = 1u << 17, kReqPreflush = 1u << 18;

Status Invalid(const std::string& what) { return Status::Error(EINVAL, "flakey: " + what); }

bool WordIs(const std::string& word, const char* name) {
  return strcasecmp(word.c_str(), name) == 0;
}

// dm_read_arg: a decimal in [min, max], else EINVAL with the kernel's message for that field.
Result<unsigned> ReadArg(const std::string& word, unsigned min, unsigned max, const char* error) {
  Result<uint64_t> v = ParseU64(word, "value");
  if (!v.ok() || *v < min || *v > max) return Invalid(std::string(error) + " '" + word + "'");
  return static_cast<unsigned>(*v);
}

struct Features {
  bool error_reads = false;
  bool drop_writes = false;
  bool error_writes = false;
  unsigned corrupt_byte = 0;  // 1-based; 0: no corrupt_bio_byte
  bool corrupt_writes = false;
  unsigned corrupt_value = 0;
  uint32_t corrupt_flags = 0;
  unsigned random_read = 0;  // per 10^9; 0: off
  unsigned random_write = 0;
};

bool CorruptsWrites(const Features& f) {
  return (f.corrupt_byte != 0 && f.corrupt_writes) || f.random_write != 0;
}

// The words after <down>: [<#feature_args> <feature>...]. As in the kernel, words after the
// counted group are ignored.
Result<Features> ParseFeatures(std::span<const std::string> words) {
  Features f;
  unsigned argc = 0;
  size_t next = 0;
  if (!words.empty()) {
    Result<uint64_t> n = ParseU64(words[0], "value");
    if (!n.ok() || *n > kMaxFeatureWords || *n > words.size() - 1) {
      return Invalid("Invalid number of feature args '" + words[0] + "'");
    }
    argc = static_cast<unsigned>(*n);
    next = 1;
  }
  auto shift = [&]() -> const std::string& {
    --argc;
    return words[next++];
  };
  while (argc > 0) {
    const std::string& name = shift();
    if (WordIs(name, "error_reads")) {
      if (f.error_reads) return Invalid("Feature error_reads duplicated");
      f.error_reads = true;
    } else if (WordIs(name, "drop_writes")) {
      if (f.drop_writes) return Invalid("Feature drop_writes duplicated");
      if (f.error_writes) return Invalid("Feature drop_writes conflicts with feature error_writes");
      f.drop_writes = true;
    } else if (WordIs(name, "error_writes")) {
      if (f.error_writes) return Invalid("Feature error_writes duplicated");
      if (f.drop_writes) return Invalid("Feature error_writes conflicts with feature drop_writes");
      f.error_writes = true;
    } else if (WordIs(name, "corrupt_bio_byte")) {
      if (f.corrupt_byte != 0) return Invalid("Feature corrupt_bio_byte duplicated");
      if (argc < 4) return Invalid("Feature corrupt_bio_byte requires 4 parameters");
      ICE_ASSIGN_OR_RETURN(f.corrupt_byte,
                           ReadArg(shift(), 1, UINT32_MAX, "Invalid corrupt bio byte"));
      const std::string& dir = shift();
      if (WordIs(dir, "w")) {
        f.corrupt_writes = true;
      } else if (WordIs(dir, "r")) {
        f.corrupt_writes = false;
      } else {
        return Invalid("Invalid corrupt bio direction (r or w) '" + dir + "'");
      }
      ICE_ASSIGN_OR_RETURN(
          f.corrupt_value,
          ReadArg(shift(), 0, 255, "Invalid corrupt value to write into bio byte (0-255)"));
      ICE_ASSIGN_OR_RETURN(f.corrupt_flags,
                           ReadArg(shift(), 0, UINT32_MAX, "Invalid corrupt bio flags mask"));
    } else if (WordIs(name, "random_read_corrupt") || WordIs(name, "random_write_corrupt")) {
      const bool reads = WordIs(name, "random_read_corrupt");
      unsigned& p = reads ? f.random_read : f.random_write;
      const std::string feature = reads ? "random_read_corrupt" : "random_write_corrupt";
      // As in the kernel, a feature given with P = 0 is off and may be given again.
      if (p != 0) return Invalid("Feature " + feature + " duplicated");
      if (argc < 1) return Invalid("Feature " + feature + " requires a parameter");
      ICE_ASSIGN_OR_RETURN(
          p, ReadArg(shift(), 0, kProbabilityBase, "Invalid random corrupt argument"));
    } else {
      return Invalid("Unrecognised flakey feature requested '" + name + "'");
    }
  }

  const bool corrupts_writes = CorruptsWrites(f);
  const bool corrupts_reads = (f.corrupt_byte != 0 && !f.corrupt_writes) || f.random_read != 0;
  if (f.drop_writes && corrupts_writes) {
    return Invalid(
        "drop_writes is incompatible with random_write_corrupt or corrupt_bio_byte with the WRITE "
        "flag set");
  }
  if (f.error_writes && corrupts_writes) {
    return Invalid(
        "error_writes is incompatible with random_write_corrupt or corrupt_bio_byte with the WRITE "
        "flag set");
  }
  if (f.error_reads && corrupts_reads) {
    return Invalid(
        "error_reads is incompatible with random_read_corrupt or corrupt_bio_byte with the READ "
        "flag set");
  }
  if (f.corrupt_byte == 0 && !f.error_reads && !f.drop_writes && !f.error_writes &&
      f.random_read == 0 && f.random_write == 0) {
    // Nothing to do when down but fail: the kernel records that as both error features.
    f.error_reads = true;
    f.error_writes = true;
  }
  return f;
}

uint32_t KernelOpf(const IoRequest& req) {
  uint32_t opf = kReqOpRead;
  switch (req.op) {
    case IoOp::kRead:
      opf = kReqOpRead;
      break;
    case IoOp::kWrite:
      opf = kReqOpWrite;
      break;
    case IoOp::kFlush:
      opf = kReqOpWrite | kReqPreflush;
      break;
    case IoOp::kDiscard:
      opf = kReqOpDiscard;
      break;
    case IoOp::kWriteZeroes:
      opf = kReqOpWriteZeroes;
      break;
  }
  if (req.fua) opf |= kReqFua;
  return opf;
}

uint64_t RandomU64() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

bool RandomHit(unsigned probability) {
  return probability != 0 && RandomU64() % kProbabilityBase < probability;
}

class FlakeyTarget final : public Target {
 public:
  FlakeyTarget(const TargetEnv& env, DeviceRef dev, uint64_t start_sectors, unsigned up,
               unsigned down, const Features& features)
      : blk_(env.blk),
        clock_(env.clock),
        dev_(std::move(dev)),
        start_sectors_(start_sectors),
        up_(up),
        down_(down),
        f_(features),
        start_time_(env.clock->Now()) {}

  Status Map(const IoRequest& req) override {
    IoRequest out = req;
    if (req.op != IoOp::kFlush) out.offset_bytes += start_sectors_ * kSectorBytes;
    if (!IsDown()) return blk_->Submit(*dev_.device, out);

    const bool has_data = req.has_data() && req.length_bytes > 0;
    if (req.op == IoOp::kRead) {
      if (f_.error_reads) return Status::Error(EIO, "flakey: read failed in the down interval");
      Status s = blk_->Submit(*dev_.device, out);
      if (s.ok() && has_data) CorruptRead(req);
      return s;
    }
    // Every other request is a write in the kernel's sense (a flush is an empty write).
    if (f_.drop_writes) return Status::Ok();
    if (f_.error_writes) {
      return Status::Error(
          EIO, std::string("flakey: ") + IoOpName(req.op) + " failed in the down interval");
    }
    if (!has_data) return blk_->Submit(*dev_.device, out);
    return SubmitCorruptedWrite(req, out);
  }

  std::string TableParams() const override {
    // Mainline's flakey_status (STATUSTYPE_TABLE), field for field: each after a space, none
    // after the last. Kernel 6.1 ended every field with a space instead, trailing one included.
    const unsigned words = f_.error_reads + f_.drop_writes + f_.error_writes +
                           (f_.corrupt_byte != 0) * 5 + (f_.random_read != 0) * 2 +
                           (f_.random_write != 0) * 2;
    std::string s = dev_.name + " " + std::to_string(start_sectors_) + " " + std::to_string(up_) +
                    " " + std::to_string(down_) + " " + std::to_string(words);
    if (f_.error_reads) s += " error_reads";
    if (f_.drop_writes) {
      s += " drop_writes";
    } else if (f_.error_writes) {
      s += " error_writes";
    }
    if (f_.corrupt_byte != 0) {
      s += " corrupt_bio_byte " + std::to_string(f_.corrupt_byte) +
           (f_.corrupt_writes ? " w " : " r ") + std::to_string(f_.corrupt_value) + " " +
           std::to_string(f_.corrupt_flags);
    }
    if (f_.random_read != 0) s += " random_read_corrupt " + std::to_string(f_.random_read);
    if (f_.random_write != 0) s += " random_write_corrupt " + std::to_string(f_.random_write);
    return s;
  }

  std::vector<DeviceRef> Devices() const override { return {dev_}; }
  std::optional<StoredRange> Locate(uint64_t offset, uint64_t length) const override {
    return LocateOn(dev_, start_sectors_ * kSectorBytes, offset, length);
  }
  bool supports_discard() const override { return dev_.device->supports_discard(); }

  // Hardening 10: the target cannot know whether keyed writes will come, so it says so whenever
  // write corruption is set.
  std::string Warning() const override {
    if (!CorruptsWrites(f_)) return "";
    return "corrupted writes go out from a copy without the crypto context, as in the kernel: a "
           "corrupted write that carried a key (a NAME@KEY export, a default-key above) reaches "
           "the medium in plaintext (warned whenever write corruption is set: the daemon cannot "
           "know whether keyed writes will come)";
  }

 private:
  bool IsDown() const {
    const auto elapsed =
        std::chrono::duration_cast<std::chrono::seconds>(clock_->Now() - start_time_).count();
    const uint64_t cycle = uint64_t{up_} + down_;
    return static_cast<uint64_t>(elapsed < 0 ? 0 : elapsed) % cycle >= up_;
  }

  bool FixedCorruptionApplies(const IoRequest& req, bool write) const {
    return f_.corrupt_byte != 0 && f_.corrupt_writes == write &&
           (KernelOpf(req) & f_.corrupt_flags) == f_.corrupt_flags;
  }

  // The kernel's corrupt_bio_data: a byte beyond the request's data is simply not there.
  void CorruptFixed(uint8_t* data, uint64_t length) const {
    const uint64_t index = f_.corrupt_byte - 1;
    if (index < length) data[index] = static_cast<uint8_t>(f_.corrupt_value);
  }

  static void CorruptRandom(uint8_t* data, uint64_t length) {
    data[RandomU64() % length] = static_cast<uint8_t>(RandomU64());
  }

  void CorruptRead(const IoRequest& req) const {
    if (FixedCorruptionApplies(req, /*write=*/false)) CorruptFixed(req.read_buf, req.length_bytes);
    if (RandomHit(f_.random_read)) CorruptRandom(req.read_buf, req.length_bytes);
  }

  Status SubmitCorruptedWrite(const IoRequest& req, IoRequest& out) const {
    const bool fixed = FixedCorruptionApplies(req, /*write=*/true);
    const bool random = RandomHit(f_.random_write);
    if (!fixed && !random) return blk_->Submit(*dev_.device, out);
    // The caller's buffer is never modified: corrupt a private copy (a fault-injection path, so
    // the allocation is acceptable). Like the kernel's clone it carries no crypto context (D8).
    std::vector<uint8_t> copy(req.write_buf, req.write_buf + req.length_bytes);
    if (fixed) CorruptFixed(copy.data(), copy.size());
    if (random) CorruptRandom(copy.data(), copy.size());
    out.write_buf = copy.data();
    out.crypt.reset();
    return blk_->Submit(*dev_.device, out);
  }

  BlkCrypto* const blk_;
  Clock* const clock_;
  const DeviceRef dev_;
  const uint64_t start_sectors_;
  const unsigned up_;
  const unsigned down_;
  const Features f_;
  const Clock::TimePoint start_time_;
};

Result<std::unique_ptr<Target>> CreateFlakey(const TargetEnv& env, const TargetArgs& args) {
  const std::vector<std::string>& a = args.args;
  if (a.size() < 4) return Invalid("Invalid argument count");
  Result<uint64_t> start = ParseU64(a[1], "device sector");
  if (!start.ok()) {
    return Invalid("Invalid device sector '" + a[1] + "'");
  }
  ICE_ASSIGN_OR_RETURN(unsigned up, ReadArg(a[2], 0, UINT32_MAX, "Invalid up interval"));
  ICE_ASSIGN_OR_RETURN(unsigned down, ReadArg(a[3], 0, UINT32_MAX, "Invalid down interval"));
  if (up == 0 && down == 0) return Invalid("Total (up + down) interval is zero");
  if (uint64_t{up} + down > UINT32_MAX) return Invalid("Interval overflow");
  ICE_ASSIGN_OR_RETURN(Features f, ParseFeatures(std::span(a).subspan(4)));

  Result<DeviceRef> dev = GetDeviceArea(env, a[0], *start, args.length_sectors);
  if (!dev.ok()) return dev.status().WithContext("flakey");
  return std::unique_ptr<Target>(
      std::make_unique<FlakeyTarget>(env, std::move(*dev), *start, up, down, f));
}

}  // namespace

const TargetType kFlakeyTarget{"flakey", /*passes_crypto=*/true, &CreateFlakey};

}  // namespace ice::dm
