#include "dm/device_registry.h"

#include <cerrno>
#include <set>
#include <utility>

#include "block/log.h"
#include "dm/mapped_device.h"
#include "dm/table.h"
#include "keyslot/crypto_profile.h"

namespace ice::dm {

struct DeviceRegistry::Entry {
  DeviceKind kind = DeviceKind::kMapped;
  std::shared_ptr<BlockDevice> device;
  std::shared_ptr<MappedDevice> mapped;  // set for kMapped; the same object as `device`
  int open_count = 0;                    // guarded by mu_
};

// ---- OpenDevice ---------------------------------------------------------------------------------

OpenDevice::OpenDevice(OpenDevice&& o) noexcept
    : reg_(std::exchange(o.reg_, nullptr)),
      name_(std::move(o.name_)),
      device_(std::move(o.device_)) {}

OpenDevice& OpenDevice::operator=(OpenDevice&& o) noexcept {
  if (this != &o) {
    if (reg_ != nullptr) reg_->Close(name_);
    reg_ = std::exchange(o.reg_, nullptr);
    name_ = std::move(o.name_);
    device_ = std::move(o.device_);
  }
  return *this;
}

OpenDevice::~OpenDevice() {
  if (reg_ != nullptr) reg_->Close(name_);
}

// ---- the lookup tables are built with -------------------------------------------------------

// Resolves device names for a table of device `self`, refusing `self` itself and any device that
// already maps onto `self` (a table must not make a cycle).
class TableLookup final : public DeviceLookup {
 public:
  TableLookup(const DeviceRegistry& reg, const std::string& self) : reg_(reg), self_(self) {}

  Result<DeviceRef> Find(std::string_view name) override {
    if (name == self_) {
      return Status::Error(EINVAL, "device '" + self_ + "' cannot be used by its own table");
    }
    ICE_ASSIGN_OR_RETURN(DeviceRef ref, const_cast<DeviceRegistry&>(reg_).Find(name));
    if (reg_.Reaches(ref.name, self_)) {
      return Status::Error(EINVAL, "using device '" + ref.name +
                                       "' would make a cycle: it maps onto '" + self_ + "'");
    }
    return ref;
  }

 private:
  const DeviceRegistry& reg_;
  const std::string& self_;
};

// ---- the registry -------------------------------------------------------------------------------

DeviceRegistry::DeviceRegistry(KeyRegistry& keys, BlkCrypto& blk, Clock& clock)
    : keys_(keys), blk_(blk), clock_(clock) {
  env_.devices = this;
  env_.keys = &keys_;
  env_.blk = &blk_;
  env_.clock = &clock_;
}

DeviceRegistry::~DeviceRegistry() {
  // Mapped devices first, upper ones before the ones they use: a device's tables keep the devices
  // below alive anyway, this only makes the presuspend hooks run top-down.
  std::map<std::string, std::unique_ptr<Entry>, std::less<>> entries;
  {
    std::lock_guard g(mu_);
    entries.swap(entries_);
  }
  for (bool progress = true; progress;) {
    progress = false;
    for (auto it = entries.begin(); it != entries.end();) {
      bool held = false;
      for (const auto& [name, e] : entries) {
        if (e->mapped && name != it->first && e->mapped->TablesUsing(it->first) > 0) held = true;
      }
      if (it->second->mapped && !held) {
        it = entries.erase(it);
        progress = true;
      } else {
        ++it;
      }
    }
  }
}

Status DeviceRegistry::AddHardware(const std::string& name, std::shared_ptr<BlockDevice> device) {
  std::lock_guard v(verbs_mu_);
  if (!IsValidName(name)) return Status::Error(EINVAL, "invalid device name '" + name + "'");
  if (!device) return Status::Error(EINVAL, "no device given for '" + name + "'");
  auto entry = std::make_unique<Entry>();
  entry->kind = DeviceKind::kHardware;
  entry->device = std::move(device);
  std::lock_guard g(mu_);
  if (!entries_.emplace(name, std::move(entry)).second) {
    return Status::Error(EEXIST, "device '" + name + "' already exists");
  }
  return Status::Ok();
}

Result<std::shared_ptr<MappedDevice>> DeviceRegistry::FindMapped(const std::string& name) const {
  std::lock_guard g(mu_);
  auto it = entries_.find(name);
  if (it == entries_.end()) return Status::Error(ENXIO, "no device named '" + name + "'");
  if (!it->second->mapped) {
    return Status::Error(EINVAL, "'" + name + "' is hardware, not a mapped device");
  }
  return it->second->mapped;
}

void DeviceRegistry::Shutdown() {
  std::lock_guard g(mu_);
  shut_down_ = true;
  for (const auto& [name, e] : entries_) {
    if (e->mapped) e->mapped->Shutdown();
  }
}

std::vector<std::shared_ptr<MappedDevice>> DeviceRegistry::MappedDevices() const {
  std::vector<std::shared_ptr<MappedDevice>> out;
  std::lock_guard g(mu_);
  for (const auto& [name, e] : entries_) {
    if (e->mapped) out.push_back(e->mapped);
  }
  return out;
}

Result<std::shared_ptr<dm::Table>> DeviceRegistry::BuildTable(
    const std::string& self, const std::vector<std::string>& lines) {
  TableLookup lookup(*this, self);
  TargetEnv env = env_;
  env.devices = &lookup;
  ICE_ASSIGN_OR_RETURN(std::unique_ptr<dm::Table> table, Table::Create(lines, env));
  return std::shared_ptr<dm::Table>(std::move(table));
}

bool DeviceRegistry::Reaches(const std::string& from, const std::string& to) const {
  std::map<std::string, std::shared_ptr<MappedDevice>> mapped;
  for (auto& md : MappedDevices()) mapped.emplace(md->name(), md);
  std::set<std::string> seen;
  std::vector<std::string> todo = {from};
  while (!todo.empty()) {
    std::string name = std::move(todo.back());
    todo.pop_back();
    if (name == to) return true;
    if (!seen.insert(name).second) continue;
    auto it = mapped.find(name);
    if (it == mapped.end()) continue;
    for (std::string& below : it->second->UsedDeviceNames()) todo.push_back(std::move(below));
  }
  return false;
}

int DeviceRegistry::Holders(const std::string& name, std::string* first_holder) const {
  int n = 0;
  for (const auto& md : MappedDevices()) {
    if (md->name() == name) continue;
    const int uses = md->TablesUsing(name);
    if (uses > 0 && n == 0 && first_holder != nullptr) *first_holder = md->name();
    n += uses;
  }
  return n;
}

void DeviceRegistry::PassOnWarnings(const std::string& name, const dm::Table& table,
                                    std::vector<std::string>* out) {
  std::vector<std::string> warnings = table.Warnings();
  for (const std::string& w : warnings) spdlog::warn("device '{}': {}", name, w);
  if (out != nullptr) *out = std::move(warnings);
}

Status DeviceRegistry::Create(const std::string& name, const std::vector<std::string>& table_lines,
                              std::vector<std::string>* warnings, const Interrupt& stop) {
  InterruptibleLock v;
  ICE_RETURN_IF_ERROR(v.Acquire(verbs_mu_, stop, "create"));
  if (!IsValidName(name)) return Status::Error(EINVAL, "invalid device name '" + name + "'");
  {
    std::lock_guard g(mu_);
    if (entries_.count(name) != 0) {
      return Status::Error(EEXIST, "device '" + name + "' already exists");
    }
  }
  // P3: the device is registered only once its table (if any) is live.
  auto md = std::make_shared<MappedDevice>(name, blk_);
  std::shared_ptr<dm::Table> table;
  if (!table_lines.empty()) {
    ICE_ASSIGN_OR_RETURN(table, BuildTable(name, table_lines));
    ICE_RETURN_IF_ERROR(md->Load(table));
    ICE_RETURN_IF_ERROR(md->Resume());
  }
  auto entry = std::make_unique<Entry>();
  entry->kind = DeviceKind::kMapped;
  entry->device = md;
  entry->mapped = std::move(md);
  {
    std::lock_guard g(mu_);
    if (shut_down_) entry->mapped->Shutdown();
    entries_.emplace(name, std::move(entry));
  }
  if (table) PassOnWarnings(name, *table, warnings);
  return Status::Ok();
}

Status DeviceRegistry::Load(const std::string& name, const std::vector<std::string>& table_lines,
                            std::vector<std::string>* warnings, const Interrupt& stop) {
  InterruptibleLock v;
  ICE_RETURN_IF_ERROR(v.Acquire(verbs_mu_, stop, "load"));
  ICE_ASSIGN_OR_RETURN(std::shared_ptr<MappedDevice> md, FindMapped(name));
  ICE_ASSIGN_OR_RETURN(std::shared_ptr<dm::Table> table, BuildTable(name, table_lines));
  ICE_RETURN_IF_ERROR(md->Load(table));
  PassOnWarnings(name, *table, warnings);
  return Status::Ok();
}

Status DeviceRegistry::Clear(const std::string& name, const Interrupt& stop) {
  InterruptibleLock v;
  ICE_RETURN_IF_ERROR(v.Acquire(verbs_mu_, stop, "clear"));
  ICE_ASSIGN_OR_RETURN(std::shared_ptr<MappedDevice> md, FindMapped(name));
  md->ClearInactive();
  return Status::Ok();
}

Status DeviceRegistry::Suspend(const std::string& name, const Interrupt& stop) {
  // A device removed meanwhile is kept alive by `md`; suspending it then changes nothing visible.
  ICE_ASSIGN_OR_RETURN(std::shared_ptr<MappedDevice> md, FindMapped(name));
  return md->Suspend(stop);
}

Status DeviceRegistry::Resume(const std::string& name, const Interrupt& stop) {
  ICE_ASSIGN_OR_RETURN(std::shared_ptr<MappedDevice> md, FindMapped(name));
  return md->Resume(stop);
}

Status DeviceRegistry::Remove(const std::string& name, const Interrupt& stop) {
  InterruptibleLock v;
  ICE_RETURN_IF_ERROR(v.Acquire(verbs_mu_, stop, "remove"));
  ICE_ASSIGN_OR_RETURN(std::shared_ptr<MappedDevice> md, FindMapped(name));
  // Tables change only under verbs_mu_ (or move between a device's own slots), so no new holder
  // can appear before the entry is gone.
  std::string holder;
  if (int n = Holders(name, &holder); n > 0) {
    return Status::Error(EBUSY, "device '" + name + "' is used by the table of '" + holder + "'" +
                                    (n > 1 ? " and " + std::to_string(n - 1) + " more" : ""));
  }
  std::unique_ptr<Entry> doomed;
  {
    std::lock_guard g(mu_);
    auto it = entries_.find(name);
    if (it->second->open_count > 0) {
      return Status::Error(EBUSY, "device '" + name + "' is open by " +
                                      std::to_string(it->second->open_count) + " connection(s)");
    }
    doomed = std::move(it->second);
    entries_.erase(it);
  }
  md.reset();
  doomed.reset();  // the kernel's __dm_destroy: presuspends a live device's targets
  return Status::Ok();
}

Result<std::vector<std::string>> DeviceRegistry::Table(const std::string& name, bool inactive) {
  ICE_ASSIGN_OR_RETURN(std::shared_ptr<MappedDevice> md, FindMapped(name));
  std::shared_ptr<dm::Table> table = inactive ? md->inactive_table() : md->live_table();
  if (!table) return std::vector<std::string>();
  return table->TableLines();
}

Result<std::vector<std::string>> DeviceRegistry::StatusLines(const std::string& name) {
  ICE_ASSIGN_OR_RETURN(std::shared_ptr<MappedDevice> md, FindMapped(name));
  std::shared_ptr<dm::Table> table = md->live_table();
  if (!table) return std::vector<std::string>();
  return table->StatusLines();
}

DeviceInfo DeviceRegistry::MakeInfo(const std::string& name, DeviceKind kind,
                                    const std::shared_ptr<BlockDevice>& device,
                                    const std::shared_ptr<MappedDevice>& mapped,
                                    int open_count) const {
  DeviceInfo info;
  info.name = name;
  info.kind = kind;
  info.size_bytes = device->size_bytes();
  info.open_count = open_count;
  info.holders = Holders(name, nullptr);
  if (mapped) {
    info.suspended = mapped->suspended();
    info.suspending = !info.suspended && mapped->dispatch_blocked();
    std::shared_ptr<dm::Table> live = mapped->live_table();
    info.live_table = live != nullptr;
    info.inactive_table = mapped->inactive_table() != nullptr;
    info.num_targets = live ? static_cast<int>(live->num_targets()) : 0;
  }
  const CryptoProfile* profile = device->crypto_profile();
  info.capabilities = profile ? profile->capabilities().ToString() : "none";
  return info;
}

Result<DeviceInfo> DeviceRegistry::Info(const std::string& name) {
  DeviceKind kind;
  std::shared_ptr<BlockDevice> device;
  std::shared_ptr<MappedDevice> mapped;
  int open_count;
  {
    std::lock_guard g(mu_);
    auto it = entries_.find(name);
    if (it == entries_.end()) return Status::Error(ENXIO, "no device named '" + name + "'");
    kind = it->second->kind;
    device = it->second->device;
    mapped = it->second->mapped;
    open_count = it->second->open_count;
  }
  return MakeInfo(name, kind, device, mapped, open_count);
}

Result<std::string> DeviceRegistry::Message(const std::string& name, uint64_t sector,
                                            const std::vector<std::string>& words,
                                            const Interrupt& stop) {
  InterruptibleLock v;  // a message may change a target's state (P5)
  ICE_RETURN_IF_ERROR(v.Acquire(verbs_mu_, stop, "message"));
  ICE_ASSIGN_OR_RETURN(std::shared_ptr<MappedDevice> md, FindMapped(name));
  if (words.empty()) return Status::Error(EINVAL, "empty message");
  std::shared_ptr<dm::Table> table = md->live_table();
  if (!table) return Status::Error(EINVAL, "device '" + name + "' has no live table");
  if (sector >= table->size_sectors()) {
    return Status::Error(EINVAL, "target message sector " + std::to_string(sector) +
                                     " outside device '" + name + "' (" +
                                     std::to_string(table->size_sectors()) + " sectors)");
  }
  TableEntry& entry = table->entry(table->IndexOf(sector * kSectorBytes));
  return entry.target->Message(words);
}

std::vector<DeviceInfo> DeviceRegistry::List() {
  std::vector<std::pair<std::string, std::shared_ptr<MappedDevice>>> devices;
  std::vector<int> opens;
  {
    std::lock_guard g(mu_);
    for (const auto& [name, e] : entries_) {
      if (!e->mapped) continue;
      devices.emplace_back(name, e->mapped);
      opens.push_back(e->open_count);
    }
  }
  std::vector<DeviceInfo> out;
  out.reserve(devices.size());
  for (size_t i = 0; i < devices.size(); ++i) {
    out.push_back(MakeInfo(devices[i].first, DeviceKind::kMapped, devices[i].second,
                           devices[i].second, opens[i]));
  }
  return out;
}

Result<DeviceRef> DeviceRegistry::Find(std::string_view name) {
  std::lock_guard g(mu_);
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    return Status::Error(ENXIO, "no device named '" + std::string(name) + "'");
  }
  return DeviceRef{it->first, it->second->device};
}

Result<OpenDevice> DeviceRegistry::Open(const std::string& name) {
  std::lock_guard g(mu_);
  auto it = entries_.find(name);
  if (it == entries_.end()) return Status::Error(ENOENT, "no device named '" + name + "'");
  ++it->second->open_count;
  OpenDevice open;
  open.reg_ = this;
  open.name_ = name;
  open.device_ = it->second->device;
  return open;
}

void DeviceRegistry::Close(const std::string& name) {
  std::lock_guard g(mu_);
  auto it = entries_.find(name);
  if (it != entries_.end() && it->second->open_count > 0) --it->second->open_count;
}

}  // namespace ice::dm
