// What a device can en/decrypt natively (rules K1, K9, K10).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "keyslot/crypto_mode.h"

namespace ice {

struct CryptoCapabilities {
  // Per mode, the supported data unit sizes as a mask of the sizes themselves (bit 12 = 4096),
  // as the kernel's modes_supported[] holds them.
  std::array<uint32_t, kNumCryptoModes> data_unit_masks{};
  unsigned max_dun_bytes = 0;
  uint8_t key_types = 0;  // KeyType flags

  // Everything: the starting point of a mapped device's profile (D3). max_dun_bytes is unlimited.
  static CryptoCapabilities All();

  void Add(CryptoMode mode, uint32_t data_unit_size) {
    data_unit_masks[static_cast<int>(mode)] |= data_unit_size;
  }
  bool HasAnyMode() const;
  // K1.
  bool SupportsNatively(const CryptoConfig& config) const;
  // K9: this &= child; a missing child (nullptr) clears everything.
  void IntersectWith(const CryptoCapabilities* child);
  // "aes-256-xts:512,4096 aes-128-cbc-essiv:4096 dun_bytes=8 keys=raw", or "none".
  std::string ToString() const;
  // Each (mode, data unit size) pair in human form: "aes-256-xts/4096".
  std::vector<std::string> Pairs() const;

  friend bool operator==(const CryptoCapabilities&, const CryptoCapabilities&) = default;
};

// K10: whether `target` supports everything `reference` does. A missing reference is always
// satisfied; a missing target satisfies only a missing reference.
bool HasCapabilities(const CryptoCapabilities* target, const CryptoCapabilities* reference);

// What `reference` has and `target` lacks, for error messages (D4): e.g.
// "aes-256-xts/4096, max DUN bytes 8 > 4". Empty when HasCapabilities holds.
std::string MissingCapabilities(const CryptoCapabilities* target,
                                const CryptoCapabilities* reference);

}  // namespace ice
