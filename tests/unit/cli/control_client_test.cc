#include "cli/control_client.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <functional>
#include <thread>

namespace ice::cli {
namespace {

using namespace std::chrono_literals;

TEST(ControlClient, P2_RequestIsOneVersionedJsonLine) {
  auto line = RequestLine("table", Json{{"name", "lin0"}, {"inactive", true}}, 7);
  ASSERT_TRUE(line.ok());
  EXPECT_EQ(*line, R"({"v":1,"id":7,"verb":"table","args":{"name":"lin0","inactive":true}})"
                   "\n");
  EXPECT_EQ(*RequestLine("ls", Json::object(), 1), R"({"v":1,"id":1,"verb":"ls","args":{}})"
                                                   "\n");
}

// Hardening 3: the daemon is told to give up a little before the client does, so that its reply
// (the verb undone) arrives in time; the key stays last in a secret request.
TEST(ControlClient, Hardening3_RequestsCarryTheDaemonsTimeout) {
  EXPECT_EQ(*RequestLine("suspend", Json{{"name", "a"}}, 2, 2900ms),
            R"({"v":1,"id":2,"verb":"suspend","timeout_ms":2900,"args":{"name":"a"}})"
            "\n");
  auto secret = SecretRequestLine("key.add", Json{{"name", "k"}}, 3, "key_hex", "ab", 50ms);
  ASSERT_TRUE(secret.ok());
  EXPECT_EQ(secret->view(),
            R"({"v":1,"id":3,"verb":"key.add","timeout_ms":50,"args":{"name":"k","key_hex":"ab"}})"
            "\n");
  EXPECT_EQ(DaemonTimeout(30s), 29s);
  EXPECT_EQ(DaemonTimeout(300ms), 270ms);
  EXPECT_EQ(DaemonTimeout(1ms), 1ms);
}

TEST(ControlClient, RequestWithInvalidUtf8IsRefused) {
  auto line = RequestLine("info", Json{{"name", std::string("\xff\xfe")}}, 1);
  ASSERT_FALSE(line.ok());
  EXPECT_EQ(line.status().code(), EINVAL);
}

TEST(ControlClient, P4_SecretRequestLineIsTheSameDocumentWithTheKeyLast) {
  const Json args = {{"name", "k"}, {"mode", "aes-256-xts"}, {"data_unit_size", 4096}};
  auto line = SecretRequestLine("key.add", args, 3, "key_hex", "00ff");
  ASSERT_TRUE(line.ok());
  EXPECT_EQ(line->view(), R"({"v":1,"id":3,"verb":"key.add","args":{"name":"k",)"
                          R"("mode":"aes-256-xts","data_unit_size":4096,"key_hex":"00ff"}})"
                          "\n");
  EXPECT_EQ(line->size(), line->capacity()) << "sized once, never reallocated";
  auto bare = SecretRequestLine("key.add", Json::object(), 3, "key_hex", "ab");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->view(), R"({"v":1,"id":3,"verb":"key.add","args":{"key_hex":"ab"}})"
                          "\n");
}

TEST(ControlClient, ParseReplyAcceptsResultsAndErrors) {
  auto ok = ParseReply(R"({"v":1,"id":5,"ok":true,"result":{"lines":["0 8 zero"]}})", 5);
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_TRUE(ok->ok);
  EXPECT_EQ(ok->result["lines"][0], "0 8 zero");

  auto err = ParseReply(
      R"({"v":1,"id":5,"ok":false,"error":{"errno":16,"code":"EBUSY","message":"busy"}})", 5);
  ASSERT_TRUE(err.ok());
  EXPECT_FALSE(err->ok);
  EXPECT_EQ(err->error_errno, 16);
  EXPECT_EQ(err->error_code, "EBUSY");
  EXPECT_EQ(err->error_message, "busy");

  // The daemon answers a request it could not read (E2BIG) with a null id.
  auto unread = ParseReply(
      R"({"v":1,"id":null,"ok":false,"error":{"errno":7,"code":"E2BIG","message":"big"}})", 5);
  ASSERT_TRUE(unread.ok());
  EXPECT_EQ(unread->error_code, "E2BIG");
}

TEST(ControlClient, P2_MalformedRepliesAreProtocolErrors) {
  for (const char* line : {
           "",
           "not json",
           "[1,2]",
           R"({"id":1,"ok":true,"result":{}})",
           R"({"v":2,"id":1,"ok":true,"result":{}})",
           R"({"v":1,"id":1,"result":{}})",
           R"({"v":1,"id":1,"ok":"yes","result":{}})",
           R"({"v":1,"id":2,"ok":true,"result":{}})",
           R"({"v":1,"ok":true,"result":{}})",
           R"({"v":1,"id":1,"ok":true})",
           R"({"v":1,"id":1,"ok":true,"result":[]})",
           R"({"v":1,"id":1,"ok":false})",
           R"({"v":1,"id":1,"ok":false,"error":{"code":"EIO","message":"x"}})",
           R"({"v":1,"id":1,"ok":false,"error":{"errno":0,"code":"EIO","message":"x"}})",
           R"({"v":1,"id":1,"ok":false,"error":{"errno":5,"message":"x"}})",
           R"({"v":1,"id":1,"ok":false,"error":{"errno":5,"code":"EIO"}})",
       }) {
    auto r = ParseReply(line, 1);
    ASSERT_FALSE(r.ok()) << line;
    EXPECT_EQ(r.status().code(), EPROTO) << line;
  }
}

// A one-connection control server in a thread: accepts, reads the request line, then runs
// `serve` on the connection and closes it.
class FakeServer {
 public:
  explicit FakeServer(std::function<void(int fd)> serve) {
    char dir[] = "/tmp/ice-cli-test-XXXXXX";
    dir_ = mkdtemp(dir);
    path_ = dir_ + "/control.sock";
    listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path_.copy(addr.sun_path, sizeof addr.sun_path - 1);
    EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(listen(listen_fd_, 4), 0);
    thread_ = std::thread([this, serve] {
      const int fd = accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;
      char c;
      while (read(fd, &c, 1) == 1 && c != '\n') request_ += c;
      serve(fd);
      close(fd);
    });
  }
  ~FakeServer() {
    if (thread_.joinable()) thread_.join();
    close(listen_fd_);
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }
  const std::string& path() const { return path_; }
  // Waits for the connection to be served; returns the request line it read.
  const std::string& Finish() {
    if (thread_.joinable()) thread_.join();
    return request_;
  }

 private:
  std::string dir_, path_, request_;
  int listen_fd_ = -1;
  std::thread thread_;
};

void WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

TEST(ControlClient, ExchangeSendsTheLineAndReturnsTheReplyLine) {
  FakeServer server([](int fd) { WriteAll(fd, "{\"v\":1}\n{\"second\":1}\n"); });
  auto reply = Exchange(server.path(), "{\"v\":1,\"verb\":\"ls\"}\n", 5s);
  ASSERT_TRUE(reply.ok()) << reply.status().message();
  EXPECT_EQ(*reply, "{\"v\":1}");
  EXPECT_EQ(server.Finish(), "{\"v\":1,\"verb\":\"ls\"}");
}

TEST(ControlClient, CannotConnectNamesTheSocketAndTheReason) {
  auto reply = Exchange("/nonexistent/ice/control.sock", "{}\n", 1s);
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), ENOENT);
  EXPECT_EQ(reply.status().message(),
            "cannot connect to /nonexistent/ice/control.sock: No such file or directory");
  auto too_long = Exchange(std::string(200, 'x'), "{}\n", 1s);
  EXPECT_EQ(too_long.status().code(), ENAMETOOLONG);
}

TEST(ControlClient, P1_ConnectionClosedWithoutAReplyIsAnError) {
  FakeServer server([](int) {});
  auto reply = Exchange(server.path(), "{}\n", 5s);
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), ECONNRESET);
  EXPECT_NE(reply.status().message().find(server.path()), std::string::npos);
}

TEST(ControlClient, ReplyOver16MiBIsRefused) {
  FakeServer server([](int fd) { WriteAll(fd, std::string(kMaxReplyBytes + 1, 'x') + "\n"); });
  auto reply = Exchange(server.path(), "{}\n", 20s);
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), EMSGSIZE);
}

TEST(ControlClient, ReplyOfExactly16MiBIsAccepted) {
  FakeServer server([](int fd) { WriteAll(fd, std::string(kMaxReplyBytes, 'x') + "\n"); });
  auto reply = Exchange(server.path(), "{}\n", 20s);
  ASSERT_TRUE(reply.ok()) << reply.status().message();
  EXPECT_EQ(reply->size(), kMaxReplyBytes);
}

TEST(ControlClient, SilentDaemonTimesOut) {
  // The server holds the connection open until the client gives up and closes it.
  FakeServer server([](int fd) {
    char c;
    while (read(fd, &c, 1) > 0) {
    }
  });
  auto reply = Exchange(server.path(), "{}\n", 100ms);
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), ETIMEDOUT);
  EXPECT_EQ(reply.status().message(), "no reply from " + server.path() + " within 100 ms");
}

}  // namespace
}  // namespace ice::cli
