// The interface every device of ice implements: backends, emulated hardware, mapped devices.
#pragma once

#include <cstdint>
#include <string>

#include "block/request.h"
#include "block/status.h"

namespace ice {

class CryptoProfile;  // keyslot/crypto_profile.h

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
};

}  // namespace ice
