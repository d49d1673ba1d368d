#include "daemon/metrics_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <optional>
#include <thread>

// Boost.Beast after asio.h: that header makes Boost 1.74's Asio build in C++20 mode.
#include "daemon/asio.h"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "block/log.h"
#include "config/config.h"
#include "daemon/unix_socket.h"

namespace ice::daemon {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

// Prometheus' text exposition format, version 0.0.4.
constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

// What connections share with the server; outlives every connection (see Impl).
struct HttpEnv {
  MetricsServer::TextSource text;
  std::chrono::milliseconds timeout;
  std::atomic<size_t> connections{0};
};

// The reply to one request: the metrics, or why not.
http::response<http::string_body> Answer(const http::request<http::empty_body>& req,
                                         const MetricsServer::TextSource& text) {
  http::response<http::string_body> res;
  res.version(req.version());
  res.keep_alive(req.keep_alive());
  const beast::string_view target = req.target();
  const beast::string_view path = target.substr(0, target.find('?'));
  if (path != "/metrics") {
    res.result(http::status::not_found);
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.body() = "ice serves /metrics only\n";
  } else if (req.method() != http::verb::get && req.method() != http::verb::head) {
    res.result(http::status::method_not_allowed);
    res.set(http::field::allow, "GET, HEAD");
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.body() = "/metrics answers GET and HEAD\n";
  } else {
    res.result(http::status::ok);
    res.set(http::field::content_type, kContentType);
    res.body() = text();
  }
  res.prepare_payload();
  if (req.method() == http::verb::head) res.body().clear();  // Content-Length stays the GET's
  return res;
}

// One connection: requests answered in order (HTTP/1.1 keep-alive), each bounded in size and
// time. Runs on the server's thread only.
template <typename Protocol>
class HttpSession : public std::enable_shared_from_this<HttpSession<Protocol>> {
 public:
  using Socket = typename Protocol::socket;

  HttpSession(Socket socket, HttpEnv& env)
      : socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        buffer_(MetricsServer::kMaxHeadBytes),
        env_(env) {
    env_.connections.fetch_add(1, std::memory_order_relaxed);
  }
  ~HttpSession() { env_.connections.fetch_sub(1, std::memory_order_relaxed); }

  void Start() { ReadNext(); }

 private:
  // The timer runs from the start of a request's read to the end of its reply's write: a client
  // that trickles its request, idles between requests or reads slowly is closed when it fires.
  void ReadNext() {
    parser_.emplace();
    parser_->header_limit(MetricsServer::kMaxHeadBytes);
    parser_->body_limit(0);
    timer_.expires_after(env_.timeout);
    timer_.async_wait([self = this->shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->Close();
    });
    http::async_read(socket_, buffer_, *parser_,
                     [self = this->shared_from_this()](boost::system::error_code ec, size_t) {
                       self->OnRead(ec);
                     });
  }

  void OnRead(boost::system::error_code ec) {
    // The client left (or the timer closed it), or broke HTTP or a bound: then it is told why.
    const bool bad_request = ec &&
                             ec.category() == make_error_code(http::error::bad_target).category() &&
                             ec != http::error::end_of_stream && ec != http::error::partial_message;
    if (bad_request) return Refuse(ec);
    if (ec) return Close();
    response_ = Answer(parser_->get(), env_.text);
    Write();
  }

  // A request that broke a bound or HTTP itself: say which, then close.
  void Refuse(boost::system::error_code ec) {
    http::status status = http::status::bad_request;
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      status = http::status::request_header_fields_too_large;
    } else if (ec == http::error::body_limit || ec == http::error::unexpected_body) {
      status = http::status::payload_too_large;
    }
    response_ = {};
    response_.result(status);
    response_.version(11);
    response_.keep_alive(false);
    response_.set(http::field::content_type, "text/plain; charset=utf-8");
    response_.body() = std::string(http::obsolete_reason(status)) + "\n";
    response_.prepare_payload();
    Write();
  }

  void Write() {
    http::async_write(socket_, response_,
                      [self = this->shared_from_this()](boost::system::error_code ec, size_t) {
                        if (ec || !self->response_.keep_alive()) return self->Close();
                        self->ReadNext();
                      });
  }

  void Close() {
    boost::system::error_code ignored;
    timer_.cancel();
    socket_.shutdown(asio::socket_base::shutdown_send, ignored);
    socket_.close(ignored);
  }

  Socket socket_;
  asio::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> parser_;
  http::response<http::string_body> response_;
  HttpEnv& env_;
};

// Accepts connections on a TCP or Unix acceptor and admits them up to the cap.
template <typename Protocol>
class Listener {
 public:
  using Acceptor = typename Protocol::acceptor;

  Listener(asio::io_context& io, HttpEnv& env, size_t max_clients)
      : acceptor(io), backoff_(io), env_(env), max_clients_(max_clients) {}

  void Accept() {
    acceptor.async_accept([this](boost::system::error_code ec, typename Protocol::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (ec) {
        // Out of descriptors, the next accept fails alike until one is freed: wait, not spin.
        ICE_LOG_RATELIMITED(spdlog::level::warn, "metrics: accepting a connection failed ({})",
                            ec.message());
        backoff_.expires_after(std::chrono::milliseconds(100));
        backoff_.async_wait([this](boost::system::error_code wait_ec) {
          if (!wait_ec) Accept();
        });
        return;
      }
      Admit(std::move(socket));
      Accept();
    });
  }

  void Stop() {
    boost::system::error_code ignored;
    acceptor.close(ignored);
    backoff_.cancel();
  }

  Acceptor acceptor;

 private:
  void Admit(typename Protocol::socket socket) {
    if (env_.connections.load(std::memory_order_relaxed) >= max_clients_) {
      ICE_LOG_RATELIMITED(spdlog::level::warn, "metrics: refused a connection: {} are being served",
                          max_clients_);
      static constexpr char kBusy[] =
          "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      (void)::send(socket.native_handle(), kBusy, sizeof kBusy - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
      boost::system::error_code ignored;
      socket.close(ignored);
      return;
    }
    std::make_shared<HttpSession<Protocol>>(std::move(socket), env_)->Start();
  }

  asio::steady_timer backoff_;
  HttpEnv& env_;
  size_t max_clients_;
};

using Tcp = asio::ip::tcp;
using Local = asio::local::stream_protocol;

}  // namespace

// Destroyed in reverse: the io_context (and with it every connection) before the env they use.
struct MetricsServer::Impl {
  Options options;
  HttpEnv env;
  std::string address;
  asio::io_context io;
  std::optional<Listener<Tcp>> tcp;
  std::optional<Listener<Local>> local;
  std::thread thread;
};

MetricsServer::MetricsServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

const std::string& MetricsServer::address() const { return impl_->address; }

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(const Options& options,
                                                            TextSource text) {
  ICE_ASSIGN_OR_RETURN(config::ListenAddress where, config::ParseListenAddress(options.listen));
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->env.text = std::move(text);
  impl->env.timeout = options.request_timeout;
  if (!where.unix_path.empty()) {
    impl->local.emplace(impl->io, impl->env, options.max_clients);
    ICE_RETURN_IF_ERROR(
        ListenPrivateUnixSocket(impl->local->acceptor, where.unix_path, "metrics socket"));
    impl->address = where.unix_path;
    impl->local->Accept();
  } else {
    boost::system::error_code ec;
    const Tcp::endpoint endpoint(asio::ip::make_address(where.host, ec), where.port);
    if (ec) return Status::Error(EINVAL, "metrics address " + options.listen + ": " + ec.message());
    impl->tcp.emplace(impl->io, impl->env, options.max_clients);
    Tcp::acceptor& a = impl->tcp->acceptor;
    a.open(endpoint.protocol(), ec);
    if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) a.bind(endpoint, ec);
    if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
      return Status::Error(ec.value(), "metrics address " + options.listen + ": " + ec.message());
    const Tcp::endpoint bound = a.local_endpoint(ec);
    const std::string host = bound.address().to_string();
    impl->address =
        (bound.address().is_v6() ? "[" + host + "]" : host) + ":" + std::to_string(bound.port());
    impl->tcp->Accept();
  }
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] {
    try {
      raw->io.run();
    } catch (const std::exception& e) {
      spdlog::error("metrics server stopped: {}", e.what());
    }
  });
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(impl)));
}

MetricsServer::~MetricsServer() {
  if (!impl_) return;
  asio::post(impl_->io, [this] {
    if (impl_->tcp) impl_->tcp->Stop();
    if (impl_->local) impl_->local->Stop();
  });
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  if (impl_->local) ::unlink(impl_->address.c_str());
}

}  // namespace ice::daemon
