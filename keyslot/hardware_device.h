// Emulated inline-encryption hardware (rules H1–H4): a backing store, keyslots and a capability
// table, all fixed at creation; en/decryption per data unit with the key programmed in a slot.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <vector>

#include "block/block_device.h"
#include "block/clock.h"
#include "keyslot/crypto_profile.h"
#include "keyslot/data_unit_cipher.h"

namespace ice {

struct HardwareCounters {
  uint64_t slot_programs = 0;
  uint64_t slot_program_failures = 0;
  uint64_t slot_evictions = 0;
  uint64_t slot_hits = 0;
  uint64_t slot_waits = 0;
  uint64_t resets = 0;
  uint64_t fallback_ios = 0;  // requests whose crypto the software fallback did above this device
  uint64_t reads = 0, writes = 0, flushes = 0, zeroes = 0, discards = 0;
  uint64_t read_bytes = 0, write_bytes = 0;
  uint64_t errors = 0;  // requests that failed
};

class HardwareDevice final : public BlockDevice, private KeyslotOps {
 public:
  // H1: with no mode in `caps` the device has no profile (a plain device) and `num_slots` is
  // unused.
  HardwareDevice(std::unique_ptr<BlockDevice> backend, unsigned num_slots,
                 const CryptoCapabilities& caps, Clock& clock = Clock::Real());
  ~HardwareDevice() override;

  uint64_t size_bytes() const override { return backend_->size_bytes(); }
  CryptoProfile* crypto_profile() override { return profile_.get(); }
  bool supports_discard() const override { return backend_->supports_discard(); }
  // The backend's: what plain (unencrypted) reads of this device return.
  Status Extents(uint64_t offset_bytes, uint64_t length_bytes,
                 const ExtentSink& sink) const override {
    return backend_->Extents(offset_bytes, length_bytes, sink);
  }

  // H2: a request with a context gets a slot (K2/K3), en/decrypts each data unit with the IV from
  // its DUN, does the backend I/O and releases the slot (K4). Writes are encrypted into a buffer of
  // the device's own. C4 (ice deviation): a DUN that does not fit the key's dun_bytes fails with
  // EIO. Thread-safe.
  Status Submit(const IoRequest& req) override;

  // H3 faults, on command. Thread-safe.
  // All slots lose their keys; new crypto I/O waits until the profile has reprogrammed them (K7);
  // in-flight I/O finishes first. No I/O sees an error or a data change.
  void Reset();
  // The next `n` slot programs fail with EIO (K5).
  void FailNextPrograms(unsigned n);
  // Every slot program takes `latency` longer (on this device's clock). The device waits before
  // the profile takes its lock (KeyslotOps::BeforeProgram), and a reset waits once for all the
  // slots it reprograms while it holds crypto I/O back: no profile lock is held while it waits.
  void SetProgramLatency(Clock::Duration latency);
  // The daemon is stopping: waits for programming latency end now (and later ones do not
  // happen), so that no control verb outlives the daemon by hours. Irreversible; thread-safe.
  void Shutdown();
  // The next `n` evictions fail with EIO (the mapping is dropped all the same, K6).
  void FailNextEvictions(unsigned n);

  HardwareCounters counters() const;  // H4
  std::vector<SlotState> slots() const;
  // Key registers holding a prepared cipher (a key schedule). A slot that lost its mapping by
  // eviction holds none (C7); for tests and `hw info`.
  size_t prepared_ciphers() const;
  unsigned num_slots() const { return profile_ ? profile_->num_slots() : 0; }

 private:
  void BeforeProgram() override;
  // Waits `n` programs' latency, or less if Shutdown() comes first.
  void WaitProgramLatency(unsigned n);
  Status ProgramKey(const CryptoKey& key, unsigned slot) override;
  Status EvictKey(const CryptoKey& key, std::optional<unsigned> slot) override;
  Status SubmitCrypto(const IoRequest& req);

  std::unique_ptr<BlockDevice> backend_;
  Clock& clock_;

  // Crypto I/O holds io_gate_ shared from getting its slot to releasing it; Reset() holds it
  // exclusively, so no I/O uses a slot between the loss of the keys and the end of reprogramming.
  // Lock order: io_gate_, then the profile's locks, then slots_mu_.
  std::shared_mutex io_gate_;
  // std::shared_mutex lets new readers in while a writer waits, so a steady I/O stream could
  // starve Reset(): new crypto I/O first waits here while a reset is pending.
  std::atomic<int> resets_pending_{0};
  std::mutex reset_mu_;
  std::condition_variable reset_cv_;
  // The hardware's key registers: slot -> prepared cipher. Changed under slots_mu_ only while no
  // I/O can hold that slot (refs 0 under the profile's exclusive lock, or during Reset()); read
  // without the mutex by the I/O that holds the slot.
  mutable std::mutex slots_mu_;
  std::vector<std::unique_ptr<DataUnitCipher>> slot_ciphers_;

  std::atomic<unsigned> fail_programs_{0};
  std::atomic<unsigned> fail_evictions_{0};
  std::atomic<int64_t> program_latency_ns_{0};
  std::mutex latency_mu_;  // with latency_cv_, lets Shutdown() end latency waits
  std::condition_variable latency_cv_;
  bool shut_down_ = false;  // guarded by latency_mu_

  struct AtomicCounters;
  std::unique_ptr<AtomicCounters> counters_;
  std::unique_ptr<CryptoProfile> profile_;  // declared last: destroyed first
};

}  // namespace ice
