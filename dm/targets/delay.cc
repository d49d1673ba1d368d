#include "dm/targets/delay.h"

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dm/table.h"
#include "dm/targets/linear.h"

namespace ice::dm {
namespace {

Status Invalid(const std::string& what) { return Status::Error(EINVAL, "delay: " + what); }

// One triple: where a class of requests goes and how long it waits.
struct DelayClass {
  DeviceRef dev;
  uint64_t start_sectors = 0;
  unsigned delay_ms = 0;
  unsigned ops = 0;  // requests of this class being delayed now; guarded by DelayTarget::mu_
};

class DelayTarget final : public Target {
 public:
  DelayTarget(const TargetEnv& env, DelayClass read, DelayClass write, DelayClass flush,
              size_t argc)
      : blk_(env.blk),
        clock_(env.clock),
        read_(std::move(read)),
        write_(std::move(write)),
        flush_(std::move(flush)),
        argc_(argc) {}

  Status Map(const IoRequest& req) override {
    DelayClass& c = req.op == IoOp::kRead ? read_ : req.op == IoOp::kFlush ? flush_ : write_;
    if (c.delay_ms != 0) Wait(c);
    IoRequest out = req;
    if (req.op != IoOp::kFlush) out.offset_bytes += c.start_sectors * kSectorBytes;
    return blk_->Submit(*c.dev.device, out);
  }

  std::string TableParams() const override {
    std::string s = Triple(read_);
    if (argc_ >= 6) s += " " + Triple(write_);
    if (argc_ >= 9) s += " " + Triple(flush_);
    return s;
  }

  std::string StatusParams() const override {
    std::lock_guard g(mu_);
    return std::to_string(read_.ops) + " " + std::to_string(write_.ops) + " " +
           std::to_string(flush_.ops);
  }

  std::vector<DeviceRef> Devices() const override {
    std::vector<DeviceRef> devs;
    for (const DelayClass* c : {&read_, &write_, &flush_}) {
      bool seen = false;
      for (const DeviceRef& d : devs) seen = seen || d.device == c->dev.device;
      if (!seen) devs.push_back(c->dev);
    }
    return devs;
  }

  // Where writes go: a read-modify-write must exclude other writes to the bytes it writes.
  std::optional<StoredRange> Locate(uint64_t offset, uint64_t length) const override {
    return LocateOn(write_.dev, write_.start_sectors * kSectorBytes, offset, length);
  }

  bool supports_discard() const override { return write_.dev.device->supports_discard(); }

  void Presuspend() override {
    std::lock_guard g(mu_);
    may_delay_ = false;
    ++releases_;
    cv_.notify_all();
  }

  void Resume() override {
    std::lock_guard g(mu_);
    may_delay_ = true;
  }

 private:
  static std::string Triple(const DelayClass& c) {
    return c.dev.name + " " + std::to_string(c.start_sectors) + " " + std::to_string(c.delay_ms);
  }

  // Holds the calling request until its delay has passed or Presuspend releases it.
  void Wait(DelayClass& c) {
    std::unique_lock lock(mu_);
    if (!may_delay_) return;
    const uint64_t release = releases_;
    const Clock::TimePoint deadline = clock_->Now() + std::chrono::milliseconds(c.delay_ms);
    ++c.ops;
    clock_->WaitUntil(lock, cv_, deadline, [&] { return releases_ != release; });
    --c.ops;
  }

  BlkCrypto* const blk_;
  Clock* const clock_;
  DelayClass read_, write_, flush_;
  const size_t argc_;

  mutable std::mutex mu_;       // guards the classes' ops, may_delay_, releases_
  std::condition_variable cv_;  // notified by Presuspend
  bool may_delay_ = true;
  uint64_t releases_ = 0;  // how many times Presuspend released every delayed request
};

Result<DelayClass> ParseClass(const TargetEnv& env, const TargetArgs& args, size_t first) {
  const std::vector<std::string>& a = args.args;
  DelayClass c;
  Result<uint64_t> start = ParseU64(a[first + 1], "device sector");
  if (!start.ok()) {
    return Invalid("Invalid device sector '" + a[first + 1] + "'");
  }
  c.start_sectors = *start;
  Result<uint64_t> ms = ParseU64(a[first + 2], "delay");
  if (!ms.ok() || *ms > UINT32_MAX) return Invalid("Invalid delay '" + a[first + 2] + "'");
  c.delay_ms = static_cast<unsigned>(*ms);
  Result<DeviceRef> dev = GetDeviceArea(env, a[first], c.start_sectors, args.length_sectors);
  if (!dev.ok()) return dev.status().WithContext("delay");
  c.dev = std::move(*dev);
  return c;
}

Result<std::unique_ptr<Target>> CreateDelay(const TargetEnv& env, const TargetArgs& args) {
  const size_t argc = args.args.size();
  if (argc != 3 && argc != 6 && argc != 9) return Invalid("Requires exactly 3, 6 or 9 arguments");
  ICE_ASSIGN_OR_RETURN(DelayClass read, ParseClass(env, args, 0));
  ICE_ASSIGN_OR_RETURN(DelayClass write, ParseClass(env, args, argc >= 6 ? 3 : 0));
  ICE_ASSIGN_OR_RETURN(DelayClass flush, ParseClass(env, args, argc >= 9 ? 6 : argc - 3));
  return std::unique_ptr<Target>(std::make_unique<DelayTarget>(
      env, std::move(read), std::move(write), std::move(flush), argc));
}

}  // namespace

const TargetType kDelayTarget{"delay", /*passes_crypto=*/false, &CreateDelay};

}  // namespace ice::dm
