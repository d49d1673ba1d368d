// Errors as values. A Status is either OK or an errno-valued code with a message; a Result<T> is a
// value or a non-OK Status. Neither ever throws, so both cross module and C-API boundaries safely.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace ice {

class Status {
 public:
  Status() = default;  // OK.
  static Status Ok() { return Status(); }
  // REQUIRES: errno_value > 0.
  static Status Error(int errno_value, std::string message) {
    assert(errno_value > 0);
    return Status(errno_value, std::move(message));
  }

  bool ok() const { return code_ == 0; }
  // The errno value (EINVAL, EIO, …); 0 when OK.
  int code() const { return code_; }
  const std::string& message() const { return message_; }
  // "EINVAL: message", or "OK".
  std::string ToString() const;

  // The same error with "context: " put before its message; OK stays OK.
  Status WithContext(const std::string& context) const;

 private:
  Status(int code, std::string message) : code_(code), message_(std::move(message)) {}
  int code_ = 0;
  std::string message_;
};

// The symbolic name of an errno value ("EINVAL"), or its number as text.
std::string ErrnoName(int errno_value);

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  // REQUIRES: !status.ok().
  Result(Status status) : v_(std::move(status)) { assert(!std::get<Status>(v_).ok()); }  // NOLINT

  bool ok() const { return v_.index() == 1; }
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(v_); }

  // REQUIRES: ok().
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<Status, T> v_;
};

}  // namespace ice

#define ICE_CONCAT_INNER(a, b) a##b
#define ICE_CONCAT(a, b) ICE_CONCAT_INNER(a, b)

// Returns the Status of `expr` from the calling function when it is not OK.
#define ICE_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::ice::Status ice_status_ = (expr);        \
    if (!ice_status_.ok()) return ice_status_; \
  } while (0)

// Declares `lhs` from a Result-valued `expr`, or returns its error from the calling function.
#define ICE_ASSIGN_OR_RETURN(lhs, expr)                                                           \
  auto ICE_CONCAT(ice_result_, __LINE__) = (expr);                                                \
  if (!ICE_CONCAT(ice_result_, __LINE__).ok()) return ICE_CONCAT(ice_result_, __LINE__).status(); \
  lhs = std::move(ICE_CONCAT(ice_result_, __LINE__)).value()
