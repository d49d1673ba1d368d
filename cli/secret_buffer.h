// A buffer for key material (P4): allocated once at a fixed capacity so that no copy is ever left
// behind by a reallocation, locked in memory when the system allows it, and zeroed before it is
// freed. Non-copyable; movable.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

namespace ice::cli {

class SecretBuffer {
 public:
  explicit SecretBuffer(size_t capacity);
  ~SecretBuffer();
  SecretBuffer(SecretBuffer&& other) noexcept;
  SecretBuffer& operator=(SecretBuffer&& other) noexcept;
  SecretBuffer(const SecretBuffer&) = delete;
  SecretBuffer& operator=(const SecretBuffer&) = delete;

  char* data() { return data_.get(); }
  const char* data() const { return data_.get(); }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  bool empty() const { return size_ == 0; }
  std::string_view view() const { return {data_.get(), size_}; }

  // Appends `bytes`; returns false (and appends nothing) when they do not fit.
  bool Append(std::string_view bytes);
  // REQUIRES: n <= capacity(). Bytes past the old size are whatever the buffer held (zeros at
  // first); bytes cut off are zeroed.
  void Resize(size_t n);

 private:
  void Wipe();

  std::unique_ptr<char[]> data_;
  size_t size_ = 0;
  size_t capacity_ = 0;
  bool locked_ = false;
};

// The lowercase hex form of `bytes`, in a SecretBuffer of its own.
SecretBuffer HexEncode(std::string_view bytes);

}  // namespace ice::cli
