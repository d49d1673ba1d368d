// Private to data_unit_cipher.cc: setting the IV of the next data unit without re-initializing.
#pragma once

#include <openssl/evp.h>

#include <cstdint>

namespace ice::cipher_internal {

// EVP_CipherInit_ex2 with only an IV costs about 50 ns in OpenSSL 3.0 (parameter look-ups in the
// provider), 8% of the time of a 4 KiB AES-XTS data unit. OpenSSL's default provider keeps the IV
// of a block-cipher context in the context itself, and EVP_CIPHER_CTX_iv_noconst (deprecated in
// 3.0, not removed) returns a pointer to it; a 16-byte store there sets the next data unit's IV.
// That is provider behaviour rather than API, so it is used only for a cipher that passes
// LiveIvWorks in this process; every other cipher keeps the EVP_CipherInit_ex2 path.

// Checks, with known data, that storing an IV through LiveIv() of a copied keyed context gives the
// same output as EVP_CipherInit_ex2 with that IV, in both directions and for consecutive units.
// REQUIRES: a 16-byte IV.
bool LiveIvWorks(const EVP_CIPHER* cipher);

// The IV that the next update of `ctx` will use, or nullptr. REQUIRES: LiveIvWorks(its cipher),
// and `ctx` keyed with an IV (the XTS provider refuses to run before one was set).
uint8_t* LiveIv(EVP_CIPHER_CTX* ctx);

// Whether ciphers created from now on may use LiveIv (default true). Tests turn it off to run the
// EVP_CipherInit_ex2 path, the one an OpenSSL that fails LiveIvWorks takes. Thread-safe.
bool LiveIvAllowed();
void AllowLiveIvForTesting(bool allowed);

}  // namespace ice::cipher_internal
