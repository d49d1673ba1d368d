// Fuzzes dmsetup table parsing and every target's constructor: the input's lines (split at '\n')
// are one table for dm::Table::Create over a fixed set of devices and registry keys; each line also
// goes through dm::LineHoldsKey. A table that loads must print lines that load again into a table
// that prints the same (dmsetup table | dmsetup load), unless it holds a key inline (never
// printed).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "block/memory_backend.h"
#include "dm/table.h"
#include "keyslot/blk_crypto.h"
#include "keyslot/crypto_key.h"
#include "keyslot/hardware_device.h"
#include "keyslot/key_registry.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/unit/dm/map_lookup.h"

namespace ice::fuzz {
namespace {

CryptoCapabilities Caps(CryptoMode mode, std::initializer_list<uint32_t> units) {
  CryptoCapabilities caps;
  for (uint32_t unit : units) caps.Add(mode, unit);
  caps.max_dun_bytes = ModeInfo(mode).iv_size;
  caps.key_types = static_cast<uint8_t>(KeyType::kRaw);
  return caps;
}

void AddKey(KeyRegistry& keys, const std::string& name, CryptoMode mode, uint32_t unit,
            unsigned dun_bytes) {
  std::vector<uint8_t> raw(ModeInfo(mode).key_size);
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<uint8_t>(i * 7 + name.size());
  auto key = CryptoKey::Create({mode, unit, dun_bytes, KeyType::kRaw}, raw);
  if (!key.ok() || !keys.Add(name, std::move(*key)).ok()) std::abort();
}

// The devices and keys every input's table may name. Tables do not change them (a log-writes
// table writes its log's super block, which later tables overwrite), so they are built once.
struct World {
  ManualClock clock;
  KeyRegistry keys;
  BlkCrypto blk{4};
  dm::testing::MapLookup devices;
  dm::TargetEnv env{&devices, &keys, &blk, &clock};

  void AddHardware(const std::string& name, uint64_t size_bytes, unsigned slots,
                   const CryptoCapabilities& caps) {
    devices.Add(name, std::make_shared<HardwareDevice>(std::make_unique<MemoryBackend>(size_bytes),
                                                       slots, caps, clock));
  }

  World() {
    AddHardware("hw0", 1 << 20, 2,
                Caps(CryptoMode::kAes256Xts, {512, 1024, 2048, 4096, 8192, 65536}));
    AddHardware("hw1", 1 << 20, 1, Caps(CryptoMode::kAes128CbcEssiv, {512, 4096}));
    AddHardware("plain", 1 << 20, 0, CryptoCapabilities());
    AddHardware("tiny", 4096, 1, Caps(CryptoMode::kAes256Xts, {4096}));
    AddHardware("big", uint64_t{1} << 34, 1, Caps(CryptoMode::kAes256Xts, {4096}));
    devices.Add("mem", std::make_shared<MemoryBackend>(1 << 20));
    AddKey(keys, "k1", CryptoMode::kAes256Xts, 4096, 8);
    AddKey(keys, "k512", CryptoMode::kAes256Xts, 512, 8);
    AddKey(keys, "kdun1", CryptoMode::kAes256Xts, 4096, 1);
    AddKey(keys, "kcbc", CryptoMode::kAes128CbcEssiv, 512, 8);
  }
};

}  // namespace
}  // namespace ice::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ice;
  static fuzz::World* world = new fuzz::World();  // never freed: outlives every input
  const std::vector<std::string> lines = fuzz::Lines(data, size);
  bool holds_key = false;
  for (const std::string& line : lines) holds_key = dm::LineHoldsKey(line) || holds_key;

  auto table = dm::Table::Create(lines, world->env);
  if (!table.ok()) return 0;
  const std::vector<std::string> printed = (*table)->TableLines();
  (void)(*table)->StatusLines();
  (void)(*table)->Devices();
  (void)(*table)->CheckDevicesStillFit();
  (void)(*table)->IndexOf((*table)->size_bytes() - 1);

  if (holds_key) return 0;  // a key given inline is printed as "-": the lines do not load again
  auto again = dm::Table::Create(printed, world->env);
  if (!again.ok() || (*again)->TableLines() != printed) {
    std::fprintf(stderr, "table_fuzz: the table's printed lines do not load back the same:\n");
    for (const std::string& line : printed) std::fprintf(stderr, "  %s\n", line.c_str());
    if (!again.ok()) std::fprintf(stderr, "error: %s\n", again.status().ToString().c_str());
    std::abort();
  }
  return 0;
}
