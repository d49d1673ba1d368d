// Where the crypto of one request happens (the kernel's block/blk-crypto.c): every submission of a
// request to a device goes through BlkCrypto::Submit, which checks the crypto context (C6), then
// sends the request to the device when the device's profile supports the key's configuration
// natively, and through the software fallback above it otherwise (F1).
#pragma once

#include <memory>

#include "block/block_device.h"
#include "block/status.h"
#include "keyslot/crypto_key.h"
#include "keyslot/fallback.h"

namespace ice {

class BlkCrypto {
 public:
  // `fallback_slots`: the fallback's pool of prepared keys (F2; the kernel's default is 100).
  explicit BlkCrypto(unsigned fallback_slots = 100);
  BlkCrypto(const BlkCrypto&) = delete;
  BlkCrypto& operator=(const BlkCrypto&) = delete;

  // Submits `req` to `dev`. For a request with a crypto context:
  //  - kFlush/kDiscard with a context: EIO (C6: a crypto I/O must carry data);
  //  - offset or length not a multiple of the key's data unit size: EINVAL, logged, nothing done
  //  (C6);
  //  - kWriteZeroes: written as encrypted zeros, in chunks (N5);
  //  - natively supported by dev's profile: passed to dev as it is; otherwise: the fallback (F1).
  // Requests without a context go straight to dev. Thread-safe.
  Status Submit(BlockDevice& dev, const IoRequest& req);

  // F4: evicts `key` from dev's own profile when dev supports its configuration natively (a mapped
  // device's profile forwards below, D6), otherwise from the fallback's pool.
  Status EvictKey(BlockDevice& dev, const CryptoKey& key);

  // N2: OK when I/O with `config` can be served on dev, natively or by the fallback; otherwise
  // EINVAL/ENOTSUP with a message naming what is missing.
  Status CheckServable(BlockDevice& dev, const CryptoConfig& config) const;

  Fallback& fallback() { return fallback_; }

 private:
  Fallback fallback_;
};

}  // namespace ice
