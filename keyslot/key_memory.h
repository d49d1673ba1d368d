// Memory for key material (rule C7; DESIGN: "the keys live only in [the daemon], in locked memory,
// zeroed when dropped"): the arena that holds every CryptoKey's bytes, and page-backed buffers for
// transient secrets (a key file's bytes, the config's text while it is parsed).
//
// What is NOT covered here (ordinary heap, so in a core dump if one is ever written): OpenSSL 3.0's
// cipher contexts, i.e. the AES key schedules of prepared keys (keyslot/data_unit_cipher*.cc),
// whose first round keys are the raw key. OpenSSL allocates them itself and cannot be told to use
// its secure heap per call. The daemon is made non-dumpable (daemon/process_safety.h), which keeps
// them out of kernel core dumps; ptrace-based dumps by root (gcore) still see them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ice {

struct KeyMemoryState {
  bool arena = false;   // the key arena exists (otherwise keys go to the ordinary heap)
  bool locked = false;  // its pages are locked in RAM and excluded from core dumps
  size_t arena_bytes = 0;
  size_t used_bytes = 0;
  // Why the keys are not in locked memory, and how to fix it; empty when they are.
  std::string problem;

  // "locked" or "unlocked: <problem>".
  std::string Describe() const;
};

// Sets up the key arena (OpenSSL's secure heap: mlock'ed, MADV_DONTDUMP, guard pages) once per
// process, sized for about `expected_keys` keys with room for as many again added at run time, and
// at least 256 KiB (some 4000 keys of 64 bytes). Later calls change nothing and return the state.
// Memory locks do not survive fork(): call it after any fork and before the first key exists
// (CryptoKey::Create sets up a default-sized arena if nobody did). When the pages cannot be locked
// (RLIMIT_MEMLOCK too small and no CAP_IPC_LOCK), logs one warning naming the cause and the fix,
// and keys still live in the arena, unlocked. Thread-safe.
KeyMemoryState InitKeyMemory(size_t expected_keys);
// The state, without setting anything up (arena == false before InitKeyMemory).
KeyMemoryState GetKeyMemoryState();

// `n` zeroed bytes for a key. In the arena when it exists; nullptr when the arena is full (the
// key is refused rather than put in unlocked memory). Only when the arena could not be created at
// all do keys go to the ordinary heap (and the state says so). Thread-safe.
uint8_t* AllocateKeyBytes(size_t n);
// Wipes and frees what AllocateKeyBytes returned; nullptr is ignored.
void FreeKeyBytes(uint8_t* p, size_t n);

// A buffer for a transient secret: pages of its own (mmap), excluded from core dumps
// (MADV_DONTDUMP), locked in RAM where the limits allow, wiped and unmapped when dropped or
// resized. Independent of the key arena, so it may be used before nbdkit forks. Move-only.
class SecretPages {
 public:
  SecretPages() = default;
  // `n` zeroed bytes; ok() is false when the pages could not be mapped.
  explicit SecretPages(size_t n);
  ~SecretPages();
  SecretPages(SecretPages&& o) noexcept;
  SecretPages& operator=(SecretPages&& o) noexcept;
  SecretPages(const SecretPages&) = delete;
  SecretPages& operator=(const SecretPages&) = delete;

  bool ok() const { return data_ != nullptr || size_ == 0; }
  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::string_view view() const { return {reinterpret_cast<const char*>(data_), size_}; }
  // Keeps the first min(n, size()) bytes; bytes beyond the old size are zero. Never leaves a
  // copy behind: grown contents move to new pages and the old ones are wiped. False (and nothing
  // changed) when new pages could not be mapped.
  bool Resize(size_t n);

 private:
  void Release();
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_ = 0;  // bytes mapped (whole pages)
};

// Overwrites a string's characters with zeros (the compiler may not elide it) and empties it.
void WipeString(std::string& s);

}  // namespace ice
