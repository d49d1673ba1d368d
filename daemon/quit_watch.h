// QuitWatch: runs a callback when the process is told to quit, while nbdkit still handles it.
//
// nbdkit 1.32 stops on SIGINT, SIGQUIT, SIGTERM and SIGHUP by finishing every request in flight
// and only then calling the plugin's .cleanup; the only other sign it gives a plugin is an early,
// error-logging return of nbdkit_nanosleep. A request held by a suspended mapped device (D2) never
// finishes on its own, so the server would never exit. QuitWatch installs a handler for those
// signals that wakes a thread of its own and then calls the handler it replaced (nbdkit's), so
// nbdkit's shutdown goes on unchanged; the thread runs `on_quit` once, outside signal context.
//
// At most one QuitWatch exists at a time (signal handlers are process-wide). Install it after
// nbdkit has set up its own handlers (.after_fork runs after that).
#pragma once

#include <functional>
#include <memory>
#include <thread>

#include "block/status.h"

namespace ice::daemon {

class QuitWatch {
 public:
  // EBUSY when another QuitWatch exists; the OS's errno when the event descriptors or the
  // handlers cannot be set up (nothing is left installed then).
  static Result<std::unique_ptr<QuitWatch>> Start(std::function<void()> on_quit);
  // Restores the previous handlers and stops the thread. `on_quit` runs (and is waited for) only
  // if a quit signal came before.
  ~QuitWatch();
  QuitWatch(const QuitWatch&) = delete;
  QuitWatch& operator=(const QuitWatch&) = delete;

 private:
  QuitWatch(std::function<void()> on_quit, int quit_fd, int stop_fd);
  void Run();

  std::function<void()> on_quit_;
  int quit_fd_;  // eventfd written by the signal handler
  int stop_fd_;  // eventfd written by the destructor
  std::thread thread_;
};

}  // namespace ice::daemon
