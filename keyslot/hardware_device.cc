#include "keyslot/hardware_device.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <utility>

#include "block/log.h"
#include "keyslot/bounce_buffer.h"

namespace ice {
namespace {

// Takes one unit of an injected-fault budget; false when it is exhausted.
bool TakeOne(std::atomic<unsigned>& budget) {
  unsigned n = budget.load(std::memory_order_relaxed);
  while (n > 0) {
    if (budget.compare_exchange_weak(n, n - 1, std::memory_order_relaxed)) return true;
  }
  return false;
}

Status IoError(const IoRequest& req, const char* why) {
  ICE_LOG_RATELIMITED(spdlog::level::warn, "hardware: {} at offset {} length {} failed: {}",
                      IoOpName(req.op), req.offset_bytes, req.length_bytes, why);
  return Status::Error(EIO, why);
}

}  // namespace

struct HardwareDevice::AtomicCounters {
  std::atomic<uint64_t> resets{0}, fallback_ios{0};
  std::atomic<uint64_t> reads{0}, writes{0}, flushes{0}, zeroes{0}, discards{0};
  std::atomic<uint64_t> read_bytes{0}, write_bytes{0};
  std::atomic<uint64_t> errors{0};

  static void Inc(std::atomic<uint64_t>& c, uint64_t n = 1) {
    c.fetch_add(n, std::memory_order_relaxed);
  }
};

HardwareDevice::HardwareDevice(std::unique_ptr<BlockDevice> backend, unsigned num_slots,
                               const CryptoCapabilities& caps, Clock& clock)
    : backend_(std::move(backend)), clock_(clock), counters_(std::make_unique<AtomicCounters>()) {
  if (!caps.HasAnyMode()) return;  // H1: a plain device
  slot_ciphers_.resize(num_slots);
  profile_ = std::make_unique<CryptoProfile>(caps, num_slots, static_cast<KeyslotOps*>(this));
}

HardwareDevice::~HardwareDevice() = default;

Status HardwareDevice::Submit(const IoRequest& req) {
  const Status status = req.crypt ? SubmitCrypto(req) : backend_->Submit(req);
  AtomicCounters& c = *counters_;
  const uint64_t bytes = status.ok() ? req.length_bytes : 0;
  switch (req.op) {
    case IoOp::kRead:
      AtomicCounters::Inc(c.reads);
      AtomicCounters::Inc(c.read_bytes, bytes);
      break;
    case IoOp::kWrite:
      AtomicCounters::Inc(c.writes);
      AtomicCounters::Inc(c.write_bytes, bytes);
      break;
    case IoOp::kFlush:
      AtomicCounters::Inc(c.flushes);
      break;
    case IoOp::kWriteZeroes:
      AtomicCounters::Inc(c.zeroes);
      break;
    case IoOp::kDiscard:
      AtomicCounters::Inc(c.discards);
      break;
  }
  if (req.via_fallback) AtomicCounters::Inc(c.fallback_ios);
  if (!status.ok()) AtomicCounters::Inc(c.errors);
  return status;
}

// H2. Steady state allocates nothing: the slot lookup, the cipher (its context pool) and the
// per-thread write buffer are all reused.
Status HardwareDevice::SubmitCrypto(const IoRequest& req) {
  const CryptoKey& key = *req.crypt->key;
  const CryptoConfig& config = key.config();
  const bool zeroes = req.op == IoOp::kWriteZeroes;
  if (!req.has_data() && !zeroes) return IoError(req, "crypto context on a request without data");
  if (profile_ == nullptr || !profile_->SupportsNatively(config)) {
    return IoError(req, "crypto configuration not supported by this hardware");
  }
  const uint32_t unit = config.data_unit_size;
  if (req.offset_bytes % unit != 0 || req.length_bytes % unit != 0) {
    ICE_LOG_RATELIMITED(spdlog::level::warn,
                        "hardware: {} at offset {} length {} not aligned to data unit size {}",
                        IoOpName(req.op), req.offset_bytes, req.length_bytes, unit);
    return Status::Error(EINVAL, "crypto I/O not aligned to the data unit size");
  }
  const uint64_t units = req.length_bytes / unit;
  if (units == 0) return IoError(req, "crypto context on a request without data");
  // C4 (ice deviation): real hardware would silently drop the DUN's high bytes.
  const Dun& first = req.crypt->dun;
  if (first.SignificantBytes() > config.dun_bytes ||
      first.Plus(units - 1).SignificantBytes() > config.dun_bytes) {
    return IoError(req, "DUN does not fit in the key's dun_bytes");
  }

  if (resets_pending_.load(std::memory_order_acquire) > 0) {
    std::unique_lock lock(reset_mu_);
    reset_cv_.wait(lock, [this] { return resets_pending_.load(std::memory_order_acquire) == 0; });
  }
  std::shared_lock gate(io_gate_);
  Result<Keyslot> slot = profile_->GetKeyslot(key);
  if (!slot.ok()) {
    ICE_LOG_RATELIMITED(spdlog::level::warn, "hardware: programming key #{} failed: {}", key.id(),
                        slot.status().ToString());
    return slot.status();
  }
  if (!slot->has_slot()) return IoError(req, "hardware has no keyslots");
  // Read without slots_mu_: nobody changes the register of a slot this I/O holds.
  const DataUnitCipher* cipher = slot_ciphers_[slot->index()].get();
  // ice deviation: a slot whose reprogramming failed after a reset holds no key; real hardware
  // would en/decrypt with whatever the register holds and corrupt data silently.
  if (cipher == nullptr) return IoError(req, "keyslot lost its key (reprogramming failed)");

  if (req.op == IoOp::kRead) {
    ICE_RETURN_IF_ERROR(backend_->Submit(IoRequest{.op = IoOp::kRead,
                                                   .offset_bytes = req.offset_bytes,
                                                   .length_bytes = req.length_bytes,
                                                   .read_buf = req.read_buf}));
    return cipher->Decrypt(first, req.read_buf, req.read_buf, req.length_bytes);
  }

  // Writes: the caller's buffer is never modified, so encrypt into ours, a chunk at a time.
  BounceBuffer buffer;
  Dun dun = first;
  for (uint64_t done = 0; done < req.length_bytes;) {
    const size_t n = std::min<uint64_t>(BounceBuffer::kBytes, req.length_bytes - done);
    const uint8_t* plain = buffer.data();
    if (zeroes) {
      std::fill_n(buffer.data(), n, 0);
    } else {
      plain = req.write_buf + done;
    }
    ICE_RETURN_IF_ERROR(cipher->Encrypt(dun, plain, buffer.data(), n));
    ICE_RETURN_IF_ERROR(backend_->Submit(IoRequest{.op = IoOp::kWrite,
                                                   .offset_bytes = req.offset_bytes + done,
                                                   .length_bytes = n,
                                                   .write_buf = buffer.data(),
                                                   .fua = req.fua}));
    dun.Advance(n / unit);
    done += n;
  }
  return Status::Ok();
}

void HardwareDevice::Reset() {
  resets_pending_.fetch_add(1, std::memory_order_acq_rel);
  {
    std::unique_lock gate(io_gate_);
    std::vector<std::unique_ptr<DataUnitCipher>> lost;  // freed after slots_mu_ is dropped
    {
      std::lock_guard lock(slots_mu_);
      lost.swap(slot_ciphers_);
      slot_ciphers_.resize(lost.size());
    }
    AtomicCounters::Inc(counters_->resets);
    if (profile_ != nullptr) {
      const auto slots = profile_->Slots();
      WaitProgramLatency(static_cast<unsigned>(
          std::count_if(slots.begin(), slots.end(), [](const SlotState& s) { return s.key_id; })));
      profile_->ReprogramAllKeys();  // K7
    }
  }
  {
    std::lock_guard lock(reset_mu_);
    resets_pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
  reset_cv_.notify_all();
}

void HardwareDevice::FailNextPrograms(unsigned n) {
  fail_programs_.store(n, std::memory_order_relaxed);
}

void HardwareDevice::SetProgramLatency(Clock::Duration latency) {
  program_latency_ns_.store(std::chrono::duration_cast<std::chrono::nanoseconds>(latency).count(),
                            std::memory_order_relaxed);
}

void HardwareDevice::FailNextEvictions(unsigned n) {
  fail_evictions_.store(n, std::memory_order_relaxed);
}

void HardwareDevice::Shutdown() {
  {
    std::lock_guard lock(latency_mu_);
    shut_down_ = true;
  }
  latency_cv_.notify_all();
}

void HardwareDevice::BeforeProgram() { WaitProgramLatency(1); }

void HardwareDevice::WaitProgramLatency(unsigned n) {
  const int64_t latency_ns = program_latency_ns_.load(std::memory_order_relaxed);
  if (latency_ns <= 0 || n == 0) return;
  std::unique_lock lock(latency_mu_);
  clock_.WaitUntil(lock, latency_cv_, clock_.Now() + n * std::chrono::nanoseconds(latency_ns),
                   [this] { return shut_down_; });
}

Status HardwareDevice::ProgramKey(const CryptoKey& key, unsigned slot) {
  // An injected failure leaves the register as it was: the old key stays usable (K5).
  if (TakeOne(fail_programs_)) return Status::Error(EIO, "keyslot programming failed (injected)");
  ICE_ASSIGN_OR_RETURN(std::unique_ptr<DataUnitCipher> cipher, DataUnitCipher::Create(key));
  {
    std::lock_guard lock(slots_mu_);
    cipher.swap(slot_ciphers_[slot]);
  }
  return Status::Ok();  // `cipher` now holds the previous key's, freed here
}

Status HardwareDevice::EvictKey(const CryptoKey& /*key*/, std::optional<unsigned> slot) {
  // The register is wiped even when the failure is injected: key material never outlives its
  // mapping in ice (C7), and the profile drops the mapping either way (K6).
  std::unique_ptr<DataUnitCipher> wiped;
  if (slot) {
    std::lock_guard lock(slots_mu_);
    wiped.swap(slot_ciphers_[*slot]);
  }
  if (TakeOne(fail_evictions_)) return Status::Error(EIO, "keyslot eviction failed (injected)");
  return Status::Ok();
}

HardwareCounters HardwareDevice::counters() const {
  HardwareCounters out;
  if (profile_ != nullptr) {
    const KeyslotCounters k = profile_->counters();
    out.slot_programs = k.programs;
    out.slot_program_failures = k.program_failures;
    out.slot_evictions = k.evictions;
    out.slot_hits = k.hits;
    out.slot_waits = k.waits;
  }
  const AtomicCounters& c = *counters_;
  auto get = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  out.resets = get(c.resets);
  out.fallback_ios = get(c.fallback_ios);
  out.reads = get(c.reads);
  out.writes = get(c.writes);
  out.flushes = get(c.flushes);
  out.zeroes = get(c.zeroes);
  out.discards = get(c.discards);
  out.read_bytes = get(c.read_bytes);
  out.write_bytes = get(c.write_bytes);
  out.errors = get(c.errors);
  return out;
}

size_t HardwareDevice::prepared_ciphers() const {
  std::lock_guard lock(slots_mu_);
  return std::count_if(slot_ciphers_.begin(), slot_ciphers_.end(),
                       [](const auto& cipher) { return cipher != nullptr; });
}

std::vector<SlotState> HardwareDevice::slots() const {
  return profile_ != nullptr ? profile_->Slots() : std::vector<SlotState>();
}

}  // namespace ice
