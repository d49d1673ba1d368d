// What the target tests share: a device that records what reaches it, a device lookup, a clock
// that moves only when told, and helpers to drive a target directly.
#pragma once

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "block/clock.h"
#include "block/memory_backend.h"
#include "dm/target.h"
#include "keyslot/blk_crypto.h"
#include "keyslot/capabilities.h"
#include "keyslot/crypto_key.h"
#include "keyslot/crypto_profile.h"
#include "keyslot/key_registry.h"
#include "tests/unit/dm/map_lookup.h"

namespace ice::dm::testing {

// One request as it reached a device.
struct Seen {
  IoOp op = IoOp::kRead;
  uint64_t offset = 0;
  uint64_t length = 0;
  bool fua = false;
  bool via_fallback = false;
  const CryptoKey* key = nullptr;  // nullptr: no crypto context
  Dun dun;
};

// A sparse in-memory device that records every request. Its bytes are what it was sent: a request
// with a crypto context is stored as plaintext (the device "supports" it natively only so that the
// context reaches it and can be checked). With `caps` it has a passthrough (0-slot) profile.
class RecordingDevice final : public BlockDevice {
 public:
  explicit RecordingDevice(uint64_t size_bytes, const CryptoCapabilities* caps = nullptr)
      : backend_(size_bytes),
        profile_(caps != nullptr ? std::make_unique<CryptoProfile>(*caps, 0, nullptr) : nullptr) {}

  uint64_t size_bytes() const override { return backend_.size_bytes(); }
  CryptoProfile* crypto_profile() override { return profile_.get(); }
  bool supports_discard() const override { return true; }

  Status Submit(const IoRequest& req) override {
    {
      std::lock_guard g(mu_);
      seen_.push_back({req.op, req.offset_bytes, req.length_bytes, req.fua, req.via_fallback,
                       req.crypt ? req.crypt->key : nullptr, req.crypt ? req.crypt->dun : Dun{}});
      if (fail_) return Status::Error(EIO, "recording device told to fail");
    }
    IoRequest plain = req;
    plain.crypt.reset();
    return backend_.Submit(plain);
  }

  std::vector<Seen> seen() const {
    std::lock_guard g(mu_);
    return seen_;
  }
  void clear_seen() {
    std::lock_guard g(mu_);
    seen_.clear();
  }
  void set_fail(bool fail) {
    std::lock_guard g(mu_);
    fail_ = fail;
  }

  // Direct access to the stored bytes, bypassing the recording.
  std::vector<uint8_t> Bytes(uint64_t offset, uint64_t length) {
    std::vector<uint8_t> v(length);
    IoRequest r{
        .op = IoOp::kRead, .offset_bytes = offset, .length_bytes = length, .read_buf = v.data()};
    Status s = backend_.Submit(r);
    if (!s.ok()) v.clear();
    return v;
  }
  void Poke(uint64_t offset, const std::vector<uint8_t>& data) {
    IoRequest w{.op = IoOp::kWrite,
                .offset_bytes = offset,
                .length_bytes = data.size(),
                .write_buf = data.data()};
    (void)backend_.Submit(w);
  }

 private:
  MemoryBackend backend_;
  std::unique_ptr<CryptoProfile> profile_;
  mutable std::mutex mu_;
  std::vector<Seen> seen_;
  bool fail_ = false;
};

// Everything a target constructor needs, with a manual clock.
struct TestEnv {
  ManualClock clock;
  KeyRegistry keys;
  BlkCrypto blk;
  MapLookup devices;
  TargetEnv env{&devices, &keys, &blk, &clock};

  std::shared_ptr<RecordingDevice> AddDevice(const std::string& name, uint64_t size_bytes,
                                             const CryptoCapabilities* caps = nullptr) {
    auto dev = std::make_shared<RecordingDevice>(size_bytes, caps);
    devices.Add(name, dev);
    return dev;
  }

  Result<std::unique_ptr<Target>> Create(const TargetType& type, uint64_t length_sectors,
                                         std::vector<std::string> args) {
    return type.create(env, TargetArgs{0, length_sectors, std::move(args)});
  }
};

// dm-crypt's aes-xts-plain64, computed independently: AES-256-XTS per `unit`-byte sector with the
// 16-byte little-endian tweak `first_tweak + i`.
inline std::vector<uint8_t> DmCryptXts(const std::vector<uint8_t>& key, uint64_t first_tweak,
                                       uint32_t unit, const std::vector<uint8_t>& plain) {
  std::vector<uint8_t> out(plain.size());
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  for (size_t i = 0; i * unit < plain.size(); ++i) {
    uint8_t iv[16] = {};
    const uint64_t tweak = first_tweak + i;
    for (int b = 0; b < 8; ++b) iv[b] = static_cast<uint8_t>(tweak >> (8 * b));
    int len = 0;
    EXPECT_EQ(EVP_EncryptInit_ex(ctx, EVP_aes_256_xts(), nullptr, key.data(), iv), 1);
    EXPECT_EQ(EVP_EncryptUpdate(ctx, out.data() + i * unit, &len, plain.data() + i * unit,
                                static_cast<int>(unit)),
              1);
    EXPECT_EQ(len, static_cast<int>(unit));
  }
  EVP_CIPHER_CTX_free(ctx);
  return out;
}

// Capabilities of a device that takes aes-256-xts natively at every data unit size ice allows.
inline CryptoCapabilities XtsCaps(unsigned max_dun_bytes = 8) {
  CryptoCapabilities caps;
  for (uint32_t unit = kMinDataUnitSize; unit <= kMaxDataUnitSize; unit *= 2) {
    caps.Add(CryptoMode::kAes256Xts, unit);
  }
  caps.max_dun_bytes = max_dun_bytes;
  caps.key_types = static_cast<uint8_t>(KeyType::kRaw);
  return caps;
}

inline std::vector<uint8_t> Pattern(uint64_t length, uint8_t seed) {
  std::vector<uint8_t> v(length);
  for (uint64_t i = 0; i < length; ++i) v[i] = static_cast<uint8_t>(i * 131 + seed * 7 + 1);
  return v;
}

// A 64-byte aes-xts key (two different halves) from a seed.
inline std::vector<uint8_t> XtsKeyBytes(uint8_t seed) {
  std::vector<uint8_t> k(64);
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(seed + i * 3 + (i >= 32));
  return k;
}

inline std::string Hex(const std::vector<uint8_t>& bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string s;
  for (uint8_t b : bytes) {
    s += kDigits[b >> 4];
    s += kDigits[b & 15];
  }
  return s;
}

inline KeyPtr MakeKey(uint8_t seed, uint32_t data_unit_size = 4096, unsigned dun_bytes = 8) {
  CryptoConfig config{CryptoMode::kAes256Xts, data_unit_size, dun_bytes, KeyType::kRaw};
  auto bytes = XtsKeyBytes(seed);
  return CryptoKey::Create(config, bytes).value();
}

inline Status Write(Target& t, uint64_t offset, const std::vector<uint8_t>& data,
                    std::optional<CryptoContext> crypt = std::nullopt, bool fua = false) {
  IoRequest r{.op = IoOp::kWrite,
              .offset_bytes = offset,
              .length_bytes = data.size(),
              .write_buf = data.data(),
              .fua = fua,
              .crypt = crypt};
  return t.Map(r);
}

inline Status Read(Target& t, uint64_t offset, std::vector<uint8_t>& out,
                   std::optional<CryptoContext> crypt = std::nullopt) {
  IoRequest r{.op = IoOp::kRead,
              .offset_bytes = offset,
              .length_bytes = out.size(),
              .read_buf = out.data(),
              .crypt = crypt};
  return t.Map(r);
}

inline Status Op(Target& t, IoOp op, uint64_t offset = 0, uint64_t length = 0) {
  IoRequest r{.op = op, .offset_bytes = offset, .length_bytes = length};
  return t.Map(r);
}

// Waits (in real time, bounded) until `n` threads sleep on the manual clock.
inline bool WaitForSleepers(const ManualClock& clock, int n) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (clock.waiters() < n) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::yield();
  }
  return true;
}

}  // namespace ice::dm::testing
