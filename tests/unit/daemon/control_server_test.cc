#include "daemon/control_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "daemon/engine.h"
#include "dm/mapped_device.h"
#include "tests/unit/daemon/engine_test_util.h"

namespace ice::daemon {
namespace {

using json = nlohmann::json;

// A control server on a socket in a private temporary folder, with an empty engine.
class ControlServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ice-ctl-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/control.sock";
    // `upper` maps onto `lower`: I/O through upper waits while lower is suspended.
    config::Config cfg;
    cfg.hardware.push_back(testing::XtsHardware("hw0"));
    cfg.devices.push_back({"lower", {"0 2048 linear hw0 0"}});
    cfg.devices.push_back({"upper", {"0 2048 linear lower 0"}});
    auto e = Engine::Create(cfg);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    engine_ = std::move(*e);
    handler_ = std::make_unique<ControlHandler>(*engine_);
    auto s = ControlServer::Start({path_, {}, std::chrono::seconds(60)}, *handler_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(*s);
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  // A connected client socket with a 20 s receive timeout (a hang fails, never blocks forever).
  int Connect() {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd, 0);
    timeval tv{20, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    return fd;
  }
  static void SendAll(int fd, const std::string& data) {
    size_t done = 0;
    while (done < data.size()) {
      const ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return;  // the server may close first (oversize): the caller checks replies
      done += static_cast<size_t>(n);
    }
  }
  // Reads until `lines` replies or EOF; *closed says whether EOF (or a reset) came.
  static std::vector<json> Replies(int fd, size_t lines, bool* closed) {
    std::string buf;
    *closed = false;
    while (static_cast<size_t>(std::count(buf.begin(), buf.end(), '\n')) < lines) {
      char chunk[4096];
      const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n <= 0) {
        *closed = n == 0 || errno == ECONNRESET;
        break;
      }
      buf.append(chunk, static_cast<size_t>(n));
    }
    std::vector<json> out;
    size_t pos = 0, nl;
    while ((nl = buf.find('\n', pos)) != std::string::npos) {
      out.push_back(json::parse(buf.substr(pos, nl - pos)));
      pos = nl + 1;
    }
    return out;
  }

  // One request on a new connection; its reply (or null when the connection closed first).
  json Ask(const std::string& request) {
    const int fd = Connect();
    SendAll(fd, request + "\n");
    bool closed = false;
    auto replies = Replies(fd, 1, &closed);
    ::close(fd);
    return replies.empty() ? json() : replies[0];
  }
  dm::MappedDevice& Mapped(const std::string& name) {
    auto ref = engine_->devices().Find(name);
    EXPECT_TRUE(ref.ok());
    return *dynamic_cast<dm::MappedDevice*>(ref->device.get());
  }
  // Suspends `lower` and starts a write through `upper`, which waits for lower's resume.
  void HoldAWriteInLower() {
    ASSERT_EQ(Ask(R"({"v":1,"verb":"suspend","args":{"name":"lower"}})")["ok"], true);
    auto exp = engine_->OpenExport("upper");
    ASSERT_TRUE(exp.ok());
    writer_ = std::thread([this, e = std::move(*exp)] {
      std::vector<uint8_t> data(4096, 7);
      write_status_ = e->Write(data.data(), data.size(), 0, false);
    });
    ASSERT_TRUE(Eventually([&] { return Mapped("lower").queued_requests() == 1; }));
  }
  // Starts `suspend upper` on a connection of its own and waits until it blocks (dispatch stopped,
  // the held write still in flight). Returns the connection.
  int BlockedSuspendOfUpper(const std::string& extra = "") {
    const int fd = Connect();
    SendAll(fd, R"({"v":1,"id":1,"verb":"suspend","args":{"name":"upper"})" + extra + "}\n");
    EXPECT_TRUE(Eventually([&] { return Mapped("upper").dispatch_blocked(); }));
    return fd;
  }
  void ReleaseTheWrite() {
    EXPECT_TRUE(engine_->devices().Resume("lower").ok());
    writer_.join();
    EXPECT_TRUE(write_status_.ok()) << write_status_.ToString();
  }
  // Polls `done` (up to 20 s, so that a failure cannot hang the suite).
  static bool Eventually(const std::function<bool()>& done) {
    for (int i = 0; i < 2000; ++i) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  std::thread writer_;
  Status write_status_;
  std::string dir_, path_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<ControlHandler> handler_;
  std::unique_ptr<ControlServer> server_;
};

TEST_F(ControlServerTest, P1_SocketIsMode0600) {
  struct stat st {};
  ASSERT_EQ(::lstat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_uid, ::getuid());
}

// Requests sent back to back in one write each get their reply, in order (they arrive in one
// read: the first line's wipe must not destroy the ones behind it).
TEST_F(ControlServerTest, P2_PipelinedRequestsAreAllAnsweredInOrder) {
  const int fd = Connect();
  std::string batch;
  for (int i = 0; i < 5; ++i)
    batch += R"({"v":1,"id":)" + std::to_string(i) +
             R"(,"verb":"version"})"
             "\n";
  batch += "garbage\n";
  batch += R"({"v":1,"id":99,"verb":"ls"})"
           "\r\n";
  SendAll(fd, batch);
  bool closed = false;
  auto replies = Replies(fd, 7, &closed);
  ASSERT_EQ(replies.size(), 7u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(replies[i]["id"], i);
    EXPECT_EQ(replies[i]["ok"], true);
  }
  EXPECT_EQ(replies[5]["error"]["code"], "EINVAL");
  EXPECT_EQ(replies[6]["id"], 99);
  EXPECT_EQ(replies[6]["ok"], true);
  EXPECT_FALSE(closed);
  ::close(fd);
}

TEST_F(ControlServerTest, P2_RequestSplitAcrossWritesIsAnswered) {
  const int fd = Connect();
  SendAll(fd, R"({"v":1,"id":5,)");
  SendAll(fd, R"("verb":"version"})"
              "\n");
  bool closed = false;
  auto replies = Replies(fd, 1, &closed);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0]["id"], 5);
  ::close(fd);
}

TEST_F(ControlServerTest, P2_OversizedLineGetsE2bigThenClose) {
  const int fd = Connect();
  std::thread sender(
      [&] { SendAll(fd, std::string(ControlHandler::kMaxRequestBytes + 4096, 'x') + "\n"); });
  bool closed = false;
  auto replies = Replies(fd, 2, &closed);
  sender.join();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0]["error"]["code"], "E2BIG");
  EXPECT_TRUE(closed);
  ::close(fd);
  // The server goes on serving others.
  const int fd2 = Connect();
  SendAll(fd2, R"({"v":1,"id":1,"verb":"version"})"
               "\n");
  replies = Replies(fd2, 1, &closed);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0]["ok"], true);
  ::close(fd2);
}

TEST_F(ControlServerTest, P2_LineOfExactlyTheLimitIsServed) {
  const int fd = Connect();
  std::string line = R"({"v":1,"id":1,"verb":"version","pad":")";
  line += std::string(ControlHandler::kMaxRequestBytes - line.size() - 2, 'x') + "\"}";
  ASSERT_EQ(line.size(), ControlHandler::kMaxRequestBytes);
  std::thread sender([&] { SendAll(fd, line + "\n"); });
  bool closed = false;
  auto replies = Replies(fd, 1, &closed);
  sender.join();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0]["ok"], true);
  ::close(fd);
}

TEST_F(ControlServerTest, P1_SecondServerOnALiveSocketIsRefused) {
  auto again = ControlServer::Start({path_, {}, std::chrono::seconds(60)}, *handler_);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), EADDRINUSE);
}

TEST_F(ControlServerTest, P1_StaleSocketIsReplaced) {
  server_.reset();
  // A socket file nobody listens on, as a killed daemon leaves it.
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::close(fd);
  auto s = ControlServer::Start({path_, {}, std::chrono::seconds(60)}, *handler_);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  server_ = std::move(*s);
}

// Hardening 3: `suspend upper` waits for a write held by the suspended `lower`. Meanwhile every
// other client is served, including the one whose resume of `lower` lets the suspend finish.
TEST_F(ControlServerTest, Hardening3_ABlockedVerbHoldsUpNoOtherClient) {
  HoldAWriteInLower();
  const int blocked = BlockedSuspendOfUpper();
  for (const char* request :
       {R"({"v":1,"verb":"version"})", R"({"v":1,"verb":"ls"})",
        R"({"v":1,"verb":"info","args":{"name":"upper"}})",
        R"({"v":1,"verb":"table","args":{"name":"upper"}})",
        R"({"v":1,"verb":"status","args":{"name":"lower"}})", R"({"v":1,"verb":"hw.ls"})",
        R"({"v":1,"verb":"hw.info","args":{"name":"hw0"}})", R"({"v":1,"verb":"key.ls"})",
        R"({"v":1,"verb":"metrics"})",
        R"({"v":1,"verb":"create","args":{"name":"other","table":["0 8 zero"]}})"}) {
    EXPECT_EQ(Ask(request)["ok"], true) << request;
  }
  EXPECT_FALSE(Mapped("upper").suspended());
  EXPECT_EQ(Ask(R"({"v":1,"verb":"resume","args":{"name":"lower"}})")["ok"], true);
  writer_.join();
  bool closed = false;
  auto replies = Replies(blocked, 1, &closed);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0]["ok"], true) << replies[0].dump();
  EXPECT_TRUE(Mapped("upper").suspended());
  ::close(blocked);
  EXPECT_EQ(Ask(R"({"v":1,"verb":"resume","args":{"name":"upper"}})")["ok"], true);
}

// Hardening 3: a request's timeout_ms undoes a suspend that cannot finish in time.
TEST_F(ControlServerTest, Hardening3_TimeoutMsUndoesABlockedSuspend) {
  HoldAWriteInLower();
  const int fd = BlockedSuspendOfUpper(R"(,"timeout_ms":300)");
  bool closed = false;
  auto replies = Replies(fd, 1, &closed);
  ::close(fd);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0]["error"]["code"], "ETIMEDOUT") << replies[0].dump();
  EXPECT_FALSE(Mapped("upper").dispatch_blocked());
  EXPECT_FALSE(Mapped("upper").suspended());
  ReleaseTheWrite();
}

// Hardening 3: a client that hangs up while its verb waits cancels it, as killing dmsetup
// interrupts its suspend.
TEST_F(ControlServerTest, Hardening3_HangingUpCancelsAWaitingVerb) {
  HoldAWriteInLower();
  ::close(BlockedSuspendOfUpper());
  EXPECT_TRUE(Eventually([&] { return !Mapped("upper").dispatch_blocked(); }));
  EXPECT_FALSE(Mapped("upper").suspended());
  ReleaseTheWrite();
}

// Hardening 3: stopping the server cancels the verbs that still wait instead of hanging.
TEST_F(ControlServerTest, Hardening3_StoppingTheServerCancelsWaitingVerbs) {
  HoldAWriteInLower();
  const int fd = BlockedSuspendOfUpper();
  server_.reset();
  EXPECT_FALSE(Mapped("upper").dispatch_blocked());
  ::close(fd);
  ReleaseTheWrite();
}

// Hardening 5: connections beyond the cap are answered EAGAIN and closed; the admitted ones are
// served, and a freed place is taken again.
TEST_F(ControlServerTest, Hardening5_ConnectionsBeyondTheCapAreRefused) {
  server_.reset();
  ControlServer::Options opts{path_, {}, std::chrono::seconds(60)};
  opts.max_clients = 3;
  auto s = ControlServer::Start(opts, *handler_);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  server_ = std::move(*s);
  std::vector<int> held;
  bool closed = false;
  for (int i = 0; i < 3; ++i) {
    held.push_back(Connect());
    SendAll(held.back(), R"({"v":1,"verb":"version"})"
                         "\n");
    ASSERT_EQ(Replies(held.back(), 1, &closed).size(), 1u);
  }
  const int extra = Connect();
  auto refused = Replies(extra, 2, &closed);
  ::close(extra);
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0]["error"]["code"], "EAGAIN");
  EXPECT_TRUE(closed);
  ::close(held.back());
  held.pop_back();
  EXPECT_TRUE(Eventually([&] { return Ask(R"({"v":1,"verb":"version"})")["ok"] == true; }));
  for (int fd : held) ::close(fd);
}

}  // namespace
}  // namespace ice::daemon
