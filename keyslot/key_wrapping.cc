#include "keyslot/key_wrapping.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

namespace ice {
namespace {

constexpr uint8_t kMagic[4] = {'I', 'C', 'E', 'W'};
constexpr uint8_t kVersion = 1;
constexpr size_t kHeaderBytes = 8;
constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;
static_assert(kHeaderBytes + kNonceBytes + kTagBytes == kWrapOverheadBytes);
static_assert(kMaxRawKeyBytes + kWrapOverheadBytes <= kMaxWrappedKeyBytes);

// The HKDF "info" of the software secret: one purpose, one label.
constexpr char kSwSecretInfo[] = "ice blk-crypto sw secret";

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using Ctx = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

Status Random(std::span<uint8_t> out) {
  if (RAND_priv_bytes(out.data(), static_cast<int>(out.size())) != 1) {
    return Status::Error(EIO, "no random bytes from OpenSSL");
  }
  return Status::Ok();
}

Result<SecretPages> RandomSecret(size_t n) {
  SecretPages s(n);
  if (!s.ok()) return Status::Error(ENOMEM, "cannot map pages for a wrapping secret");
  ICE_RETURN_IF_ERROR(Random({s.data(), n}));
  return s;
}

Status CheckReserved(const WrapOutput& out) {
  for (uint64_t r : out.reserved) {
    if (r != 0) return Status::Error(EINVAL, "reserved fields must be zero");
  }
  return Status::Ok();
}

// As the ioctls: the result is made in a buffer of the largest size, then copied out only if the
// caller's buffer holds it.
Result<size_t> CopyOut(std::span<const uint8_t> result, const WrapOutput& out) {
  if (result.size() > out.out.size()) {
    return Status::Error(EOVERFLOW, "the output buffer holds " + std::to_string(out.out.size()) +
                                        " bytes; the result needs " +
                                        std::to_string(result.size()));
  }
  std::memcpy(out.out.data(), result.data(), result.size());
  return result.size();
}

// A wrapped key on the stack, wiped when it goes (W7: blobs are handled like keys).
struct BlobBuffer {
  uint8_t bytes[kMaxWrappedKeyBytes];
  ~BlobBuffer() { OPENSSL_cleanse(bytes, sizeof bytes); }
};

}  // namespace

Result<KeyWrapping> KeyWrapping::Create(std::span<const uint8_t> long_term_secret) {
  KeyWrapping w;
  if (long_term_secret.empty()) {
    ICE_ASSIGN_OR_RETURN(w.long_term_, RandomSecret(kWrappingSecretBytes));
  } else {
    if (long_term_secret.size() != kWrappingSecretBytes) {
      return Status::Error(EINVAL, "a wrapping secret is " + std::to_string(kWrappingSecretBytes) +
                                       " bytes, not " + std::to_string(long_term_secret.size()));
    }
    w.long_term_ = SecretPages(kWrappingSecretBytes);
    if (!w.long_term_.ok()) return Status::Error(ENOMEM, "cannot map pages for a wrapping secret");
    std::memcpy(w.long_term_.data(), long_term_secret.data(), kWrappingSecretBytes);
  }
  ICE_ASSIGN_OR_RETURN(w.ephemeral_, RandomSecret(kWrappingSecretBytes));
  return w;
}

const SecretPages& KeyWrapping::SecretOf(Kind kind) const {
  return kind == Kind::kLongTerm ? long_term_ : ephemeral_;
}

Result<size_t> KeyWrapping::Wrap(Kind kind, std::span<const uint8_t> raw,
                                 std::span<uint8_t> out) const {
  // REQUIRES: out holds raw.size() + kWrapOverheadBytes.
  uint8_t* header = out.data();
  std::memcpy(header, kMagic, sizeof kMagic);
  header[4] = kVersion;
  header[5] = static_cast<uint8_t>(kind);
  header[6] = header[7] = 0;
  uint8_t* nonce = header + kHeaderBytes;
  ICE_RETURN_IF_ERROR(Random({nonce, kNonceBytes}));
  uint8_t* body = nonce + kNonceBytes;
  uint8_t* tag = body + raw.size();
  Ctx ctx(EVP_CIPHER_CTX_new());
  int n = 0;
  const bool ok =
      ctx &&
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, SecretOf(kind).data(), nonce) ==
          1 &&
      EVP_EncryptUpdate(ctx.get(), nullptr, &n, header, kHeaderBytes) == 1 &&
      EVP_EncryptUpdate(ctx.get(), body, &n, raw.data(), static_cast<int>(raw.size())) == 1 &&
      EVP_EncryptFinal_ex(ctx.get(), body + n, &n) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, tag) == 1;
  if (!ok) return Status::Error(EIO, "wrapping a key failed (OpenSSL)");
  return raw.size() + kWrapOverheadBytes;
}

Result<SecretPages> KeyWrapping::Unwrap(Kind kind, std::span<const uint8_t> blob) const {
  const auto bad = [] {
    return Status::Error(EBADMSG, "the wrapped key is not one of this hardware's");
  };
  if (blob.size() < kWrapOverheadBytes + 1 || blob.size() > kMaxWrappedKeyBytes) return bad();
  const uint8_t* header = blob.data();
  if (std::memcmp(header, kMagic, sizeof kMagic) != 0 || header[4] != kVersion ||
      header[5] != static_cast<uint8_t>(kind) || header[6] != 0 || header[7] != 0) {
    return bad();
  }
  const uint8_t* nonce = header + kHeaderBytes;
  const uint8_t* body = nonce + kNonceBytes;
  const size_t raw_size = blob.size() - kWrapOverheadBytes;
  uint8_t tag[kTagBytes];
  std::memcpy(tag, body + raw_size, kTagBytes);
  SecretPages raw(raw_size);
  if (!raw.ok()) return Status::Error(ENOMEM, "cannot map pages for an unwrapped key");
  Ctx ctx(EVP_CIPHER_CTX_new());
  int n = 0;
  const bool ok =
      ctx &&
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, SecretOf(kind).data(), nonce) ==
          1 &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &n, header, kHeaderBytes) == 1 &&
      EVP_DecryptUpdate(ctx.get(), raw.data(), &n, body, static_cast<int>(raw_size)) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag) == 1 &&
      EVP_DecryptFinal_ex(ctx.get(), raw.data() + n, &n) == 1;
  if (!ok) return bad();  // `raw` is wiped as it goes
  return raw;
}

Result<size_t> KeyWrapping::ImportKey(std::span<const uint8_t> raw, const WrapOutput& out) const {
  ICE_RETURN_IF_ERROR(CheckReserved(out));
  if (raw.size() < kMinRawKeyBytes || raw.size() > kMaxRawKeyBytes) {
    return Status::Error(
        EINVAL, "a raw key to import is 16 to 64 bytes, not " + std::to_string(raw.size()));
  }
  BlobBuffer blob;
  ICE_ASSIGN_OR_RETURN(size_t n, Wrap(Kind::kLongTerm, raw, blob.bytes));
  return CopyOut({blob.bytes, n}, out);
}

Result<size_t> KeyWrapping::GenerateKey(const WrapOutput& out) const {
  ICE_RETURN_IF_ERROR(CheckReserved(out));
  SecretPages raw(kGeneratedKeyBytes);
  if (!raw.ok()) return Status::Error(ENOMEM, "cannot map pages for a generated key");
  ICE_RETURN_IF_ERROR(Random({raw.data(), raw.size()}));
  BlobBuffer blob;
  ICE_ASSIGN_OR_RETURN(size_t n, Wrap(Kind::kLongTerm, {raw.data(), raw.size()}, blob.bytes));
  return CopyOut({blob.bytes, n}, out);
}

Result<size_t> KeyWrapping::PrepareKey(std::span<const uint8_t> long_term,
                                       const WrapOutput& out) const {
  ICE_RETURN_IF_ERROR(CheckReserved(out));
  ICE_ASSIGN_OR_RETURN(SecretPages raw, Unwrap(Kind::kLongTerm, long_term));
  BlobBuffer blob;
  ICE_ASSIGN_OR_RETURN(size_t n, Wrap(Kind::kEphemeral, {raw.data(), raw.size()}, blob.bytes));
  return CopyOut({blob.bytes, n}, out);
}

Result<size_t> KeyWrapping::DeriveSwSecret(std::span<const uint8_t> ephemeral,
                                           const WrapOutput& out) const {
  ICE_RETURN_IF_ERROR(CheckReserved(out));
  ICE_ASSIGN_OR_RETURN(SecretPages raw, Unwrap(Kind::kEphemeral, ephemeral));
  SecretPages secret(kSwSecretBytes);
  if (!secret.ok()) return Status::Error(ENOMEM, "cannot map pages for a software secret");
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  EVP_KDF_CTX* kctx = kdf ? EVP_KDF_CTX_new(kdf) : nullptr;
  EVP_KDF_free(kdf);
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, raw.data(), raw.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(kSwSecretInfo),
                                        sizeof kSwSecretInfo - 1),
      OSSL_PARAM_construct_end()};
  const bool ok = kctx && EVP_KDF_derive(kctx, secret.data(), secret.size(), params) == 1;
  EVP_KDF_CTX_free(kctx);
  if (!ok) return Status::Error(EIO, "deriving the software secret failed (OpenSSL)");
  return CopyOut({secret.data(), secret.size()}, out);
}

Result<SecretPages> KeyWrapping::UnwrapForKeyslot(std::span<const uint8_t> ephemeral) const {
  return Unwrap(Kind::kEphemeral, ephemeral);
}

}  // namespace ice
