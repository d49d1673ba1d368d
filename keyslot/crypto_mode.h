// Crypto modes and key configurations (rules C1–C3).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "block/status.h"

namespace ice {

enum class CryptoMode : uint8_t { kAes256Xts = 0, kAes128CbcEssiv, kAdiantum, kSm4Xts };
inline constexpr int kNumCryptoModes = 4;

// Key types as bit flags, so that a capability profile can hold a set of them.
enum class KeyType : uint8_t { kRaw = 1, kHwWrapped = 2 };
inline constexpr uint8_t kAllKeyTypes = 3;

struct CryptoModeInfo {
  CryptoMode mode;
  const char* name;   // "aes-256-xts"
  unsigned key_size;  // bytes of a raw key
  unsigned iv_size;   // bytes; the most DUN bytes a key of this mode may use
  bool implemented;   // whether ice can en/decrypt with it (OpenSSL 3.0 has no Adiantum/SM4-XTS)
};

const CryptoModeInfo& ModeInfo(CryptoMode mode);
std::optional<CryptoMode> ParseCryptoMode(std::string_view name);
const char* KeyTypeName(KeyType type);
std::optional<KeyType> ParseKeyType(std::string_view name);

inline constexpr uint32_t kMinDataUnitSize = 512;    // ice policy (C3 deviation)
inline constexpr uint32_t kMaxDataUnitSize = 65536;  // ice policy (C3 deviation)

// What a key needs of a device: the unit of capability matching (C1, K1).
struct CryptoConfig {
  CryptoMode mode = CryptoMode::kAes256Xts;
  uint32_t data_unit_size = 4096;
  unsigned dun_bytes = 8;
  KeyType key_type = KeyType::kRaw;

  friend bool operator==(const CryptoConfig&, const CryptoConfig&) = default;
  std::string ToString() const;  // "aes-256-xts/4096 dun_bytes=8 raw"
};

// C3: EINVAL (with a message naming the field) for a bad data unit size or DUN byte count.
Status ValidateConfig(const CryptoConfig& config);

}  // namespace ice
