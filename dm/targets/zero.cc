#include "dm/targets/zero.h"

#include <cerrno>
#include <cstring>
#include <string>

namespace ice::dm {
namespace {

class ZeroTarget final : public Target {
 public:
  Status Map(const IoRequest& req) override {
    if (req.op == IoOp::kRead) std::memset(req.read_buf, 0, req.length_bytes);
    return Status::Ok();
  }
  std::string TableParams() const override { return ""; }
  std::vector<DeviceRef> Devices() const override { return {}; }
  bool supports_discard() const override { return true; }
};

Result<std::unique_ptr<Target>> CreateZero(const TargetEnv&, const TargetArgs& args) {
  if (!args.args.empty()) {
    return Status::Error(EINVAL, "no arguments required, got " + std::to_string(args.args.size()));
  }
  return std::unique_ptr<Target>(new ZeroTarget());
}

}  // namespace

const TargetType kZeroTarget = {"zero", /*passes_crypto=*/false, CreateZero};

}  // namespace ice::dm
