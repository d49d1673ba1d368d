#include "daemon/quit_watch.h"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <iterator>

namespace ice::daemon {
namespace {

constexpr int kQuitSignals[] = {SIGINT, SIGQUIT, SIGTERM, SIGHUP};
struct sigaction g_previous[std::size(kQuitSignals)];
std::atomic<int> g_quit_fd{-1};
std::atomic<bool> g_active{false};

// Async-signal-safe: one write(2), then the handler this one replaced.
void OnQuitSignal(int sig, siginfo_t* info, void* context) {
  const int saved_errno = errno;
  const int fd = g_quit_fd.load(std::memory_order_acquire);
  if (fd >= 0) {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(fd, &one, sizeof one);
  }
  for (size_t i = 0; i < std::size(kQuitSignals); ++i) {
    if (kQuitSignals[i] != sig) continue;
    const struct sigaction& prev = g_previous[i];
    if ((prev.sa_flags & SA_SIGINFO) != 0) {
      prev.sa_sigaction(sig, info, context);
    } else if (prev.sa_handler == SIG_DFL) {
      // Nobody handled it before: the default action (termination) happens as it would have.
      sigaction(sig, &prev, nullptr);
      raise(sig);
    } else if (prev.sa_handler != SIG_IGN) {
      prev.sa_handler(sig);
    }
  }
  errno = saved_errno;
}

void RestoreHandlers(size_t count) {
  for (size_t i = 0; i < count; ++i) sigaction(kQuitSignals[i], &g_previous[i], nullptr);
}

}  // namespace

Result<std::unique_ptr<QuitWatch>> QuitWatch::Start(std::function<void()> on_quit) {
  if (g_active.exchange(true)) return Status::Error(EBUSY, "a quit watch is already running");
  const int quit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  const int stop_fd = eventfd(0, EFD_CLOEXEC);
  if (quit_fd < 0 || stop_fd < 0) {
    const int e = errno;
    if (quit_fd >= 0) close(quit_fd);
    if (stop_fd >= 0) close(stop_fd);
    g_active = false;
    return Status::Error(e, "eventfd for the quit watch");
  }
  g_quit_fd.store(quit_fd, std::memory_order_release);
  struct sigaction sa = {};
  sa.sa_sigaction = OnQuitSignal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < std::size(kQuitSignals); ++i) {
    if (sigaction(kQuitSignals[i], &sa, &g_previous[i]) != 0) {
      const int e = errno;
      RestoreHandlers(i);
      g_quit_fd.store(-1, std::memory_order_release);
      close(quit_fd);
      close(stop_fd);
      g_active = false;
      return Status::Error(e, "cannot install the quit signal handlers");
    }
  }
  return std::unique_ptr<QuitWatch>(new QuitWatch(std::move(on_quit), quit_fd, stop_fd));
}

QuitWatch::QuitWatch(std::function<void()> on_quit, int quit_fd, int stop_fd)
    : on_quit_(std::move(on_quit)), quit_fd_(quit_fd), stop_fd_(stop_fd) {
  thread_ = std::thread([this] { Run(); });
}

void QuitWatch::Run() {
  struct pollfd fds[2] = {{.fd = quit_fd_, .events = POLLIN, .revents = 0},
                          {.fd = stop_fd_, .events = POLLIN, .revents = 0}};
  for (;;) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if ((fds[0].revents & POLLIN) != 0) {
      on_quit_();
      return;
    }
    if ((fds[1].revents & POLLIN) != 0) return;
  }
}

QuitWatch::~QuitWatch() {
  RestoreHandlers(std::size(kQuitSignals));
  g_quit_fd.store(-1, std::memory_order_release);
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(stop_fd_, &one, sizeof one);
  thread_.join();
  close(quit_fd_);
  close(stop_fd_);
  g_active = false;
}

}  // namespace ice::daemon
