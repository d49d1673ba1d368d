// The interface every device of ice implements: backends, emulated hardware, mapped devices.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "block/request.h"
#include "block/status.h"

namespace ice {

class CryptoProfile;  // keyslot/crypto_profile.h
class BlockDevice;

// Where a byte range of a device is stored: on `store` (the device at the bottom of a stack,
// which keeps the bytes itself) from `offset_bytes`, for `length_bytes` contiguous bytes.
struct StoredRange {
  const BlockDevice* store = nullptr;
  uint64_t offset_bytes = 0;
  uint64_t length_bytes = 0;
};

class BlockDevice {
 public:
  BlockDevice() = default;
  BlockDevice(const BlockDevice&) = delete;
  BlockDevice& operator=(const BlockDevice&) = delete;
  virtual ~BlockDevice() = default;

  virtual uint64_t size_bytes() const = 0;

  // The device's inline-encryption profile, or nullptr when it has no inline encryption (the
  // kernel's q->crypto_profile). Stable for the device's lifetime, except that a mapped device's
  // is nullptr until a table with capabilities is first resumed, and stays set from then on.
  virtual CryptoProfile* crypto_profile() { return nullptr; }

  // Performs `req` synchronously and returns its outcome. Thread-safe: requests may run
  // concurrently and complete in any order. REQUIRES: the range lies within [0, size_bytes()).
  // A request carrying a crypto context is only submitted to a device whose profile supports the
  // key's configuration natively (keyslot/blk_crypto.h routes the others through the fallback).
  virtual Status Submit(const IoRequest& req) = 0;

  // Whether a discard can reach the medium through this device.
  virtual bool supports_discard() const { return false; }

  // The unit every request's offset and length must be aligned to (the kernel's logical block
  // size): 1 for byte-addressable devices; a default-key device needs its sector size. Exports
  // serve smaller or unaligned requests by read-modify-write (rule N3).
  virtual uint32_t logical_block_size() const { return 1; }

  // Where the first bytes of [offset_bytes, offset_bytes + length_bytes) are stored, and for how
  // many of them (at least 1, at most length_bytes) the mapping runs on contiguously. Locks that
  // must see two stacks over the same stored bytes (lin0@k and hw0@k over hw0) take their ranges
  // there (hardening 12). A mapped device answers for its live table at the time of the call.
  // Thread-safe. By default a device stores its bytes itself.
  virtual StoredRange Locate(uint64_t offset_bytes, uint64_t length_bytes) const {
    return {this, offset_bytes, length_bytes};
  }

  // Receives one extent: its length and whether it is a hole (unallocated, and reads as zeros);
  // returns false to stop.
  using ExtentSink = std::function<bool(uint64_t length_bytes, bool hole)>;
  // Block status (rule N6): describes [offset_bytes, offset_bytes + length_bytes) from its start
  // as extents in order, until the range is covered or `sink` says stop. A range is a hole only
  // if reading it through this device returns zeros. By default: all data. REQUIRES: the range
  // lies within [0, size_bytes()).
  virtual Status Extents(uint64_t offset_bytes, uint64_t length_bytes,
                         const ExtentSink& sink) const {
    (void)offset_bytes;
    sink(length_bytes, false);
    return Status::Ok();
  }
};

}  // namespace ice
