// Fuzzes the TOML config loader: the input is a config file's text for config::ParseConfig (as if
// at <tmp>/ice.toml), each table line goes through dm::LineHoldsKey, and a config that parses is
// built into an engine when that stays inside the harness's bounds:
//  - every backing is `memory`, at most 64 MiB in all (file: backings would create files wherever
//    the input says, nbd: ones would reach out to the network);
//  - every key file resolves into the harness's temporary folder (which holds `key64` and `key16`,
//    mode 0600, of the two key sizes; nothing else), and `generate` is ignored, so no file is read
//    or written elsewhere.
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "config/config.h"
#include "daemon/engine.h"
#include "dm/table.h"
#include "tests/fuzz/fuzz_util.h"

namespace ice::fuzz {
namespace {

constexpr uint64_t kMaxMemoryBytes = 64 << 20;

void WriteKeyFile(const std::string& name, size_t size) {
  const std::string path = TempDir() + "/" + name;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) std::abort();
  std::string bytes(size, '\0');
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>(i * 11 + 1);
  if (::write(fd, bytes.data(), size) != static_cast<ssize_t>(size)) std::abort();
  ::close(fd);
}

const std::string& ConfigPath() {
  static const std::string path = [] {
    WriteKeyFile("key64", 64);
    WriteKeyFile("key16", 16);
    return TempDir() + "/ice.toml";
  }();
  return path;
}

// Whether building `c` stays in memory and in the temporary folder (see the top of the file).
bool Buildable(config::Config& c) {
  uint64_t memory = 0;
  for (const auto& hw : c.hardware) {
    if (hw.backing != "memory" || hw.size_bytes > kMaxMemoryBytes - memory) return false;
    memory += hw.size_bytes;
  }
  for (auto& k : c.keys) {
    if (std::filesystem::path(k.key_file).parent_path() != TempDir()) return false;
    k.generate = false;
  }
  return true;
}

}  // namespace
}  // namespace ice::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ice;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = config::ParseConfig(text, fuzz::ConfigPath());
  if (!config.ok()) return 0;
  for (const auto& d : config->devices) {
    for (const std::string& line : d.table) (void)dm::LineHoldsKey(line);
  }
  if (fuzz::Buildable(*config)) {
    fuzz::JumpClock clock;
    auto engine = daemon::Engine::Create(*config, clock);
    if (engine.ok()) (void)(*engine)->ListExports();
    if (fuzz::Verbose()) std::fprintf(stderr, "engine: %s\n", engine.status().ToString().c_str());
  }
  config::WipeDeviceTables(*config);
  return 0;
}
