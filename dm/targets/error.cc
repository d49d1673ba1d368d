#include "dm/targets/error.h"

#include <cerrno>
#include <optional>
#include <string>

#include "dm/targets/linear.h"

namespace ice::dm {
namespace {

class ErrorTarget final : public Target {
 public:
  explicit ErrorTarget(std::optional<DeviceRef> dev) : dev_(std::move(dev)) {}

  Status Map(const IoRequest& req) override {
    if (req.op == IoOp::kFlush) return Status::Ok();
    return Status::Error(EIO, "error target");
  }
  std::string TableParams() const override { return ""; }
  std::vector<DeviceRef> Devices() const override {
    if (dev_) return {*dev_};
    return {};
  }
  // The kernel advertises discards on it so that they fail with EIO rather than EOPNOTSUPP.
  bool supports_discard() const override { return true; }

 private:
  const std::optional<DeviceRef> dev_;
};

Result<std::unique_ptr<Target>> CreateError(const TargetEnv& env, const TargetArgs& args) {
  std::optional<DeviceRef> dev;
  if (args.args.size() == 2) {
    ICE_ASSIGN_OR_RETURN(uint64_t offset, ParseU64(args.args[1], "device sector"));
    ICE_ASSIGN_OR_RETURN(DeviceRef ref,
                         GetDeviceArea(env, args.args[0], offset, args.length_sectors));
    dev = std::move(ref);
  }
  return std::unique_ptr<Target>(new ErrorTarget(std::move(dev)));
}

}  // namespace

const TargetType kErrorTarget = {"error", /*passes_crypto=*/false, CreateError};

}  // namespace ice::dm
