#include "daemon/engine.h"

#include <cerrno>
#include <cstdio>
#include <sstream>

#include "block/backend_factory.h"
#include "block/log.h"
#include "keyslot/crypto_profile.h"

namespace ice::daemon {

std::pair<std::string, std::string> SplitExportName(std::string_view export_name) {
  const size_t at = export_name.find('@');
  if (at == std::string_view::npos) return {std::string(export_name), ""};
  return {std::string(export_name.substr(0, at)), std::string(export_name.substr(at + 1))};
}

namespace {

std::string HumanSize(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, kUnits[u]);
  return buf;
}

}  // namespace

Engine::Engine(const config::DaemonConfig& daemon, Clock& clock)
    : daemon_(daemon),
      clock_(clock),
      blk_(std::make_unique<BlkCrypto>(daemon.fallback_slots)),
      keys_(std::make_unique<KeyRegistry>()),
      devices_(std::make_unique<dm::DeviceRegistry>(*keys_, *blk_, clock)) {}

Engine::~Engine() {
  // Mapped devices go first: their tables hold hardware devices and may evict keys on the way.
  // The registry's keys evict themselves from the fallback's pool as they are dropped.
  devices_.reset();
  hardware_.clear();
  keys_.reset();
}

Result<std::unique_ptr<Engine>> Engine::Create(const config::Config& config, Clock& clock) {
  std::unique_ptr<Engine> engine(new Engine(config.daemon, clock));
  ICE_RETURN_IF_ERROR(engine->Build(config));
  return engine;
}

Status Engine::Build(const config::Config& config) {
  for (const auto& hw : config.hardware) {
    const std::string what = "hardware '" + hw.name + "'";
    auto backend = OpenBackend(hw.backing, hw.size_bytes);
    if (!backend.ok()) return backend.status().WithContext(what);
    auto device =
        std::make_shared<HardwareDevice>(std::move(*backend), hw.keyslots, hw.capabilities, clock_);
    ICE_RETURN_IF_ERROR(devices_->AddHardware(hw.name, device).WithContext(what));
    hardware_.push_back({hw.name, hw.backing, device, hw.capabilities});
    MinorOf(hw.name);
  }
  for (const auto& k : config.keys) {
    const std::string what = "key '" + k.name + "'";
    auto bytes = config::ReadKeyFile(k.key_file, ModeInfo(k.crypto.mode).key_size, k.generate);
    if (!bytes.ok()) return bytes.status().WithContext(what);
    ICE_RETURN_IF_ERROR(AddKey(k.name, k.crypto, {bytes->data(), bytes->size()}).WithContext(what));
  }
  for (const auto& d : config.devices) {
    ICE_RETURN_IF_ERROR(devices_->Create(d.name, d.table).WithContext("device '" + d.name + "'"));
    MinorOf(d.name);
  }
  if (!daemon_.default_export.empty()) {
    auto probe = OpenExport(daemon_.default_export);
    if (!probe.ok()) return probe.status().WithContext("default_export");
  }
  return Status::Ok();
}

std::vector<ExportListing> Engine::ListExports() {
  std::vector<ExportListing> out;
  std::vector<dm::DeviceInfo> infos;
  for (const auto& hw : hardware_) {
    auto info = devices_->Info(hw.name);
    if (info.ok()) infos.push_back(*info);
  }
  for (const auto& info : devices_->List()) infos.push_back(info);
  for (const auto& info : infos) {
    std::string desc = HumanSize(info.size_bytes);
    desc += info.kind == dm::DeviceKind::kHardware ? " emulated inline-encryption hardware"
                                                   : " mapped device";
    if (info.kind == dm::DeviceKind::kMapped && info.suspended) desc += " (suspended)";
    desc += ", inline crypto: " + info.capabilities;
    out.push_back({info.name, desc});
  }
  return out;
}

Result<std::unique_ptr<Export>> Engine::OpenExport(std::string_view export_name) {
  std::string name(export_name);
  if (name.empty()) {
    if (daemon_.default_export.empty())
      return Status::Error(ENOENT, "no default export is configured; name a device");
    name = daemon_.default_export;
  }
  auto [dev_name, key_name] = SplitExportName(name);
  if (name.find('@') != std::string::npos && key_name.empty())
    return Status::Error(ENOENT, "export '" + name + "' names no key after '@'");
  auto device = devices_->Open(dev_name);
  if (!device.ok()) return device.status().WithContext("export '" + name + "'");
  std::optional<KeyUse> key;
  if (!key_name.empty()) {
    auto use = keys_->Use(key_name);
    if (!use.ok()) return use.status().WithContext("export '" + name + "'");
    const CryptoConfig& cfg = use->key()->config();
    ICE_RETURN_IF_ERROR(
        blk_->CheckServable(*device->get(), cfg).WithContext("export '" + name + "'"));
    if (device->get()->size_bytes() < cfg.data_unit_size)
      return Status::Error(EINVAL, "export '" + name + "': device is smaller than one data unit");
    key.emplace(std::move(*use));
  }
  return std::make_unique<Export>(name, std::move(*device), std::move(key), *blk_, store_locks_,
                                  StatsFor(dev_name));
}

Status Engine::AddKey(const std::string& name, const CryptoConfig& config,
                      std::span<const uint8_t> raw) {
  if (!ModeInfo(config.mode).implemented)
    return Status::Error(ENOTSUP, std::string("ice cannot compute ") + ModeInfo(config.mode).name);
  auto key = CryptoKey::Create(config, raw);
  if (!key.ok()) return key.status();
  return keys_->Add(name, std::move(*key));
}

Status Engine::RemoveKey(const std::string& name) {
  auto key = keys_->Remove(name);
  if (!key.ok()) return key.status();
  // As blk_crypto_evict_key before a key is freed, but from wherever the key went (hardware that
  // tables no longer reach, the fallback's pool), not only from the devices that reach it now.
  Status s = CryptoProfile::EvictEverywhere(**key);
  if (!s.ok()) spdlog::warn("evicting key '{}': {}", name, s.ToString());
  return Status::Ok();
}

void Engine::Shutdown() {
  devices_->Shutdown();
  for (const HardwareEntry& hw : hardware_) hw.device->Shutdown();
}

std::string Engine::KeyName(uint64_t key_id) const {
  for (const auto& info : keys_->List()) {
    auto k = keys_->Find(info.name);
    if (k.ok() && (*k)->id() == key_id) return info.name;
  }
  return "";
}

const HardwareEntry* Engine::FindHardware(std::string_view name) const {
  for (const auto& hw : hardware_) {
    if (hw.name == name) return &hw;
  }
  return nullptr;
}

unsigned Engine::MinorOf(const std::string& device_name) {
  std::lock_guard g(mu_);
  auto [it, inserted] = minors_.emplace(device_name, next_minor_);
  if (inserted) ++next_minor_;
  return it->second;
}

std::shared_ptr<DeviceStats> Engine::StatsFor(const std::string& device) {
  std::lock_guard g(mu_);
  auto& p = stats_[device];
  if (!p) p = std::make_shared<DeviceStats>();
  return p;
}

namespace {

void Family(std::ostringstream& o, const char* name, const char* type, const char* help) {
  o << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
}

}  // namespace

std::string Engine::MetricsText() {
  std::ostringstream o;
  struct Counter {
    const char* name;
    const char* help;
    uint64_t HardwareCounters::*field;
  };
  static const Counter kCounters[] = {
      {"ice_hw_slot_programs_total", "Keys programmed into keyslots.",
       &HardwareCounters::slot_programs},
      {"ice_hw_slot_program_failures_total", "Keyslot programs that failed.",
       &HardwareCounters::slot_program_failures},
      {"ice_hw_slot_evictions_total", "Keys evicted from keyslots.",
       &HardwareCounters::slot_evictions},
      {"ice_hw_slot_hits_total", "Keyslot gets served by a slot already holding the key.",
       &HardwareCounters::slot_hits},
      {"ice_hw_slot_waits_total", "Keyslot gets that waited for an idle slot.",
       &HardwareCounters::slot_waits},
      {"ice_hw_resets_total", "Hardware resets.", &HardwareCounters::resets},
      {"ice_hw_fallback_ios_total",
       "Requests whose crypto the software fallback did above the device.",
       &HardwareCounters::fallback_ios},
      {"ice_hw_reads_total", "Read requests.", &HardwareCounters::reads},
      {"ice_hw_writes_total", "Write requests.", &HardwareCounters::writes},
      {"ice_hw_flushes_total", "Flush requests.", &HardwareCounters::flushes},
      {"ice_hw_read_bytes_total", "Bytes read.", &HardwareCounters::read_bytes},
      {"ice_hw_write_bytes_total", "Bytes written.", &HardwareCounters::write_bytes},
      {"ice_hw_errors_total", "Requests that failed.", &HardwareCounters::errors},
  };
  std::vector<std::pair<std::string, HardwareCounters>> counters;
  for (const auto& hw : hardware_) counters.emplace_back(hw.name, hw.device->counters());
  for (const auto& c : kCounters) {
    Family(o, c.name, "counter", c.help);
    for (const auto& [name, hc] : counters)
      o << c.name << "{hw=\"" << name << "\"} " << hc.*c.field << '\n';
  }
  Family(o, "ice_hw_keyslots", "gauge", "Keyslots of the device.");
  for (const auto& hw : hardware_)
    o << "ice_hw_keyslots{hw=\"" << hw.name << "\"} " << hw.device->num_slots() << '\n';
  std::vector<std::pair<unsigned, unsigned>> occupancy;  // programmed, in use
  for (const auto& hw : hardware_) {
    unsigned programmed = 0, in_use = 0;
    for (const auto& s : hw.device->slots()) {
      programmed += s.key_id != 0;
      in_use += s.refs > 0;
    }
    occupancy.emplace_back(programmed, in_use);
  }
  Family(o, "ice_hw_keyslots_programmed", "gauge", "Keyslots holding a key.");
  for (size_t i = 0; i < hardware_.size(); ++i)
    o << "ice_hw_keyslots_programmed{hw=\"" << hardware_[i].name << "\"} " << occupancy[i].first
      << '\n';
  Family(o, "ice_hw_keyslots_in_use", "gauge", "Keyslots referenced by I/O in flight.");
  for (size_t i = 0; i < hardware_.size(); ++i)
    o << "ice_hw_keyslots_in_use{hw=\"" << hardware_[i].name << "\"} " << occupancy[i].second
      << '\n';
  const KeyslotCounters fb = blk_->fallback().profile().counters();
  Family(o, "ice_fallback_key_programs_total", "counter",
         "Keys prepared in the software fallback's pool.");
  o << "ice_fallback_key_programs_total " << fb.programs << '\n';
  Family(o, "ice_fallback_key_hits_total", "counter",
         "Fallback pool gets served by a prepared key.");
  o << "ice_fallback_key_hits_total " << fb.hits << '\n';

  std::map<std::string, std::shared_ptr<DeviceStats>> stats;
  {
    std::lock_guard g(mu_);
    stats = stats_;
  }
  // One snapshot a device and operation, so that every family below tells the same moment.
  struct Row {
    std::string labels;
    DeviceStats::OpSnapshot s;
  };
  std::vector<Row> rows;
  for (const auto& [dev, st] : stats) {
    for (int i = 0; i < kNumStatOps; ++i) {
      const StatOp op = static_cast<StatOp>(i);
      rows.push_back({"device=\"" + dev + "\",op=\"" + StatOpName(op) + "\"", st->Snapshot(op)});
    }
  }
  // The exposition format wants each family's samples together, after its HELP and TYPE.
  Family(o, "ice_device_ios_total", "counter", "Export requests by device and operation.");
  for (const Row& r : rows) o << "ice_device_ios_total{" << r.labels << "} " << r.s.count << '\n';
  Family(o, "ice_device_bytes_total", "counter", "Export bytes by device and operation.");
  for (const Row& r : rows) o << "ice_device_bytes_total{" << r.labels << "} " << r.s.bytes << '\n';
  Family(o, "ice_device_errors_total", "counter", "Export requests that failed.");
  for (const Row& r : rows)
    o << "ice_device_errors_total{" << r.labels << "} " << r.s.errors << '\n';
  Family(o, "ice_device_latency_seconds", "histogram", "Export request latency.");
  for (const Row& r : rows) {
    uint64_t cumulative = 0;
    for (size_t b = 0; b < r.s.buckets.size(); ++b) {
      cumulative += r.s.buckets[b];
      char le[32];
      if (b < DeviceStats::kBucketsUs.size()) {
        std::snprintf(le, sizeof le, "%g", DeviceStats::kBucketsUs[b] / 1e6);
      } else {
        std::snprintf(le, sizeof le, "+Inf");
      }
      o << "ice_device_latency_seconds_bucket{" << r.labels << ",le=\"" << le << "\"} "
        << cumulative << '\n';
    }
    o << "ice_device_latency_seconds_sum{" << r.labels << "} " << r.s.latency_sum_ns / 1e9 << '\n';
    // The +Inf bucket, not r.s.count: read apart from the buckets, it may be one request ahead.
    o << "ice_device_latency_seconds_count{" << r.labels << "} " << cumulative << '\n';
  }
  return o.str();
}

}  // namespace ice::daemon
