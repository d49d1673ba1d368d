// The control socket (rules P1, P2): a Unix stream socket served by one I/O thread of its own, so
// the data path never waits on it. Each request runs on a thread of its own, so that a verb that
// blocks (a suspend waiting for I/O held by another suspended device) never holds up the I/O
// thread, idle timeouts or any other client — including the one that sends the resume. A
// connection's requests are answered in order, one at a time. The handler serialises the verbs
// that change state (P5).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "block/status.h"
#include "daemon/control_handler.h"

namespace ice::daemon {

class ControlServer {
 public:
  struct Options {
    std::string socket_path;
    std::vector<uid_t> allowed_uids;  // besides root and the daemon's own uid
    std::chrono::seconds idle_timeout{60};
    // Connections served at once (hardening 5); one more is answered with EAGAIN and closed.
    size_t max_clients = 64;
  };

  // Creates the socket (mode 0600; its folder, when missing, mode 0700), removing a stale one,
  // and starts serving. EADDRINUSE when another daemon answers on the path.
  static Result<std::unique_ptr<ControlServer>> Start(const Options& options,
                                                      ControlHandler& handler);
  // Stops serving, cancels the verbs still waiting (they undo what they began), joins every
  // thread, closes every connection and removes the socket.
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

 private:
  struct Impl;
  explicit ControlServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ice::daemon
