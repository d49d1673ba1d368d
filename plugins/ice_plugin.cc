// nbdkit-ice-plugin: NBD callbacks onto the daemon's engine (rules N1–N8). Nothing else lives
// here: the engine and the control server start in .after_fork and stop in .cleanup.
#define NBDKIT_API_VERSION 2
#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL
#include <nbdkit-plugin.h>

#include <systemd/sd-daemon.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>

#include "block/log.h"
#include "config/config.h"
#include "daemon/control_handler.h"
#include "daemon/control_server.h"
#include "daemon/engine.h"
#include "daemon/logging.h"
#include "daemon/metrics_server.h"
#include "daemon/process_safety.h"
#include "daemon/quit_watch.h"
#include "ice_version.h"

namespace {

using ice::Status;
using ice::daemon::Export;

std::string g_config_path;
std::unique_ptr<ice::config::Config> g_config;
std::unique_ptr<ice::daemon::Engine> g_engine;
std::unique_ptr<ice::daemon::ControlHandler> g_handler;
std::unique_ptr<ice::daemon::ControlServer> g_server;
std::unique_ptr<ice::daemon::QuitWatch> g_quit_watch;
std::unique_ptr<ice::daemon::MetricsServer> g_metrics;

// N7: only these errno values survive on the wire; everything else would arrive as EINVAL, so
// the plugin says EIO for failures of the device and EINVAL only for bad requests.
int WireErrno(int e) {
  switch (e) {
    case EPERM:
    case EROFS:
      return EPERM;
    case EIO:
    case ENOMEM:
    case ENOSPC:
    case ESHUTDOWN:
    case EINVAL:
      return e;
    default:
      return EIO;
  }
}

int Fail(const char* op, const Export* exp, const Status& s) {
  ICE_LOG_RATELIMITED(spdlog::level::warn, "{} on export '{}' failed: {}", op,
                      exp ? exp->name() : std::string("?"), s.ToString());
  nbdkit_set_error(WireErrno(s.code()));
  return -1;
}

// No exception may cross into nbdkit (it would abort the server).
template <typename Fn>
int Guard(const char* op, Fn&& fn) {
  try {
    return fn();
  } catch (const std::exception& e) {
    nbdkit_error("ice: %s: internal error: %s", op, e.what());
  } catch (...) {
    nbdkit_error("ice: %s: internal error", op);
  }
  nbdkit_set_error(EIO);
  return -1;
}

int ice_config(const char* key, const char* value) {
  return Guard("config", [&] {
    if (std::strcmp(key, "config") != 0) {
      nbdkit_error("ice: unknown parameter '%s' (the plugin takes config=FILE)", key);
      return -1;
    }
    g_config_path = value;
    return 0;
  });
}

// The config is checked here, before nbdkit forks or serves, so that mistakes stop the start.
int ice_config_complete() {
  return Guard("config_complete", [&] {
    if (g_config_path.empty()) {
      nbdkit_error("ice: config=FILE is required");
      return -1;
    }
    auto c = ice::config::LoadConfig(g_config_path);
    if (!c.ok()) {
      nbdkit_error("ice: %s", c.status().message().c_str());
      return -1;
    }
    g_config = std::make_unique<ice::config::Config>(std::move(*c));
    Status s = ice::daemon::SetupLogging(g_config->daemon.log_level, g_config->daemon.log_target);
    if (!s.ok()) {
      nbdkit_error("ice: %s", s.message().c_str());
      return -1;
    }
    return 0;
  });
}

// About as many keys as the config makes: the key arena is sized from it.
size_t ConfiguredKeys(const ice::config::Config& c) {
  size_t n = c.keys.size();
  for (const auto& d : c.devices) n += d.table.size();  // at most one inline key a line
  return n;
}

// Keys live in memory locked by this process: nbdkit may fork before this, and locks do not
// survive a fork, so the engine is built here and not earlier.
int ice_after_fork() {
  return Guard("after_fork", [&] {
    // Hardening 7: before the first key exists, no core file may ever hold one.
    Status safe = ice::daemon::ForbidCoreDumps();
    if (!safe.ok()) {
      nbdkit_error("ice: %s", safe.message().c_str());
      return -1;
    }
    ice::InitKeyMemory(ConfiguredKeys(*g_config));  // warns once when it cannot be locked
    auto engine = ice::daemon::Engine::Create(*g_config);
    // The tables are built (or failed): the daemon keeps no copy of a key they held inline.
    ice::config::WipeDeviceTables(*g_config);
    if (!engine.ok()) {
      nbdkit_error("ice: %s", engine.status().message().c_str());
      return -1;
    }
    g_engine = std::move(*engine);
    g_handler = std::make_unique<ice::daemon::ControlHandler>(*g_engine);
    ice::daemon::ControlServer::Options opts;
    opts.socket_path = g_config->daemon.control_socket;
    opts.allowed_uids = g_config->daemon.allowed_uids;
    opts.idle_timeout = std::chrono::seconds(g_config->daemon.control_idle_timeout_s);
    opts.max_clients = g_config->daemon.control_max_clients;
    auto server = ice::daemon::ControlServer::Start(opts, *g_handler);
    if (!server.ok()) {
      nbdkit_error("ice: %s", server.status().message().c_str());
      return -1;
    }
    g_server = std::move(*server);
    if (!g_config->daemon.metrics_listen.empty()) {
      // Issue 18: on a thread of its own; a scrape never runs on an nbdkit thread.
      ice::daemon::MetricsServer::Options mopts;
      mopts.listen = g_config->daemon.metrics_listen;
      auto metrics =
          ice::daemon::MetricsServer::Start(mopts, [] { return g_engine->MetricsText(); });
      if (!metrics.ok()) {
        nbdkit_error("ice: [daemon] metrics_listen: %s", metrics.status().message().c_str());
        return -1;
      }
      g_metrics = std::move(*metrics);
      spdlog::info("metrics: GET /metrics served on {}", g_metrics->address());
    }
    // N7: on SIGTERM nbdkit waits for every request to return, and one held by a suspended device
    // would wait for a resume that never comes: such requests fail with ESHUTDOWN instead.
    auto watch = ice::daemon::QuitWatch::Start([] {
      try {
        spdlog::info("stopping: requests held by suspended devices fail with ESHUTDOWN");
        g_engine->Shutdown();
      } catch (...) {  // nothing may escape the watch's thread
      }
    });
    if (!watch.ok()) {
      nbdkit_error("ice: %s", watch.status().message().c_str());
      return -1;
    }
    g_quit_watch = std::move(*watch);
    spdlog::info("ready: {} hardware device(s), {} key(s), control socket {}",
                 g_engine->hardware().size(), g_engine->keys().List().size(), opts.socket_path);
    sd_notify(0, "READY=1\nSTATUS=serving");
    return 0;
  });
}

void ice_cleanup() {
  try {
    g_quit_watch.reset();                // before the engine its callback uses
    g_metrics.reset();                   // likewise
    if (g_engine) g_engine->Shutdown();  // verbs waiting on slow hardware return now
    g_server.reset();
    g_handler.reset();
    g_engine.reset();  // keys are zeroed as they are dropped
  } catch (...) {
  }
}

int ice_list_exports(int, int, struct nbdkit_exports* exports) {
  return Guard("list_exports", [&] {
    if (!g_engine) return 0;
    for (const auto& e : g_engine->ListExports()) {
      if (nbdkit_add_export(exports, e.name.c_str(), e.description.c_str()) == -1) return -1;
    }
    return 0;
  });
}

const char* ice_default_export(int, int) {
  if (!g_config || g_config->daemon.default_export.empty()) return nullptr;
  return g_config->daemon.default_export.c_str();
}

void* ice_open(int) {
  try {
    const char* name = nbdkit_export_name();
    auto exp = g_engine->OpenExport(name ? name : "");
    if (!exp.ok()) {
      // The client only sees NBD_REP_ERR_UNKNOWN; the reason goes to the log (N2), with the name
      // escaped and cut (it is the client's text, and the reason may quote it), at most ten a
      // second (hardening 11). nbdkit needs an error set for a failed open.
      const std::string why = exp.status().message();
      ICE_LOG_RATELIMITED_N(spdlog::level::err, 10, "refusing export '{}': {}",
                            ice::EscapeForLog(name ? name : ""), ice::EscapeForLog(why, 512));
      nbdkit_set_error(ENOENT);
      return nullptr;
    }
    return exp->release();
  } catch (const std::exception& e) {
    nbdkit_error("ice: open: internal error: %s", e.what());
  } catch (...) {
    nbdkit_error("ice: open: internal error");
  }
  return nullptr;
}

void ice_close(void* handle) { delete static_cast<Export*>(handle); }

Export* H(void* handle) { return static_cast<Export*>(handle); }

const char* ice_export_description(void* handle) { return H(handle)->name().c_str(); }

int64_t ice_get_size(void* handle) { return static_cast<int64_t>(H(handle)->size_bytes()); }

int ice_block_size(void* handle, uint32_t* minimum, uint32_t* preferred, uint32_t* maximum) {
  // N3 (hardening 13): a keyed export prefers its data unit; unkeyed ones a page, as nbdkit's
  // file plugin does (NBD wants a preferred size of 512 or more). The minimum is what the export
  // serves: any byte (read-modify-write below a unit; issue 19: 512 would still refuse nbdfuse's
  // page-split buffered writes, 0xfd0 + 0x30), or the unit itself with strict_block_size.
  const uint32_t unit = H(handle)->block_size();
  const bool keyed = H(handle)->keyed();
  *minimum = g_config->daemon.strict_block_size ? unit : 1;
  *preferred = keyed ? unit : std::max<uint32_t>(unit, 4096);
  *maximum = 0xffffffff;
  return 0;
}

int ice_can_write(void*) { return 1; }
int ice_can_flush(void*) { return 1; }
int ice_can_fua(void*) { return NBDKIT_FUA_NATIVE; }
int ice_can_multi_conn(void*) { return 1; }  // N4: a flush covers every connection's writes
int ice_can_trim(void*) { return 1; }        // issue 19: discarded or zeroed (Export::Trim)
int ice_can_zero(void*) { return 1; }
// Hardening 1: nbdkit 1.32 asserts (and aborts) when a client sends FAST_ZERO to a plugin that
// does not advertise it; so it is advertised, and every fast-zero request is answered ENOTSUP, as
// NBD expects of a zero that would not be faster than a write (ice_zero).
int ice_can_fast_zero(void*) { return 1; }

int ice_pread(void* handle, void* buf, uint32_t count, uint64_t offset, uint32_t) {
  return Guard("pread", [&] {
    Status s = H(handle)->Read(static_cast<uint8_t*>(buf), count, offset);
    return s.ok() ? 0 : Fail("read", H(handle), s);
  });
}

int ice_pwrite(void* handle, const void* buf, uint32_t count, uint64_t offset, uint32_t flags) {
  return Guard("pwrite", [&] {
    Status s = H(handle)->Write(static_cast<const uint8_t*>(buf), count, offset,
                                (flags & NBDKIT_FLAG_FUA) != 0);
    return s.ok() ? 0 : Fail("write", H(handle), s);
  });
}

int ice_flush(void* handle, uint32_t) {
  return Guard("flush", [&] {
    Status s = H(handle)->Flush();
    return s.ok() ? 0 : Fail("flush", H(handle), s);
  });
}

int ice_trim(void* handle, uint32_t count, uint64_t offset, uint32_t flags) {
  return Guard("trim", [&] {
    const bool fua = (flags & NBDKIT_FLAG_FUA) != 0;
    Status s = H(handle)->Trim(count, offset, fua);
    if (s.ok() && fua && H(handle)->discards()) s = H(handle)->Flush();
    return s.ok() ? 0 : Fail("trim", H(handle), s);
  });
}

int ice_zero(void* handle, uint32_t count, uint64_t offset, uint32_t flags) {
  if (flags & NBDKIT_FLAG_FAST_ZERO) {
    nbdkit_set_error(ENOTSUP);  // the client writes zeros itself, or skips pre-zeroing
    return -1;
  }
  return Guard("zero", [&] {
    Status s = H(handle)->Zero(count, offset, (flags & NBDKIT_FLAG_FUA) != 0);
    return s.ok() ? 0 : Fail("zero", H(handle), s);
  });
}

int ice_can_extents(void*) { return 1; }

int ice_extents(void* handle, uint32_t count, uint64_t offset, uint32_t flags,
                struct nbdkit_extents* extents) {
  return Guard("extents", [&] {
    uint64_t pos = offset;
    int added = 0;
    Status s = H(handle)->Extents(count, offset, [&](uint64_t n, bool hole) {
      added =
          nbdkit_add_extent(extents, pos, n, hole ? NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO : 0);
      pos += n;
      return added == 0 && !(flags & NBDKIT_FLAG_REQ_ONE);
    });
    if (added != 0) return -1;  // nbdkit set the error
    return s.ok() ? 0 : Fail("extents", H(handle), s);
  });
}

nbdkit_plugin MakePlugin() {
  nbdkit_plugin p = nbdkit_plugin();
  p.name = "ice";
  p.longname = "ice: inline-encryption block devices";
  p.version = ice::kVersion;
  p.config = ice_config;
  p.config_complete = ice_config_complete;
  p.config_help = "config=FILE   (required) the ice TOML configuration";
  p.magic_config_key = "config";
  p.after_fork = ice_after_fork;
  p.cleanup = ice_cleanup;
  p.list_exports = ice_list_exports;
  p.default_export = ice_default_export;
  p.open = ice_open;
  p.close = ice_close;
  p.export_description = ice_export_description;
  p.get_size = ice_get_size;
  p.block_size = ice_block_size;
  p.can_write = ice_can_write;
  p.can_flush = ice_can_flush;
  p.can_fua = ice_can_fua;
  p.can_multi_conn = ice_can_multi_conn;
  p.can_trim = ice_can_trim;
  p.can_zero = ice_can_zero;
  p.can_fast_zero = ice_can_fast_zero;
  p.pread = ice_pread;
  p.pwrite = ice_pwrite;
  p.flush = ice_flush;
  p.trim = ice_trim;
  p.zero = ice_zero;
  p.can_extents = ice_can_extents;
  p.extents = ice_extents;
  return p;
}

nbdkit_plugin plugin = MakePlugin();

}  // namespace

NBDKIT_REGISTER_PLUGIN(plugin)
