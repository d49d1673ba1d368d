// The keyslot manager with the kernel's semantics (blk_crypto_profile; rules K1–K11).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <vector>

#include "block/status.h"
#include "keyslot/capabilities.h"
#include "keyslot/crypto_key.h"

namespace ice {

// What the device below a profile does when a key is programmed into or evicted from a slot
// (the kernel's blk_crypto_ll_ops). Implemented by the emulated hardware, the software fallback and
// mapped devices (evict only). Called with the profile's exclusive lock held.
class KeyslotOps {
 public:
  virtual ~KeyslotOps() = default;
  // Called with no profile lock held when a get is about to take the exclusive lock to program
  // a key (which another getter may have programmed by then). Slow hardware waits here, so that
  // the profile's lock is never held while it waits (hits and control reads go on meanwhile).
  virtual void BeforeProgram() {}
  virtual Status ProgramKey(const CryptoKey& key, unsigned slot) = 0;
  // `slot` is empty for a passthrough (0-slot) profile, which forwards the eviction below (K8).
  virtual Status EvictKey(const CryptoKey& key, std::optional<unsigned> slot) = 0;
};

class CryptoProfile;

// A held reference to a programmed keyslot; released on destruction (K4). Move-only.
// A passthrough profile hands out references with no slot.
class Keyslot {
 public:
  Keyslot() = default;
  Keyslot(Keyslot&& other) noexcept;
  Keyslot& operator=(Keyslot&& other) noexcept;
  ~Keyslot() { Release(); }

  bool has_slot() const { return profile_ != nullptr; }
  // REQUIRES: has_slot().
  unsigned index() const { return index_; }
  void Release();

 private:
  friend class CryptoProfile;
  Keyslot(CryptoProfile* profile, unsigned index) : profile_(profile), index_(index) {}
  CryptoProfile* profile_ = nullptr;
  unsigned index_ = 0;
};

struct KeyslotCounters {
  uint64_t programs = 0;  // successful slot programs (including reprogram-all)
  uint64_t program_failures = 0;
  uint64_t evictions = 0;  // keys dropped from a slot by EvictKey
  uint64_t hits = 0;       // gets served by a slot already holding the key
  uint64_t waits = 0;      // times a getter waited for an idle slot
};

struct SlotState {
  uint64_t key_id = 0;  // 0: no key
  int refs = 0;
};

// Thread-safe. As in the kernel, a slot's mapping refers to the key object itself
// (ReprogramAllKeys programs it again). Unlike the kernel, the profile records its mappings in the
// key (CryptoKey::placement_), so that a key is evicted from every profile that maps it when it is
// dropped (EvictEverywhere, called by ~CryptoKey): no mapping ever outlives its key, however I/O
// routing (F4) or tables (D6) have changed since it was programmed. Every Keyslot must be released
// before the profile is destroyed.
//
// Lock order: the placement mutex (process-wide; EvictEverywhere, and Destroy of a profile with
// slots), then a profile's lock_ (shared or exclusive), then either idle_mu_ or a key's
// placement_mu_ (leaves, never nested). KeyslotOps are called with lock_ held exclusively, never
// with idle_mu_, and must not call EvictEverywhere nor drop the last reference to a key.
class CryptoProfile {
 public:
  // K11: the profile is complete when constructed (before its device is used); `ops` must outlive
  // it (it may be null for a 0-slot profile that forwards nothing).
  CryptoProfile(const CryptoCapabilities& caps, unsigned num_slots, KeyslotOps* ops);
  ~CryptoProfile();  // Destroy()
  CryptoProfile(const CryptoProfile&) = delete;
  CryptoProfile& operator=(const CryptoProfile&) = delete;

  unsigned num_slots() const { return num_slots_; }
  CryptoCapabilities capabilities() const;
  bool SupportsNatively(const CryptoConfig& config) const;
  // D5: a mapped device's capabilities only grow, at resume. Thread-safe against readers.
  void ExpandTo(const CryptoCapabilities& caps);

  // K2/K3/K5: a slot holding `key`, programming it if needed; waits (never fails) when every slot
  // is in use. The error of a failed program is returned. 0-slot profiles return a slot-less ref.
  Result<Keyslot> GetKeyslot(const CryptoKey& key);
  // K6.
  Status EvictKey(const CryptoKey& key);
  // K6 on every profile with a slot mapping `key`, wherever it is (hardware below a table that has
  // since been swapped, the fallback's pool after routing moved to native, …): each idle slot is
  // evicted by its device (which frees the prepared cipher) and each busy one answers EBUSY; every
  // mapping is dropped either way. Returns the first error. Thread-safe. REQUIRES: the caller holds
  // no profile lock. Allocates only when the key is mapped somewhere.
  static Status EvictEverywhere(const CryptoKey& key);
  // K7: after the hardware lost its keys. Failures are logged and skipped.
  void ReprogramAllKeys();
  // K11: wipes slot bookkeeping (and the keys' records of it); idempotent. No slot may be held.
  void Destroy();

  KeyslotCounters counters() const;
  std::vector<SlotState> Slots() const;

 private:
  friend class Keyslot;
  struct Slot;
  void PutKeyslot(unsigned index);  // K4
  // REQUIRES: lock_ held (shared or exclusive).
  std::optional<unsigned> FindAndGrab(uint64_t key_id);
  // REQUIRES: lock_ held.
  std::optional<unsigned> Find(uint64_t key_id) const;
  // REQUIRES: lock_ held exclusively. They keep the key's placement_ in step with the slot.
  void MapKey(unsigned index, const CryptoKey& key);
  void UnmapKey(unsigned index);
  unsigned Bucket(uint64_t key_id) const;
  void IdleRemove(unsigned index);  // REQUIRES: idle_mu_ held.
  void IdleAppend(unsigned index);  // REQUIRES: idle_mu_ held.

  // Capabilities, readable without locks; only grow (ExpandTo).
  std::array<std::atomic<uint32_t>, kNumCryptoModes> masks_{};
  std::atomic<unsigned> max_dun_bytes_{0};
  std::atomic<uint8_t> key_types_{0};

  unsigned num_slots_;
  KeyslotOps* ops_;
  const bool has_slots_;  // num_slots_ > 0 at construction: its mappings are recorded in keys

  mutable std::shared_mutex lock_;  // the kernel's profile->lock
  std::unique_ptr<Slot[]> slots_;   // num_slots_ entries
  // The kernel's slot_hashtable: key id -> chain of slots through Slot::hash_next, a power-of-two
  // number of buckets >= num_slots_. Fixed size, so lookups and remaps never allocate.
  std::unique_ptr<int[]> buckets_;  // guarded by lock_
  unsigned bucket_shift_ = 63;

  mutable std::mutex idle_mu_;       // the kernel's idle_slots_lock
  std::condition_variable idle_cv_;  // the kernel's idle_slots_wait_queue
  int idle_head_ = -1;               // least recently used idle slot; guarded by idle_mu_
  int idle_tail_ = -1;               // most recently used idle slot
  size_t idle_count_ = 0;
  size_t idle_waiters_ = 0;  // getters blocked on idle_cv_; guarded by idle_mu_

  // hits_ holds only the hits of destroyed slots; live slots count their own.
  std::atomic<uint64_t> programs_{0}, program_failures_{0}, evictions_{0}, hits_{0}, waits_{0};
  bool destroyed_ = false;  // guarded by lock_
};

}  // namespace ice
