#include "dm/mapped_device.h"

#include <cerrno>
#include <utility>

#include "block/log.h"
#include "dm/split.h"

namespace ice::dm {

MappedDevice::MappedDevice(std::string name, BlkCrypto& blk) : name_(std::move(name)), blk_(blk) {}

MappedDevice::~MappedDevice() {
  std::lock_guard t(transition_mu_);
  (void)SuspendLocked(Interrupt::Never());  // nothing is in flight: cannot fail
}

// ---- I/O ------------------------------------------------------------------------------------

namespace {

// Each thread keeps to one in-flight shard, assigned round robin on its first request.
size_t ThisThreadShard(size_t shards) {
  static std::atomic<size_t> next{0};
  thread_local const size_t mine = next.fetch_add(1, std::memory_order_relaxed);
  return mine % shards;
}

}  // namespace

size_t MappedDevice::EnterIo() {
  const size_t shard = ThisThreadShard(kInFlightShards);
  for (;;) {
    in_flight_[shard].n.fetch_add(1, std::memory_order_seq_cst);
    if (!blocked_.load(std::memory_order_seq_cst)) return shard;
    // D2: suspended (or suspending). Step back out so the drain can finish, then wait for resume.
    ExitIo(shard);
    queued_.fetch_add(1, std::memory_order_relaxed);
    bool stopping;
    {
      std::unique_lock g(gate_mu_);
      gate_cv_.wait(g, [&] {
        return !blocked_.load(std::memory_order_seq_cst) ||
               shut_down_.load(std::memory_order_seq_cst);
      });
      // Only a shutdown stops it: the gate may have opened and closed again (Suspend sets
      // blocked_ without gate_mu_) since the wait saw it open, and then the request waits again.
      stopping =
          shut_down_.load(std::memory_order_seq_cst) && blocked_.load(std::memory_order_seq_cst);
    }
    queued_.fetch_sub(1, std::memory_order_relaxed);
    if (stopping) return kShutDown;
  }
}

void MappedDevice::Shutdown() {
  std::lock_guard g(gate_mu_);
  shut_down_.store(true, std::memory_order_seq_cst);
  gate_cv_.notify_all();
}

void MappedDevice::ExitIo(size_t shard) {
  in_flight_[shard].n.fetch_sub(1, std::memory_order_seq_cst);
  if (blocked_.load(std::memory_order_seq_cst)) {
    std::lock_guard g(gate_mu_);
    gate_cv_.notify_all();
  }
}

int64_t MappedDevice::InFlight() const {
  int64_t n = 0;
  for (const InFlightShard& s : in_flight_) n += s.n.load(std::memory_order_seq_cst);
  return n;
}

Status MappedDevice::Submit(const IoRequest& req) {
  // As the kernel's dm_submit_bio (mainline since 6.12): no live table fails the I/O at once,
  // before a suspend could hold it, since nothing but a later resume would ever release it. A
  // live table, once there, is never taken away again, so a request that gets past this check
  // finds one after the gate.
  if (live_ptr_.load(std::memory_order_acquire) == nullptr) {
    ICE_LOG_RATELIMITED(spdlog::level::warn, "{}: mapping table unavailable, erroring {} I/O",
                        name_, IoOpName(req.op));
    return Status::Error(EIO, "device '" + name_ + "' has no live table");
  }
  const size_t shard = EnterIo();
  if (shard == kShutDown) {
    return Status::Error(ESHUTDOWN,
                         "device '" + name_ + "' is suspended and the daemon is stopping");
  }
  Status s = MapToTable(*live_ptr_.load(std::memory_order_acquire), req);
  ExitIo(shard);
  return s;
}

Status MappedDevice::MapToTable(Table& table, const IoRequest& req) {
  if (req.op == IoOp::kFlush) return FlushAll(table, req);
  if (req.length_bytes == 0) return Status::Ok();
  if (req.offset_bytes >= table.size_bytes() ||
      req.length_bytes > table.size_bytes() - req.offset_bytes) {
    ICE_LOG_RATELIMITED(spdlog::level::warn, "{}: {} of {} bytes at {} beyond the end ({} bytes)",
                        name_, IoOpName(req.op), req.length_bytes, req.offset_bytes,
                        table.size_bytes());
    return Status::Error(EIO, "I/O beyond the end of device '" + name_ + "'");
  }
  const size_t first = table.IndexOf(req.offset_bytes);
  const TableEntry& e = table.entry(first);
  // The common case: one target, no split.
  if (req.end_bytes() <= e.end_bytes()) {
    IoRequest piece = req;
    piece.offset_bytes -= e.start_bytes();
    return e.target->Map(piece);
  }
  // D8: a crypto request may be split only between data units; refuse it before any I/O.
  for (size_t i = first + 1; i < table.num_targets(); ++i) {
    const uint64_t boundary = table.entry(i).start_bytes();
    if (boundary >= req.end_bytes()) break;
    if (!CanSplitAt(req, boundary - req.offset_bytes)) {
      ICE_LOG_RATELIMITED(spdlog::level::warn,
                          "{}: crypto {} at {} crosses a target boundary inside a data unit", name_,
                          IoOpName(req.op), req.offset_bytes);
      return Status::Error(EINVAL, "crypto I/O crosses a target boundary of device '" + name_ +
                                       "' inside a data unit");
    }
  }
  uint64_t pos = req.offset_bytes;
  for (size_t i = first; pos < req.end_bytes(); ++i) {
    const TableEntry& t = table.entry(i);
    const uint64_t len = std::min(t.end_bytes(), req.end_bytes()) - pos;
    Status s = t.target->Map(SplitPiece(req, pos - req.offset_bytes, len, pos - t.start_bytes()));
    if (!s.ok()) return s;
    pos += len;
  }
  return Status::Ok();
}

Status MappedDevice::FlushAll(Table& table, const IoRequest& req) {
  Status first;
  for (size_t i = 0; i < table.num_targets(); ++i) {
    Status s = table.entry(i).target->Map(req);
    if (first.ok() && !s.ok()) first = s;
  }
  return first;
}

StoredRange MappedDevice::Locate(uint64_t offset_bytes, uint64_t length_bytes) const {
  const std::shared_ptr<Table> table = live_table();
  if (!table || offset_bytes >= table->size_bytes()) return {this, offset_bytes, length_bytes};
  const TableEntry& e = table->entry(table->IndexOf(offset_bytes));
  const uint64_t length = std::min(length_bytes, e.end_bytes() - offset_bytes);
  const std::optional<StoredRange> below = e.target->Locate(offset_bytes - e.start_bytes(), length);
  if (!below || below->length_bytes == 0) return {this, offset_bytes, length};
  return *below;
}

Status MappedDevice::Extents(uint64_t offset_bytes, uint64_t length_bytes,
                             const ExtentSink& sink) const {
  const std::shared_ptr<Table> table = live_table();
  if (!table || offset_bytes >= table->size_bytes()) {
    sink(length_bytes, false);
    return Status::Ok();
  }
  const uint64_t end = std::min(offset_bytes + length_bytes, table->size_bytes());
  bool go_on = true;
  const ExtentSink counted = [&](uint64_t n, bool hole) { return go_on = sink(n, hole); };
  for (uint64_t pos = offset_bytes; pos < end && go_on;) {
    const TableEntry& e = table->entry(table->IndexOf(pos));
    const uint64_t n = std::min(end, e.end_bytes()) - pos;
    ICE_RETURN_IF_ERROR(e.target->Extents(pos - e.start_bytes(), n, counted));
    pos += n;
  }
  if (go_on && end < offset_bytes + length_bytes) sink(offset_bytes + length_bytes - end, false);
  return Status::Ok();
}

// ---- tables -----------------------------------------------------------------------------------

Status MappedDevice::CheckCapabilities(const Table& table) const {
  const CryptoProfile* profile = profile_ptr_.load(std::memory_order_acquire);
  if (profile == nullptr) return Status::Ok();
  const CryptoCapabilities current = profile->capabilities();
  if (HasCapabilities(table.capabilities(), &current)) return Status::Ok();
  return Status::Error(EINVAL,
                       "inline encryption capabilities of the new table are more restrictive "
                       "than the device's: it would drop " +
                           MissingCapabilities(table.capabilities(), &current));
}

Status MappedDevice::Load(std::shared_ptr<Table> table) {
  ICE_RETURN_IF_ERROR(CheckCapabilities(*table));
  std::shared_ptr<Table> replaced;
  {
    std::lock_guard g(state_mu_);
    replaced = std::exchange(inactive_, std::move(table));
  }
  return Status::Ok();  // `replaced` is destroyed here, outside the lock
}

void MappedDevice::ClearInactive() {
  std::shared_ptr<Table> dropped;
  std::lock_guard g(state_mu_);
  dropped = std::move(inactive_);
}

std::shared_ptr<Table> MappedDevice::live_table() const {
  std::lock_guard g(state_mu_);
  return live_;
}

std::shared_ptr<Table> MappedDevice::inactive_table() const {
  std::lock_guard g(state_mu_);
  return inactive_;
}

int MappedDevice::TablesUsing(const std::string& name) const {
  std::lock_guard g(state_mu_);
  int n = 0;
  for (const auto* t : {&live_, &inactive_, &pending_}) {
    if (*t && (*t)->Uses(name)) ++n;
  }
  return n;
}

std::vector<std::string> MappedDevice::UsedDeviceNames() const {
  std::lock_guard g(state_mu_);
  std::vector<std::string> names;
  for (const auto* t : {&live_, &inactive_, &pending_}) {
    if (!*t) continue;
    for (const DeviceRef& d : (*t)->Devices()) names.push_back(d.name);
  }
  return names;
}

// ---- suspend and resume ----------------------------------------------------------------------

Status MappedDevice::Suspend(const Interrupt& stop) {
  InterruptibleLock t;
  ICE_RETURN_IF_ERROR(t.Acquire(transition_mu_, stop, ("suspend of '" + name_ + "'").c_str()));
  return SuspendLocked(stop);
}

Status MappedDevice::SuspendLocked(const Interrupt& stop) {
  if (suspended_.load(std::memory_order_relaxed)) return Status::Ok();
  // As the kernel's __dm_suspend: presuspend hooks first (delay releases what it holds), then
  // block new dispatch and wait for what is in flight.
  Table* live = live_ptr_.load(std::memory_order_relaxed);
  if (live != nullptr) {
    for (size_t i = 0; i < live->num_targets(); ++i) live->entry(i).target->Presuspend();
  }
  blocked_.store(true, std::memory_order_seq_cst);
  Status drained;
  {
    std::unique_lock g(gate_mu_);
    drained = stop.Wait(
        gate_cv_, g, [&] { return InFlight() == 0; }, ("suspend of '" + name_ + "'").c_str());
  }
  if (!drained.ok()) {
    // Interrupted, as the kernel's __dm_suspend after an interrupted wait: dispatch resumes
    // (queued I/O with it) and the targets' presuspend is undone.
    OpenGate();
    if (live != nullptr) {
      for (size_t i = 0; i < live->num_targets(); ++i) live->entry(i).target->PresuspendUndo();
    }
    return drained;
  }
  suspended_.store(true, std::memory_order_release);
  return Status::Ok();
}

void MappedDevice::OpenGate() {
  {
    std::lock_guard g(gate_mu_);
    blocked_.store(false, std::memory_order_seq_cst);
  }
  gate_cv_.notify_all();
}

Status MappedDevice::SwapIn(const std::shared_ptr<Table>& next, std::shared_ptr<Table>* old) {
  // What the kernel's dm_swap_table re-checks (device areas), plus D4 again: the device's
  // capabilities may have grown since this table was loaded, if a resume ran meanwhile.
  ICE_RETURN_IF_ERROR(next->CheckDevicesStillFit());
  ICE_RETURN_IF_ERROR(CheckCapabilities(*next));
  {
    std::lock_guard g(state_mu_);
    *old = std::exchange(live_, next);
    pending_.reset();
  }
  live_ptr_.store(next.get(), std::memory_order_release);
  size_bytes_.store(next->size_bytes(), std::memory_order_release);
  lbs_.store(next->logical_block_size(), std::memory_order_release);
  discard_.store(next->supports_discard(), std::memory_order_release);
  // D5 (the kernel's dm_update_crypto_profile): a table without capabilities changes nothing.
  if (const CryptoCapabilities* caps = next->capabilities()) {
    if (profile_ == nullptr) {
      profile_ = std::make_unique<CryptoProfile>(*caps, 0, static_cast<KeyslotOps*>(this));
      profile_ptr_.store(profile_.get(), std::memory_order_release);
    } else {
      profile_->ExpandTo(*caps);
    }
  }
  return Status::Ok();
}

Status MappedDevice::Resume(const Interrupt& stop) {
  InterruptibleLock t;
  ICE_RETURN_IF_ERROR(t.Acquire(transition_mu_, stop, ("resume of '" + name_ + "'").c_str()));
  std::shared_ptr<Table> next;
  {
    std::lock_guard g(state_mu_);
    next = std::move(inactive_);
    pending_ = next;  // still counted as using its devices until it is live or dropped
  }
  std::shared_ptr<Table> old;  // destroyed after the resume, as the kernel's do_resume does
  if (next) {
    if (Status s = SuspendLocked(stop); !s.ok()) {
      // The kernel's do_resume: the table goes back to the inactive slot unless another was
      // loaded meanwhile, in which case this one is dropped.
      std::lock_guard g(state_mu_);
      if (!inactive_) inactive_ = std::move(next);
      pending_.reset();
      return s;
    }
    Status s = SwapIn(next, &old);
    if (!s.ok()) {
      std::lock_guard g(state_mu_);
      pending_.reset();
      return s.WithContext("resume of '" + name_ + "' failed, the loaded table is discarded");
    }
  }
  if (!suspended_.load(std::memory_order_relaxed)) return Status::Ok();
  Table* live = live_ptr_.load(std::memory_order_relaxed);
  if (live == nullptr) {
    return Status::Error(EINVAL, "device '" + name_ + "' has no table to resume");
  }
  for (size_t i = 0; i < live->num_targets(); ++i) live->entry(i).target->Resume();
  suspended_.store(false, std::memory_order_release);
  OpenGate();
  return Status::Ok();
}

// ---- the passthrough profile's operations -------------------------------------------------------

Status MappedDevice::ProgramKey(const CryptoKey&, unsigned) {
  return Status::Ok();  // a 0-slot profile programs nothing (K8)
}

Status MappedDevice::EvictKey(const CryptoKey& key, std::optional<unsigned>) {
  std::shared_ptr<Table> table = live_table();
  if (!table) return Status::Ok();
  // Every device of every target, as the kernel's dm_keyslot_evict; each routes to its own
  // profile or to the fallback (F4), and mapped devices below recurse.
  for (size_t i = 0; i < table->num_targets(); ++i) {
    for (const DeviceRef& d : table->entry(i).target->Devices()) {
      Status s = blk_.EvictKey(*d.device, key);
      if (!s.ok()) {
        spdlog::warn("{}: evicting a key from '{}' failed: {}", name_, d.name, s.ToString());
      }
    }
  }
  return Status::Ok();
}

}  // namespace ice::dm
