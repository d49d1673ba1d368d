// The control protocol's verbs (docs/control-protocol.md; rules P2–P6): one request line in, one
// reply line out. Never throws; never puts key bytes in a reply.
#pragma once

#include <string>
#include <string_view>

#include "block/interrupt.h"
#include "block/status.h"

namespace ice::daemon {

class Engine;

class ControlHandler {
 public:
  static constexpr int kProtocolVersion = 1;
  static constexpr size_t kMaxRequestBytes = 1 << 20;
  // Requests nest a few levels; anything deeper is refused (hardening 2).
  static constexpr int kMaxDepth = 16;
  // The largest "timeout_ms" a request may give: a day.
  static constexpr int64_t kMaxTimeoutMs = 86400 * 1000;

  explicit ControlHandler(Engine& engine) : engine_(engine) {}

  // Handles one request (without its newline) and returns the reply (without newline).
  // Thread-safe: each request may run on a thread of its own; the engine serialises the verbs
  // that change state (P5). A verb that waits (for in-flight I/O, for another verb) gives up when
  // `stop` fires, changing nothing; a request's "timeout_ms" sets `stop`'s deadline.
  std::string Handle(std::string_view line, Interrupt& stop);
  std::string Handle(std::string_view line);  // with nothing to stop it but its timeout_ms

  // A reply with no id carrying the error `s` (for requests the server refuses unread).
  static std::string ErrorReply(const Status& s);
  // The reply to a request line longer than kMaxRequestBytes.
  static std::string TooLargeReply();

 private:
  Engine& engine_;
};

}  // namespace ice::daemon
