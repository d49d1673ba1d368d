// icectl: the command line of the control protocol (DESIGN.md "Interface contract"; rules P1–P6,
// T7). `icectl [--socket P] [--json] [--timeout S] VERB …`; the verbs are dmsetup's for mapped
// devices plus key, hw, metrics and export verbs. Exit codes: kExitOk; kExitFailed when the daemon
// refused the command or icectl refused its input (a key or table file); kExitUsage for a bad
// command line (CLI11's message); kExitUnreachable when the daemon cannot be reached or its reply
// breaks the protocol. Every failure prints one line, "icectl: error: …", on stderr; --json
// prints the reply's result as one JSON document on stdout, and nothing on stdout on failure. A
// success may carry warnings (create, load): one "icectl: warning: …" line each on stderr, in
// either mode, and the exit status stays 0.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "cli/control_client.h"

namespace ice::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnreachable = 3;

inline constexpr const char* kDefaultSocket = "/run/ice/control.sock";
inline constexpr std::chrono::seconds kDefaultTimeout{30};

// How a verb's result is printed without --json (format.h).
enum class Output {
  kNothing,
  kInfo,
  kDeviceList,
  kLines,
  kMessage,
  kKeyList,
  kHardwareList,
  kHardwareInfo,
  kMetrics,
  kExportCheck,
  kVersion,
};

// One parsed command line: the request to send and how to print its reply.
struct Invocation {
  std::string socket_path;  // --socket, else $ICE_SOCKET, else kDefaultSocket
  bool json = false;
  std::chrono::milliseconds timeout = kDefaultTimeout;
  std::string verb;  // the protocol's verb ("key.add")
  Json args = Json::object();
  Output output = Output::kNothing;
  // create/load with --table-file: read when run, into args["table"].
  std::optional<std::string> table_file;
  // key add: the key file ("-" = stdin), read when run, sent as args["key_hex"].
  std::optional<std::string> key_file;
};

struct ParseOutcome {
  std::optional<Invocation> invocation;  // absent when there is nothing to run
  int exit_code = kExitOk;               // when absent: kExitOk (--help) or kExitUsage
};

// Parses icectl's arguments (without the program name). `env_socket` is $ICE_SOCKET, nullptr when
// unset (an empty value counts as unset). --help prints to `out`; a usage error prints CLI11's
// message to `err`.
ParseOutcome ParseCommandLine(const std::vector<std::string>& args, const char* env_socket,
                              std::ostream& out, std::ostream& err);

// Reads the invocation's key or table input (from `stdin_fd` for "-"), sends the request, checks
// and prints the reply. Returns the exit code. Table lines in `args` came from the command line:
// one holding a key in hex is refused (kExitFailed) and nothing is sent.
int Execute(const Invocation& inv, int stdin_fd, std::ostream& out, std::ostream& err);

// ParseCommandLine + Execute on the process's own arguments, environment and standard streams.
int Main(int argc, char** argv);

}  // namespace ice::cli
