// Throughput of the emulated hardware's crypto path and of the software fallback over an
// in-memory backend, next to raw OpenSSL AES-256-XTS at 4 KiB (one EVP update per data unit) and
// the bare memory backend, so the cost of each layer is visible in one run.
#include <openssl/evp.h>

#include <cstring>
#include <memory>
#include <vector>

#include <benchmark/benchmark.h>

#include "block/memory_backend.h"
#include "keyslot/blk_crypto.h"
#include "keyslot/hardware_device.h"

namespace ice {
namespace {

constexpr uint64_t kDeviceBytes = 64 << 20;
constexpr uint64_t kSpanBytes = 16 << 20;  // the range the benchmarks cycle over
constexpr uint32_t kDataUnit = 4096;

std::vector<uint8_t> Bytes(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 31 + seed);
  return v;
}

KeyPtr XtsKey() {
  auto key = CryptoKey::Create({CryptoMode::kAes256Xts, kDataUnit, 8, KeyType::kRaw}, Bytes(64, 7));
  return key.ok() ? *key : nullptr;
}

CryptoCapabilities XtsCaps() {
  CryptoCapabilities caps;
  caps.Add(CryptoMode::kAes256Xts, kDataUnit);
  caps.max_dun_bytes = 8;
  caps.key_types = static_cast<uint8_t>(KeyType::kRaw);
  return caps;
}

enum class Path { kBackend, kHardware, kFallback };

// Writes (arg1 == 1) or reads (arg1 == 0) of state.range(0) bytes cycling over kSpanBytes.
void RunIo(benchmark::State& state, Path path) {
  const size_t io_bytes = static_cast<size_t>(state.range(0));
  const bool write = state.range(1) == 1;
  BlkCrypto blk;
  HardwareDevice hw(std::make_unique<MemoryBackend>(kDeviceBytes), 4, XtsCaps());
  MemoryBackend plain(kDeviceBytes);
  BlockDevice& dev = path == Path::kHardware ? static_cast<BlockDevice&>(hw) : plain;
  KeyPtr key = XtsKey();
  auto buf = Bytes(io_bytes, 1);
  auto submit = [&](IoOp op, uint64_t offset) {
    IoRequest req{.op = op, .offset_bytes = offset, .length_bytes = io_bytes};
    if (op == IoOp::kWrite) req.write_buf = buf.data();
    if (op == IoOp::kRead) req.read_buf = buf.data();
    if (path != Path::kBackend)
      req.crypt = CryptoContext{key.get(), Dun::FromU64(offset / kDataUnit)};
    return blk.Submit(dev, req);
  };
  for (uint64_t off = 0; off < kSpanBytes; off += io_bytes) {  // populate: reads hit real chunks
    if (!submit(IoOp::kWrite, off).ok()) state.SkipWithError("populate failed");
  }
  uint64_t offset = 0;
  for (auto _ : state) {
    if (!submit(write ? IoOp::kWrite : IoOp::kRead, offset).ok()) {
      state.SkipWithError("I/O failed");
      break;
    }
    benchmark::DoNotOptimize(buf.data());
    offset = (offset + io_bytes) % kSpanBytes;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * io_bytes));
  state.SetLabel(write ? "write" : "read");
}

void BM_MemoryBackend(benchmark::State& state) { RunIo(state, Path::kBackend); }
void BM_Hardware(benchmark::State& state) { RunIo(state, Path::kHardware); }
void BM_Fallback(benchmark::State& state) { RunIo(state, Path::kFallback); }

void IoArgs(benchmark::internal::Benchmark* b) {
  for (int64_t size : {4096, 131072}) {
    for (int64_t write : {0, 1}) b->Args({size, write});
  }
}
BENCHMARK(BM_MemoryBackend)->Apply(IoArgs);
BENCHMARK(BM_Hardware)->Apply(IoArgs);
BENCHMARK(BM_Fallback)->Apply(IoArgs);

// The ceiling: OpenSSL AES-256-XTS on 4 KiB units, keyed once, one IV + one update per unit.
void BM_OpenSslXts4K(benchmark::State& state) {
  const bool encrypt = state.range(0) == 1;
  const auto key = Bytes(64, 7);
  auto in = Bytes(kDataUnit, 1);
  std::vector<uint8_t> out(kDataUnit);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  EVP_CipherInit_ex(ctx, EVP_aes_256_xts(), nullptr, key.data(), nullptr, encrypt ? 1 : 0);
  uint64_t dun = 0;
  for (auto _ : state) {
    uint8_t iv[16] = {};
    std::memcpy(iv, &dun, sizeof(dun));
    int len = 0;
    if (EVP_CipherInit_ex(ctx, nullptr, nullptr, nullptr, iv, -1) != 1 ||
        EVP_CipherUpdate(ctx, out.data(), &len, in.data(), kDataUnit) != 1) {
      state.SkipWithError("OpenSSL failed");
      break;
    }
    benchmark::DoNotOptimize(out.data());
    ++dun;
  }
  EVP_CIPHER_CTX_free(ctx);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kDataUnit));
  state.SetLabel(encrypt ? "encrypt" : "decrypt");
}
BENCHMARK(BM_OpenSslXts4K)->Arg(1)->Arg(0);

}  // namespace
}  // namespace ice

BENCHMARK_MAIN();
