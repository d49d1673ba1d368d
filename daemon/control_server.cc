#include "daemon/control_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "block/log.h"
#include "daemon/asio.h"

namespace ice::daemon {
namespace {

namespace asio = boost::asio;
using Socket = asio::local::stream_protocol::socket;

// One control connection: reads request lines, answers each in order, times out when idle.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Socket socket, ControlHandler& handler, std::chrono::seconds idle)
      : socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        buf_(ControlHandler::kMaxRequestBytes + 1),
        handler_(handler),
        idle_(idle) {}

  // Unanswered bytes (a partial line when the peer left) may hold key bytes too.
  ~Session() { WipeFront(buf_.size()); }

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
    timer_.expires_after(idle_);
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
    std::string reply = handler_.Handle(line);
    OPENSSL_cleanse(line.data(), line.size());
    Send(std::move(reply), /*then_close=*/false);
  }

  void Send(std::string reply, bool then_close) {
    auto out = std::make_shared<std::string>(std::move(reply));
    out->push_back('\n');
    asio::async_write(
        socket_, asio::buffer(*out),
        [self = shared_from_this(), out, then_close](boost::system::error_code ec, size_t) {
          if (ec || then_close) {
            boost::system::error_code ignored;
            self->timer_.cancel();
            self->socket_.close(ignored);
            return;
          }
          self->ReadNext();
        });
  }

  Socket socket_;
  asio::steady_timer timer_;
  asio::streambuf buf_;
  ControlHandler& handler_;
  std::chrono::seconds idle_;
};

Status Errno(int e, const std::string& what) {
  return Status::Error(e, what + ": " + std::strerror(e));
}

// A socket file nobody answers on is left over from a daemon that died: remove it.
Status ClearStaleSocket(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return Status::Ok();
  if (!S_ISSOCK(st.st_mode))
    return Status::Error(EEXIST, "control socket path " + path + " exists and is not a socket");
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno(errno, "socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  const bool answered = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  if (answered) return Status::Error(EADDRINUSE, "another daemon serves " + path);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Errno(errno, "unlink " + path);
  return Status::Ok();
}

}  // namespace

struct ControlServer::Impl {
  Options options;
  ControlHandler& handler;
  asio::io_context io;
  asio::local::stream_protocol::acceptor acceptor{io};
  std::thread thread;

  Impl(const Options& o, ControlHandler& h) : options(o), handler(h) {}

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
      if (!ec) {
        ucred cred{};
        socklen_t len = sizeof cred;
        if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
            !Allowed(cred.uid)) {
          ICE_LOG_RATELIMITED(spdlog::level::warn,
                              "control: refused a connection from uid {} (not allowed)", cred.uid);
          boost::system::error_code ignored;
          socket.close(ignored);
        } else {
          std::make_shared<Session>(std::move(socket), handler, options.idle_timeout)->Start();
        }
      }
      Accept();
    });
  }
};

ControlServer::ControlServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<ControlServer>> ControlServer::Start(const Options& options,
                                                            ControlHandler& handler) {
  const std::string& path = options.socket_path;
  if (path.size() >= sizeof(sockaddr_un{}.sun_path))
    return Status::Error(ENAMETOOLONG, "control socket path is too long: " + path);
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  std::error_code fec;
  if (!dir.empty() && !std::filesystem::exists(dir, fec)) {
    std::filesystem::create_directories(dir, fec);
    if (fec)
      return Status::Error(fec.value(), "cannot create " + dir.string() + ": " + fec.message());
    ::chmod(dir.c_str(), 0700);
  }
  ICE_RETURN_IF_ERROR(ClearStaleSocket(path));
  auto impl = std::make_unique<Impl>(options, handler);
  boost::system::error_code ec;
  impl->acceptor.open(asio::local::stream_protocol(), ec);
  // The socket is born without group/world access: no window in which another user connects.
  const mode_t old = ::umask(0177);
  if (!ec) impl->acceptor.bind(asio::local::stream_protocol::endpoint(path), ec);
  ::umask(old);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Status::Error(ec.value(), "control socket " + path + ": " + ec.message());
  if (::chmod(path.c_str(), 0600) != 0) return Errno(errno, "chmod " + path);
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
  });
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  ::unlink(impl_->options.socket_path.c_str());
}

}  // namespace ice::daemon
