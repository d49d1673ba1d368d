// A key: its configuration and its raw bytes (rules C1, C2, C7).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "block/status.h"
#include "keyslot/crypto_mode.h"

namespace ice {

class CryptoProfile;

// Immutable once created; thread-safe to share. Keys are matched by identity (K2): `id()` is unique
// for the process's lifetime, so two keys with equal bytes are two keys. The raw bytes live in
// locked memory where the system allows it (keyslot/key_memory.h), are zeroed on destruction, and
// are never printed (there is deliberately no operator<<).
//
// A key knows which keyslot managers have a slot mapping it (CryptoProfile keeps that record), and
// its destruction evicts it from all of them first (CryptoProfile::EvictEverywhere): no slot, and
// no prepared cipher, outlives the key, wherever routing or tables have moved since it was used.
// REQUIRES of the last owner: no I/O with the key is in flight (a slot in use loses its mapping,
// K6, but keeps its cipher until the slot is programmed again).
class CryptoKey {
 public:
  // C2/C3: EINVAL for a wrong size, bad configuration, or an XTS key with equal halves;
  // nothing is allocated on failure.
  static Result<std::shared_ptr<const CryptoKey>> Create(const CryptoConfig& config,
                                                         std::span<const uint8_t> raw_key);
  ~CryptoKey();
  CryptoKey(const CryptoKey&) = delete;
  CryptoKey& operator=(const CryptoKey&) = delete;

  uint64_t id() const { return id_; }
  const CryptoConfig& config() const { return config_; }

  // For programming a keyslot or preparing a cipher only. Never log, print or send these.
  std::span<const uint8_t> raw_bytes() const { return {bytes_, size_}; }

 private:
  friend class CryptoProfile;  // keeps placement_
  CryptoKey(const CryptoConfig& config, uint8_t* bytes, size_t size, uint64_t id);
  CryptoConfig config_;
  uint8_t* bytes_;
  size_t size_;
  uint64_t id_;
  // The profiles with a slot that maps this key (each at most once). A leaf lock: see the lock
  // order in crypto_profile.h.
  mutable std::mutex placement_mu_;
  mutable std::vector<CryptoProfile*> placement_;  // guarded by placement_mu_
};

using KeyPtr = std::shared_ptr<const CryptoKey>;

}  // namespace ice
