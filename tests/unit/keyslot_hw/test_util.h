// Shared helpers of the keyslot_hw tests: keys, data patterns, an independent reference
// computation of the on-disk format, and devices that observe the requests sent to them.
#pragma once

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "block/block_device.h"
#include "block/dun.h"
#include "block/memory_backend.h"
#include "keyslot/capabilities.h"
#include "keyslot/crypto_key.h"

namespace ice::testing {

inline std::vector<uint8_t> Pattern(size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  uint32_t x = seed * 2654435761u + 12345;
  for (auto& b : v) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b = static_cast<uint8_t>(x);
  }
  return v;
}

inline KeyPtr MakeKey(CryptoMode mode, uint32_t data_unit_size, unsigned dun_bytes = 8,
                      uint32_t seed = 1) {
  const CryptoConfig config{mode, data_unit_size, dun_bytes, KeyType::kRaw};
  auto key = CryptoKey::Create(config, Pattern(ModeInfo(mode).key_size, seed));
  EXPECT_TRUE(key.ok()) << key.status().ToString();
  return key.ok() ? *key : nullptr;
}

inline CryptoCapabilities Caps(CryptoMode mode, uint32_t data_unit_mask, unsigned dun_bytes = 8) {
  CryptoCapabilities caps;
  caps.Add(mode, data_unit_mask);
  caps.max_dun_bytes = dun_bytes;
  caps.key_types = static_cast<uint8_t>(KeyType::kRaw);
  return caps;
}

inline CryptoCapabilities BothModes(uint32_t data_unit_mask) {
  CryptoCapabilities caps = Caps(CryptoMode::kAes256Xts, data_unit_mask);
  caps.Add(CryptoMode::kAes128CbcEssiv, data_unit_mask);
  return caps;
}

// The on-disk format computed independently of ice's ciphers, one fresh OpenSSL context per data
// unit: AES-256-XTS with tweak = the DUN little-endian (dm-crypt aes-xts-plain64 with
// iv_large_sectors), and AES-128-CBC-ESSIV with IV = AES-256(SHA-256(key), DUN little-endian).
inline std::vector<uint8_t> ReferenceEncrypt(CryptoMode mode, const std::vector<uint8_t>& raw_key,
                                             uint32_t data_unit_size, Dun dun,
                                             const std::vector<uint8_t>& plain) {
  std::vector<uint8_t> out(plain.size());
  for (size_t off = 0; off < plain.size(); off += data_unit_size, dun.Advance(1)) {
    uint8_t iv[16];
    dun.ToLittleEndian(iv, 16);
    const EVP_CIPHER* cipher = EVP_aes_256_xts();
    const uint8_t* key = raw_key.data();
    uint8_t essiv_key[32];
    if (mode == CryptoMode::kAes128CbcEssiv) {
      SHA256(raw_key.data(), raw_key.size(), essiv_key);
      EVP_CIPHER_CTX* e = EVP_CIPHER_CTX_new();
      int len = 0;
      uint8_t enc_iv[16];
      EVP_EncryptInit_ex(e, EVP_aes_256_ecb(), nullptr, essiv_key, nullptr);
      EVP_CIPHER_CTX_set_padding(e, 0);
      EVP_EncryptUpdate(e, enc_iv, &len, iv, 16);
      EVP_CIPHER_CTX_free(e);
      std::memcpy(iv, enc_iv, 16);
      cipher = EVP_aes_128_cbc();
    }
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    int len = 0;
    EVP_EncryptInit_ex(ctx, cipher, nullptr, key, iv);
    EVP_CIPHER_CTX_set_padding(ctx, 0);
    EVP_EncryptUpdate(ctx, out.data() + off, &len, plain.data() + off,
                      static_cast<int>(data_unit_size));
    EVP_CIPHER_CTX_free(ctx);
  }
  return out;
}

// Keys made by MakeKey(mode, …, seed) have these raw bytes.
inline std::vector<uint8_t> RawKey(CryptoMode mode, uint32_t seed = 1) {
  return Pattern(ModeInfo(mode).key_size, seed);
}

inline Status Write(BlockDevice& dev, uint64_t offset, const std::vector<uint8_t>& data,
                    const CryptoKey* key = nullptr, Dun dun = {}) {
  IoRequest req{.op = IoOp::kWrite,
                .offset_bytes = offset,
                .length_bytes = data.size(),
                .write_buf = data.data()};
  if (key != nullptr) req.crypt = CryptoContext{key, dun};
  return dev.Submit(req);
}

inline Status Read(BlockDevice& dev, uint64_t offset, std::vector<uint8_t>& out,
                   const CryptoKey* key = nullptr, Dun dun = {}) {
  IoRequest req{.op = IoOp::kRead,
                .offset_bytes = offset,
                .length_bytes = out.size(),
                .read_buf = out.data()};
  if (key != nullptr) req.crypt = CryptoContext{key, dun};
  return dev.Submit(req);
}

inline std::vector<uint8_t> RawRead(BlockDevice& dev, uint64_t offset, size_t n) {
  std::vector<uint8_t> out(n);
  EXPECT_TRUE(Read(dev, offset, out).ok());
  return out;
}

// A memory device that shows every request to a hook before serving it; the hook may fail it.
// Optionally advertises a profile (it does no crypto: a test of routing only).
class HookedDevice final : public BlockDevice {
 public:
  using Hook = std::function<Status(const IoRequest&)>;
  explicit HookedDevice(uint64_t size) : mem_(size) {}

  void set_hook(Hook hook) {
    std::lock_guard g(mu_);
    hook_ = std::move(hook);
  }
  void set_profile(CryptoProfile* profile) { profile_ = profile; }
  std::vector<IoRequest> requests() const {
    std::lock_guard g(mu_);
    return requests_;
  }

  uint64_t size_bytes() const override { return mem_.size_bytes(); }
  CryptoProfile* crypto_profile() override { return profile_; }
  Status Submit(const IoRequest& req) override {
    Hook hook;
    {
      std::lock_guard g(mu_);
      requests_.push_back(req);
      hook = hook_;
    }
    if (hook) {
      Status s = hook(req);
      if (!s.ok()) return s;
    }
    return mem_.Submit(req);
  }
  MemoryBackend& memory() { return mem_; }

 private:
  MemoryBackend mem_;
  CryptoProfile* profile_ = nullptr;
  mutable std::mutex mu_;
  Hook hook_;
  std::vector<IoRequest> requests_;
};

// Forwards to a device it does not own (to put a HardwareDevice over a HookedDevice the test
// keeps).
class Borrowed final : public BlockDevice {
 public:
  explicit Borrowed(BlockDevice& dev) : dev_(dev) {}
  uint64_t size_bytes() const override { return dev_.size_bytes(); }
  Status Submit(const IoRequest& req) override { return dev_.Submit(req); }

 private:
  BlockDevice& dev_;
};

// Spins (yielding, never sleeping) until `cond` holds; fails the test after a generous bound so
// that a broken build cannot hang the suite.
inline bool WaitFor(const std::function<bool()>& cond) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

}  // namespace ice::testing
