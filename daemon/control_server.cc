#include "daemon/control_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <list>
#include <mutex>

#include "block/log.h"
#include "daemon/asio.h"
#include "daemon/unix_socket.h"

namespace ice::daemon {
namespace {

namespace asio = boost::asio;
using Socket = asio::local::stream_protocol::socket;

// How long the acceptor waits after a failed accept (EMFILE, ENFILE, ENOMEM) before it tries
// again: the failure persists until a descriptor is freed, and retrying at once would spin.
constexpr std::chrono::milliseconds kAcceptBackoff{100};

// The threads that run verbs: one a request, so that a verb that blocks holds up nobody else.
// Sessions run one request at a time, so the session cap bounds the threads.
class VerbThreads {
 public:
  ~VerbThreads() { StopAll(); }

  // Runs fn() on a new thread; `stop` is cancelled by StopAll().
  void Run(std::shared_ptr<Interrupt> stop, std::function<void()> fn) {
    std::lock_guard g(mu_);
    JoinFinished();
    auto it = running_.emplace(running_.end());
    it->stop = std::move(stop);
    it->thread = std::thread([this, it, fn = std::move(fn)] {
      fn();
      std::lock_guard done(mu_);
      finished_.push_back(std::move(it->thread));  // joined by the next Run or StopAll
      running_.erase(it);
      cv_.notify_all();
    });
  }

  // Cancels every running verb (each undoes what it began and returns) and joins them all.
  void StopAll() {
    std::unique_lock g(mu_);
    for (Running& r : running_) r.stop->Cancel();
    cv_.wait(g, [this] { return running_.empty(); });
    JoinFinished();
  }

 private:
  struct Running {
    std::shared_ptr<Interrupt> stop;
    std::thread thread;
  };
  void JoinFinished() {  // REQUIRES: mu_ held. Finished threads have returned: joins are quick.
    for (std::thread& t : finished_) t.join();
    finished_.clear();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::list<Running> running_;  // guarded by mu_; list: iterators stay valid
  std::vector<std::thread> finished_;
};

// What sessions share with the server.
struct SessionEnv {
  ControlHandler& handler;
  VerbThreads& verbs;
  std::chrono::seconds idle;
  std::atomic<size_t>& sessions;  // sessions alive, for the cap
};

// One control connection: reads request lines, answers each in order, times out when idle.
// Runs on the I/O thread, except the verb itself.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Socket socket, const SessionEnv& env)
      : socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        buf_(ControlHandler::kMaxRequestBytes + 1),
        env_(env) {
    env_.sessions.fetch_add(1, std::memory_order_relaxed);
  }

  // Unanswered bytes (a partial line when the peer left) may hold key bytes too.
  ~Session() {
    WipeFront(buf_.size());
    env_.sessions.fetch_sub(1, std::memory_order_relaxed);
  }

  void Start() { ReadNext(); }

 private:
  void ReadNext() {
    ArmTimer();
    asio::async_read_until(socket_, buf_, '\n',
                           [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                             self->OnLine(ec, n);
                           });
  }

  void WipeFront(size_t n) {
    for (auto b : buf_.data()) {
      const size_t k = std::min(n, b.size());
      OPENSSL_cleanse(const_cast<void*>(b.data()), k);
      n -= k;
      if (n == 0) break;
    }
  }

  void ArmTimer() {
    timer_.expires_after(env_.idle);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) {
        boost::system::error_code ignored;
        self->socket_.close(ignored);
      }
    });
  }

  void OnLine(boost::system::error_code ec, size_t n) {
    if (ec == asio::error::not_found) {  // the line outgrew the buffer's 1 MiB limit
      Send(ControlHandler::TooLargeReply(), /*then_close=*/true);
      return;
    }
    if (ec) {
      timer_.cancel();
      return;  // peer closed, timed out or failed: the session ends
    }
    std::string line(asio::buffers_begin(buf_.data()), asio::buffers_begin(buf_.data()) + n - 1);
    // The line may hold key bytes (key.add): wipe it before the buffer reuses its memory. Only
    // this line: requests pipelined behind it are already in the buffer and still to be served.
    WipeFront(n);
    buf_.consume(n);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    timer_.cancel();  // a connection waiting for its verb is not idle
    auto stop = std::make_shared<Interrupt>();
    WatchPeer(stop);
    env_.verbs.Run(stop, [self = shared_from_this(), line = std::move(line), stop]() mutable {
      std::string reply = self->env_.handler.Handle(line, *stop);
      OPENSSL_cleanse(line.data(), line.size());
      asio::post(self->socket_.get_executor(), [self, reply = std::move(reply)]() mutable {
        self->Send(std::move(reply), /*then_close=*/false);
      });
    });
  }

  // While its verb runs, a connection whose peer hangs up cancels the verb, as killing dmsetup
  // interrupts its suspend. A pipelined request behind it ends the watch (it is not a hang-up).
  void WatchPeer(std::shared_ptr<Interrupt> stop) {
    if (buf_.size() > 0) return;
    socket_.async_wait(
        Socket::wait_read, [self = shared_from_this(), stop](boost::system::error_code ec) {
          if (ec) return;  // the verb finished (the watch was cancelled) or the socket failed
          char c;
          const ssize_t n = ::recv(self->socket_.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
          if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            stop->Cancel();
          } else if (n < 0) {
            self->WatchPeer(stop);
          }
        });
  }

  void Send(std::string reply, bool then_close) {
    boost::system::error_code ignored;
    socket_.cancel(ignored);  // ends WatchPeer's wait, if any
    auto out = std::make_shared<std::string>(std::move(reply));
    out->push_back('\n');
    asio::async_write(
        socket_, asio::buffer(*out),
        [self = shared_from_this(), out, then_close](boost::system::error_code ec, size_t) {
          if (ec || then_close) {
            boost::system::error_code close_ec;
            self->timer_.cancel();
            self->socket_.close(close_ec);
            return;
          }
          self->ReadNext();
        });
  }

  Socket socket_;
  asio::steady_timer timer_;
  asio::streambuf buf_;
  const SessionEnv& env_;
};

}  // namespace

// Members are destroyed in reverse order: the verb threads are stopped explicitly first (they
// post to `io`), and `sessions` outlives `io`, whose destruction drops the last sessions.
struct ControlServer::Impl {
  Options options;
  std::atomic<size_t> sessions{0};
  VerbThreads verbs;
  SessionEnv env;
  asio::io_context io;
  asio::local::stream_protocol::acceptor acceptor{io};
  asio::steady_timer backoff{io};
  std::thread thread;

  Impl(const Options& o, ControlHandler& h) : options(o), env{h, verbs, o.idle_timeout, sessions} {}

  bool Allowed(uid_t uid) const {
    if (uid == 0 || uid == ::getuid()) return true;
    for (uid_t a : options.allowed_uids) {
      if (a == uid) return true;
    }
    return false;
  }

  void Accept() {
    acceptor.async_accept([this](boost::system::error_code ec, Socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (ec) {
        // Hardening 5: out of descriptors (EMFILE) the next accept fails the same way until one
        // is freed; wait instead of spinning, and say so once a second at most.
        ICE_LOG_RATELIMITED(spdlog::level::warn,
                            "control: accepting a connection failed ({}); retrying in {} ms",
                            ec.message(), kAcceptBackoff.count());
        backoff.expires_after(kAcceptBackoff);
        backoff.async_wait([this](boost::system::error_code wait_ec) {
          if (!wait_ec) Accept();
        });
        return;
      }
      Admit(std::move(socket));
      Accept();
    });
  }

  void Admit(Socket socket) {
    ucred cred{};
    socklen_t len = sizeof cred;
    boost::system::error_code ignored;
    if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
        !Allowed(cred.uid)) {
      ICE_LOG_RATELIMITED(spdlog::level::warn,
                          "control: refused a connection from uid {} (not allowed)", cred.uid);
      socket.close(ignored);
      return;
    }
    if (sessions.load(std::memory_order_relaxed) >= options.max_clients) {
      // Hardening 5: one line saying why, sent without waiting (a fresh socket's buffer takes
      // it), then closed: a flood of connections holds no descriptors and no threads.
      ICE_LOG_RATELIMITED(spdlog::level::warn,
                          "control: refused a connection: {} connections are being served "
                          "([daemon] control_max_clients)",
                          options.max_clients);
      const std::string reply =
          ControlHandler::ErrorReply(
              Status::Error(EAGAIN, "the daemon serves " + std::to_string(options.max_clients) +
                                        " control connections already; try again later")) +
          "\n";
      (void)::send(socket.native_handle(), reply.data(), reply.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      socket.close(ignored);
      return;
    }
    std::make_shared<Session>(std::move(socket), env)->Start();
  }
};

ControlServer::ControlServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<ControlServer>> ControlServer::Start(const Options& options,
                                                            ControlHandler& handler) {
  auto impl = std::make_unique<Impl>(options, handler);
  ICE_RETURN_IF_ERROR(
      ListenPrivateUnixSocket(impl->acceptor, options.socket_path, "control socket"));
  impl->Accept();
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] {
    try {
      raw->io.run();
    } catch (const std::exception& e) {
      spdlog::error("control server stopped: {}", e.what());
    }
  });
  return std::unique_ptr<ControlServer>(new ControlServer(std::move(impl)));
}

ControlServer::~ControlServer() {
  if (!impl_) return;
  asio::post(impl_->io, [this] {
    boost::system::error_code ignored;
    impl_->acceptor.close(ignored);
    impl_->backoff.cancel();
  });
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  // Verbs still running are cancelled; their replies are posted to the stopped io_context and
  // dropped with it.
  impl_->verbs.StopAll();
  ::unlink(impl_->options.socket_path.c_str());
}

}  // namespace ice::daemon
