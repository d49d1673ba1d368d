// The software fallback (the kernel's block/blk-crypto-fallback.c; rules F1–F3): en/decryption
// above a device that cannot do a configuration natively.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "block/block_device.h"
#include "block/status.h"
#include "keyslot/crypto_profile.h"
#include "keyslot/data_unit_cipher.h"

namespace ice {

class Fallback final : private KeyslotOps {
 public:
  explicit Fallback(unsigned num_slots = 100);
  ~Fallback() override;
  Fallback(const Fallback&) = delete;
  Fallback& operator=(const Fallback&) = delete;

  // F2: every mode ice implements, every data unit size, 32 DUN bytes, raw keys.
  static CryptoCapabilities Capabilities();

  // F1: `req` carries a context dev cannot take natively. Writes are encrypted into bounce
  // buffers (the caller's buffer is never modified) and sent without a context; reads are sent
  // without one and decrypted in place only if the read succeeded. A fallback slot is held only
  // while en/decrypting, never across the device I/O (F2). Hardware-wrapped keys: EOPNOTSUPP.
  // The requests sent down have via_fallback set. REQUIRES: req.crypt, req.has_data(), aligned.
  Status Submit(BlockDevice& dev, const IoRequest& req);

  // K6 on the fallback's own pool.
  Status EvictKey(const CryptoKey& key);

  const CryptoProfile& profile() const { return profile_; }
  // Pool slots holding a prepared cipher (a key schedule); an evicted key leaves none (C7).
  size_t prepared_ciphers() const { return prepared_.load(std::memory_order_relaxed); }

 private:
  Status ProgramKey(const CryptoKey& key, unsigned slot) override;
  Status EvictKey(const CryptoKey& key, std::optional<unsigned> slot) override;

  std::vector<std::unique_ptr<DataUnitCipher>> ciphers_;  // one per slot; see fallback.cc
  std::atomic<size_t> prepared_{0};                       // non-null ciphers_
  CryptoProfile profile_;  // declared last: destroyed first, while ciphers_ still exist
};

}  // namespace ice
