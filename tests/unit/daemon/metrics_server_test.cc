#include "daemon/metrics_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

namespace ice::daemon {
namespace {

constexpr const char* kText = "# HELP x_total X.\n# TYPE x_total counter\nx_total 7\n";

// A client socket with a 10 s receive timeout: a server that hangs fails the test, never blocks it.
int ConnectTcp(const std::string& address) {
  const size_t colon = address.rfind(':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
  ::inet_pton(AF_INET, address.substr(0, colon).c_str(), &addr.sin_addr);
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << address;
  return fd;
}

int ConnectUnix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << path;
  return fd;
}

void Send(int fd, const std::string& bytes) {
  ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(bytes.size()));
}

// Reads one response whose body is Content-Length bytes (or, with `until_close`, all to EOF).
std::string ReadResponse(int fd, bool until_close = false) {
  std::string got;
  char buf[4096];
  for (;;) {
    const size_t head_end = got.find("\r\n\r\n");
    if (!until_close && head_end != std::string::npos) {
      const size_t cl = got.find("Content-Length: ");
      const size_t len = cl == std::string::npos ? 0 : std::stoul(got.substr(cl + 16));
      if (got.size() >= head_end + 4 + len) return got;
    }
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return got;
    got.append(buf, static_cast<size_t>(n));
  }
}

bool Closed(int fd) {
  char c;
  return ::recv(fd, &c, 1, 0) == 0;
}

class MetricsServerTest : public ::testing::Test {
 protected:
  void StartOn(const std::string& listen, size_t max_clients = 16,
               std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
    MetricsServer::Options o;
    o.listen = listen;
    o.max_clients = max_clients;
    o.request_timeout = timeout;
    auto s = MetricsServer::Start(o, [this] {
      ++scrapes_;
      return std::string(kText);
    });
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(*s);
  }
  std::string Get(const std::string& request) {
    const int fd = ConnectTcp(server_->address());
    Send(fd, request);
    std::string r = ReadResponse(fd);
    ::close(fd);
    return r;
  }

  std::atomic<int> scrapes_{0};
  std::unique_ptr<MetricsServer> server_;
};

TEST_F(MetricsServerTest, GetMetricsAnswersThePrometheusText) {
  StartOn("127.0.0.1:0");
  EXPECT_EQ(server_->address().rfind("127.0.0.1:", 0), 0u) << server_->address();
  const std::string r = Get("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
  EXPECT_NE(r.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), std::string::npos)
      << r;
  EXPECT_EQ(r.substr(r.find("\r\n\r\n") + 4), kText);
  EXPECT_EQ(scrapes_.load(), 1);
  // A query string is not another path.
  EXPECT_EQ(Get("GET /metrics?x=1 HTTP/1.0\r\n\r\n").rfind("HTTP/1.0 200", 0), 0u);
}

TEST_F(MetricsServerTest, HeadAnswersHeadersOnly) {
  StartOn("127.0.0.1:0");
  const std::string r = Get("HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
  EXPECT_NE(r.find("Content-Length: " + std::to_string(std::string(kText).size())),
            std::string::npos)
      << r;
  // ReadResponse waited for Content-Length bytes or EOF: the server closed with no body.
  EXPECT_EQ(r.substr(r.find("\r\n\r\n") + 4), "");
}

TEST_F(MetricsServerTest, OtherPathsAre404OtherMethods405) {
  StartOn("127.0.0.1:0");
  EXPECT_EQ(Get("GET / HTTP/1.1\r\nHost: x\r\n\r\n").rfind("HTTP/1.1 404 Not Found", 0), 0u);
  EXPECT_EQ(Get("GET /metricsx HTTP/1.1\r\nHost: x\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
  const std::string post = Get("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(post.rfind("HTTP/1.1 405 Method Not Allowed", 0), 0u) << post;
  EXPECT_NE(post.find("Allow: GET, HEAD\r\n"), std::string::npos) << post;
  EXPECT_EQ(Get("DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n").rfind("HTTP/1.1 405", 0), 0u);
  EXPECT_EQ(scrapes_.load(), 0) << "no refused request computes the metrics";
}

TEST_F(MetricsServerTest, KeepAliveServesRequestsInOrder) {
  StartOn("127.0.0.1:0");
  const int fd = ConnectTcp(server_->address());
  for (int i = 0; i < 3; ++i) {
    Send(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(ReadResponse(fd).rfind("HTTP/1.1 200", 0), 0u) << i;
  }
  ::close(fd);
  EXPECT_EQ(scrapes_.load(), 3);
}

TEST_F(MetricsServerTest, OversizedOrBodiedRequestsAreRefusedAndClosed) {
  StartOn("127.0.0.1:0");
  int fd = ConnectTcp(server_->address());
  Send(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " +
               std::string(MetricsServer::kMaxHeadBytes, 'a') + "\r\n\r\n");
  const std::string big = ReadResponse(fd, /*until_close=*/true);
  EXPECT_EQ(big.rfind("HTTP/1.1 431", 0), 0u) << big.substr(0, 200);
  ::close(fd);
  fd = ConnectTcp(server_->address());
  Send(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody");
  const std::string bodied = ReadResponse(fd, /*until_close=*/true);
  EXPECT_EQ(bodied.rfind("HTTP/1.1 413", 0), 0u) << bodied;
  ::close(fd);
  fd = ConnectTcp(server_->address());
  Send(fd, "NOT HTTP AT ALL\r\n\r\n");
  EXPECT_EQ(ReadResponse(fd, /*until_close=*/true).rfind("HTTP/1.1 400", 0), 0u);
  ::close(fd);
  EXPECT_EQ(scrapes_.load(), 0);
}

TEST_F(MetricsServerTest, StalledClientIsClosedAfterTheTimeout) {
  StartOn("127.0.0.1:0", 16, std::chrono::milliseconds(200));
  const int fd = ConnectTcp(server_->address());
  Send(fd, "GET /metrics HTTP/1.1\r\n");  // and nothing more
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(Closed(fd));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  ::close(fd);
}

TEST_F(MetricsServerTest, ConnectionsBeyondTheCapGet503) {
  StartOn("127.0.0.1:0", 2);
  std::vector<int> held;
  for (int i = 0; i < 2; ++i) {
    held.push_back(ConnectTcp(server_->address()));
    Send(held.back(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(ReadResponse(held.back()).rfind("HTTP/1.1 200", 0), 0u);  // admitted, kept alive
  }
  const int extra = ConnectTcp(server_->address());
  EXPECT_EQ(ReadResponse(extra, /*until_close=*/true).rfind("HTTP/1.1 503", 0), 0u);
  ::close(extra);
  ::close(held[0]);
  // The freed place is taken again (the server notices the close when it reads).
  std::string again;
  for (int i = 0; i < 100 && again.rfind("HTTP/1.1 200", 0) != 0; ++i) {
    const int fd = ConnectTcp(server_->address());
    Send(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    again = ReadResponse(fd);
    ::close(fd);
    if (again.rfind("HTTP/1.1 200", 0) != 0) ::usleep(10000);
  }
  EXPECT_EQ(again.rfind("HTTP/1.1 200", 0), 0u) << again;
  ::close(held[1]);
}

TEST_F(MetricsServerTest, UnixSocketIsPrivateAndRemovedAtStop) {
  char tmpl[] = "/tmp/ice-metrics-test-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string path = std::string(tmpl) + "/m/metrics.sock";
  StartOn(path);
  EXPECT_EQ(server_->address(), path);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const int fd = ConnectUnix(path);
  Send(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string r = ReadResponse(fd);
  EXPECT_EQ(r.substr(r.find("\r\n\r\n") + 4), kText);
  ::close(fd);
  server_.reset();
  EXPECT_FALSE(std::filesystem::exists(path));
  std::filesystem::remove_all(tmpl);
}

TEST_F(MetricsServerTest, BadOrBusyAddressesFailTheStart) {
  EXPECT_EQ(MetricsServer::Start({"nonsense"}, [] { return std::string(); }).status().code(),
            EINVAL);
  StartOn("127.0.0.1:0");
  auto twice = MetricsServer::Start({server_->address()}, [] { return std::string(); });
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.status().code(), EADDRINUSE) << twice.status().ToString();
}

}  // namespace
}  // namespace ice::daemon
