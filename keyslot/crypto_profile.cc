#include "keyslot/crypto_profile.h"

#include <bit>
#include <cassert>
#include <cerrno>
#include <utility>

#include "block/log.h"

namespace ice {
namespace {

// Serialises EvictEverywhere against the destruction of profiles with slots: a profile found in a
// key's placement stays alive while it is held. Never destroyed, so keys dropped by static
// destructors still find it.
std::mutex& PlacementMutex() {
  static auto* mu = new std::mutex;
  return *mu;
}

}  // namespace

// One hardware keyslot's bookkeeping (the kernel's blk_crypto_keyslot). Invariant, under idle_mu_
// and outside FindAndGrab's 0->1 window (which the exclusive lock excludes): a slot is on the idle
// list iff refs == 0. Cache-line sized, so that I/O on different slots does not share a line.
struct alignas(64) CryptoProfile::Slot {
  std::atomic<int> refs{0};
  // Gets served by this slot already holding their key: on the line the hit path writes anyway,
  // rather than on one more line shared by every I/O. Summed by counters().
  std::atomic<uint64_t> hits{0};
  // Written only with lock_ held exclusively; read with it held either way.
  uint64_t key_id = 0;  // 0: no key
  const CryptoKey* key = nullptr;
  int hash_next = -1;
  // Guarded by idle_mu_.
  int idle_prev = -1;
  int idle_next = -1;
};

// ---- Keyslot ----

Keyslot::Keyslot(Keyslot&& other) noexcept
    : profile_(std::exchange(other.profile_, nullptr)), index_(other.index_) {}

Keyslot& Keyslot::operator=(Keyslot&& other) noexcept {
  if (this != &other) {
    Release();
    profile_ = std::exchange(other.profile_, nullptr);
    index_ = other.index_;
  }
  return *this;
}

void Keyslot::Release() {
  if (profile_ != nullptr) std::exchange(profile_, nullptr)->PutKeyslot(index_);
}

// ---- CryptoProfile ----

CryptoProfile::CryptoProfile(const CryptoCapabilities& caps, unsigned num_slots, KeyslotOps* ops)
    : num_slots_(num_slots), ops_(ops), has_slots_(num_slots > 0) {
  assert(num_slots == 0 || ops != nullptr);
  ExpandTo(caps);
  if (num_slots == 0) return;
  slots_ = std::make_unique<Slot[]>(num_slots);
  {
    std::lock_guard idle(idle_mu_);
    for (unsigned i = 0; i < num_slots; ++i) IdleAppend(i);  // K3: idle in order 0…n-1
  }
  // As the kernel: at least 2 buckets, a power of two, so chains stay about one slot long.
  const unsigned buckets = std::max(2u, std::bit_ceil(num_slots));
  bucket_shift_ = 64 - std::countr_zero(buckets);
  buckets_ = std::make_unique<int[]>(buckets);
  std::fill_n(buckets_.get(), buckets, -1);
}

CryptoProfile::~CryptoProfile() { Destroy(); }

CryptoCapabilities CryptoProfile::capabilities() const {
  CryptoCapabilities caps;
  for (int i = 0; i < kNumCryptoModes; ++i) {
    caps.data_unit_masks[i] = masks_[i].load(std::memory_order_relaxed);
  }
  caps.max_dun_bytes = max_dun_bytes_.load(std::memory_order_relaxed);
  caps.key_types = key_types_.load(std::memory_order_relaxed);
  return caps;
}

bool CryptoProfile::SupportsNatively(const CryptoConfig& config) const {
  return capabilities().SupportsNatively(config);
}

// The kernel's blk_crypto_update_capabilities: a plain copy. Readers may see a mix of old and new
// fields, which is harmless while capabilities only grow: a stale field only sends an I/O to the
// fallback.
void CryptoProfile::ExpandTo(const CryptoCapabilities& caps) {
  for (int i = 0; i < kNumCryptoModes; ++i) {
    masks_[i].store(caps.data_unit_masks[i], std::memory_order_relaxed);
  }
  max_dun_bytes_.store(caps.max_dun_bytes, std::memory_order_relaxed);
  key_types_.store(caps.key_types, std::memory_order_relaxed);
}

unsigned CryptoProfile::Bucket(uint64_t key_id) const {
  // Fibonacci hashing: key ids are sequential, the multiply spreads them over the top bits.
  return static_cast<unsigned>((key_id * 0x9E3779B97F4A7C15ull) >> bucket_shift_);
}

std::optional<unsigned> CryptoProfile::Find(uint64_t key_id) const {
  for (int i = buckets_[Bucket(key_id)]; i >= 0; i = slots_[i].hash_next) {
    if (slots_[i].key_id == key_id) return static_cast<unsigned>(i);
  }
  return std::nullopt;
}

std::optional<unsigned> CryptoProfile::FindAndGrab(uint64_t key_id) {
  const std::optional<unsigned> index = Find(key_id);
  if (!index) return std::nullopt;
  if (slots_[*index].refs.fetch_add(1, std::memory_order_acq_rel) == 0) {
    std::lock_guard idle(idle_mu_);
    IdleRemove(*index);
  }
  slots_[*index].hits.fetch_add(1, std::memory_order_relaxed);
  return index;
}

// A key is in at most one slot of a profile (a get finds it first), so the profile appears in the
// key's placement at most once.
void CryptoProfile::MapKey(unsigned index, const CryptoKey& key) {
  Slot& slot = slots_[index];
  if (slot.key_id != 0) UnmapKey(index);
  {
    std::lock_guard placement(key.placement_mu_);
    key.placement_.push_back(this);
  }
  slot.key = &key;
  slot.key_id = key.id();
  int& head = buckets_[Bucket(slot.key_id)];
  slot.hash_next = head;
  head = static_cast<int>(index);
}

void CryptoProfile::UnmapKey(unsigned index) {
  Slot& slot = slots_[index];
  int* link = &buckets_[Bucket(slot.key_id)];
  while (*link != static_cast<int>(index)) link = &slots_[*link].hash_next;
  *link = slot.hash_next;
  {
    std::lock_guard placement(slot.key->placement_mu_);
    std::erase(slot.key->placement_, this);
  }
  slot.hash_next = -1;
  slot.key = nullptr;
  slot.key_id = 0;
}

void CryptoProfile::IdleRemove(unsigned index) {
  Slot& slot = slots_[index];
  (slot.idle_prev >= 0 ? slots_[slot.idle_prev].idle_next : idle_head_) = slot.idle_next;
  (slot.idle_next >= 0 ? slots_[slot.idle_next].idle_prev : idle_tail_) = slot.idle_prev;
  slot.idle_prev = slot.idle_next = -1;
  --idle_count_;
}

void CryptoProfile::IdleAppend(unsigned index) {
  Slot& slot = slots_[index];
  slot.idle_prev = idle_tail_;
  slot.idle_next = -1;
  (idle_tail_ >= 0 ? slots_[idle_tail_].idle_next : idle_head_) = static_cast<int>(index);
  idle_tail_ = static_cast<int>(index);
  ++idle_count_;
}

Result<Keyslot> CryptoProfile::GetKeyslot(const CryptoKey& key) {
  if (num_slots_ == 0) return Keyslot();  // K8
  const uint64_t id = key.id();
  {
    std::shared_lock shared(lock_);
    if (const auto index = FindAndGrab(id)) return Keyslot(this, *index);
  }

  ops_->BeforeProgram();
  std::unique_lock exclusive(lock_);
  int victim;
  for (;;) {
    // Another getter may have programmed the key while no lock was held.
    if (const auto index = FindAndGrab(id)) return Keyslot(this, *index);
    {
      std::lock_guard idle(idle_mu_);
      victim = idle_head_;
    }
    if (victim >= 0) break;
    exclusive.unlock();
    {
      std::unique_lock idle(idle_mu_);
      if (idle_count_ == 0) {
        waits_.fetch_add(1, std::memory_order_relaxed);
        ++idle_waiters_;
        idle_cv_.wait(idle, [this] { return idle_count_ > 0; });
        --idle_waiters_;
      }
    }
    exclusive.lock();
  }

  // The victim has refs 0 and stays the idle head while we program it: hits are excluded by the
  // exclusive lock, and puts only touch referenced slots.
  const Status status = ops_->ProgramKey(key, static_cast<unsigned>(victim));
  if (!status.ok()) {
    // K5: the bookkeeping is unchanged; the slot is still the idle head with its old mapping.
    program_failures_.fetch_add(1, std::memory_order_relaxed);
    exclusive.unlock();
    idle_cv_.notify_all();
    return status;
  }
  programs_.fetch_add(1, std::memory_order_relaxed);
  MapKey(static_cast<unsigned>(victim), key);
  slots_[victim].refs.store(1, std::memory_order_relaxed);
  {
    std::lock_guard idle(idle_mu_);
    IdleRemove(static_cast<unsigned>(victim));
  }
  return Keyslot(this, static_cast<unsigned>(victim));
}

// K4, the kernel's atomic_dec_and_lock: the idle lock is taken only for the last reference.
void CryptoProfile::PutKeyslot(unsigned index) {
  Slot& slot = slots_[index];
  int refs = slot.refs.load(std::memory_order_relaxed);
  while (refs > 1) {
    if (slot.refs.compare_exchange_weak(refs, refs - 1, std::memory_order_release,
                                        std::memory_order_relaxed)) {
      return;
    }
  }
  bool wake;
  {
    std::lock_guard idle(idle_mu_);
    if (slot.refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    IdleAppend(index);
    wake = idle_waiters_ > 0;
  }
  if (wake) idle_cv_.notify_all();
}

Status CryptoProfile::EvictKey(const CryptoKey& key) {
  std::unique_lock exclusive(lock_);
  if (num_slots_ == 0) {
    return ops_ != nullptr ? ops_->EvictKey(key, std::nullopt) : Status::Ok();  // K8
  }
  // Not an error: a key not in use by I/O need not be in a slot.
  const std::optional<unsigned> index = Find(key.id());
  if (!index) return Status::Ok();
  Status status;
  if (slots_[*index].refs.load(std::memory_order_acquire) != 0) {
    status = Status::Error(EBUSY, "key is still in use by I/O");
  } else {
    status = ops_->EvictKey(key, *index);
    if (status.ok()) evictions_.fetch_add(1, std::memory_order_relaxed);
  }
  // The caller drops the key whatever happens, so the slot must not keep pointing at it.
  UnmapKey(*index);
  return status;
}

Status CryptoProfile::EvictEverywhere(const CryptoKey& key) {
  {
    // Most keys dropped were never programmed (or were evicted already): no global lock for them.
    std::lock_guard placement(key.placement_mu_);
    if (key.placement_.empty()) return Status::Ok();
  }
  std::lock_guard global(PlacementMutex());
  std::vector<CryptoProfile*> where;
  {
    std::lock_guard placement(key.placement_mu_);
    where = key.placement_;
  }
  // Each EvictKey unmaps the key and so removes its profile from the placement.
  Status first;
  for (CryptoProfile* profile : where) {
    Status s = profile->EvictKey(key);
    if (!s.ok() && first.ok()) first = std::move(s);
  }
  return first;
}

void CryptoProfile::ReprogramAllKeys() {
  std::unique_lock exclusive(lock_);
  for (unsigned i = 0; i < num_slots_; ++i) {
    const CryptoKey* key = slots_[i].key;
    if (key == nullptr) continue;
    const Status status = ops_->ProgramKey(*key, i);
    if (status.ok()) {
      programs_.fetch_add(1, std::memory_order_relaxed);
    } else {
      program_failures_.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("keyslot {}: reprogramming key #{} failed: {}", i, key->id(), status.ToString());
    }
  }
}

void CryptoProfile::Destroy() {
  // A profile with slots may be in keys' placements, which EvictEverywhere walks under the
  // placement mutex: taking it here keeps this profile alive until such a walk is done with it.
  std::unique_lock<std::mutex> global;
  if (has_slots_) global = std::unique_lock(PlacementMutex());
  std::unique_lock exclusive(lock_);
  if (destroyed_) return;
  destroyed_ = true;
  for (unsigned i = 0; i < num_slots_; ++i) {
    if (slots_[i].key != nullptr) UnmapKey(i);
  }
  {
    std::lock_guard idle(idle_mu_);
    assert(idle_count_ == num_slots_ && "a keyslot is still held");
    idle_head_ = idle_tail_ = -1;
    idle_count_ = 0;
  }
  for (unsigned i = 0; i < num_slots_; ++i) {
    hits_.fetch_add(slots_[i].hits.load(std::memory_order_relaxed), std::memory_order_relaxed);
  }
  // As the kernel's memzero_explicit of the profile: no slot, no operations, no capabilities, so
  // nothing is routed here any more. The profile holds no key bytes, and now no references.
  slots_.reset();
  buckets_.reset();
  num_slots_ = 0;
  ops_ = nullptr;
  ExpandTo(CryptoCapabilities());
}

KeyslotCounters CryptoProfile::counters() const {
  KeyslotCounters c;
  c.programs = programs_.load(std::memory_order_relaxed);
  c.program_failures = program_failures_.load(std::memory_order_relaxed);
  c.evictions = evictions_.load(std::memory_order_relaxed);
  c.hits = hits_.load(std::memory_order_relaxed);
  {
    std::shared_lock shared(lock_);
    for (unsigned i = 0; i < num_slots_; ++i)
      c.hits += slots_[i].hits.load(std::memory_order_relaxed);
  }
  c.waits = waits_.load(std::memory_order_relaxed);
  return c;
}

std::vector<SlotState> CryptoProfile::Slots() const {
  std::shared_lock shared(lock_);
  std::vector<SlotState> out(num_slots_);
  for (unsigned i = 0; i < num_slots_; ++i) {
    out[i].key_id = slots_[i].key_id;
    out[i].refs = slots_[i].refs.load(std::memory_order_relaxed);
  }
  return out;
}

}  // namespace ice
