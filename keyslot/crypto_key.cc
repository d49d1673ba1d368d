#include "keyslot/crypto_key.h"

#include <openssl/crypto.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "block/log.h"
#include "keyslot/crypto_profile.h"
#include "keyslot/key_memory.h"

namespace ice {
namespace {

std::atomic<uint64_t> g_next_key_id{1};

}  // namespace
Result<std::shared_ptr<const CryptoKey>> CryptoKey::Create(const CryptoConfig& config,
                                                           std::span<const uint8_t> raw_key) {
  ICE_RETURN_IF_ERROR(ValidateConfig(config));
  const CryptoModeInfo& info = ModeInfo(config.mode);
  if (config.key_type != KeyType::kRaw) {
    return Status::Error(EINVAL, "ice supports raw keys only");
  }
  if (raw_key.size() != info.key_size) {
    return Status::Error(EINVAL, std::string(info.name) + " needs a " +
                                     std::to_string(info.key_size) + "-byte key, got " +
                                     std::to_string(raw_key.size()) + " bytes");
  }
  const bool xts = config.mode == CryptoMode::kAes256Xts || config.mode == CryptoMode::kSm4Xts;
  const size_t half = raw_key.size() / 2;
  if (xts && CRYPTO_memcmp(raw_key.data(), raw_key.data() + half, half) == 0) {
    return Status::Error(EINVAL, "XTS key halves are equal (a weak key the kernel refuses)");
  }
  uint8_t* bytes = AllocateKeyBytes(raw_key.size());
  if (bytes == nullptr) {
    // Refused rather than put in unlocked memory (keyslot/key_memory.h).
    const KeyMemoryState m = GetKeyMemoryState();
    return Status::Error(ENOMEM, "key memory is full (" + std::to_string(m.used_bytes / 1024) +
                                     " of " + std::to_string(m.arena_bytes / 1024) +
                                     " KiB in use; the arena is sized at start from the "
                                     "configured keys)");
  }
  std::memcpy(bytes, raw_key.data(), raw_key.size());
  return std::shared_ptr<const CryptoKey>(
      new CryptoKey(config, bytes, raw_key.size(), g_next_key_id.fetch_add(1)));
}

CryptoKey::CryptoKey(const CryptoConfig& config, uint8_t* bytes, size_t size, uint64_t id)
    : config_(config), bytes_(bytes), size_(size), id_(id) {}

// The kernel leaves blk_crypto_evict_key to the key's owner, and a forgotten or misrouted call
// leaves a slot pointing at freed memory (dm_keyslot_evict walks only the live table). Here the
// key's end evicts it wherever it went.
CryptoKey::~CryptoKey() {
  const Status s = CryptoProfile::EvictEverywhere(*this);
  if (!s.ok()) spdlog::warn("dropping key #{}: {}", id_, s.ToString());
  FreeKeyBytes(bytes_, size_);
}

}  // namespace ice
