// Emulated hardware key wrapping (rules W1–W4; mainline's blk-crypto hardware-wrapped keys and
// their ioctls BLKCRYPTOIMPORTKEY, BLKCRYPTOGENERATEKEY, BLKCRYPTOPREPAREKEY, and the profile's
// derive_sw_secret).
//
// Real inline-encryption hardware with wrapped keys (Qualcomm ICE, Exynos FMP) never lets a raw
// key leave it: it imports or generates a key and hands back a *long-term* wrapped blob that only
// it can open; before use, the blob is re-wrapped with a per-boot *ephemeral* secret, and only
// such ephemerally-wrapped blobs are programmed into keyslots. ice emulates that with two secrets
// per hardware device:
//   - the long-term secret: 32 bytes from `[[hardware]] wrapping_key_file` (so long-term blobs
//     survive restarts), else random per start;
//   - the ephemeral secret: random per start of the daemon (a "reboot" invalidates ephemeral
//     blobs), kept across a controller reset (W4).
// A blob is AES-256-GCM (OpenSSL) of the raw key under one of them, with its header as
// authenticated data:
//   "ICEW" | version 1 | kind (1 long-term, 2 ephemeral) | 0 | 0 | 12-byte nonce | key | 16-byte
//   tag
// so it is 36 bytes longer than the raw key (at most 100 of BLK_CRYPTO_MAX_HW_WRAPPED_KEY_SIZE's
// 128). A blob of another device, of the other kind, or altered fails to open: EBADMSG (the
// choice W3 leaves to drivers; ice says EBADMSG, as Qualcomm's does, for "not ours").
//
// Secrets and unwrapped keys live in SecretPages (locked, out of core dumps) and are wiped when
// dropped (W7). Thread-safe: the secrets never change after construction.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>

#include "block/status.h"
#include "keyslot/key_memory.h"

namespace ice {

// The uapi's sizes (include/uapi/linux/blk-crypto.h).
inline constexpr size_t kMinRawKeyBytes = 16;       // import_key
inline constexpr size_t kMaxRawKeyBytes = 64;       // BLK_CRYPTO_MAX_RAW_KEY_SIZE
inline constexpr size_t kMaxWrappedKeyBytes = 128;  // BLK_CRYPTO_MAX_HW_WRAPPED_KEY_SIZE
inline constexpr size_t kSwSecretBytes = 32;        // BLK_CRYPTO_SW_SECRET_SIZE
inline constexpr size_t kWrappingSecretBytes = 32;
inline constexpr size_t kWrapOverheadBytes = 36;  // header, nonce, tag
// The size generate_key makes: an AES-256-XTS key.
inline constexpr size_t kGeneratedKeyBytes = 64;

// The arguments of the ioctls, as the uapi structs carry them: the caller's output buffer (its
// size is what the ioctl's *_size field says) and the reserved words, which must be zero.
struct WrapOutput {
  std::span<uint8_t> out;
  std::array<uint64_t, 4> reserved{};
};

class KeyWrapping {
 public:
  // `long_term_secret`: kWrappingSecretBytes, or empty for a random one (blobs then die with the
  // daemon). EINVAL for another size; EIO when the system gives no random bytes.
  static Result<KeyWrapping> Create(std::span<const uint8_t> long_term_secret);
  KeyWrapping(KeyWrapping&&) = default;
  KeyWrapping& operator=(KeyWrapping&&) = default;

  // W2/W3: BLKCRYPTOIMPORTKEY. `raw`: 16…64 bytes (EINVAL otherwise). Writes a long-term blob to
  // `out` and returns its size; EOVERFLOW when `out` is too small; EINVAL for non-zero reserved.
  Result<size_t> ImportKey(std::span<const uint8_t> raw, const WrapOutput& out) const;
  // W2/W3: BLKCRYPTOGENERATEKEY: a new random 64-byte key, wrapped long-term.
  Result<size_t> GenerateKey(const WrapOutput& out) const;
  // W2/W3: BLKCRYPTOPREPAREKEY: a long-term blob re-wrapped with the ephemeral secret. EBADMSG
  // when `long_term` is not this device's long-term blob.
  Result<size_t> PrepareKey(std::span<const uint8_t> long_term, const WrapOutput& out) const;
  // W2: the profile's derive_sw_secret: 32 bytes derived (HKDF-SHA256) from the key inside an
  // ephemerally-wrapped blob, for file-name encryption in fscrypt. EBADMSG for anything else.
  Result<size_t> DeriveSwSecret(std::span<const uint8_t> ephemeral, const WrapOutput& out) const;
  // What a keyslot does with a blob programmed into it: the key inside an ephemerally-wrapped
  // blob (a long-term blob is refused: EBADMSG). In locked pages, wiped when dropped.
  Result<SecretPages> UnwrapForKeyslot(std::span<const uint8_t> ephemeral) const;

 private:
  KeyWrapping() = default;
  enum class Kind : uint8_t { kLongTerm = 1, kEphemeral = 2 };
  Result<size_t> Wrap(Kind kind, std::span<const uint8_t> raw, std::span<uint8_t> out) const;
  Result<SecretPages> Unwrap(Kind kind, std::span<const uint8_t> blob) const;
  const SecretPages& SecretOf(Kind kind) const;

  SecretPages long_term_;
  SecretPages ephemeral_;
};

}  // namespace ice
