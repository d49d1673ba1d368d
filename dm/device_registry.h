// Every named device of the daemon (hardware and mapped) and dmsetup's verbs on mapped devices
// (rules D1–D8). The daemon wires these to the control socket. Thread-safe; state-changing verbs
// are serialised (P5) while I/O keeps running on every device not being suspended.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "block/block_device.h"
#include "block/clock.h"
#include "block/interrupt.h"
#include "dm/target.h"
#include "keyslot/blk_crypto.h"
#include "keyslot/key_registry.h"

namespace ice::dm {

class MappedDevice;
class Table;

enum class DeviceKind { kHardware, kMapped };

struct DeviceInfo {
  std::string name;
  DeviceKind kind = DeviceKind::kMapped;
  uint64_t size_bytes = 0;
  bool suspended = false;
  bool suspending = false;  // a suspend is draining its in-flight I/O (new I/O is held already)
  bool live_table = false;
  bool inactive_table = false;
  int open_count = 0;   // NBD connections that have it open
  int holders = 0;      // tables (live or inactive) of other devices that use it
  int num_targets = 0;  // of the live table
  uint32_t event_nr = 0;
  std::string capabilities;  // CryptoCapabilities::ToString() of what it advertises, or "none"
};

// An open of a device by a connection (N8: such a device cannot be removed). Move-only.
class OpenDevice {
 public:
  OpenDevice() = default;
  OpenDevice(OpenDevice&&) noexcept;
  OpenDevice& operator=(OpenDevice&&) noexcept;
  ~OpenDevice();
  BlockDevice* get() const { return device_.get(); }
  BlockDevice* operator->() const { return device_.get(); }
  const std::string& name() const { return name_; }

 private:
  friend class DeviceRegistry;
  class DeviceRegistry* reg_ = nullptr;
  std::string name_;
  std::shared_ptr<BlockDevice> device_;
};

class DeviceRegistry final : public DeviceLookup {
 public:
  DeviceRegistry(KeyRegistry& keys, BlkCrypto& blk, Clock& clock = Clock::Real());
  ~DeviceRegistry() override;
  DeviceRegistry(const DeviceRegistry&) = delete;
  DeviceRegistry& operator=(const DeviceRegistry&) = delete;

  // Registers a hardware (or any non-mapped) device. EEXIST / EINVAL for a taken or bad name.
  Status AddHardware(const std::string& name, std::shared_ptr<BlockDevice> device);

  // The verbs below that change state are serialised (P5). Each waits only as long as `stop`
  // lets it (for the verb before it, or for in-flight I/O to drain) and then fails with its
  // error (ETIMEDOUT, ECANCELED), having changed nothing.
  //
  // dmsetup create: a new mapped device; with table lines, loaded and resumed (all-or-nothing, P3).
  // When it succeeds, the table's warnings (Table::Warnings) are logged and, if `warnings` is
  // given, stored there.
  Status Create(const std::string& name, const std::vector<std::string>& table_lines,
                std::vector<std::string>* warnings = nullptr,
                const Interrupt& stop = Interrupt::Never());
  // dmsetup load: validates (D1, D3, D4) and stores the inactive table, replacing one already
  // loaded. A rejected table leaves the device exactly as it was. Warnings as for Create.
  Status Load(const std::string& name, const std::vector<std::string>& table_lines,
              std::vector<std::string>* warnings = nullptr,
              const Interrupt& stop = Interrupt::Never());
  // dmsetup clear: drops the inactive table.
  Status Clear(const std::string& name, const Interrupt& stop = Interrupt::Never());
  // D2: stops dispatch, drains in-flight I/O. Suspend and Resume are serialised per device only
  // (the kernel's suspend_lock), not with the other verbs: a suspend that waits for I/O held by
  // another suspended device must never keep that device's resume out.
  Status Suspend(const std::string& name, const Interrupt& stop = Interrupt::Never());
  // D2, D5: swaps in the inactive table if any.
  Status Resume(const std::string& name, const Interrupt& stop = Interrupt::Never());
  // EBUSY while open by a connection or used by another device's table.
  Status Remove(const std::string& name, const Interrupt& stop = Interrupt::Never());

  // dmsetup table [--inactive] / status: one line per target, "<start> <len> <type> <params>".
  Result<std::vector<std::string>> Table(const std::string& name, bool inactive = false);
  Result<std::vector<std::string>> StatusLines(const std::string& name);
  Result<DeviceInfo> Info(const std::string& name);
  // dmsetup message NAME SECTOR WORDS…: to the target of the live table holding SECTOR.
  Result<std::string> Message(const std::string& name, uint64_t sector,
                              const std::vector<std::string>& words,
                              const Interrupt& stop = Interrupt::Never());
  std::vector<DeviceInfo> List();

  Result<DeviceRef> Find(std::string_view name) override;
  // For a connection: ENOENT when unknown.
  Result<OpenDevice> Open(const std::string& name);

  // The daemon is stopping: I/O held by a suspended device, now or later, fails with ESHUTDOWN
  // instead of waiting for a resume (MappedDevice::Shutdown), so the server can finish its
  // requests and exit. Thread-safe; irreversible.
  void Shutdown();

 private:
  friend class OpenDevice;
  friend class TableLookup;
  void Close(const std::string& name);
  struct Entry;
  // ENXIO when unknown, EINVAL for a device that is not a mapped device.
  Result<std::shared_ptr<MappedDevice>> FindMapped(const std::string& name) const;
  // Every mapped device, by name (a snapshot: the devices may be removed meanwhile).
  std::vector<std::shared_ptr<MappedDevice>> MappedDevices() const;
  // Builds a table for device `self` from dmsetup lines; devices are looked up refusing `self`
  // and any device that reaches `self` through its tables. REQUIRES: verbs_mu_ held.
  Result<std::shared_ptr<dm::Table>> BuildTable(const std::string& self,
                                                const std::vector<std::string>& lines);
  // Logs the warnings of `table`, the new table of device `name`, and stores them in `out`.
  static void PassOnWarnings(const std::string& name, const dm::Table& table,
                             std::vector<std::string>* out);
  // Whether device `from` is `to` or maps onto it through any table, live or not.
  bool Reaches(const std::string& from, const std::string& to) const;
  // The tables of other mapped devices that use `name`, and the first such device's name.
  int Holders(const std::string& name, std::string* first_holder) const;
  DeviceInfo MakeInfo(const std::string& name, DeviceKind kind,
                      const std::shared_ptr<BlockDevice>& device,
                      const std::shared_ptr<MappedDevice>& mapped, int open_count) const;

  // Lock order: verbs_mu_, then mu_, then a mapped device's own locks. Suspend and Resume do not
  // take verbs_mu_: their drain may wait for I/O that is itself queued on another suspended
  // device, which only a Resume of that device releases (the kernel, too, has only a per-device
  // suspend lock there).
  InterruptibleMutex verbs_mu_;  // serialises state-changing verbs (P5)
  mutable std::mutex mu_;        // guards entries_ and each entry's open_count; held only briefly
  std::map<std::string, std::unique_ptr<Entry>, std::less<>> entries_;
  bool shut_down_ = false;  // guarded by mu_
  KeyRegistry& keys_;
  BlkCrypto& blk_;
  Clock& clock_;
  TargetEnv env_;
};

}  // namespace ice::dm
