// The cost of ice's own layers on the NBD data path, without nbdkit or a socket: an export of the
// engine (what the plugin's pread/pwrite call) over emulated hardware on a memory or file backend,
// with and without a key, from 1 and 16 threads at once (nbdkit's default worker count per
// connection). Aligned 4 KiB and 1 MiB requests, and 512-byte writes that take read-modify-write.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "config/config.h"
#include "daemon/engine.h"

namespace ice::daemon {
namespace {

constexpr uint64_t kSpanBytes = 64 << 20;  // the range the requests cycle over

enum Backing { kMemory = 0, kFile = 1 };

// One engine per backing for the whole process: benchmark threads share one export, as the
// worker threads of one NBD connection do.
struct Fixture {
  std::string dir;
  std::unique_ptr<Engine> engine;
  std::unique_ptr<Export> keyed, plain;
};

Fixture* MakeFixture(Backing backing) {
  auto* f = new Fixture;
  char tmpl[] = "/tmp/ice-export-bench.XXXXXX";
  if (mkdtemp(tmpl) == nullptr) std::abort();
  f->dir = tmpl;
  const std::string store = backing == kFile ? "file:" + f->dir + "/hw0.img" : "memory";
  const std::string text = R"([daemon]
control_socket = ")" + f->dir +
                           R"(/control.sock"
log_level = "warn"
log_target = "stderr"

[[hardware]]
name = "hw0"
backing = ")" + store + R"("
size = "256M"
keyslots = 4
  [[hardware.capability]]
  mode = "aes-256-xts"
  data_unit_sizes = [4096]
  max_dun_bytes = 8

[[key]]
name = "k"
mode = "aes-256-xts"
data_unit_size = 4096
dun_bytes = 8
key_file = ")" + f->dir + R"(/k.key"
generate = true
)";
  auto config = config::ParseConfig(text, f->dir + "/ice.toml");
  if (!config.ok()) std::abort();
  auto engine = Engine::Create(*config);
  if (!engine.ok()) std::abort();
  f->engine = std::move(*engine);
  auto keyed = f->engine->OpenExport("hw0@k");
  auto plain = f->engine->OpenExport("hw0");
  if (!keyed.ok() || !plain.ok()) std::abort();
  f->keyed = std::move(*keyed);
  f->plain = std::move(*plain);
  return f;
}

Fixture* g_fixtures[2] = {};

Fixture& Get(Backing backing) {
  static std::mutex mu;  // benchmark threads start together
  std::lock_guard lock(mu);
  if (g_fixtures[backing] == nullptr) g_fixtures[backing] = MakeFixture(backing);
  return *g_fixtures[backing];
}

// Drops the engines and their temporary folders at exit.
struct Cleanup {
  ~Cleanup() {
    for (Fixture* f : g_fixtures) {
      if (f == nullptr) continue;
      f->keyed.reset();
      f->plain.reset();
      f->engine.reset();
      const std::string cmd = "rm -rf '" + f->dir + "'";
      if (std::system(cmd.c_str()) != 0)
        std::fprintf(stderr, "could not remove %s\n", f->dir.c_str());
      delete f;
    }
  }
} cleanup;

// range(0): request bytes; range(1): 0 read, 1 write; range(2): backing; range(3): 1 keyed.
// range(4): offset within the data unit (0: aligned).
void BM_Export(benchmark::State& state) {
  const uint64_t bytes = static_cast<uint64_t>(state.range(0));
  const bool write = state.range(1) == 1;
  Fixture& f = Get(static_cast<Backing>(state.range(2)));
  Export& exp = state.range(3) == 1 ? *f.keyed : *f.plain;
  const uint64_t skew = static_cast<uint64_t>(state.range(4));
  std::vector<uint8_t> buf(bytes, static_cast<uint8_t>(state.thread_index()));
  // Each thread walks its own stride through the span, so threads rarely touch the same units.
  const uint64_t step = std::max<uint64_t>(bytes, 4096);
  uint64_t offset = (static_cast<uint64_t>(state.thread_index()) * 7919 * step) % kSpanBytes;
  for (auto _ : state) {
    offset = (offset + step * static_cast<uint64_t>(state.threads())) % (kSpanBytes - step);
    offset -= offset % 4096;
    const Status s = write ? exp.Write(buf.data(), bytes, offset + skew, false)
                           : exp.Read(buf.data(), bytes, offset + skew);
    if (!s.ok()) state.SkipWithError(s.ToString().c_str());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

void Args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"bytes", "write", "file", "keyed", "skew"});
  for (int64_t backing : {kMemory, kFile}) {
    for (int64_t keyed : {0, 1}) {
      for (int64_t write : {0, 1}) {
        for (int64_t bytes : {4096, 1 << 20}) b->Args({bytes, write, backing, keyed, 0});
      }
    }
    b->Args({512, 1, backing, 1, 512});  // read-modify-write of part of a data unit
  }
  b->UseRealTime()->Threads(1)->Threads(16);
}
BENCHMARK(BM_Export)->Apply(Args);

}  // namespace
}  // namespace ice::daemon

BENCHMARK_MAIN();
