#include "keyslot/data_unit_cipher.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <string>

#include "keyslot/data_unit_cipher_iv.h"
#include "keyslot/data_unit_cipher_pool.h"

namespace ice {
namespace {

using cipher_internal::CipherContextPool;
using cipher_internal::CipherCtxPtr;
using cipher_internal::kMaxContextsPerSet;
using LiveIvFlags = std::array<bool, kMaxContextsPerSet>;

constexpr unsigned kBlockBytes = 16;  // the IV size of every mode implemented here

// Ciphers are fetched once per process: a fetch is a locked name lookup in the provider store.
// They are never freed, since OpenSSL's own exit handler may already have unloaded the providers.
struct Ciphers {
  EVP_CIPHER* aes_256_xts;
  EVP_CIPHER* aes_128_cbc;
  EVP_CIPHER* aes_256_ecb;
  EVP_CIPHER* sm4_xts;  // nullptr before OpenSSL 3.2
  bool aes_256_xts_live_iv;
  bool aes_128_cbc_live_iv;
};

const Ciphers& GetCiphers() {
  static const Ciphers ciphers = [] {
    Ciphers c{EVP_CIPHER_fetch(nullptr, "AES-256-XTS", nullptr),
              EVP_CIPHER_fetch(nullptr, "AES-128-CBC", nullptr),
              EVP_CIPHER_fetch(nullptr, "AES-256-ECB", nullptr),
              EVP_CIPHER_fetch(nullptr, "SM4-XTS", nullptr)};
    ERR_clear_error();  // a missing SM4-XTS is expected
    c.aes_256_xts_live_iv = cipher_internal::LiveIvWorks(c.aes_256_xts);
    c.aes_128_cbc_live_iv = cipher_internal::LiveIvWorks(c.aes_128_cbc);
    return c;
  }();
  return ciphers;
}

// OpenSSL's error queue is per thread; drain it into the message so it does not leak into later
// calls. Its messages never contain key material.
Status OpenSslError(int errno_value, const std::string& what) {
  std::string message = what;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    message += ": ";
    message += buf;
  }
  return Status::Error(errno_value, message);
}

Result<CipherCtxPtr> MakeTemplate(const EVP_CIPHER* cipher, const uint8_t* key, size_t key_size,
                                  int enc, const OSSL_PARAM* params = nullptr) {
  if (cipher == nullptr) return OpenSslError(ENOTSUP, "cipher not available in this OpenSSL");
  if (static_cast<size_t>(EVP_CIPHER_get_key_length(cipher)) != key_size) {
    return Status::Error(EINVAL, std::string(EVP_CIPHER_get0_name(cipher)) + " takes a " +
                                     std::to_string(EVP_CIPHER_get_key_length(cipher)) +
                                     "-byte key");
  }
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (ctx == nullptr) return OpenSslError(ENOMEM, "EVP_CIPHER_CTX_new");
  // Keyed with an IV (zeros; every data unit sets its own) so that a LiveIv store alone suffices.
  const uint8_t zero_iv[EVP_MAX_IV_LENGTH] = {};
  if (EVP_CipherInit_ex2(ctx.get(), cipher, key, zero_iv, enc, params) != 1) {
    return OpenSslError(EINVAL, std::string("keying ") + EVP_CIPHER_get0_name(cipher));
  }
  // Data units are whole blocks; a padding block would change the on-disk format.
  EVP_CIPHER_CTX_set_padding(ctx.get(), 0);
  return ctx;
}

Result<std::unique_ptr<CipherContextPool>> MakePool(
    std::array<CipherCtxPtr, kMaxContextsPerSet> templates, LiveIvFlags live_iv, int count) {
  auto pool = std::make_unique<CipherContextPool>(std::move(templates), live_iv, count);
  if (!pool->Prime()) return OpenSslError(ENOMEM, "copying cipher contexts");
  return pool;
}

// C5: the DUN in little-endian, zero-padded (or, beyond the IV, truncated as the kernel's
// fallback does) to 16 bytes.
inline void DunToIv(const Dun& dun, uint8_t* iv) {
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(iv, dun.words.data(), kBlockBytes);
  } else {
    dun.ToLittleEndian(iv, kBlockBytes);
  }
}

// Makes `iv` the IV of the next update of `ctx`. `live` is the context's LiveIv or nullptr.
inline bool SetIv(EVP_CIPHER_CTX* ctx, uint8_t* live, const uint8_t* iv) {
  if (live != nullptr) {
    std::memcpy(live, iv, kBlockBytes);
    return true;
  }
  // A NULL cipher and key keep the prepared key schedule: only the IV changes.
  return EVP_CipherInit_ex2(ctx, nullptr, nullptr, iv, -1, nullptr) == 1;
}

enum Direction { kEncrypt = 0, kDecrypt = 1 };

Status CheckRequest(uint32_t data_unit_size, const uint8_t* in, const uint8_t* out, size_t length) {
  if (length % data_unit_size != 0) {
    return Status::Error(EINVAL, "length " + std::to_string(length) +
                                     " is not a multiple of the data unit size " +
                                     std::to_string(data_unit_size));
  }
  if (length != 0 && (in == nullptr || out == nullptr)) {
    return Status::Error(EINVAL, "null data buffer");
  }
  return Status::Ok();
}

// AES-256-XTS, or SM4-XTS where OpenSSL has it: one XTS call per data unit, tweak = the DUN.
class XtsCipher final : public DataUnitCipher {
 public:
  XtsCipher(uint32_t data_unit_size, std::unique_ptr<CipherContextPool> pool)
      : DataUnitCipher(data_unit_size), pool_(std::move(pool)) {}

  Status Encrypt(const Dun& first, const uint8_t* in, uint8_t* out, size_t length) const override {
    return Run(kEncrypt, first, in, out, length);
  }
  Status Decrypt(const Dun& first, const uint8_t* in, uint8_t* out, size_t length) const override {
    return Run(kDecrypt, first, in, out, length);
  }

 private:
  Status Run(Direction dir, const Dun& first, const uint8_t* in, uint8_t* out,
             size_t length) const {
    ICE_RETURN_IF_ERROR(CheckRequest(data_unit_size(), in, out, length));
    if (length == 0) return Status::Ok();
    CipherContextPool::Lease lease(*pool_);
    if (!lease.ok()) return OpenSslError(ENOMEM, "copying cipher contexts");
    EVP_CIPHER_CTX* ctx = lease.ctx(dir);
    uint8_t* live_iv = lease.live_iv(dir);
    const int unit = static_cast<int>(data_unit_size());
    Dun dun = first;
    alignas(16) uint8_t iv[kBlockBytes];
    for (size_t off = 0; off < length; off += unit) {
      DunToIv(dun, iv);
      int outl = 0;
      if (!SetIv(ctx, live_iv, iv) ||
          EVP_CipherUpdate(ctx, out + off, &outl, in + off, unit) != 1 || outl != unit) {
        return OpenSslError(EIO, "XTS data unit");
      }
      dun.Advance(1);
    }
    return Status::Ok();
  }

  std::unique_ptr<CipherContextPool> pool_;  // contexts: [kEncrypt], [kDecrypt]
};

// AES-128-CBC-ESSIV (the kernel's "essiv(cbc(aes),sha256)"): IV = AES-256(SHA-256(key), DUN).
class EssivCipher final : public DataUnitCipher {
 public:
  static constexpr int kIvEncryptor = 2;

  EssivCipher(uint32_t data_unit_size, std::unique_ptr<CipherContextPool> pool)
      : DataUnitCipher(data_unit_size), pool_(std::move(pool)) {}

  Status Encrypt(const Dun& first, const uint8_t* in, uint8_t* out, size_t length) const override {
    return Run(kEncrypt, first, in, out, length);
  }
  Status Decrypt(const Dun& first, const uint8_t* in, uint8_t* out, size_t length) const override {
    return Run(kDecrypt, first, in, out, length);
  }

 private:
  // IVs are made for this many data units at once: one ECB call over several blocks runs the
  // AES pipeline in parallel, where one call per block would not.
  static constexpr size_t kIvBatch = 32;

  Status Run(Direction dir, const Dun& first, const uint8_t* in, uint8_t* out,
             size_t length) const {
    ICE_RETURN_IF_ERROR(CheckRequest(data_unit_size(), in, out, length));
    if (length == 0) return Status::Ok();
    CipherContextPool::Lease lease(*pool_);
    if (!lease.ok()) return OpenSslError(ENOMEM, "copying cipher contexts");
    EVP_CIPHER_CTX* cbc = lease.ctx(dir);
    uint8_t* live_iv = lease.live_iv(dir);
    EVP_CIPHER_CTX* ecb = lease.ctx(kIvEncryptor);
    const size_t unit = data_unit_size();
    const size_t units = length / unit;
    Dun dun = first;
    alignas(16) uint8_t ivs[kIvBatch * kBlockBytes];
    for (size_t done = 0; done < units;) {
      const size_t n = std::min(kIvBatch, units - done);
      for (size_t i = 0; i < n; ++i) {
        DunToIv(dun, ivs + i * kBlockBytes);
        dun.Advance(1);
      }
      const int iv_bytes = static_cast<int>(n * kBlockBytes);
      int outl = 0;
      if (EVP_EncryptUpdate(ecb, ivs, &outl, ivs, iv_bytes) != 1 || outl != iv_bytes) {
        return OpenSslError(EIO, "ESSIV IV");
      }
      for (size_t i = 0; i < n; ++i, ++done) {
        const size_t off = done * unit;
        if (!SetIv(cbc, live_iv, ivs + i * kBlockBytes) ||
            EVP_CipherUpdate(cbc, out + off, &outl, in + off, static_cast<int>(unit)) != 1 ||
            outl != static_cast<int>(unit)) {
          return OpenSslError(EIO, "CBC data unit");
        }
      }
    }
    return Status::Ok();
  }

  std::unique_ptr<CipherContextPool> pool_;  // [kEncrypt], [kDecrypt] CBC, [kIvEncryptor] ECB
};

Result<std::unique_ptr<DataUnitCipher>> CreateXts(const EVP_CIPHER* cipher, bool live_iv,
                                                  const CryptoKey& key, const OSSL_PARAM* params) {
  const auto raw = key.raw_bytes();
  std::array<CipherCtxPtr, kMaxContextsPerSet> t;
  for (int dir : {kEncrypt, kDecrypt}) {
    ICE_ASSIGN_OR_RETURN(t[dir],
                         MakeTemplate(cipher, raw.data(), raw.size(), dir == kEncrypt, params));
  }
  ICE_ASSIGN_OR_RETURN(auto pool, MakePool(std::move(t), {live_iv, live_iv, false}, 2));
  return std::unique_ptr<DataUnitCipher>(
      new XtsCipher(key.config().data_unit_size, std::move(pool)));
}

Result<std::unique_ptr<DataUnitCipher>> CreateEssiv(const CryptoKey& key) {
  const Ciphers& c = GetCiphers();
  const auto raw = key.raw_bytes();
  std::array<CipherCtxPtr, kMaxContextsPerSet> t;
  for (int dir : {kEncrypt, kDecrypt}) {
    ICE_ASSIGN_OR_RETURN(t[dir],
                         MakeTemplate(c.aes_128_cbc, raw.data(), raw.size(), dir == kEncrypt));
  }
  uint8_t salt[32];
  unsigned salt_size = 0;
  if (EVP_Digest(raw.data(), raw.size(), salt, &salt_size, EVP_sha256(), nullptr) != 1) {
    return OpenSslError(EIO, "SHA-256 of the ESSIV key");
  }
  auto ecb = MakeTemplate(c.aes_256_ecb, salt, salt_size, 1);
  OPENSSL_cleanse(salt, sizeof(salt));
  if (!ecb.ok()) return ecb.status();
  t[EssivCipher::kIvEncryptor] = std::move(ecb).value();
  const bool live = c.aes_128_cbc_live_iv && cipher_internal::LiveIvAllowed();
  ICE_ASSIGN_OR_RETURN(auto pool, MakePool(std::move(t), {live, live, false}, 3));
  return std::unique_ptr<DataUnitCipher>(
      new EssivCipher(key.config().data_unit_size, std::move(pool)));
}

}  // namespace

Result<std::unique_ptr<DataUnitCipher>> DataUnitCipher::Create(const CryptoKey& key) {
  const CryptoConfig& config = key.config();
  ICE_RETURN_IF_ERROR(ValidateConfig(config));
  if (config.key_type != KeyType::kRaw) {
    return Status::Error(ENOTSUP, "a hardware-wrapped key cannot be used in software");
  }
  if (key.raw_bytes().size() != ModeInfo(config.mode).key_size) {
    return Status::Error(EINVAL, "key size does not match its mode");
  }
  const Ciphers& c = GetCiphers();
  switch (config.mode) {
    case CryptoMode::kAes256Xts:
      return CreateXts(c.aes_256_xts, c.aes_256_xts_live_iv && cipher_internal::LiveIvAllowed(),
                       key, nullptr);
    case CryptoMode::kAes128CbcEssiv:
      return CreateEssiv(key);
    case CryptoMode::kSm4Xts: {
      if (c.sm4_xts == nullptr) {
        return Status::Error(ENOTSUP, "sm4-xts is not available in this OpenSSL");
      }
      // OpenSSL's SM4-XTS defaults to the GB/T 17964 tweak schedule; the kernel uses IEEE 1619.
      char standard[] = "IEEE";
      const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("xts_standard", standard, 0),
                                   OSSL_PARAM_construct_end()};
      return CreateXts(c.sm4_xts, /*live_iv=*/false, key, params);
    }
    case CryptoMode::kAdiantum:
      break;
  }
  return Status::Error(
      ENOTSUP, std::string(ModeInfo(config.mode).name) + " is not available in this OpenSSL");
}

}  // namespace ice
