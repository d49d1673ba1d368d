// The `linear` target (rule T1; the kernel's dm-linear): maps its range onto a range of one
// device.
//
//   linear <dev> <offset>
//
// <offset> is in 512-byte sectors of <dev>; the range [offset, offset + length) must lie within
// the device. Table: "<dev> <offset>"; status: empty. Passes crypto contexts through unchanged
// (D7, D8); flushes go to the device; discards reach it when it supports them.
#pragma once

#include <cstdint>
#include <string_view>

#include "dm/target.h"

namespace ice::dm {

extern const TargetType kLinearTarget;

// A device as a target uses it: the kernel's dm_get_device and device_area_is_invalid. Resolves
// `name` through env.devices and checks that `length_sectors` sectors from `offset_sectors` lie
// within the device (a device of size 0, such as a mapped device with no table yet, is not
// checked, as in the kernel) and that `offset_sectors` is aligned to the device's logical block
// size. An area ending beyond kMaxDeviceSectors is refused whatever the device (the kernel takes
// any 64-bit sector; ice counts bytes, which would wrap). EINVAL naming the device, or the
// lookup's error. Shared by every target that maps onto a range of a device.
Result<DeviceRef> GetDeviceArea(const TargetEnv& env, std::string_view name,
                                uint64_t offset_sectors, uint64_t length_sectors);

}  // namespace ice::dm
