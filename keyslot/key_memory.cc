#include "keyslot/key_memory.h"

#include <linux/capability.h>
#include <openssl/crypto.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <mutex>
#include <utility>

#include "block/log.h"

namespace ice {
namespace {

constexpr size_t kMinArenaBytes = 256 * 1024;
// What one key may take in the arena: its allocator rounds up to a power of two, and the largest
// key (a hardware-wrapped blob, W1) is 128 bytes. Twice the configured keys leaves room for as
// many again added at run time (`key add`, tables with inline keys).
constexpr size_t kBytesPerKey = 128;

std::mutex g_mu;
bool g_initialized = false;  // guarded by g_mu
KeyMemoryState g_state;      // guarded by g_mu; written once, by the first InitKeyMemory

bool HasCapIpcLock() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capget, &header, data) != 0) return false;
  return (data[CAP_TO_INDEX(CAP_IPC_LOCK)].effective & CAP_TO_MASK(CAP_IPC_LOCK)) != 0;
}

std::string KiB(uint64_t bytes) { return std::to_string(bytes / 1024) + " KiB"; }

// OpenSSL says only "not locked" (its init returns 2); the limits say why.
std::string WhyNotLocked(size_t arena_bytes) {
  std::string why = "locking the " + KiB(arena_bytes) + " key arena failed";
  rlimit limit{};
  const bool have_limit = getrlimit(RLIMIT_MEMLOCK, &limit) == 0;
  const bool cap = HasCapIpcLock();
  if (have_limit && limit.rlim_cur != RLIM_INFINITY) {
    why += ": RLIMIT_MEMLOCK is " + KiB(limit.rlim_cur);
    why += cap ? "" : " and the process lacks CAP_IPC_LOCK";
  } else if (!cap) {
    why += " (the process lacks CAP_IPC_LOCK)";
  }
  return why + "; raise the limit (systemd: LimitMEMLOCK=, shell: ulimit -l) or grant CAP_IPC_LOCK";
}

KeyMemoryState InitLocked(size_t expected_keys) {
  KeyMemoryState s;
  const size_t wanted = std::max(kMinArenaBytes, 2 * expected_keys * kBytesPerKey);
  s.arena_bytes = std::bit_ceil(wanted);
  if (CRYPTO_secure_malloc_initialized()) {
    s.arena = true;
    s.problem = "the secure heap was set up outside ice; whether it is locked is unknown";
    return s;
  }
  const int rc = CRYPTO_secure_malloc_init(s.arena_bytes, 16);
  s.arena = rc != 0;
  s.locked = rc == 1;
  if (rc == 0) {
    s.arena_bytes = 0;
    s.problem = "OpenSSL's secure heap could not be created, keys are in the ordinary heap";
  } else if (rc == 2) {
    s.problem = WhyNotLocked(s.arena_bytes);
  }
  if (!s.problem.empty()) spdlog::warn("key memory is not locked: {}", s.problem);
  return s;
}

}  // namespace

std::string KeyMemoryState::Describe() const {
  return problem.empty() ? "locked" : "unlocked: " + problem;
}

KeyMemoryState InitKeyMemory(size_t expected_keys) {
  std::lock_guard g(g_mu);
  if (!g_initialized) {
    g_state = InitLocked(expected_keys);
    g_initialized = true;
  }
  KeyMemoryState s = g_state;
  if (s.arena) s.used_bytes = CRYPTO_secure_used();
  return s;
}

KeyMemoryState GetKeyMemoryState() {
  std::lock_guard g(g_mu);
  KeyMemoryState s = g_state;
  if (s.arena) s.used_bytes = CRYPTO_secure_used();
  return s;
}

uint8_t* AllocateKeyBytes(size_t n) {
  const KeyMemoryState s = InitKeyMemory(0);
  void* p = s.arena ? OPENSSL_secure_zalloc(n) : OPENSSL_zalloc(n);
  return static_cast<uint8_t*>(p);
}

void FreeKeyBytes(uint8_t* p, size_t n) {
  if (p == nullptr) return;
  if (CRYPTO_secure_allocated(p)) {
    OPENSSL_secure_clear_free(p, n);
  } else {
    OPENSSL_clear_free(p, n);
  }
}

// ---- SecretPages ----

SecretPages::SecretPages(size_t n) {
  if (n == 0) return;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t mapped = (n + page - 1) / page * page;
  void* p = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    size_ = n;  // !ok()
    return;
  }
  // Both best effort: a core dump is already refused process-wide, and a short-lived buffer in
  // swappable memory is better than refusing to read a key file.
  madvise(p, mapped, MADV_DONTDUMP);
  mlock(p, mapped);
  data_ = static_cast<uint8_t*>(p);
  size_ = n;
  mapped_ = mapped;
}

SecretPages::~SecretPages() { Release(); }

SecretPages::SecretPages(SecretPages&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)),
      size_(std::exchange(o.size_, 0)),
      mapped_(std::exchange(o.mapped_, 0)) {}

SecretPages& SecretPages::operator=(SecretPages&& o) noexcept {
  if (this != &o) {
    Release();
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    mapped_ = std::exchange(o.mapped_, 0);
  }
  return *this;
}

void SecretPages::Release() {
  if (data_ != nullptr) {
    OPENSSL_cleanse(data_, mapped_);
    munlock(data_, mapped_);
    munmap(data_, mapped_);
  }
  data_ = nullptr;
  size_ = mapped_ = 0;
}

bool SecretPages::Resize(size_t n) {
  if (n <= mapped_ && data_ != nullptr) {
    if (n < size_) OPENSSL_cleanse(data_ + n, size_ - n);
    size_ = n;
    return true;
  }
  SecretPages bigger(n);
  if (!bigger.ok()) return false;
  if (size_ > 0) std::memcpy(bigger.data_, data_, std::min(size_, n));
  *this = std::move(bigger);  // wipes the old pages
  return true;
}

void WipeString(std::string& s) {
  s.resize(s.capacity());  // never reallocates; earlier, longer contents may linger past size()
  OPENSSL_cleanse(s.data(), s.size());
  s.clear();
}

}  // namespace ice
