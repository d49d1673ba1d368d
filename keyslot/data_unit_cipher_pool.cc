#include "keyslot/data_unit_cipher_pool.h"

#include <new>

namespace ice::cipher_internal {

struct CipherContextPool::Set {
  std::array<CipherCtxPtr, kMaxContextsPerSet> ctx;
  Set* next = nullptr;
};

CipherContextPool::CipherContextPool(std::array<CipherCtxPtr, kMaxContextsPerSet> templates,
                                     int count)
    : templates_(std::move(templates)), count_(count) {}

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
  }
  return set.release();
}

void CipherContextPool::FreeSet(Set* set) { delete set; }

}  // namespace ice::cipher_internal
