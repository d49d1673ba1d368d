// The daemon's state: hardware, keys, mapped devices and exports, built from the config (DESIGN
// "One process, clear rooms"). The nbdkit plugin and the control server are its only users.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "block/clock.h"
#include "block/status.h"
#include "config/config.h"
#include "daemon/device_stats.h"
#include "daemon/export.h"
#include "daemon/store_locks.h"
#include "dm/device_registry.h"
#include "keyslot/blk_crypto.h"
#include "keyslot/hardware_device.h"
#include "keyslot/key_registry.h"

namespace ice::daemon {

struct HardwareEntry {
  std::string name;
  std::string backing;  // as configured
  std::shared_ptr<HardwareDevice> device;
  CryptoCapabilities capabilities;
};

struct ExportListing {
  std::string name;
  std::string description;  // size, kind, crypto capabilities (N1)
};

class Engine {
 public:
  // Builds every backend, hardware device, key and mapped device of `config`, in that order.
  // All-or-nothing: the first failure is returned with what failed named.
  static Result<std::unique_ptr<Engine>> Create(const config::Config& config,
                                                Clock& clock = Clock::Real());
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const config::DaemonConfig& daemon_config() const { return daemon_; }

  // N1: every hardware and mapped device.
  std::vector<ExportListing> ListExports();
  // N2: `NAME` or `NAME@KEY`; "" is the configured default export. ENOENT for an unknown
  // device, key or empty name without a default; EINVAL/ENOTSUP when the key cannot be served on
  // the device. The message names what is wrong.
  Result<std::unique_ptr<Export>> OpenExport(std::string_view export_name);

  // Keys (P3, P4, N8).
  Status AddKey(const std::string& name, const CryptoConfig& config, std::span<const uint8_t> raw);
  // EBUSY while used; otherwise evicted from every device and the fallback, then dropped.
  Status RemoveKey(const std::string& name);
  // The registry name of the key with this id, or "" for a key not in the registry.
  std::string KeyName(uint64_t key_id) const;

  const std::vector<HardwareEntry>& hardware() const { return hardware_; }
  const HardwareEntry* FindHardware(std::string_view name) const;

  // Device numbers as device-mapper gives them (major 253, minors in creation order).
  unsigned MinorOf(const std::string& device_name);

  std::string MetricsText();

  // The daemon is stopping: I/O held by suspended devices fails with ESHUTDOWN and programming
  // latency waits end, so that every request and verb returns soon. Irreversible; thread-safe.
  void Shutdown();

  KeyRegistry& keys() { return *keys_; }
  dm::DeviceRegistry& devices() { return *devices_; }
  BlkCrypto& blk() { return *blk_; }

 private:
  Engine(const config::DaemonConfig& daemon, Clock& clock);
  Status Build(const config::Config& config);
  std::shared_ptr<DeviceStats> StatsFor(const std::string& device);

  config::DaemonConfig daemon_;
  Clock& clock_;
  // Destroyed in reverse: mapped devices first (their tables may evict keys through blk_).
  std::unique_ptr<BlkCrypto> blk_;
  std::unique_ptr<KeyRegistry> keys_;
  std::vector<HardwareEntry> hardware_;
  std::unique_ptr<dm::DeviceRegistry> devices_;
  StoreLocks store_locks_;  // every export's read-modify-write (N3, hardening 12)

  std::mutex mu_;  // guards the maps below
  std::map<std::string, std::shared_ptr<DeviceStats>> stats_;
  std::map<std::string, unsigned> minors_;
  unsigned next_minor_ = 0;
};

// Splits "NAME@KEY" into its parts (key empty when there is no '@').
std::pair<std::string, std::string> SplitExportName(std::string_view export_name);

}  // namespace ice::daemon
