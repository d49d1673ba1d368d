#include "keyslot/crypto_key.h"

#include <openssl/crypto.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "block/log.h"
#include "keyslot/crypto_profile.h"

namespace ice {
namespace {

std::atomic<uint64_t> g_next_key_id{1};

// OpenSSL's secure heap is an mlock'ed arena that is excluded from core dumps. Keys are small: a
// 256 KiB arena holds thousands. When it cannot be set up (RLIMIT_MEMLOCK) or is full, key bytes
// go to the ordinary heap; they are still zeroed on release.
void InitSecureHeapOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (!CRYPTO_secure_malloc_initialized()) CRYPTO_secure_malloc_init(256 * 1024, 16);
  });
}

uint8_t* AllocateKeyBytes(size_t n) {
  InitSecureHeapOnce();
  void* p = CRYPTO_secure_malloc_initialized() ? OPENSSL_secure_zalloc(n) : nullptr;
  if (p == nullptr) p = OPENSSL_zalloc(n);
  return static_cast<uint8_t*>(p);
}

void FreeKeyBytes(uint8_t* p, size_t n) {
  if (p == nullptr) return;
  if (CRYPTO_secure_allocated(p)) {
    OPENSSL_secure_clear_free(p, n);
  } else {
    OPENSSL_clear_free(p, n);
  }
}

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
  if (bytes == nullptr) return Status::Error(ENOMEM, "cannot allocate key memory");
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
