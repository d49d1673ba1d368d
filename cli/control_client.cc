#include "cli/control_client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ice::cli {
namespace {

using Clock = std::chrono::steady_clock;

Status ProtocolError(const std::string& why) { return Status::Error(EPROTO, why); }

// Closes the descriptor on every path out of Exchange.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string Seconds(std::chrono::milliseconds ms) {
  const int64_t n = ms.count();
  if (n % 1000 == 0) return std::to_string(n / 1000) + " s";
  return std::to_string(n) + " ms";
}

// Milliseconds left before `deadline`, for poll(); 0 once it has passed.
int RemainingMs(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (left <= 0) return 0;
  return left > INT32_MAX ? INT32_MAX : static_cast<int>(left);
}

// Waits until `fd` is ready for `events`; false when the deadline passes first.
Result<bool> WaitFor(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int n = poll(&p, 1, RemainingMs(deadline));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return Status::Error(errno, std::strerror(errno));
  }
}

Status Connect(int fd, const std::string& path, std::chrono::milliseconds timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    const int e = path.empty() ? ENOENT : ENAMETOOLONG;
    return Status::Error(e, "cannot connect to " + path + ": " + std::strerror(e));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  // A Unix stream connect blocks only while the listener's backlog is full, for SO_SNDTIMEO.
  timeval tv{static_cast<time_t>(timeout.count() / 1000),
             static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int rc;
  do {
    rc = connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    const int e = errno;
    return Status::Error(e, "cannot connect to " + path + ": " + std::strerror(e));
  }
  if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
    const int e = errno;
    return Status::Error(e, "cannot use the connection to " + path + ": " + std::strerror(e));
  }
  return Status::Ok();
}

// Sends the whole request. A peer that stops reading (it refused the request and closed) is not
// an error here: its reply, if any, says why.
Status SendAll(int fd, std::string_view data, const std::string& path,
               std::chrono::milliseconds timeout, Clock::time_point deadline) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) return Status::Ok();
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      const int e = errno;
      return Status::Error(e, "cannot send to " + path + ": " + std::strerror(e));
    }
    ICE_ASSIGN_OR_RETURN(bool ready, WaitFor(fd, POLLOUT, deadline));
    if (!ready)
      return Status::Error(ETIMEDOUT, "no reply from " + path + " within " + Seconds(timeout));
  }
  return Status::Ok();
}

Result<std::string> ReceiveLine(int fd, const std::string& path, std::chrono::milliseconds timeout,
                                Clock::time_point deadline) {
  std::string buf;
  char chunk[64 * 1024];
  for (;;) {
    const ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n > 0) {
      const size_t old = buf.size();
      buf.append(chunk, static_cast<size_t>(n));
      const size_t eol = buf.find('\n', old);
      if (eol != std::string::npos && eol <= kMaxReplyBytes) {
        buf.resize(eol);
        return buf;
      }
      if (buf.size() > kMaxReplyBytes)
        return Status::Error(EMSGSIZE, "reply from " + path + " exceeds 16 MiB");
      continue;
    }
    if (n == 0) {
      return Status::Error(ECONNRESET,
                           path +
                               " closed the connection without a reply (is this user allowed "
                               "to use the control socket?)");
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      const int e = errno;
      return Status::Error(e, "cannot read the reply from " + path + ": " + std::strerror(e));
    }
    ICE_ASSIGN_OR_RETURN(bool ready, WaitFor(fd, POLLIN, deadline));
    if (!ready)
      return Status::Error(ETIMEDOUT, "no reply from " + path + " within " + Seconds(timeout));
  }
}

}  // namespace

Result<std::string> RequestLine(std::string_view verb, const Json& args, int64_t id,
                                std::chrono::milliseconds daemon_timeout) {
  Json req = Json::object();
  req["v"] = kProtocolVersion;
  req["id"] = id;
  req["verb"] = verb;
  if (daemon_timeout.count() > 0) req["timeout_ms"] = daemon_timeout.count();
  req["args"] = args;  // last: SecretRequestLine appends to it
  try {
    return req.dump() + "\n";
  } catch (const Json::type_error&) {
    return Status::Error(EINVAL, "an argument is not valid UTF-8");
  }
}

std::chrono::milliseconds DaemonTimeout(std::chrono::milliseconds client_timeout) {
  // A tenth of the client's time, at most a second, is left for the reply to arrive.
  const auto margin =
      std::min<std::chrono::milliseconds>(client_timeout / 10, std::chrono::seconds(1));
  return std::max<std::chrono::milliseconds>(client_timeout - margin, std::chrono::milliseconds(1));
}

Result<SecretBuffer> SecretRequestLine(std::string_view verb, const Json& args, int64_t id,
                                       std::string_view secret_name, std::string_view secret_hex,
                                       std::chrono::milliseconds daemon_timeout) {
  // Everything but the secret goes through the JSON library; the secret is spliced in as the last
  // member of "args" (hex needs no escaping), into a buffer sized once.
  ICE_ASSIGN_OR_RETURN(std::string head, RequestLine(verb, args, id, daemon_timeout));
  // head ends with "}}\n": the args object's brace, the request's, the newline.
  head.resize(head.size() - 3);
  const std::string name = Json(secret_name).dump();
  const bool first = args.empty();
  SecretBuffer line(head.size() + 1 + name.size() + 2 + secret_hex.size() + 4);
  line.Append(head);
  if (!first) line.Append(",");
  line.Append(name);
  line.Append(":\"");
  line.Append(secret_hex);
  line.Append("\"}}\n");
  return line;
}

Result<Reply> ParseReply(std::string_view line, int64_t expected_id) {
  const Json doc = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return ProtocolError("the reply is not JSON");
  if (!doc.is_object()) return ProtocolError("the reply is not a JSON object");
  if (!doc.contains("v") || !doc["v"].is_number_integer() || doc["v"] != kProtocolVersion)
    return ProtocolError("the reply is not protocol version 1");
  if (!doc.contains("ok") || !doc["ok"].is_boolean())
    return ProtocolError("the reply has no boolean \"ok\"");
  Reply reply;
  reply.ok = doc["ok"].get<bool>();
  const bool id_matches = doc.contains("id") && doc["id"].is_number_integer() &&
                          doc["id"].get<int64_t>() == expected_id;
  const bool id_unknown = !doc.contains("id") || doc["id"].is_null();
  if (!id_matches && !(id_unknown && !reply.ok))
    return ProtocolError("the reply's id does not match the request's");
  if (reply.ok) {
    if (!doc.contains("result") || !doc["result"].is_object())
      return ProtocolError("the reply has no \"result\" object");
    reply.result = doc["result"];
    return reply;
  }
  if (!doc.contains("error") || !doc["error"].is_object())
    return ProtocolError("the reply has no \"error\" object");
  const Json& e = doc["error"];
  if (!e.contains("errno") || !e["errno"].is_number_integer() || e["errno"].get<int64_t>() <= 0 ||
      e["errno"].get<int64_t>() > INT32_MAX)
    return ProtocolError("the error has no positive \"errno\"");
  if (!e.contains("code") || !e["code"].is_string())
    return ProtocolError("the error has no \"code\" string");
  if (!e.contains("message") || !e["message"].is_string())
    return ProtocolError("the error has no \"message\" string");
  reply.error_errno = static_cast<int>(e["errno"].get<int64_t>());
  reply.error_code = e["code"].get<std::string>();
  reply.error_message = e["message"].get<std::string>();
  return reply;
}

Result<std::string> Exchange(const std::string& socket_path, std::string_view request,
                             std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) {
    const int e = errno;
    return Status::Error(e, std::string("cannot create a socket: ") + std::strerror(e));
  }
  ICE_RETURN_IF_ERROR(Connect(fd.get(), socket_path, timeout));
  ICE_RETURN_IF_ERROR(SendAll(fd.get(), request, socket_path, timeout, deadline));
  return ReceiveLine(fd.get(), socket_path, timeout, deadline);
}

}  // namespace ice::cli
