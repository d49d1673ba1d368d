#include "keyslot/data_unit_cipher_pool.h"

#include <new>

#include "keyslot/data_unit_cipher_iv.h"

namespace ice::cipher_internal {

struct CipherContextPool::Set {
  std::array<CipherCtxPtr, kMaxContextsPerSet> ctx;
  std::array<uint8_t*, kMaxContextsPerSet> live_iv{};
  Set* next = nullptr;
};

CipherContextPool::CipherContextPool(std::array<CipherCtxPtr, kMaxContextsPerSet> templates,
                                     std::array<bool, kMaxContextsPerSet> live_iv, int count)
    : templates_(std::move(templates)), live_iv_(live_iv), count_(count) {}

CipherContextPool::~CipherContextPool() {
  while (idle_ != nullptr) {
    Set* next = idle_->next;
    FreeSet(idle_);
    idle_ = next;
  }
}

bool CipherContextPool::Prime() {
  Set* set = MakeSet();
  if (set == nullptr) return false;
  Release(set);
  return true;
}

EVP_CIPHER_CTX* CipherContextPool::Lease::ctx(int i) const { return set_->ctx[i].get(); }

uint8_t* CipherContextPool::Lease::live_iv(int i) const { return set_->live_iv[i]; }

CipherContextPool::Set* CipherContextPool::Acquire() const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_ != nullptr) {
      Set* set = idle_;
      idle_ = set->next;
      return set;
    }
  }
  // Every set is busy: grow, outside the lock (copying a keyed context allocates).
  return MakeSet();
}

void CipherContextPool::Release(Set* set) const {
  std::lock_guard<std::mutex> lock(mu_);
  set->next = idle_;
  idle_ = set;
}

CipherContextPool::Set* CipherContextPool::MakeSet() const {
  auto set = std::unique_ptr<Set>(new (std::nothrow) Set);
  if (set == nullptr) return nullptr;
  for (int i = 0; i < count_; ++i) {
    set->ctx[i].reset(EVP_CIPHER_CTX_new());
    // EVP_CIPHER_CTX_copy duplicates the prepared key schedule; nothing is re-keyed.
    if (set->ctx[i] == nullptr || EVP_CIPHER_CTX_copy(set->ctx[i].get(), templates_[i].get()) != 1)
      return nullptr;
    if (live_iv_[i]) set->live_iv[i] = LiveIv(set->ctx[i].get());  // nullptr: the slow path
  }
  return set.release();
}

void CipherContextPool::FreeSet(Set* set) { delete set; }

}  // namespace ice::cipher_internal
