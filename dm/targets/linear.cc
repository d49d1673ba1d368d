#include "dm/targets/linear.h"

#include <cerrno>
#include <string>

#include "dm/table.h"

namespace ice::dm {

Result<DeviceRef> GetDeviceArea(const TargetEnv& env, std::string_view name,
                                uint64_t offset_sectors, uint64_t length_sectors) {
  const std::string area =
      "start=" + std::to_string(offset_sectors) + ", len=" + std::to_string(length_sectors);
  // Checked before anything else, even for a device of size 0 whose size is not checked: such an
  // area would wrap when turned into bytes and reach the start of the device instead.
  if (offset_sectors > kMaxDeviceSectors || length_sectors > kMaxDeviceSectors - offset_sectors) {
    return Status::Error(EINVAL, "device area " + area + " ends beyond sector " +
                                     std::to_string(kMaxDeviceSectors) +
                                     ", the end of the largest device (INT64_MAX bytes)");
  }
  ICE_ASSIGN_OR_RETURN(DeviceRef ref, env.devices->Find(name));
  const uint64_t dev_sectors = ref.device->size_bytes() / kSectorBytes;
  if (dev_sectors != 0 &&
      (offset_sectors >= dev_sectors || length_sectors > dev_sectors - offset_sectors)) {
    return Status::Error(EINVAL, "device '" + ref.name + "' too small for target: " + area +
                                     ", dev_size=" + std::to_string(dev_sectors));
  }
  const uint32_t lbs = ref.device->logical_block_size();
  if (lbs > 1 && (offset_sectors * kSectorBytes) % lbs != 0) {
    return Status::Error(EINVAL, "start=" + std::to_string(offset_sectors) +
                                     " not aligned to the logical block size " +
                                     std::to_string(lbs) + " of device '" + ref.name + "'");
  }
  return ref;
}

namespace {

class LinearTarget final : public Target {
 public:
  LinearTarget(const TargetEnv& env, DeviceRef dev, uint64_t offset_sectors)
      : blk_(*env.blk), dev_(std::move(dev)), offset_sectors_(offset_sectors) {}

  Status Map(const IoRequest& req) override {
    if (req.op == IoOp::kFlush) return blk_.Submit(*dev_.device, req);
    IoRequest remapped = req;  // D8: the sector moves, the crypto context stays.
    remapped.offset_bytes += offset_sectors_ * kSectorBytes;
    return blk_.Submit(*dev_.device, remapped);
  }

  std::string TableParams() const override {
    return dev_.name + " " + std::to_string(offset_sectors_);
  }
  std::vector<DeviceRef> Devices() const override { return {dev_}; }
  std::optional<StoredRange> Locate(uint64_t offset, uint64_t length) const override {
    return LocateOn(dev_, offset_sectors_ * kSectorBytes, offset, length);
  }
  Status Extents(uint64_t offset, uint64_t length,
                 const BlockDevice::ExtentSink& sink) const override {
    return dev_.device->Extents(offset_sectors_ * kSectorBytes + offset, length, sink);
  }
  bool supports_discard() const override { return dev_.device->supports_discard(); }

 private:
  BlkCrypto& blk_;
  const DeviceRef dev_;
  const uint64_t offset_sectors_;
};

Result<std::unique_ptr<Target>> CreateLinear(const TargetEnv& env, const TargetArgs& args) {
  if (args.args.size() != 2) {
    return Status::Error(
        EINVAL, "expected 2 arguments (<dev> <offset>), got " + std::to_string(args.args.size()));
  }
  ICE_ASSIGN_OR_RETURN(uint64_t offset, ParseU64(args.args[1], "offset"));
  ICE_ASSIGN_OR_RETURN(DeviceRef dev,
                       GetDeviceArea(env, args.args[0], offset, args.length_sectors));
  return std::unique_ptr<Target>(new LinearTarget(env, std::move(dev), offset));
}

}  // namespace

const TargetType kLinearTarget = {"linear", /*passes_crypto=*/true, CreateLinear};

}  // namespace ice::dm
