// A mapped device (the kernel's struct mapped_device, dm.c): a block device whose I/O a table of
// targets performs (rules D2, D4–D8).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "block/block_device.h"
#include "block/interrupt.h"
#include "dm/table.h"
#include "keyslot/blk_crypto.h"
#include "keyslot/crypto_profile.h"

namespace ice::dm {

// Holds a live table and at most one inactive (loaded) table (D2).
//
// I/O (Submit) runs concurrently on any number of threads without taking a lock: it counts itself
// in flight, and the live table changes only while the device is suspended with nothing in
// flight. With no live table Submit fails with EIO at once, suspended or not (the kernel's
// dm_submit_bio checks the table first); otherwise, while suspended, it blocks until resume.
//
// Control operations (Load, ClearInactive, Suspend, Resume) are thread-safe; Suspend and Resume
// are serialised with each other and may wait for in-flight I/O, which may itself wait on another
// device's resume (stacked devices): callers must not hold locks that such a resume needs.
//
// Lock order: transition_mu_, then the device's profile lock (taken by CryptoProfile around
// eviction), then state_mu_, then the profiles of the devices below. gate_mu_ is a leaf.
class MappedDevice final : public BlockDevice, private KeyslotOps {
 public:
  // `blk` routes the evictions of D6 and must outlive the device.
  MappedDevice(std::string name, BlkCrypto& blk);
  // Presuspends the live table's targets if the device is not suspended (the kernel's
  // __dm_destroy). REQUIRES: no request in flight or waiting.
  ~MappedDevice() override;

  const std::string& name() const { return name_; }

  // The live table's size (0 without one).
  uint64_t size_bytes() const override { return size_bytes_.load(std::memory_order_acquire); }
  // nullptr until a table with capabilities is first resumed (the kernel's md->queue's
  // crypto_profile); then a 0-slot passthrough profile (K8) whose capabilities only grow (D5) and
  // whose eviction reaches every device of the live table (D6). Stable once set.
  CryptoProfile* crypto_profile() override { return profile_ptr_.load(std::memory_order_acquire); }
  // Splits `req` at target boundaries (D8) and maps each piece with its target; flushes go to
  // every target (all of them, even after a failure; the first error is returned). A crypto
  // request whose split point falls inside a data unit fails with EINVAL before any I/O. EIO at
  // once without a live table (even while suspended); otherwise blocks while suspended. EIO
  // beyond the device's end. Allocates nothing unless the request fails.
  Status Submit(const IoRequest& req) override;
  bool supports_discard() const override { return discard_.load(std::memory_order_acquire); }
  uint32_t logical_block_size() const override { return lbs_.load(std::memory_order_acquire); }
  // Through the live table's target at `offset_bytes`; the device itself where there is no live
  // table, the offset lies beyond it, or the target stores nothing below.
  StoredRange Locate(uint64_t offset_bytes, uint64_t length_bytes) const override;
  // Through the live table's targets (holes pass only through those that keep reads as they
  // are: linear); all data without a live table.
  Status Extents(uint64_t offset_bytes, uint64_t length_bytes,
                 const ExtentSink& sink) const override;

  // D4: OK when `table` keeps every capability the device advertises; otherwise EINVAL naming
  // what it would drop.
  Status CheckCapabilities(const Table& table) const;
  // D2 `load`: checks D4 and stores `table` as the inactive table, replacing (and destroying) any
  // loaded before. A refused table leaves the device unchanged.
  Status Load(std::shared_ptr<Table> table);
  // `clear`: drops the inactive table, if any.
  void ClearInactive();
  // D2: presuspends the live table's targets, stops dispatching I/O and waits until none is in
  // flight. No-op when already suspended. When `stop` fires first (as a signal interrupts the
  // kernel's suspend) the suspend is undone: dispatch resumes, the targets' PresuspendUndo hooks
  // run, and its error (ETIMEDOUT, ECANCELED) is returned.
  Status Suspend(const Interrupt& stop = Interrupt::Never());
  // D2, D5: with an inactive table, suspends if needed, swaps it in (checking again that the
  // devices below still hold it and that it keeps the device's capabilities; on failure the
  // table is discarded, the device stays suspended and the error is returned), expands the
  // device's capabilities to the table's, and then resumes: the live targets' Resume hooks run
  // and queued I/O proceeds. Without an inactive table: resumes a suspended device (EINVAL when
  // it has no live table; it then stays suspended); no-op when not suspended. When `stop` fires
  // while it waits for another Suspend or Resume, or for the drain of its own suspend, nothing
  // changes: the table stays loaded (unless another was loaded meanwhile, as the kernel's
  // do_resume) and the error is returned.
  Status Resume(const Interrupt& stop = Interrupt::Never());

  bool suspended() const { return suspended_.load(std::memory_order_acquire); }
  // The daemon is stopping: from now on a request held by a suspend (now or later) fails with
  // ESHUTDOWN (N7) instead of waiting for a resume that will never come. Requests on a device that
  // is not suspended are served as before. Irreversible; thread-safe.
  void Shutdown();
  // Whether new I/O is held back (from the start of a suspend until resume), and how many
  // requests wait for the resume now. For tests and metrics.
  bool dispatch_blocked() const { return blocked_.load(std::memory_order_seq_cst); }
  int queued_requests() const { return queued_.load(std::memory_order_relaxed); }
  // For control paths (table, status, message): the table stays valid while held.
  std::shared_ptr<Table> live_table() const;
  std::shared_ptr<Table> inactive_table() const;
  // Whether the live, inactive or being-swapped-in table uses the device named `name`, and the
  // names of all such devices (holders and cycle checks).
  int TablesUsing(const std::string& name) const;
  std::vector<std::string> UsedDeviceNames() const;

 private:
  Status ProgramKey(const CryptoKey& key, unsigned slot) override;
  // D6: evicts from every device of every target of the live table; errors are logged.
  Status EvictKey(const CryptoKey& key, std::optional<unsigned> slot) override;

  Status MapToTable(Table& table, const IoRequest& req);
  Status FlushAll(Table& table, const IoRequest& req);
  Status SuspendLocked(const Interrupt& stop);  // REQUIRES: transition_mu_ held.
  void OpenGate();                              // lets queued and new I/O through
  Status SwapIn(const std::shared_ptr<Table>& next,
                std::shared_ptr<Table>* old);  // REQUIRES: transition_mu_ held, suspended.

  const std::string name_;
  BlkCrypto& blk_;

  // Serialises Suspend and Resume (the kernel's md->suspend_lock). Interruptible, so that a verb
  // waiting behind a blocked suspend can give up.
  InterruptibleMutex transition_mu_;

  // The dispatch gate. Submit adds itself to its thread's in-flight shard and then checks
  // blocked_; Suspend sets blocked_ and then waits for the shards to sum to 0. Both sides use
  // seq_cst, so at least one sees the other: a request that saw the gate open was counted before
  // Suspend reads any shard. A request leaves from the shard it entered. Shards keep concurrent
  // I/O threads off one another's cache lines. gate_cv_ is notified under gate_mu_ when a
  // request leaves while blocked, and when the gate opens.
  static constexpr size_t kInFlightShards = 16;
  struct alignas(64) InFlightShard {
    std::atomic<int64_t> n{0};
  };
  // The in-flight shard the request entered, or kShutDown when it was held by a suspend and the
  // daemon is stopping (it entered no shard then).
  static constexpr size_t kShutDown = ~size_t{0};
  size_t EnterIo();
  void ExitIo(size_t shard);
  int64_t InFlight() const;
  InFlightShard in_flight_[kInFlightShards];
  std::atomic<bool> blocked_{false};
  std::mutex gate_mu_;
  std::condition_variable gate_cv_;
  std::atomic<int> queued_{0};          // requests waiting in EnterIo for the gate to open
  std::atomic<bool> suspended_{false};  // written under transition_mu_
  std::atomic<bool> shut_down_{false};

  // The live table for I/O: changed only under transition_mu_ while blocked with nothing in
  // flight, so a request that passed the gate uses it without further synchronisation.
  std::atomic<Table*> live_ptr_{nullptr};
  std::atomic<uint64_t> size_bytes_{0};
  std::atomic<uint32_t> lbs_{1};
  std::atomic<bool> discard_{false};

  mutable std::mutex state_mu_;  // guards the three owners below
  std::shared_ptr<Table> live_;  // owner of *live_ptr_
  std::shared_ptr<Table> inactive_;
  std::shared_ptr<Table> pending_;  // taken by Resume from inactive_, not yet live

  // Created by the first resume of a table with capabilities; written under transition_mu_.
  std::unique_ptr<CryptoProfile> profile_;
  std::atomic<CryptoProfile*> profile_ptr_{nullptr};
};

}  // namespace ice::dm
