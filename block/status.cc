#include "block/status.h"

#include <cerrno>
#include <cstring>

namespace ice {

std::string ErrnoName(int errno_value) {
  // strerrorname_np is glibc ≥ 2.32 (Debian 12 has 2.36).
  const char* name = strerrorname_np(errno_value);
  return name ? std::string(name) : std::to_string(errno_value);
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return message_.empty() ? ErrnoName(code_) : ErrnoName(code_) + ": " + message_;
}

Status Status::WithContext(const std::string& context) const {
  if (ok()) return *this;
  return Status(code_, context + ": " + message_);
}

}  // namespace ice
