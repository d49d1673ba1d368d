// The control protocol's verbs (docs/control-protocol.md; rules P2–P6): one request line in, one
// reply line out. Never throws; never puts key bytes in a reply.
#pragma once

#include <string>
#include <string_view>

namespace ice::daemon {

class Engine;

class ControlHandler {
 public:
  static constexpr int kProtocolVersion = 1;
  static constexpr size_t kMaxRequestBytes = 1 << 20;

  explicit ControlHandler(Engine& engine) : engine_(engine) {}

  // Handles one request (without its newline) and returns the reply (without newline).
  // REQUIRES: called from one thread at a time (the control thread), which serialises verbs (P5).
  std::string Handle(std::string_view line);

  // The reply to a request line longer than kMaxRequestBytes.
  static std::string TooLargeReply();

 private:
  Engine& engine_;
};

}  // namespace ice::daemon
