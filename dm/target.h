// A device-mapper target: a handful of operations behind one interface (the kernel's
// struct target_type), and the table of target types by name (dm/targets/target_types.cc).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "block/block_device.h"
#include "block/clock.h"
#include "block/status.h"
#include "keyslot/blk_crypto.h"
#include "keyslot/key_registry.h"

namespace ice::dm {

// A device a target sits on, as the table names it. Holding the pointer keeps the device alive.
struct DeviceRef {
  std::string name;
  std::shared_ptr<BlockDevice> device;
};

// Resolves device names in table lines (hardware and mapped devices, so tables stack).
class DeviceLookup {
 public:
  virtual ~DeviceLookup() = default;
  // ENXIO (message names the device) when there is no such device.
  virtual Result<DeviceRef> Find(std::string_view name) = 0;
};

// What a target's constructor may use. All pointers outlive every table.
struct TargetEnv {
  DeviceLookup* devices = nullptr;
  KeyRegistry* keys = nullptr;  // default-key's keyring form `:<size>:logon:<name>`
  BlkCrypto* blk = nullptr;     // every request a target sends below goes through blk->Submit
  Clock* clock = nullptr;
};

class Target {
 public:
  Target() = default;
  Target(const Target&) = delete;
  Target& operator=(const Target&) = delete;
  virtual ~Target() = default;

  // Performs one request that lies within the target: req.offset_bytes counts from the target's
  // first byte. Flushes arrive with offset and length 0 and go to every device below. A request
  // with a crypto context keeps its DUN when remapped (D8); a target that splits a request gives
  // each later piece the DUN advanced by its byte offset / data unit size. Thread-safe.
  virtual Status Map(const IoRequest& req) = 0;

  // The kernel's STATUSTYPE_TABLE and STATUSTYPE_INFO text, after "<start> <length> <type> ",
  // exactly as kernel's dmsetup prints it (trailing spaces included) with ice device names.
  virtual std::string TableParams() const = 0;
  virtual std::string StatusParams() const { return ""; }

  // `dmsetup message`: the words after the sector. EINVAL for unknown messages.
  // The reply is printed by icectl as it is ("" for none).
  virtual Result<std::string> Message(const std::vector<std::string>& words);

  // iterate_devices: every device the target sends I/O to.
  virtual std::vector<DeviceRef> Devices() const = 0;

  // Where the target's bytes from `offset_bytes` (within the target) are stored, as
  // BlockDevice::Locate; nullopt for a target that stores nothing below it (zero, error), whose
  // mapped device then stands for its own bytes.
  virtual std::optional<StoredRange> Locate(uint64_t /*offset_bytes*/,
                                            uint64_t /*length_bytes*/) const {
    return std::nullopt;
  }

  // Block status of the target's bytes from `offset_bytes`, as BlockDevice::Extents. By default
  // all data: a target that changes what reads return (a key, corruption, errors) must never
  // pass on a hole below it (N6).
  virtual Status Extents(uint64_t /*offset_bytes*/, uint64_t length_bytes,
                         const BlockDevice::ExtentSink& sink) const {
    sink(length_bytes, false);
    return Status::Ok();
  }

  // Called when the device is being suspended, before in-flight I/O is drained (delay releases
  // what it holds), and after a resume made this target's table live.
  virtual void Presuspend() {}
  // A suspend that was interrupted after Presuspend (the kernel's presuspend_undo).
  virtual void PresuspendUndo() {}
  virtual void Resume() {}

  virtual bool supports_discard() const { return false; }

  // What a user must know about this target although its table is valid (a fault that defeats
  // the encryption of some writes, say), passed on by `create` and `load`; "" for nothing.
  virtual std::string Warning() const { return ""; }

  // The alignment the target needs of every request (the kernel's io_hints logical_block_size):
  // default-key needs its sector size. A mapped device's is the largest of its live targets'.
  virtual uint32_t logical_block_size() const { return 1; }
};

// Locate for a target that maps its range one to one onto `dev` from `start_bytes`.
inline StoredRange LocateOn(const DeviceRef& dev, uint64_t start_bytes, uint64_t offset_bytes,
                            uint64_t length_bytes) {
  return dev.device->Locate(start_bytes + offset_bytes, length_bytes);
}

struct TargetArgs {
  uint64_t start_sector = 0;
  uint64_t length_sectors = 0;
  std::vector<std::string> args;
};

struct TargetType {
  std::string_view name;
  // D7: whether the type passes crypto contexts through to its devices.
  bool passes_crypto = false;
  // Builds a target from dmsetup args. EINVAL with a message naming the bad field, e.g.
  // "flakey: up interval 'x' is not a number". Allocates nothing that survives a failure.
  Result<std::unique_ptr<Target>> (*create)(const TargetEnv& env, const TargetArgs& args) = nullptr;
  // The index in `args` of a key given inline (hex) — secret unless it is a keyring reference,
  // which starts with ':' — or -1 for types that take no key. Table parsing wipes such arguments,
  // and config files holding them must be private (config/config.h).
  int key_arg = -1;
};

// The registry: one line per target type in dm/targets/target_types.cc.
const TargetType* FindTargetType(std::string_view name);
std::vector<const TargetType*> AllTargetTypes();

// Shared argument helpers for constructors (dm/target.cc). Each returns EINVAL naming `field`.
Result<uint64_t> ParseU64(std::string_view text, std::string_view field);
Result<unsigned> ParseUnsigned(std::string_view text, std::string_view field, unsigned max);

}  // namespace ice::dm
