// Devices and helpers shared by the device-mapper unit tests.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "block/memory_backend.h"
#include "dm/target.h"
#include "keyslot/crypto_key.h"
#include "keyslot/crypto_profile.h"
#include "tests/unit/dm/map_lookup.h"

namespace ice::dm::testing {

// What a TestDevice saw of one request.
struct Seen {
  IoOp op;
  uint64_t offset_bytes;
  uint64_t length_bytes;
  bool has_crypt;
  Dun dun;
};

// A memory device that records every request, with (optionally) an inline-encryption profile of
// the test's choosing whose slots program nothing: it stores data in plaintext, which is enough to
// observe routing, splitting and DUNs. It can hold requests until released, to keep I/O in flight.
class TestDevice final : public BlockDevice, private KeyslotOps {
 public:
  explicit TestDevice(uint64_t size_bytes, std::optional<CryptoCapabilities> caps = std::nullopt,
                      unsigned slots = 4)
      : mem_(size_bytes) {
    if (caps)
      profile_ = std::make_unique<CryptoProfile>(*caps, slots, static_cast<KeyslotOps*>(this));
  }

  uint64_t size_bytes() const override { return mem_.size_bytes(); }
  CryptoProfile* crypto_profile() override { return profile_.get(); }
  bool supports_discard() const override { return discard_; }
  void set_supports_discard(bool v) { discard_ = v; }

  Status Submit(const IoRequest& req) override {
    {
      std::unique_lock g(mu_);
      seen_.push_back({req.op, req.offset_bytes, req.length_bytes, req.crypt.has_value(),
                       req.crypt ? req.crypt->dun : Dun()});
      ++arrived_;
      cv_.notify_all();
      cv_.wait(g, [&] { return !hold_; });
    }
    if (fail_) return Status::Error(EIO, "test device fails");
    IoRequest plain = req;
    plain.crypt.reset();
    return mem_.Submit(plain);
  }

  std::vector<Seen> seen() const {
    std::lock_guard g(mu_);
    return seen_;
  }
  void clear_seen() {
    std::lock_guard g(mu_);
    seen_.clear();
  }
  // Requests wait inside Submit while held.
  void Hold() {
    std::lock_guard g(mu_);
    hold_ = true;
  }
  void Release() {
    std::lock_guard g(mu_);
    hold_ = false;
    cv_.notify_all();
  }
  // Waits (bounded) until `n` requests in total have arrived.
  bool WaitArrived(int n) {
    std::unique_lock g(mu_);
    return cv_.wait_for(g, std::chrono::seconds(20), [&] { return arrived_ >= n; });
  }
  void set_fail(bool v) { fail_ = v; }
  void set_fail_evictions(bool v) { fail_evictions_ = v; }
  int evictions() const {
    std::lock_guard g(mu_);
    return evictions_;
  }

 private:
  Status ProgramKey(const CryptoKey&, unsigned) override { return Status::Ok(); }
  Status EvictKey(const CryptoKey&, std::optional<unsigned>) override {
    std::lock_guard g(mu_);
    ++evictions_;
    if (fail_evictions_) return Status::Error(EIO, "test device eviction fails");
    return Status::Ok();
  }

  MemoryBackend mem_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Seen> seen_;
  bool hold_ = false;
  int arrived_ = 0;
  int evictions_ = 0;
  std::atomic<bool> fail_{false};
  bool fail_evictions_ = false;
  bool discard_ = true;
  std::unique_ptr<CryptoProfile> profile_;  // declared last: destroyed first
};

inline CryptoCapabilities Caps(std::initializer_list<std::pair<CryptoMode, uint32_t>> pairs,
                               unsigned max_dun_bytes = 8) {
  CryptoCapabilities c;
  for (auto [mode, size] : pairs) c.Add(mode, size);
  c.max_dun_bytes = max_dun_bytes;
  c.key_types = static_cast<uint8_t>(KeyType::kRaw);
  return c;
}

inline KeyPtr MakeKey(uint32_t data_unit_size = 4096, uint8_t seed = 1,
                      CryptoMode mode = CryptoMode::kAes256Xts) {
  CryptoConfig config;
  config.mode = mode;
  config.data_unit_size = data_unit_size;
  config.dun_bytes = 8;
  std::vector<uint8_t> raw(ModeInfo(mode).key_size);
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<uint8_t>(seed * 7 + i * 13 + 1);
  auto key = CryptoKey::Create(config, raw);
  EXPECT_TRUE(key.ok()) << key.status().ToString();
  return std::move(*key);
}

// Bytes that differ with position and seed, so a misplaced copy shows.
inline std::vector<uint8_t> Pattern(uint64_t offset, uint64_t length, uint8_t seed) {
  std::vector<uint8_t> v(length);
  for (uint64_t i = 0; i < length; ++i) v[i] = static_cast<uint8_t>((offset + i) * 31 + seed);
  return v;
}

inline IoRequest WriteReq(uint64_t offset, const std::vector<uint8_t>& data,
                          const CryptoKey* key = nullptr, uint64_t dun = 0) {
  IoRequest req;
  req.op = IoOp::kWrite;
  req.offset_bytes = offset;
  req.length_bytes = data.size();
  req.write_buf = data.data();
  if (key != nullptr) req.crypt = CryptoContext{key, Dun::FromU64(dun)};
  return req;
}

inline IoRequest ReadReq(uint64_t offset, std::vector<uint8_t>& out, const CryptoKey* key = nullptr,
                         uint64_t dun = 0) {
  IoRequest req;
  req.op = IoOp::kRead;
  req.offset_bytes = offset;
  req.length_bytes = out.size();
  req.read_buf = out.data();
  if (key != nullptr) req.crypt = CryptoContext{key, Dun::FromU64(dun)};
  return req;
}

inline IoRequest FlushReq() {
  IoRequest req;
  req.op = IoOp::kFlush;
  return req;
}

// Polls `done` until it holds, for at most 20 s (for states another thread reaches without a
// signal the test can wait on, e.g. a thread blocked inside a device).
inline bool Eventually(const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

}  // namespace ice::dm::testing
