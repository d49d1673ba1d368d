// The control socket (rules P1, P2): a Unix stream socket served by one thread of its own, so the
// data path never waits on it. Requests go to a ControlHandler one at a time (P5).
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
  };

  // Creates the socket (mode 0600; its folder, when missing, mode 0700), removing a stale one,
  // and starts serving. EADDRINUSE when another daemon answers on the path.
  static Result<std::unique_ptr<ControlServer>> Start(const Options& options,
                                                      ControlHandler& handler);
  // Stops serving, joins the thread, closes every connection and removes the socket.
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

 private:
  struct Impl;
  explicit ControlServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ice::daemon
