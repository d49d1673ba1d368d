// The metrics over HTTP ([daemon] metrics_listen, issue 18): `GET /metrics` answers the
// Prometheus text of the `metrics` verb. One I/O thread of its own serves it, never an nbdkit
// thread, so a scrape (or a client that stalls one) holds up no I/O and no control verb.
//
// Bounded in everything a client controls: a request's head is at most kMaxHeadBytes and it has
// no body; a request (or an idle keep-alive connection) gets `request_timeout`, after which the
// connection is closed; at most `max_clients` connections are served at once, one more is
// answered 503 and closed. Other paths get 404, other methods than GET and HEAD 405.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "block/status.h"

namespace ice::daemon {

class MetricsServer {
 public:
  static constexpr size_t kMaxHeadBytes = 8192;

  struct Options {
    // config::ParseListenAddress's syntax: "127.0.0.1:9717", "[::1]:9717", "/run/ice/m.sock";
    // port 0 takes any free port (see address()). Whether a wide address is allowed is the
    // config's to decide ([daemon] metrics_listen_any), not this class's.
    std::string listen;
    size_t max_clients = 16;
    std::chrono::milliseconds request_timeout{10000};
  };
  // What GET /metrics answers; called on the server's thread, so it must be thread-safe.
  using TextSource = std::function<std::string()>;

  // Binds (a Unix socket as the control socket is: mode 0600, a stale one replaced) and starts
  // serving. EINVAL for a bad address, EADDRINUSE and the like as bind(2) says.
  static Result<std::unique_ptr<MetricsServer>> Start(const Options& options, TextSource text);
  // Stops serving, closes every connection, joins the thread, removes a Unix socket.
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Where it listens: "127.0.0.1:41234" (the bound port), "[::1]:9717" or the socket's path.
  const std::string& address() const;

 private:
  struct Impl;
  explicit MetricsServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ice::daemon
