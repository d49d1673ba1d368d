// Names -> devices, for tables and targets built without a registry (dm and dm_targets tests).
#pragma once

#include <cerrno>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "dm/target.h"

namespace ice::dm::testing {

class MapLookup final : public DeviceLookup {
 public:
  void Add(const std::string& name, std::shared_ptr<BlockDevice> dev) { devices_[name] = dev; }
  Result<DeviceRef> Find(std::string_view name) override {
    auto it = devices_.find(std::string(name));
    if (it == devices_.end()) {
      return Status::Error(ENXIO, "no device named '" + std::string(name) + "'");
    }
    return DeviceRef{it->first, it->second};
  }

 private:
  std::map<std::string, std::shared_ptr<BlockDevice>> devices_;
};

}  // namespace ice::dm::testing
