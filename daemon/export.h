// One NBD connection's view of a device: `NAME` or `NAME@KEY` (rules N2–N6).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "block/status.h"
#include "daemon/device_stats.h"
#include "daemon/store_locks.h"
#include "dm/device_registry.h"
#include "keyslot/blk_crypto.h"
#include "keyslot/key_registry.h"

namespace ice::daemon {

class Export {
 public:
  // `key` empty: the device as its table makes it. Otherwise every I/O carries the key with
  // DUN = byte offset / data unit size (N2). `locks` serialise read-modify-write where the bytes
  // are stored; the daemon has one for all its exports (hardening 12).
  Export(std::string name, dm::OpenDevice device, std::optional<KeyUse> key, BlkCrypto& blk,
         StoreLocks& locks, std::shared_ptr<DeviceStats> stats);
  Export(const Export&) = delete;
  Export& operator=(const Export&) = delete;

  const std::string& name() const { return name_; }
  bool keyed() const { return key_.has_value(); }
  // Fixed at open. A keyed export ends at the last whole data unit of the device.
  uint64_t size_bytes() const { return size_bytes_; }
  // N3: minimum = preferred block size: the key's data unit size, or the device's logical block
  // size (a default-key device's sector size). Requests not aligned to it are still served.
  uint32_t block_size() const { return unit_; }
  // Whether a TRIM discards (an unkeyed export over devices that all discard); elsewhere it
  // zeroes (Trim).
  bool discards() const;

  // Thread-safe: nbdkit calls these from many threads at once.
  Status Read(uint8_t* buf, uint64_t length, uint64_t offset);
  Status Write(const uint8_t* buf, uint64_t length, uint64_t offset, bool fua);
  // N4: makes every acknowledged write durable on every backend below the device.
  Status Flush();
  // TRIM, served on every export (issue 19): discarded where discards() (whole units only, as
  // TRIM is advisory), otherwise zeroed as Zero() does, encrypted on a keyed path: nbdfuse turns
  // a loop device's WRITE_ZEROES into a TRIM and reads zeros back, and a hole under ciphertext
  // would not read as zeros (N5). `fua` makes the zeros durable before the reply.
  Status Trim(uint64_t length, uint64_t offset, bool fua);
  // Block status (N6, issue 19): an unkeyed export reports its device's holes, so that copies
  // stay sparse; a keyed one reports data everywhere (a hole under ciphertext does not read as
  // zeros through the key).
  Status Extents(uint64_t length, uint64_t offset, const BlockDevice::ExtentSink& sink) const;
  // N5: on an encrypted path, encrypted zeros are written (never a hole under ciphertext).
  Status Zero(uint64_t length, uint64_t offset, bool fua);

 private:
  IoRequest Request(IoOp op, uint64_t offset, uint64_t length) const;
  Status Submit(const IoRequest& req) { return blk_.Submit(*device_.get(), req); }
  Status ReadUnaligned(uint8_t* buf, uint64_t length, uint64_t offset);
  // Writes `length` bytes at `offset` (inside one unit) by read-modify-write; `data` null = zeros.
  Status PatchUnit(const uint8_t* data, uint64_t length, uint64_t offset, bool fua);
  Status WriteOrZero(const uint8_t* buf, uint64_t length, uint64_t offset, bool fua);

  std::string name_;
  dm::OpenDevice device_;
  std::optional<KeyUse> key_;
  BlkCrypto& blk_;
  // The units of [begin, end) where they are stored, held in `mode` for one request.
  StoreLocks::Guard LockUnits(uint64_t begin, uint64_t end, RangeLock::Mode mode) {
    return locks_.Lock(*device_.get(), begin, end, mode);
  }
  StoreLocks& locks_;
  std::shared_ptr<DeviceStats> stats_;
  uint32_t unit_;
  uint64_t size_bytes_;
};

}  // namespace ice::daemon
