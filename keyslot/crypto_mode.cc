#include "keyslot/crypto_mode.h"

#include <array>
#include <bit>
#include <cerrno>

namespace ice {
namespace {

constexpr std::array<CryptoModeInfo, kNumCryptoModes> kModes = {{
    {CryptoMode::kAes256Xts, "aes-256-xts", 64, 16, true},
    {CryptoMode::kAes128CbcEssiv, "aes-128-cbc-essiv", 16, 16, true},
    {CryptoMode::kAdiantum, "adiantum", 32, 32, false},
    {CryptoMode::kSm4Xts, "sm4-xts", 32, 16, false},
}};

}  // namespace

const CryptoModeInfo& ModeInfo(CryptoMode mode) { return kModes[static_cast<int>(mode)]; }

std::optional<CryptoMode> ParseCryptoMode(std::string_view name) {
  for (const auto& m : kModes) {
    if (name == m.name) return m.mode;
  }
  return std::nullopt;
}

const char* KeyTypeName(KeyType type) { return type == KeyType::kRaw ? "raw" : "hw-wrapped"; }

std::optional<KeyType> ParseKeyType(std::string_view name) {
  if (name == "raw") return KeyType::kRaw;
  if (name == "hw-wrapped") return KeyType::kHwWrapped;
  return std::nullopt;
}

std::string CryptoConfig::ToString() const {
  return std::string(ModeInfo(mode).name) + "/" + std::to_string(data_unit_size) +
         " dun_bytes=" + std::to_string(dun_bytes) + " " + KeyTypeName(key_type);
}

Status ValidateConfig(const CryptoConfig& config) {
  const int m = static_cast<int>(config.mode);
  if (m < 0 || m >= kNumCryptoModes) return Status::Error(EINVAL, "unknown crypto mode");
  if (config.key_type != KeyType::kRaw && config.key_type != KeyType::kHwWrapped)
    return Status::Error(EINVAL, "unknown key type");
  if (!std::has_single_bit(config.data_unit_size) || config.data_unit_size < kMinDataUnitSize ||
      config.data_unit_size > kMaxDataUnitSize) {
    return Status::Error(EINVAL, "data unit size " + std::to_string(config.data_unit_size) +
                                     " is not a power of two in 512…65536");
  }
  const unsigned iv = ModeInfo(config.mode).iv_size;
  if (config.dun_bytes < 1 || config.dun_bytes > iv) {
    return Status::Error(EINVAL, "dun_bytes " + std::to_string(config.dun_bytes) + " is not in 1…" +
                                     std::to_string(iv) + " for " + ModeInfo(config.mode).name);
  }
  return Status::Ok();
}

}  // namespace ice
