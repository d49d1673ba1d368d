// A key: its configuration and its raw bytes (rules C1, C2, C7).
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "block/status.h"
#include "keyslot/crypto_mode.h"

namespace ice {

// Immutable once created; thread-safe to share. Keys are matched by identity (K2): `id()` is unique
// for the process's lifetime, so two keys with equal bytes are two keys. The raw bytes live in
// locked memory where the system allows it, are zeroed on destruction, and are never printed
// (there is deliberately no operator<<).
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
  CryptoKey(const CryptoConfig& config, uint8_t* bytes, size_t size, uint64_t id);
  CryptoConfig config_;
  uint8_t* bytes_;
  size_t size_;
  uint64_t id_;
};

using KeyPtr = std::shared_ptr<const CryptoKey>;

}  // namespace ice
