#include "config/config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <toml++/toml.h>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "block/memory_backend.h"
#include "dm/table.h"
#include "keyslot/key_registry.h"

namespace ice::config {
namespace {

// Schema errors carry the file and line of the offending node.
class SchemaError {
 public:
  SchemaError(const std::string& file) : file_(file) {}
  Status At(const toml::node& node, const std::string& what) const {
    return Status::Error(EINVAL,
                         file_ + ":" + std::to_string(node.source().begin.line) + ": " + what);
  }
  Status At(const toml::source_region& where, const std::string& what) const {
    return Status::Error(EINVAL, file_ + ":" + std::to_string(where.begin.line) + ": " + what);
  }
  Status File(const std::string& what) const { return Status::Error(EINVAL, file_ + ": " + what); }

 private:
  std::string file_;
};

Status CheckKeys(const SchemaError& err, const toml::table& t, const std::string& where,
                 std::initializer_list<const char*> allowed) {
  for (const auto& [k, v] : t) {
    bool known = false;
    for (const char* a : allowed) known = known || k.str() == a;
    if (!known) return err.At(v, "unknown key '" + std::string(k.str()) + "' in " + where);
  }
  return Status::Ok();
}

Result<std::string> GetString(const SchemaError& err, const toml::table& t, const char* key,
                              const std::string& where, bool required) {
  const toml::node* n = t.get(key);
  if (!n) {
    if (required) return err.At(t, where + " needs '" + key + "'");
    return std::string();
  }
  if (!n->is_string()) return err.At(*n, where + "." + key + " must be a string");
  return std::string(*n->value<std::string>());
}

Result<int64_t> GetInt(const SchemaError& err, const toml::table& t, const char* key,
                       const std::string& where, bool required, int64_t fallback, int64_t min,
                       int64_t max) {
  const toml::node* n = t.get(key);
  if (!n) {
    if (required) return err.At(t, where + " needs '" + key + "'");
    return fallback;
  }
  if (!n->is_integer()) return err.At(*n, where + "." + key + " must be an integer");
  const int64_t v = *n->value<int64_t>();
  if (v < min || v > max) {
    return err.At(*n, where + "." + key + " = " + std::to_string(v) + " is outside " +
                          std::to_string(min) + "…" + std::to_string(max));
  }
  return v;
}

Result<uint64_t> GetSize(const SchemaError& err, const toml::table& t, const char* key,
                         const std::string& where) {
  const toml::node* n = t.get(key);
  if (!n) return err.At(t, where + " needs '" + key + "'");
  if (n->is_integer()) {
    const int64_t v = *n->value<int64_t>();
    if (v <= 0) return err.At(*n, where + "." + key + " must be positive");
    return static_cast<uint64_t>(v);
  }
  if (n->is_string()) {
    auto r = ParseSize(*n->value<std::string>());
    if (!r.ok()) return err.At(*n, where + "." + key + ": " + r.status().message());
    return *r;
  }
  return err.At(*n, where + "." + key + " must be an integer or a size such as \"256M\"");
}

std::string Resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  return (std::filesystem::path(base_dir) / path).lexically_normal().string();
}

Result<CryptoMode> GetMode(const SchemaError& err, const toml::table& t, const std::string& where) {
  ICE_ASSIGN_OR_RETURN(std::string name, GetString(err, t, "mode", where, true));
  auto mode = ParseCryptoMode(name);
  if (!mode) return err.At(*t.get("mode"), where + ".mode: unknown crypto mode '" + name + "'");
  return *mode;
}

// Issue 18: metrics over HTTP hold no secret, but they tell who uses which device when: served
// beyond this machine only when the config says so.
Status ParseMetricsListen(const SchemaError& err, const toml::table& t, DaemonConfig& d) {
  if (const toml::node* n = t.get("metrics_listen_any")) {
    if (!n->is_boolean()) return err.At(*n, "[daemon].metrics_listen_any must be true or false");
    d.metrics_listen_any = *n->value<bool>();
  }
  const toml::node* n = t.get("metrics_listen");
  if (!n) return Status::Ok();
  ICE_ASSIGN_OR_RETURN(d.metrics_listen, GetString(err, t, "metrics_listen", "[daemon]", true));
  auto where = ParseListenAddress(d.metrics_listen);
  if (!where.ok()) return err.At(*n, "[daemon].metrics_listen: " + where.status().message());
  if (where->unix_path.empty() && where->port == 0)
    return err.At(*n, "[daemon].metrics_listen needs a port (1…65535)");
  if (!where->loopback && !d.metrics_listen_any) {
    return err.At(*n, "[daemon].metrics_listen '" + d.metrics_listen +
                          "' is reachable from other machines: use 127.0.0.1, [::1] or a Unix "
                          "socket path, or set metrics_listen_any = true");
  }
  return Status::Ok();
}

Status ParseDaemon(const SchemaError& err, const toml::table& t, DaemonConfig& d) {
  ICE_RETURN_IF_ERROR(
      CheckKeys(err, t, "[daemon]",
                {"control_socket", "log_level", "log_target", "allowed_uids", "default_export",
                 "fallback_slots", "control_idle_timeout_s", "control_max_clients",
                 "strict_block_size", "metrics_listen", "metrics_listen_any"}));
  const std::string w = "[daemon]";
  if (t.get("control_socket")) {
    ICE_ASSIGN_OR_RETURN(d.control_socket, GetString(err, t, "control_socket", w, true));
    if (d.control_socket.empty() || d.control_socket[0] != '/')
      return err.At(*t.get("control_socket"), "[daemon].control_socket must be an absolute path");
  }
  if (t.get("log_level")) {
    ICE_ASSIGN_OR_RETURN(d.log_level, GetString(err, t, "log_level", w, true));
    static const std::set<std::string> kLevels = {"trace", "debug", "info", "warn", "error", "off"};
    if (!kLevels.count(d.log_level))
      return err.At(*t.get("log_level"),
                    "[daemon].log_level '" + d.log_level +
                        "' is not one of trace, debug, info, warn, error, off");
  }
  if (t.get("log_target")) {
    ICE_ASSIGN_OR_RETURN(d.log_target, GetString(err, t, "log_target", w, true));
    if (d.log_target != "auto" && d.log_target != "stderr" && d.log_target != "journald")
      return err.At(*t.get("log_target"), "[daemon].log_target '" + d.log_target +
                                              "' is not one of auto, stderr, journald");
  }
  if (const toml::node* n = t.get("allowed_uids")) {
    const toml::array* a = n->as_array();
    if (!a) return err.At(*n, "[daemon].allowed_uids must be an array of uids");
    for (const auto& e : *a) {
      if (!e.is_integer() || *e.value<int64_t>() < 0 || *e.value<int64_t>() > 0xfffffffe)
        return err.At(e, "[daemon].allowed_uids holds something that is not a uid");
      d.allowed_uids.push_back(static_cast<uid_t>(*e.value<int64_t>()));
    }
  }
  ICE_ASSIGN_OR_RETURN(d.default_export, GetString(err, t, "default_export", w, false));
  ICE_ASSIGN_OR_RETURN(int64_t slots, GetInt(err, t, "fallback_slots", w, false, 100, 1, 65536));
  d.fallback_slots = static_cast<unsigned>(slots);
  ICE_ASSIGN_OR_RETURN(int64_t idle,
                       GetInt(err, t, "control_idle_timeout_s", w, false, 60, 1, 86400));
  d.control_idle_timeout_s = static_cast<unsigned>(idle);
  ICE_ASSIGN_OR_RETURN(int64_t clients,
                       GetInt(err, t, "control_max_clients", w, false, 64, 1, 4096));
  d.control_max_clients = static_cast<unsigned>(clients);
  if (const toml::node* n = t.get("strict_block_size")) {
    if (!n->is_boolean()) return err.At(*n, "[daemon].strict_block_size must be true or false");
    d.strict_block_size = *n->value<bool>();
  }
  return ParseMetricsListen(err, t, d);
}

Status ParseCapability(const SchemaError& err, const toml::table& t, const std::string& w,
                       CryptoCapabilities& caps) {
  ICE_RETURN_IF_ERROR(CheckKeys(err, t, w, {"mode", "data_unit_sizes", "max_dun_bytes"}));
  ICE_ASSIGN_OR_RETURN(CryptoMode mode, GetMode(err, t, w));
  const toml::node* n = t.get("data_unit_sizes");
  if (!n || !n->as_array() || n->as_array()->empty())
    return err.At(n ? n->source() : t.source(), w + ".data_unit_sizes must be a non-empty array");
  for (const auto& e : *n->as_array()) {
    if (!e.is_integer()) return err.At(e, w + ".data_unit_sizes: each must be an integer (bytes)");
    const int64_t v = *e.value<int64_t>();
    if (v < kMinDataUnitSize || v > kMaxDataUnitSize || !std::has_single_bit(uint64_t(v)))
      return err.At(
          e, w + ".data_unit_sizes: " + std::to_string(v) + " is not a power of two in 512…65536");
    caps.Add(mode, static_cast<uint32_t>(v));
  }
  const unsigned iv = ModeInfo(mode).iv_size;
  ICE_ASSIGN_OR_RETURN(int64_t dun, GetInt(err, t, "max_dun_bytes", w, false, iv, 1, iv));
  // One device has one max DUN byte count (K1); with several capabilities the largest stands.
  caps.max_dun_bytes = std::max<unsigned>(caps.max_dun_bytes, static_cast<unsigned>(dun));
  caps.key_types = static_cast<uint8_t>(KeyType::kRaw);
  return Status::Ok();
}

Status ParseHardware(const SchemaError& err, const toml::table& t, const std::string& base,
                     HardwareConfig& hw) {
  const std::string w0 = "[[hardware]]";
  ICE_RETURN_IF_ERROR(CheckKeys(err, t, w0, {"name", "backing", "size", "keyslots", "capability"}));
  ICE_ASSIGN_OR_RETURN(hw.name, GetString(err, t, "name", w0, true));
  const std::string w = "hardware '" + hw.name + "'";
  if (!IsValidName(hw.name)) return err.At(*t.get("name"), "invalid device name '" + hw.name + "'");
  ICE_ASSIGN_OR_RETURN(std::string backing, GetString(err, t, "backing", w, true));
  if (backing == "memory") {
    hw.backing = backing;
  } else if (backing.rfind("file:", 0) == 0 && backing.size() > 5) {
    hw.backing = "file:" + Resolve(base, backing.substr(5));
  } else if (backing.rfind("nbd:", 0) == 0 && backing.size() > 4) {
    hw.backing = backing;
  } else {
    return err.At(*t.get("backing"),
                  w + ".backing '" + backing + "' is not memory, file:PATH or nbd:URI");
  }
  ICE_ASSIGN_OR_RETURN(hw.size_bytes, GetSize(err, t, "size", w));
  if (hw.size_bytes % 512 != 0)
    return err.At(*t.get("size"), w + ".size must be a multiple of 512 bytes");
  // Hardening 6: checked here rather than when the backend is opened, so that a start fails with
  // the config's file and line.
  const std::string size = w + ".size = " + std::to_string(hw.size_bytes) + " bytes ";
  if (hw.size_bytes > uint64_t{INT64_MAX})
    return err.At(*t.get("size"), size + "is above INT64_MAX (NBD sizes are signed 64-bit)");
  if (hw.backing == "memory" && hw.size_bytes > MemoryBackend::kMaxSizeBytes) {
    return err.At(*t.get("size"), size + "is above " +
                                      std::to_string(MemoryBackend::kMaxSizeBytes) +
                                      " (8 TiB), the most a memory backing holds: use a file "
                                      "backing for larger devices");
  }
  ICE_ASSIGN_OR_RETURN(int64_t slots, GetInt(err, t, "keyslots", w, false, 0, 0, 1024));
  hw.keyslots = static_cast<unsigned>(slots);
  if (const toml::node* n = t.get("capability")) {
    const toml::array* a = n->as_array();
    if (!a || !a->is_array_of_tables())
      return err.At(*n, w + ".capability must be an array of tables ([[hardware.capability]])");
    for (const auto& c : *a) {
      ICE_RETURN_IF_ERROR(ParseCapability(err, *c.as_table(), w + " capability", hw.capabilities));
    }
  }
  if (hw.capabilities.HasAnyMode() && hw.keyslots == 0)
    return err.At(t, w + " has crypto capabilities but no keyslots");
  return Status::Ok();
}

Status ParseKey(const SchemaError& err, const toml::table& t, const std::string& base,
                KeyConfig& k) {
  const std::string w0 = "[[key]]";
  ICE_RETURN_IF_ERROR(CheckKeys(
      err, t, w0, {"name", "mode", "data_unit_size", "dun_bytes", "key_file", "generate"}));
  ICE_ASSIGN_OR_RETURN(k.name, GetString(err, t, "name", w0, true));
  const std::string w = "key '" + k.name + "'";
  if (!IsValidName(k.name)) return err.At(*t.get("name"), "invalid key name '" + k.name + "'");
  ICE_ASSIGN_OR_RETURN(k.crypto.mode, GetMode(err, t, w));
  ICE_ASSIGN_OR_RETURN(int64_t du, GetInt(err, t, "data_unit_size", w, true, 0, 0, 1 << 30));
  k.crypto.data_unit_size = static_cast<uint32_t>(du);
  ICE_ASSIGN_OR_RETURN(int64_t dun, GetInt(err, t, "dun_bytes", w, false, 8, 0, 64));
  k.crypto.dun_bytes = static_cast<unsigned>(dun);
  Status valid = ValidateConfig(k.crypto);
  if (!valid.ok()) return err.At(t, w + ": " + valid.message());
  if (!ModeInfo(k.crypto.mode).implemented)
    return err.At(t, w + ": ice cannot compute " + ModeInfo(k.crypto.mode).name + " keys");
  ICE_ASSIGN_OR_RETURN(std::string file, GetString(err, t, "key_file", w, true));
  k.key_file = Resolve(base, file);
  if (const toml::node* g = t.get("generate")) {
    if (!g->is_boolean()) return err.At(*g, w + ".generate must be true or false");
    k.generate = *g->value<bool>();
  }
  return Status::Ok();
}

Status ParseDevice(const SchemaError& err, const toml::table& t, DeviceConfig& d) {
  const std::string w0 = "[[device]]";
  ICE_RETURN_IF_ERROR(CheckKeys(err, t, w0, {"name", "table"}));
  ICE_ASSIGN_OR_RETURN(d.name, GetString(err, t, "name", w0, true));
  if (!IsValidName(d.name)) return err.At(*t.get("name"), "invalid device name '" + d.name + "'");
  const toml::node* n = t.get("table");
  const std::string w = "device '" + d.name + "'";
  if (!n) return err.At(t, w + " needs 'table'");
  const toml::array* a = n->as_array();
  if (!a) return err.At(*n, w + ".table must be an array of dmsetup lines");
  for (const auto& e : *a) {
    if (!e.is_string()) return err.At(e, w + ".table lines must be strings");
    d.table.push_back(e.as_string()->get());  // the only copy besides the parser's (wiped)
  }
  return Status::Ok();
}

template <typename T, typename Fn>
Status ParseArrayOfTables(const SchemaError& err, const toml::table& root, const char* key,
                          std::vector<T>& out, Fn&& parse) {
  const toml::node* n = root.get(key);
  if (!n) return Status::Ok();
  const toml::array* a = n->as_array();
  if (!a || !a->is_array_of_tables())
    return err.At(*n, std::string("'") + key + "' must be an array of tables ([[" + key + "]])");
  for (const auto& e : *a) {
    T item;
    ICE_RETURN_IF_ERROR(parse(*e.as_table(), item));
    out.push_back(std::move(item));
  }
  return Status::Ok();
}

Status CheckNames(const SchemaError& err, const Config& c) {
  std::set<std::string> devices, keys;
  for (const auto& h : c.hardware) {
    if (!devices.insert(h.name).second)
      return err.File("device name '" + h.name + "' is used twice");
  }
  for (const auto& d : c.devices) {
    if (!devices.insert(d.name).second)
      return err.File("device name '" + d.name + "' is used twice");
  }
  for (const auto& k : c.keys) {
    if (!keys.insert(k.name).second) return err.File("key name '" + k.name + "' is used twice");
  }
  const std::string& def = c.daemon.default_export;
  if (!def.empty()) {
    const size_t at = def.find('@');
    const std::string dev = def.substr(0, at);
    if (!devices.count(dev))
      return err.File("[daemon].default_export names no device: '" + dev + "'");
    if (at != std::string::npos && !keys.count(def.substr(at + 1)))
      return err.File("[daemon].default_export names no key: '" + def.substr(at + 1) + "'");
  }
  return Status::Ok();
}

}  // namespace

Result<ListenAddress> ParseListenAddress(std::string_view text) {
  ListenAddress a;
  const std::string quoted = "'" + std::string(text) + "'";
  if (!text.empty() && text[0] == '/') {
    if (text.size() >= sizeof(sockaddr_un{}.sun_path))
      return Status::Error(EINVAL, "Unix socket path " + quoted + " is too long");
    a.unix_path = text;
    a.loopback = true;
    return a;
  }
  // "[v6]:port" or "v4:port": the port follows the last colon.
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return Status::Error(EINVAL, quoted + " is not HOST:PORT, [IPV6]:PORT or an absolute path");
  }
  std::string_view host = text.substr(0, colon);
  const std::string_view port = text.substr(colon + 1);
  uint32_t p = 0;
  for (char c : port) {
    if (c < '0' || c > '9' || (p = p * 10 + (c - '0')) > 65535) {
      return Status::Error(EINVAL, "port '" + std::string(port) + "' is not 0…65535");
    }
  }
  if (port.empty()) return Status::Error(EINVAL, quoted + " has no port");
  a.port = static_cast<uint16_t>(p);
  const bool bracketed = host.size() >= 2 && host.front() == '[' && host.back() == ']';
  if (bracketed) host = host.substr(1, host.size() - 2);
  if (!bracketed && host == "localhost") host = "127.0.0.1";
  a.host = host;
  in_addr v4{};
  in6_addr v6{};
  if (!bracketed && ::inet_pton(AF_INET, a.host.c_str(), &v4) == 1) {
    a.loopback = (ntohl(v4.s_addr) >> 24) == 127;
  } else if (bracketed && ::inet_pton(AF_INET6, a.host.c_str(), &v6) == 1) {
    a.loopback = IN6_IS_ADDR_LOOPBACK(&v6);
  } else {
    return Status::Error(
        EINVAL, "'" + std::string(host) + "' is not an IPv4 address, [IPv6] address or localhost");
  }
  return a;
}

Result<uint64_t> ParseSize(std::string_view text) {
  if (text.empty()) return Status::Error(EINVAL, "empty size");
  uint64_t v = 0;
  size_t i = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    if (v > (UINT64_MAX - 9) / 10) return Status::Error(EINVAL, "size too large");
    v = v * 10 + (text[i] - '0');
  }
  if (i == 0) return Status::Error(EINVAL, "size '" + std::string(text) + "' is not a number");
  int shift = 0;
  const std::string_view suffix = text.substr(i);
  if (suffix == "" || suffix == "B")
    shift = 0;
  else if (suffix == "K" || suffix == "KiB")
    shift = 10;
  else if (suffix == "M" || suffix == "MiB")
    shift = 20;
  else if (suffix == "G" || suffix == "GiB")
    shift = 30;
  else if (suffix == "T" || suffix == "TiB")
    shift = 40;
  else
    return Status::Error(EINVAL, "size '" + std::string(text) + "' has an unknown suffix");
  if (shift && v > (UINT64_MAX >> shift)) return Status::Error(EINVAL, "size too large");
  if (v == 0) return Status::Error(EINVAL, "size must be positive");
  return v << shift;
}

namespace {

// Every string value of a parsed document, wiped: a table line may hold a key.
void WipeStrings(toml::node& node) {
  if (toml::table* t = node.as_table()) {
    for (auto&& [k, v] : *t) WipeStrings(v);
  } else if (toml::array* a = node.as_array()) {
    for (toml::node& e : *a) WipeStrings(e);
  } else if (toml::value<std::string>* s = node.as_string()) {
    WipeString(s->get());
  }
}

// What ParseConfig works on, wiped on any return: the document's strings, and the config's tables
// too unless it is handed to the caller.
struct ParseState {
  toml::table root;
  Config config;
  bool handed_out = false;
  ~ParseState() {
    WipeStrings(root);
    if (!handed_out) WipeDeviceTables(config);
  }
};

}  // namespace

void WipeDeviceTables(Config& config) {
  for (DeviceConfig& d : config.devices) {
    for (std::string& line : d.table) WipeString(line);
    d.table.clear();
  }
}

Result<Config> ParseConfig(std::string_view toml_text, const std::string& source_path) {
  SchemaError err(source_path);
  ParseState state;
  toml::table& root = state.root;
  try {
    root = toml::parse(toml_text, source_path);
  } catch (const toml::parse_error& e) {
    return err.At(e.source(), std::string(e.description()));
  }
  Config& c = state.config;
  c.path = source_path;
  const std::string base = std::filesystem::path(source_path).parent_path().string();
  ICE_RETURN_IF_ERROR(
      CheckKeys(err, root, "the top level", {"daemon", "hardware", "key", "device"}));
  if (const toml::node* d = root.get("daemon")) {
    if (!d->is_table()) return err.At(*d, "'daemon' must be a table ([daemon])");
    ICE_RETURN_IF_ERROR(ParseDaemon(err, *d->as_table(), c.daemon));
  }
  ICE_RETURN_IF_ERROR(ParseArrayOfTables(
      err, root, "hardware", c.hardware,
      [&](const toml::table& t, HardwareConfig& h) { return ParseHardware(err, t, base, h); }));
  ICE_RETURN_IF_ERROR(ParseArrayOfTables(
      err, root, "key", c.keys,
      [&](const toml::table& t, KeyConfig& k) { return ParseKey(err, t, base, k); }));
  ICE_RETURN_IF_ERROR(ParseArrayOfTables(
      err, root, "device", c.devices,
      [&](const toml::table& t, DeviceConfig& d) { return ParseDevice(err, t, d); }));
  ICE_RETURN_IF_ERROR(CheckNames(err, c));
  state.handed_out = true;
  return std::move(c);
}

namespace {

Status Errno(int e, const std::string& what) {
  return Status::Error(e, what + ": " + std::strerror(e));
}

std::string ModeText(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", mode & 07777);
  return text;
}

// The whole of an open file, in pages kept out of core dumps.
Result<SecretPages> ReadAll(int fd, size_t size_hint, const std::string& what) {
  // One byte more than the size, so that a regular file is read without growing the buffer.
  SecretPages text(std::max<size_t>(size_hint + 1, 4096));
  size_t done = 0;
  for (;;) {
    if (!text.ok() || (done == text.size() && !text.Resize(2 * text.size()))) {
      return Status::Error(ENOMEM, "cannot read " + what + ": out of memory");
    }
    const ssize_t n = ::read(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno(errno, "cannot read " + what);
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  text.Resize(done);
  return text;
}

// Hardening 8: a key in a table line is as secret as a key file, and gets its rule.
Status CheckInlineKeysArePrivate(const Config& c, const std::string& path, mode_t mode) {
  if ((mode & 077) == 0) return Status::Ok();
  for (const DeviceConfig& d : c.devices) {
    for (size_t i = 0; i < d.table.size(); ++i) {
      if (!dm::LineHoldsKey(d.table[i])) continue;
      return Status::Error(EPERM, "config " + path + " holds a key inline (device '" + d.name +
                                      "', table line " + std::to_string(i + 1) +
                                      ") and is group/world accessible (mode " + ModeText(mode) +
                                      "): chmod 600 it, or name a [[key]] with :<size>:logon:NAME");
    }
  }
  return Status::Ok();
}

}  // namespace

Result<Config> LoadConfig(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno(errno, "cannot read config " + path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return Errno(e, "cannot stat config " + path);
  }
  Result<SecretPages> text = ReadAll(fd, static_cast<size_t>(st.st_size), "config " + path);
  ::close(fd);
  if (!text.ok()) return text.status();
  const std::string abs = std::filesystem::absolute(path).lexically_normal().string();
  Result<Config> c = ParseConfig(text->view(), abs);
  if (!c.ok()) return c;
  const Status private_keys = CheckInlineKeysArePrivate(*c, abs, st.st_mode);
  if (!private_keys.ok()) {
    WipeDeviceTables(*c);
    return private_keys;
  }
  return c;
}

namespace {

Result<SecretBytes> GenerateKeyFile(const std::string& path, size_t size) {
  SecretBytes key(size);
  if (RAND_priv_bytes(key.data(), static_cast<int>(size)) != 1)
    return Status::Error(EIO, "cannot generate random key bytes");
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Errno(errno, "cannot create key file " + path);
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd, key.data() + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = n < 0 ? errno : EIO;
      ::close(fd);
      ::unlink(path.c_str());
      return Errno(e, "cannot write key file " + path);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) return Errno(errno, "cannot write key file " + path);
  return key;
}

}  // namespace

Result<SecretBytes> ReadKeyFile(const std::string& path, size_t expected_size, bool generate) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT && generate) return GenerateKeyFile(path, expected_size);
    return Errno(errno, "cannot open key file " + path);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return Errno(e, "cannot stat key file " + path);
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    return Status::Error(EPERM, "key file " + path + " is group/world accessible (mode " +
                                    ModeText(st.st_mode) + "): chmod 600 it");
  }
  if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) != expected_size) {
    ::close(fd);
    return Status::Error(EINVAL, "key file " + path + " holds " + std::to_string(st.st_size) +
                                     " bytes, the key needs " + std::to_string(expected_size));
  }
  SecretBytes key(expected_size);
  size_t done = 0;
  while (done < expected_size) {
    const ssize_t n = ::read(fd, key.data() + done, expected_size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = n < 0 ? errno : EIO;
      ::close(fd);
      return Errno(e, "cannot read key file " + path);
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  return key;
}

}  // namespace ice::config
