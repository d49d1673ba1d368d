#include "cli/secret_buffer.h"

#include <sys/mman.h>

#include <cassert>
#include <cstring>
#include <utility>

namespace ice::cli {

SecretBuffer::SecretBuffer(size_t capacity)
    : data_(new char[capacity > 0 ? capacity : 1]()), capacity_(capacity) {
  // Best effort: an unprivileged user may have no RLIMIT_MEMLOCK left, and a short-lived
  // process holding a few bytes of key is still better off running than refusing.
  locked_ = capacity_ > 0 && mlock(data_.get(), capacity_) == 0;
}

SecretBuffer::~SecretBuffer() { Wipe(); }

SecretBuffer::SecretBuffer(SecretBuffer&& other) noexcept
    : data_(std::move(other.data_)),
      size_(std::exchange(other.size_, 0)),
      capacity_(std::exchange(other.capacity_, 0)),
      locked_(std::exchange(other.locked_, false)) {}

SecretBuffer& SecretBuffer::operator=(SecretBuffer&& other) noexcept {
  if (this != &other) {
    Wipe();
    data_ = std::move(other.data_);
    size_ = std::exchange(other.size_, 0);
    capacity_ = std::exchange(other.capacity_, 0);
    locked_ = std::exchange(other.locked_, false);
  }
  return *this;
}

void SecretBuffer::Wipe() {
  if (!data_) return;
  explicit_bzero(data_.get(), capacity_);
  if (locked_) munlock(data_.get(), capacity_);
  data_.reset();
  size_ = 0;
  capacity_ = 0;
  locked_ = false;
}

bool SecretBuffer::Append(std::string_view bytes) {
  if (bytes.size() > capacity_ - size_) return false;
  if (!bytes.empty()) std::memcpy(data_.get() + size_, bytes.data(), bytes.size());
  size_ += bytes.size();
  return true;
}

void SecretBuffer::Resize(size_t n) {
  assert(n <= capacity_);
  if (n < size_) explicit_bzero(data_.get() + n, size_ - n);
  size_ = n;
}

SecretBuffer HexEncode(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  SecretBuffer hex(bytes.size() * 2);
  hex.Resize(bytes.size() * 2);
  char* out = hex.data();
  for (unsigned char b : bytes) {
    *out++ = kDigits[b >> 4];
    *out++ = kDigits[b & 0xf];
  }
  return hex;
}

}  // namespace ice::cli
