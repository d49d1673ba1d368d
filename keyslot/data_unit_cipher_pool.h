// Private to data_unit_cipher.cc: keyed OpenSSL cipher contexts lent to one thread at a time.
#pragma once

#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>

namespace ice::cipher_internal {

struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

inline constexpr int kMaxContextsPerSet = 3;

// An OpenSSL cipher context is not thread-safe, and keying one (the AES key schedule) costs more
// than en/decrypting a small data unit. The pool therefore keeps sets of contexts, each set a copy
// of the same keyed templates (one per direction, plus ESSIV's IV encryptor), and lends a whole
// set to one request at a time. A set is allocated only when every existing set is lent out, so
// the pool grows to the number of requests that ever ran at once and then allocates nothing.
// Thread-safe. Freeing a context wipes its key schedule (OpenSSL clears it).
class CipherContextPool {
 public:
  struct Set;

  // `templates[0 .. count)` are keyed contexts; where `live_iv[i]`, each copy of template i also
  // exposes its LiveIv (data_unit_cipher_iv.h). Lends nothing until Prime() or Acquire().
  CipherContextPool(std::array<CipherCtxPtr, kMaxContextsPerSet> templates,
                    std::array<bool, kMaxContextsPerSet> live_iv, int count);
  // REQUIRES: no set is lent out.
  ~CipherContextPool();
  CipherContextPool(const CipherContextPool&) = delete;
  CipherContextPool& operator=(const CipherContextPool&) = delete;

  // Makes one idle set now, so that the first request allocates nothing; false when OpenSSL fails.
  bool Prime();

  // Borrows a set for the lifetime of the lease; !ok() only when a new set was needed and OpenSSL
  // could not make one (out of memory).
  class Lease {
   public:
    explicit Lease(const CipherContextPool& pool) : pool_(pool), set_(pool.Acquire()) {}
    ~Lease() {
      if (set_ != nullptr) pool_.Release(set_);
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;

    bool ok() const { return set_ != nullptr; }
    // REQUIRES: ok(), 0 <= i < count.
    EVP_CIPHER_CTX* ctx(int i) const;
    // Where to store the next IV of ctx(i), or nullptr to use EVP_CipherInit_ex2.
    uint8_t* live_iv(int i) const;

   private:
    const CipherContextPool& pool_;
    Set* set_;
  };

 private:
  Set* Acquire() const;
  void Release(Set* set) const;
  Set* MakeSet() const;
  static void FreeSet(Set* set);

  std::array<CipherCtxPtr, kMaxContextsPerSet> templates_;
  std::array<bool, kMaxContextsPerSet> live_iv_;
  int count_;
  mutable std::mutex mu_;
  mutable Set* idle_ = nullptr;  // GUARDED_BY(mu_); an intrusive list, so Release allocates nothing
};

}  // namespace ice::cipher_internal
