// Fuzzes export-name parsing: the whole input is an NBD export name (`NAME`, `NAME@KEY`, "" for the
// default export) for daemon::Engine::OpenExport on a small engine, for SplitExportName, and for
// EscapeForLog (how a refused name reaches the log), whose result must be one short printable line.
// An export that opens serves one read of its first block.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "block/log.h"
#include "config/config.h"
#include "daemon/engine.h"
#include "tests/fuzz/fuzz_util.h"

namespace ice::fuzz {
namespace {

void Check(const Status& s) {
  if (s.ok()) return;
  std::fprintf(stderr, "export_name_fuzz: cannot build the engine: %s\n", s.ToString().c_str());
  std::abort();
}

void AddKey(daemon::Engine& engine, const std::string& name, CryptoMode mode, uint32_t unit) {
  std::vector<uint8_t> raw(ModeInfo(mode).key_size);
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<uint8_t>(i * 5 + name.size());
  Check(engine.AddKey(name, {mode, unit, 8, KeyType::kRaw}, raw));
}

// Hardware with and without inline crypto, mapped devices over them (one with a key of its own),
// keys of several configurations, and a default export. Opening an export changes nothing that a
// later open sees once it is closed, so the engine is built once.
daemon::Engine& TheEngine() {
  static daemon::Engine* engine = [] {
    static JumpClock clock;
    config::Config cfg;
    cfg.daemon.default_export = "lin0";
    cfg.hardware = {Hardware("hw0", 2), Hardware("plain", 0)};
    cfg.devices.push_back({"lin0", {"0 2048 linear hw0 0"}});
    auto e = daemon::Engine::Create(cfg, clock);
    Check(e.status());
    AddKey(**e, "k1", CryptoMode::kAes256Xts, 4096);
    AddKey(**e, "k512", CryptoMode::kAes256Xts, 512);
    AddKey(**e, "kcbc", CryptoMode::kAes128CbcEssiv, 512);
    auto& dev = (*e)->devices();
    Check(dev.Create("lin1", {"0 1024 linear plain 0"}));
    Check(dev.Create("dk0", {"0 1024 default-key aes-xts-plain64 :64:logon:k1 0 hw0 1024 2 "
                             "sector_size:4096 iv_large_sectors"}));
    Check(dev.Create("zero0", {"0 64 zero"}));
    Check(dev.Create("empty0", {}));
    return e->release();  // never freed: outlives every input
  }();
  return *engine;
}

// Hardening 11: printable ASCII only (no forged line, no terminal sequence) but for the "…" of the
// note of what was cut, and bounded: 128 bytes of the name at 4 bytes an escape, plus that note.
void CheckLoggable(std::string_view name, const std::string& escaped) {
  std::string ascii = escaped;
  for (size_t at; (at = ascii.find("…")) != std::string::npos;) ascii.erase(at, 3);
  bool printable = true;
  for (char c : ascii) printable = printable && c >= 0x20 && c < 0x7f;
  if (printable && escaped.size() <= 4 * 128 + 64) return;
  std::fprintf(stderr, "export_name_fuzz: %zu-byte name escaped for the log as '%s'\n", name.size(),
               escaped.c_str());
  std::abort();
}

}  // namespace
}  // namespace ice::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ice;
  const std::string_view name(reinterpret_cast<const char*>(data), size);
  (void)daemon::SplitExportName(name);
  fuzz::CheckLoggable(name, EscapeForLog(name));
  auto exp = fuzz::TheEngine().OpenExport(name);
  if (!exp.ok()) return 0;
  std::vector<uint8_t> block((*exp)->block_size());
  if (block.size() <= (*exp)->size_bytes()) (void)(*exp)->Read(block.data(), block.size(), 0);
  (void)(*exp)->discards();
  return 0;
}
