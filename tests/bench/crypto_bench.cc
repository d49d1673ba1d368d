// Throughput of DataUnitCipher per mode, data unit size and request size, next to a baseline that
// drives OpenSSL the way `openssl speed -evp aes-256-xts -bytes 4096` does: one EVP_EncryptUpdate
// per 4 KiB block on a context keyed once, with no IV change. The ratio ice / baseline is the cost
// of ice's per-data-unit tweak, context pool and request checks.
//
//   bench_crypto --benchmark_min_time=0.5
#include <benchmark/benchmark.h>
#include <openssl/evp.h>

#include <cstdint>
#include <string>
#include <vector>

#include "keyslot/data_unit_cipher.h"

namespace ice {
namespace {

constexpr size_t kRequestSizes[] = {64 * 1024, 1024 * 1024};
// One 4 KiB data unit a request: the buffer `openssl speed -bytes 4096` cycles through, and the
// case where per-request costs (context lease, checks) weigh most.
constexpr size_t kOneUnitRequest = 4096;
constexpr uint32_t kDataUnitSizes[] = {4096, 65536};

std::vector<uint8_t> Filled(size_t n) {
  std::vector<uint8_t> b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i * 131 + 17);
  return b;
}

std::vector<uint8_t> RawKey(CryptoMode mode) {
  std::vector<uint8_t> k(ModeInfo(mode).key_size);
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(i * 7 + 1);
  return k;
}

std::unique_ptr<DataUnitCipher> MakeCipher(CryptoMode mode, uint32_t data_unit_size) {
  auto key = CryptoKey::Create({mode, data_unit_size, 8, KeyType::kRaw}, RawKey(mode));
  if (!key.ok()) return nullptr;
  auto cipher = DataUnitCipher::Create(**key);
  return cipher.ok() ? std::move(cipher).value() : nullptr;
}

enum class Op { kEncryptInPlace, kDecryptInPlace, kEncryptToBounce };

// The request is transformed in place, as `openssl speed` does, except kEncryptToBounce, which
// writes to a second buffer as the software fallback does for writes.
void BM_Ice(benchmark::State& state, CryptoMode mode, Op op, uint32_t unit, size_t request) {
  auto cipher = MakeCipher(mode, unit);
  if (cipher == nullptr) {
    state.SkipWithError("cannot create cipher");
    return;
  }
  std::vector<uint8_t> buf = Filled(request);
  std::vector<uint8_t> bounce(op == Op::kEncryptToBounce ? request : 0);
  uint64_t dun = 1000 * static_cast<uint64_t>(state.thread_index());
  for (auto _ : state) {
    Status s;
    switch (op) {
      case Op::kEncryptInPlace:
        s = cipher->Encrypt(Dun::FromU64(dun), buf.data(), buf.data(), request);
        break;
      case Op::kDecryptInPlace:
        s = cipher->Decrypt(Dun::FromU64(dun), buf.data(), buf.data(), request);
        break;
      case Op::kEncryptToBounce:
        s = cipher->Encrypt(Dun::FromU64(dun), buf.data(), bounce.data(), request);
        break;
    }
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(buf.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(request));
}

// `openssl speed -evp aes-256-xts -bytes 4096`: one update per block, the IV set once. With
// set_iv_per_block, each block first gets its IV through EVP_CipherInit_ex2: what ice would cost
// without its LiveIv path (keyslot/data_unit_cipher_iv.h).
void BM_EvpBaseline(benchmark::State& state, size_t request, bool set_iv_per_block) {
  const uint32_t block = 4096;
  const auto key = RawKey(CryptoMode::kAes256Xts);
  uint8_t iv[16] = {1};
  EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-256-XTS", nullptr);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (EVP_EncryptInit_ex2(ctx, cipher, key.data(), iv, nullptr) != 1) {
    state.SkipWithError("EVP init");
  }
  std::vector<uint8_t> buf = Filled(request);
  for (auto _ : state) {
    for (size_t off = 0; off < request; off += block) {
      int outl = 0;
      if (set_iv_per_block) EVP_CipherInit_ex2(ctx, nullptr, nullptr, iv, -1, nullptr);
      EVP_EncryptUpdate(ctx, buf.data() + off, &outl, buf.data() + off, block);
    }
    benchmark::DoNotOptimize(buf.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(request));
  EVP_CIPHER_CTX_free(ctx);
  EVP_CIPHER_free(cipher);
}

std::string Kib(size_t n) { return std::to_string(n / 1024) + "KiB"; }

int RegisterAll() {
  for (size_t request : {kOneUnitRequest, kRequestSizes[0], kRequestSizes[1]}) {
    benchmark::RegisterBenchmark(("evp_baseline/aes-256-xts/unit:4KiB/req:" + Kib(request)).c_str(),
                                 BM_EvpBaseline, request, false);
    benchmark::RegisterBenchmark(
        ("evp_baseline_iv_per_unit/aes-256-xts/unit:4KiB/req:" + Kib(request)).c_str(),
        BM_EvpBaseline, request, true);
  }
  const struct {
    Op op;
    const char* name;
  } ops[] = {{Op::kEncryptInPlace, "encrypt"},
             {Op::kDecryptInPlace, "decrypt"},
             {Op::kEncryptToBounce, "encrypt_to_bounce"}};
  benchmark::RegisterBenchmark("ice/aes-256-xts/encrypt/unit:4KiB/req:4KiB", BM_Ice,
                               CryptoMode::kAes256Xts, Op::kEncryptInPlace, 4096, kOneUnitRequest);
  for (CryptoMode mode : {CryptoMode::kAes256Xts, CryptoMode::kAes128CbcEssiv}) {
    for (const auto& op : ops) {
      for (uint32_t unit : kDataUnitSizes) {
        for (size_t request : kRequestSizes) {
          if (op.op == Op::kEncryptToBounce && (unit != 4096 || mode != CryptoMode::kAes256Xts))
            continue;
          const std::string name = std::string("ice/") + ModeInfo(mode).name + "/" + op.name +
                                   "/unit:" + Kib(unit) + "/req:" + Kib(request);
          auto* b = benchmark::RegisterBenchmark(name.c_str(), BM_Ice, mode, op.op, unit, request);
          // Two threads on one cipher: the context pool must not serialize them.
          if (mode == CryptoMode::kAes256Xts && op.op == Op::kEncryptInPlace && unit == 4096)
            b->Threads(1)->Threads(2);
        }
      }
    }
  }
  return 0;
}

[[maybe_unused]] const int registered = RegisterAll();

}  // namespace
}  // namespace ice

BENCHMARK_MAIN();
