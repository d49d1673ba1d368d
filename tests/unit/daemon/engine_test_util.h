// Config pieces the daemon's unit tests build engines from.
#pragma once

#include <string>

#include "config/config.h"

namespace ice::daemon::testing {

// A memory-backed hardware device of 1 MiB with inline AES-256-XTS at 4096-byte data units.
inline config::HardwareConfig XtsHardware(const std::string& name, unsigned keyslots = 2) {
  config::HardwareConfig hw;
  hw.name = name;
  hw.backing = "memory";
  hw.size_bytes = 1 << 20;
  hw.keyslots = keyslots;
  hw.capabilities.Add(CryptoMode::kAes256Xts, 4096);
  hw.capabilities.max_dun_bytes = 8;
  hw.capabilities.key_types = static_cast<uint8_t>(KeyType::kRaw);
  return hw;
}

}  // namespace ice::daemon::testing
