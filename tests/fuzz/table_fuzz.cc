// Fuzzes dmsetup table parsing and every target's constructor: the input's lines (split at '\n')
// are one table for dm::Table::Create over a fixed set of devices and registry keys; each line also
// goes through dm::LineHoldsKey. A table that loads must print lines that load again into a table
// that prints the same (dmsetup table | dmsetup load), unless it holds a key inline: that key is
// never printed, in table or status lines.
//
// Lines "io <op> <offset> <length> [<key> [<dun>]]" are not table lines: once the table loads, each
// is one request to a mapped device holding it, through BlkCrypto (as an export sends them), so
// that every target's map path runs on what its constructor accepted. <op> is r (read), w (write),
// W (FUA write), f (flush), z (write-zeroes) or d (discard), sizes in bytes, at most 256 KiB; with
// a registry key the request has its crypto context, the DUN <dun> or offset / data unit size.
// Inputs with I/O get their devices and keys afresh, so that slots and stored bytes left by one
// input do not change the next. Clock waits jump (delay targets do not sleep); flakey's random
// corruption is random, the only nondeterminism.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "block/memory_backend.h"
#include "dm/mapped_device.h"
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

// The devices and keys every input's table may name. Building a table does not change them (a
// log-writes table writes its log's super block, which later tables overwrite).
struct World {
  JumpClock clock;
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
    AddHardware("big", uint64_t{1} << 30, 1, Caps(CryptoMode::kAes256Xts, {4096}));
    devices.Add("mem", std::make_shared<MemoryBackend>(1 << 20));
    AddKey(keys, "k1", CryptoMode::kAes256Xts, 4096, 8);
    AddKey(keys, "k512", CryptoMode::kAes256Xts, 512, 8);
    AddKey(keys, "kdun1", CryptoMode::kAes256Xts, 4096, 1);
    AddKey(keys, "kcbc", CryptoMode::kAes128CbcEssiv, 512, 8);
  }
};

bool IsComment(const std::string& line) {
  const size_t first = line.find_first_not_of(" \t\r\n\v\f");
  return first != std::string::npos && line[first] == '#';
}

// The key argument of a line that holds one (words split at white space only: a key written with
// backslashes is not looked for).
std::string KeyWord(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  const dm::TargetType* type = words.size() > 2 ? dm::FindTargetType(words[2]) : nullptr;
  if (type == nullptr || line.find('\\') != std::string::npos) return "";
  const size_t at = 3 + static_cast<size_t>(type->key_arg);
  return at < words.size() ? words[at] : "";
}

// P4: what a table prints never holds a key given inline (one of 16 digits or more, so that a
// short "key" that is also a device name or a number does not count).
void CheckNoKey(const std::vector<std::string>& printed, const std::vector<std::string>& keys) {
  for (const std::string& key : keys) {
    if (key.size() < 16) continue;
    for (const std::string& line : printed) {
      if (line.find(key) == std::string::npos) continue;
      std::fprintf(stderr, "table_fuzz: a printed line holds the key: %s\n", line.c_str());
      std::abort();
    }
  }
}

struct Io {
  IoOp op = IoOp::kRead;
  bool fua = false;
  uint64_t offset = 0;
  uint64_t length = 0;
  KeyPtr key;
  std::optional<uint64_t> dun;
};

constexpr uint64_t kMaxIoBytes = 256 * 1024;

// An "io …" line (see the top of the file); nullopt for one that is not well formed.
std::optional<Io> ParseIo(const std::string& line, const KeyRegistry& keys) {
  std::istringstream in(line);
  std::string io, op, key;
  Io r;
  if (!(in >> io >> op >> r.offset >> r.length) || r.length > kMaxIoBytes) return std::nullopt;
  static const std::map<std::string, IoOp> kOps = {
      {"r", IoOp::kRead},  {"w", IoOp::kWrite},       {"W", IoOp::kWrite},
      {"f", IoOp::kFlush}, {"z", IoOp::kWriteZeroes}, {"d", IoOp::kDiscard}};
  auto it = kOps.find(op);
  if (it == kOps.end()) return std::nullopt;
  r.op = it->second;
  r.fua = op == "W";
  if (in >> key) {
    auto k = keys.Find(key);
    if (!k.ok()) return std::nullopt;
    r.key = *k;
    uint64_t dun = 0;
    if (in >> dun) r.dun = dun;
  }
  return r;
}

void RunIo(World& world, dm::MappedDevice& dev, const Io& io) {
  std::vector<uint8_t> buf(io.length);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<uint8_t>(i * 13 + io.offset);
  IoRequest req{.op = io.op, .offset_bytes = io.offset, .length_bytes = io.length, .fua = io.fua};
  if (io.op == IoOp::kRead) req.read_buf = buf.data();
  if (io.op == IoOp::kWrite) req.write_buf = buf.data();
  if (io.op == IoOp::kFlush) req.length_bytes = req.offset_bytes = 0;
  if (io.key) {
    const uint64_t dun = io.dun.value_or(io.offset / io.key->config().data_unit_size);
    req.crypt = CryptoContext{io.key.get(), Dun::FromU64(dun)};
  }
  (void)world.blk.Submit(dev, req);
}

}  // namespace
}  // namespace ice::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ice;
  static fuzz::World* shared = new fuzz::World();  // never freed: outlives every input
  std::vector<std::string> lines, io_lines;
  for (std::string& line : fuzz::Lines(data, size)) {
    (line.starts_with("io ") ? io_lines : lines).push_back(std::move(line));
  }
  std::unique_ptr<fuzz::World> fresh = io_lines.empty() ? nullptr : std::make_unique<fuzz::World>();
  fuzz::World* world = fresh ? fresh.get() : shared;
  std::vector<std::string> keys;
  for (const std::string& line : lines) {
    // LineHoldsKey counts a commented-out key too (it is as secret); a table skips such lines.
    if (dm::LineHoldsKey(line) && !fuzz::IsComment(line)) keys.push_back(fuzz::KeyWord(line));
  }

  auto table = dm::Table::Create(lines, world->env);
  if (!table.ok()) return 0;
  const std::vector<std::string> printed = (*table)->TableLines();
  fuzz::CheckNoKey(printed, keys);
  fuzz::CheckNoKey((*table)->StatusLines(), keys);
  (void)(*table)->Devices();
  (void)(*table)->CheckDevicesStillFit();
  (void)(*table)->IndexOf((*table)->size_bytes() - 1);

  if (keys.empty()) {  // a key given inline is printed as "-": those lines do not load again
    auto again = dm::Table::Create(printed, world->env);
    if (!again.ok() || (*again)->TableLines() != printed) {
      std::fprintf(stderr, "table_fuzz: the table's printed lines do not load back the same:\n");
      for (const std::string& line : printed) std::fprintf(stderr, "  %s\n", line.c_str());
      if (!again.ok()) std::fprintf(stderr, "error: %s\n", again.status().ToString().c_str());
      std::abort();
    }
  }
  if (io_lines.empty()) return 0;

  dm::MappedDevice dev("fuzz", world->blk);
  if (!dev.Load(std::move(*table)).ok() || !dev.Resume().ok()) return 0;
  for (const std::string& line : io_lines) {
    if (auto io = fuzz::ParseIo(line, world->keys)) fuzz::RunIo(*world, dev, *io);
  }
  fuzz::CheckNoKey(dev.live_table()->StatusLines(), keys);
  return 0;
}
