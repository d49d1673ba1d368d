// The one file that uses a deprecated OpenSSL function (see the header for why).
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "keyslot/data_unit_cipher_iv.h"

#include <openssl/err.h>

#include <array>
#include <atomic>
#include <cstring>
#include <memory>
#include <vector>

namespace ice::cipher_internal {
namespace {

std::atomic<bool> g_live_iv_allowed{true};

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using Ctx = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

constexpr size_t kUnitBytes = 64;
constexpr int kUnits = 2;

Ctx Keyed(const EVP_CIPHER* cipher, const uint8_t* key, const uint8_t* iv, int enc) {
  Ctx ctx(EVP_CIPHER_CTX_new());
  if (ctx == nullptr || EVP_CipherInit_ex2(ctx.get(), cipher, key, iv, enc, nullptr) != 1)
    return nullptr;
  EVP_CIPHER_CTX_set_padding(ctx.get(), 0);
  return ctx;
}

bool Update(EVP_CIPHER_CTX* ctx, const uint8_t* in, uint8_t* out) {
  int outl = 0;
  return EVP_CipherUpdate(ctx, out, &outl, in, kUnitBytes) == 1 && outl == kUnitBytes;
}

// Runs kUnits units through a copy of a keyed context, each with its IV stored through LiveIv, and
// compares every unit with a fresh context initialized with that IV.
bool DirectionWorks(const EVP_CIPHER* cipher, const uint8_t* key, int enc) {
  const std::array<uint8_t, 16> zero_iv{};
  Ctx keyed = Keyed(cipher, key, zero_iv.data(), enc);
  Ctx copy(EVP_CIPHER_CTX_new());
  if (keyed == nullptr || copy == nullptr || EVP_CIPHER_CTX_copy(copy.get(), keyed.get()) != 1)
    return false;
  uint8_t* live = LiveIv(copy.get());
  if (live == nullptr) return false;
  uint8_t in[kUnitBytes];
  for (size_t i = 0; i < kUnitBytes; ++i) in[i] = static_cast<uint8_t>(i * 29 + 5);
  for (int unit = 0; unit < kUnits; ++unit) {
    uint8_t iv[16];
    for (int i = 0; i < 16; ++i) iv[i] = static_cast<uint8_t>(unit * 16 + i + 1);
    uint8_t got[kUnitBytes], want[kUnitBytes];
    std::memcpy(live, iv, sizeof(iv));
    Ctx fresh = Keyed(cipher, key, iv, enc);
    if (fresh == nullptr || !Update(copy.get(), in, got) || !Update(fresh.get(), in, want) ||
        std::memcmp(got, want, kUnitBytes) != 0) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool LiveIvWorks(const EVP_CIPHER* cipher) {
  if (cipher == nullptr || EVP_CIPHER_get_iv_length(cipher) != 16) return false;
  std::vector<uint8_t> key(static_cast<size_t>(EVP_CIPHER_get_key_length(cipher)));
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(i * 3 + 1);
  const bool works = DirectionWorks(cipher, key.data(), 1) && DirectionWorks(cipher, key.data(), 0);
  ERR_clear_error();
  return works;
}

uint8_t* LiveIv(EVP_CIPHER_CTX* ctx) { return EVP_CIPHER_CTX_iv_noconst(ctx); }

bool LiveIvAllowed() { return g_live_iv_allowed.load(std::memory_order_relaxed); }

void AllowLiveIvForTesting(bool allowed) { g_live_iv_allowed.store(allowed); }

}  // namespace ice::cipher_internal
