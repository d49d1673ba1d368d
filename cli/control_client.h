// icectl's side of the control protocol (docs/control-protocol.md): building request lines,
// one request/reply exchange over the Unix socket with a deadline, and checking a reply's shape.
// icectl knows the daemon only through this protocol.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "block/status.h"
#include "cli/secret_buffer.h"

namespace ice::cli {

// Objects keep the daemon's key order, so --json output and counter tables read as it sent them.
using Json = nlohmann::ordered_json;

inline constexpr int kProtocolVersion = 1;
// The daemon answers a longer request line with E2BIG and closes the connection.
inline constexpr size_t kMaxRequestBytes = 1 << 20;
// A longer reply line is a protocol failure: no legitimate reply comes near it.
inline constexpr size_t kMaxReplyBytes = 16 << 20;

// A reply that has the protocol's shape: ok with a result object, or an error.
struct Reply {
  bool ok = false;
  Json result;                // ok: an object
  int error_errno = 0;        // !ok: > 0
  std::string error_code;     // !ok: "EBUSY"
  std::string error_message;  // !ok: one human line (as sent; may hold newlines)
};

// The request line ("…\n") for `verb` with `args` (an object) and `id`; with a `daemon_timeout`
// (> 0) the daemon gives up waiting after it, undoing what the verb began ("timeout_ms"). EINVAL
// when a string in `args` is not valid UTF-8 (JSON cannot carry it).
Result<std::string> RequestLine(std::string_view verb, const Json& args, int64_t id,
                                std::chrono::milliseconds daemon_timeout = {});

// RequestLine with one more argument, `secret_name`: `secret_hex`, put last in `args`, built in a
// SecretBuffer so that the secret is never copied into memory that is not wiped (P4).
// REQUIRES: secret_hex holds only hex digits; secret_name is not a key of `args`.
Result<SecretBuffer> SecretRequestLine(std::string_view verb, const Json& args, int64_t id,
                                       std::string_view secret_name, std::string_view secret_hex,
                                       std::chrono::milliseconds daemon_timeout = {});

// How long the daemon may wait for a verb when the client waits `client_timeout` for the reply:
// long enough to be useful, short enough that the daemon's ETIMEDOUT reply (the verb undone)
// arrives before the client gives up.
std::chrono::milliseconds DaemonTimeout(std::chrono::milliseconds client_timeout);

// Checks one reply line (without its newline) against the protocol: a JSON object with "v": 1,
// "ok" a boolean, "id" equal to `expected_id` (or null/absent on an error reply, which the daemon
// sends when it could not read the request), and either "result" an object or "error" an object
// with "errno" (> 0), "code" and "message". Anything else: EPROTO, with the reason.
Result<Reply> ParseReply(std::string_view line, int64_t expected_id);

// Connects to `socket_path`, sends `request` (one line with its newline) and returns the first
// reply line without its newline; everything within `timeout` of the call. Errors, each message
// naming the socket: cannot connect (the connect errno, "cannot connect to P: <strerror>"),
// ETIMEDOUT, ECONNRESET (closed before a whole reply), EMSGSIZE (reply over kMaxReplyBytes).
// Never raises SIGPIPE.
Result<std::string> Exchange(const std::string& socket_path, std::string_view request,
                             std::chrono::milliseconds timeout);

}  // namespace ice::cli
