// The daemon's TOML configuration: schema, loader and key files (DESIGN.md "Config").
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "block/status.h"
#include "keyslot/capabilities.h"
#include "keyslot/crypto_mode.h"
#include "keyslot/key_memory.h"

namespace ice::config {

struct DaemonConfig {
  std::string control_socket = "/run/ice/control.sock";
  std::string log_level = "info";   // trace, debug, info, warn, error, off
  std::string log_target = "auto";  // auto (journald under systemd), stderr, journald
  std::vector<uid_t> allowed_uids;  // besides root and the daemon's own uid (P1)
  std::string default_export;       // the export the empty name maps to, "" = refuse (N1)
  unsigned fallback_slots = 100;    // F2
  unsigned control_idle_timeout_s = 60;
  unsigned control_max_clients = 64;  // control connections served at once (hardening 5)
  // Exports advertise their data unit as the minimum block size, as real hardware would demand
  // (clients in strict mode then refuse smaller I/O); otherwise less, served by read-modify-write
  // (N3, issue 19).
  bool strict_block_size = false;
  // Issue 18: where GET /metrics is served over HTTP ("" = nowhere): ParseListenAddress's syntax.
  // Only a loopback address or a Unix socket unless metrics_listen_any.
  std::string metrics_listen;
  bool metrics_listen_any = false;
};

struct HardwareConfig {
  std::string name;
  std::string backing;  // "memory", "file:/abs/path" (resolved), "nbd:URI"
  uint64_t size_bytes = 0;
  unsigned keyslots = 0;
  CryptoCapabilities capabilities;  // none: a plain device (H1)
};

struct KeyConfig {
  std::string name;
  CryptoConfig crypto;
  std::string key_file;   // absolute (resolved against the config file's folder)
  bool generate = false;  // create a random key file (mode 0600) when it does not exist
};

struct DeviceConfig {
  std::string name;
  std::vector<std::string> table;  // dmsetup lines; a default-key line may hold a key in hex
};

struct Config {
  std::string path;
  DaemonConfig daemon;
  std::vector<HardwareConfig> hardware;
  std::vector<KeyConfig> keys;
  std::vector<DeviceConfig> devices;
};

// Parses and validates the schema: unknown keys, wrong types and bad values are EINVAL with
// "FILE:LINE: …" naming the key. Does not touch key files or backends. The file is read into
// pages kept out of core dumps and wiped afterwards, as are the parser's strings. A config whose
// device tables hold a key inline (dm::LineHoldsKey) is refused with EPERM, as a key file is
// (ReadKeyFile), when the file is group- or world-accessible.
Result<Config> LoadConfig(const std::string& path);
Result<Config> ParseConfig(std::string_view toml_text, const std::string& source_path);

// Wipes every device's table lines (they may hold keys) and empties them: for the daemon once the
// devices are built, so that the config it keeps holds no key.
void WipeDeviceTables(Config& config);

// Raw key bytes that are zeroed when dropped, in pages kept out of core dumps. Move-only.
using SecretBytes = SecretPages;

// Reads a raw key file of exactly `expected_size` bytes. EPERM when the file is group- or
// world-accessible (mode & 077), EINVAL for a wrong size, ENOENT when missing (unless `generate`,
// which creates it with random bytes, mode 0600, exclusively).
Result<SecretBytes> ReadKeyFile(const std::string& path, size_t expected_size, bool generate);

// Where a daemon listens: "HOST:PORT" with HOST an IPv4 address or "localhost", "[IPV6]:PORT",
// or an absolute Unix socket path.
struct ListenAddress {
  std::string unix_path;  // a Unix socket; host and port unused
  std::string host;       // an IP address ("localhost" becomes 127.0.0.1)
  uint16_t port = 0;      // 0: any free port
  bool loopback = false;  // a Unix socket, 127.0.0.0/8 or ::1: reachable from this machine only
};
Result<ListenAddress> ParseListenAddress(std::string_view text);

// "512", "4K", "256M", "1G", "2T" (binary multiples) -> bytes.
Result<uint64_t> ParseSize(std::string_view text);

}  // namespace ice::config
