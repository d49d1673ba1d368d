#include "cli/icectl.h"

#include <sys/prctl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <map>

#include "cli/format.h"
#include "cli/key_file.h"
#include "cli/table_input.h"
#include "ice_version.h"

namespace ice::cli {
namespace {

// The values every subcommand's options are parsed into; only one subcommand runs per call.
struct Values {
  std::string socket;
  bool json = false;
  double timeout_s = static_cast<double>(kDefaultTimeout.count());
  std::string name;
  std::vector<std::string> table_lines;
  std::string table_file;
  bool inactive = false;
  int64_t sector = 0;
  std::vector<std::string> words;
  std::string mode;
  int64_t data_unit_size = 0;
  int64_t dun_bytes = 0;
  std::string key_file;
  int64_t fail_programs = 0;
  int64_t program_latency_ms = 0;
  int64_t fail_evictions = 0;
};

// What a leaf subcommand sends and prints.
struct VerbSpec {
  std::string verb;
  Output output = Output::kNothing;
  bool takes_name = false;
  bool takes_table = false;  // create, load
  bool needs_table = false;  // load
};

std::string NameHelp(const std::string& verb) {
  if (verb.rfind("key.", 0) == 0) return "key name";
  if (verb.rfind("hw.", 0) == 0) return "hardware device name";
  if (verb == "info") return "device name (mapped or hardware)";
  return "mapped device name";
}

class CommandLine {
 public:
  CommandLine()
      : app_("icectl: control the ice daemon (inline-encryption block devices)", "icectl") {
    app_.require_subcommand(1);
    // Global options are accepted after the verb too ("icectl info lin0 --json").
    app_.fallthrough();
    app_.set_version_flag("--version", std::string("icectl ") + ice::kVersion);
    app_.add_option(
        "--socket", v_.socket,
        std::string("control socket (default: $ICE_SOCKET, else ") + kDefaultSocket + ")");
    app_.add_flag("--json", v_.json, "print the reply's result as one JSON document");
    app_.add_option("--timeout", v_.timeout_s,
                    "seconds to wait for the daemon (default 30); a verb that cannot finish "
                    "sooner (a suspend waiting for I/O) is undone and fails with ETIMEDOUT")
        ->check(CLI::Range(0.001, 86400.0));
    AddDeviceVerbs();
    AddKeyVerbs();
    AddHardwareVerbs();
    Leaf(&app_, "metrics", "print the daemon's metrics (Prometheus text)",
         {"metrics", Output::kMetrics});
    CLI::App* exp = Group("export", "NBD exports");
    CLI::App* check = Leaf(exp, "check", "check that an export would open, as a client's would",
                           {"export.check", Output::kExportCheck});
    check->add_option("EXPORT", v_.name, "NAME or NAME@KEY")->required();
    Leaf(&app_, "version", "print the daemon's version", {"version", Output::kVersion});
  }

  ParseOutcome Parse(const std::vector<std::string>& args, const char* env_socket,
                     std::ostream& out, std::ostream& err) {
    ParseOutcome outcome;
    try {
      std::vector<std::string> reversed(args.rbegin(), args.rend());
      app_.parse(reversed);
      outcome.invocation = Build(env_socket);
    } catch (const CLI::ParseError& e) {
      outcome.exit_code = app_.exit(e, out, err) == 0 ? kExitOk : kExitUsage;
    }
    return outcome;
  }

 private:
  CLI::App* Group(const std::string& name, const std::string& help) {
    CLI::App* g = app_.add_subcommand(name, help);
    g->require_subcommand(1);
    return g;
  }

  CLI::App* Leaf(CLI::App* parent, const std::string& name, const std::string& help,
                 VerbSpec spec) {
    CLI::App* sub = parent->add_subcommand(name, help);
    if (spec.takes_name) sub->add_option("NAME", v_.name, NameHelp(spec.verb))->required();
    if (spec.takes_table) {
      CLI::Option* lines = sub->add_option("--table", v_.table_lines,
                                           "a table line, 'start length target args…' "
                                           "(repeatable)");
      lines->allow_extra_args(false);
      CLI::Option* file = sub->add_option("--table-file", v_.table_file,
                                          "a file with one table line a line ('-': stdin)");
      lines->excludes(file);
    }
    specs_[sub] = std::move(spec);
    return sub;
  }

  void AddDeviceVerbs() {
    Leaf(&app_, "ls", "list mapped devices", {"ls", Output::kDeviceList});
    Leaf(&app_, "create", "create a mapped device (with no table unless one is given)",
         {"create", Output::kNothing, true, true});
    Leaf(&app_, "load", "load a table into a device's inactive slot",
         {"load", Output::kNothing, true, true, true});
    Leaf(&app_, "clear", "drop a device's inactive table", {"clear", Output::kNothing, true});
    Leaf(&app_, "suspend", "suspend a device", {"suspend", Output::kNothing, true});
    Leaf(&app_, "resume", "resume a device (its inactive table becomes live)",
         {"resume", Output::kNothing, true});
    Leaf(&app_, "remove", "remove a device", {"remove", Output::kNothing, true});
    CLI::App* table =
        Leaf(&app_, "table", "print a device's table", {"table", Output::kLines, true});
    table->add_flag("--inactive", v_.inactive, "the inactive table instead of the live one");
    Leaf(&app_, "status", "print a device's target status", {"status", Output::kLines, true});
    Leaf(&app_, "info", "print a device's state (dmsetup's info layout)",
         {"info", Output::kInfo, true});
    CLI::App* message = Leaf(&app_, "message", "send a message to the target at SECTOR",
                             {"message", Output::kMessage, true});
    message->add_option("SECTOR", v_.sector, "a sector inside the target")
        ->required()
        ->check(CLI::NonNegativeNumber);
    message->add_option("WORDS", v_.words, "the message")->required();
    // Message words may start with '-': everything after the first positional is a word.
    message->positionals_at_end();
  }

  void AddKeyVerbs() {
    CLI::App* key = Group("key", "keys of the daemon's registry");
    CLI::App* add = Leaf(key, "add", "add a key read from a file or stdin (never the command line)",
                         {"key.add", Output::kNothing, true});
    add->add_option("--mode", v_.mode, "crypto mode (aes-256-xts, aes-128-cbc-essiv)")->required();
    add->add_option("--data-unit-size", v_.data_unit_size, "bytes per data unit")
        ->required()
        ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
    add->add_option("--dun-bytes", v_.dun_bytes, "bytes of the largest DUN (default 8)")
        ->check(CLI::Range(int64_t{0}, int64_t{64}));
    add->add_option("--key-file", v_.key_file, "raw key bytes; mode 0600 or stricter ('-': stdin)")
        ->required();
    Leaf(key, "rm", "remove a key (evicting it from every device)",
         {"key.rm", Output::kNothing, true});
    Leaf(key, "ls", "list keys (never their bytes)", {"key.ls", Output::kKeyList});
  }

  void AddHardwareVerbs() {
    CLI::App* hw = Group("hw", "emulated inline-encryption hardware");
    Leaf(hw, "ls", "list hardware devices", {"hw.ls", Output::kHardwareList});
    Leaf(hw, "info", "print a device's keyslots and counters",
         {"hw.info", Output::kHardwareInfo, true});
    Leaf(hw, "reset", "reset a device (its keyslots lose their keys)",
         {"hw.reset", Output::kNothing, true});
    CLI::App* fault =
        Leaf(hw, "fault", "make a device misbehave", {"hw.fault", Output::kNothing, true});
    fault->add_option("--fail-programs", v_.fail_programs, "fail the next N keyslot programs")
        ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
    fault
        ->add_option("--program-latency-ms", v_.program_latency_ms,
                     "delay every keyslot program by N ms")
        ->check(CLI::Range(int64_t{0}, int64_t{3600} * 1000));
    fault->add_option("--fail-evictions", v_.fail_evictions, "fail the next N evictions")
        ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  }

  // The chosen leaf subcommand.
  CLI::App* Leaf() const {
    CLI::App* app = app_.get_subcommands().front();
    while (!app->get_subcommands().empty()) app = app->get_subcommands().front();
    return app;
  }

  Invocation Build(const char* env_socket) {
    CLI::App* leaf = Leaf();
    const VerbSpec& spec = specs_.at(leaf);
    Invocation inv;
    if (app_.count("--socket") > 0) {
      inv.socket_path = v_.socket;
    } else if (env_socket != nullptr && *env_socket != '\0') {
      inv.socket_path = env_socket;
    } else {
      inv.socket_path = kDefaultSocket;
    }
    inv.json = v_.json;
    inv.timeout = std::chrono::milliseconds(std::llround(v_.timeout_s * 1000));
    inv.verb = spec.verb;
    inv.output = spec.output;
    Json& a = inv.args;
    if (spec.verb == "export.check") a["export"] = v_.name;
    if (spec.takes_name) a["name"] = v_.name;
    if (spec.takes_table) {
      const bool has_lines = leaf->count("--table") > 0;
      const bool has_file = leaf->count("--table-file") > 0;
      if (spec.needs_table && !has_lines && !has_file)
        throw CLI::RequiredError("--table or --table-file");
      Json lines = Json::array();
      for (const std::string& value : v_.table_lines)
        for (std::string& l : ParseTableText(value)) lines.push_back(std::move(l));
      a["table"] = std::move(lines);
      if (has_file) inv.table_file = v_.table_file;
    }
    if (spec.verb == "table" && v_.inactive) a["inactive"] = true;
    if (spec.verb == "message") {
      a["sector"] = v_.sector;
      a["words"] = v_.words;
    }
    if (spec.verb == "key.add") {
      a["mode"] = v_.mode;
      a["data_unit_size"] = v_.data_unit_size;
      if (leaf->count("--dun-bytes") > 0) a["dun_bytes"] = v_.dun_bytes;
      inv.key_file = v_.key_file;
    }
    if (spec.verb == "hw.fault") {
      if (leaf->count("--fail-programs") > 0) a["fail_programs"] = v_.fail_programs;
      if (leaf->count("--program-latency-ms") > 0) a["program_latency_ms"] = v_.program_latency_ms;
      if (leaf->count("--fail-evictions") > 0) a["fail_evictions"] = v_.fail_evictions;
      if (a.size() == 1) {
        throw CLI::ValidationError("hw fault",
                                   "give at least one of --fail-programs, --program-latency-ms, "
                                   "--fail-evictions");
      }
    }
    return inv;
  }

  CLI::App app_;
  Values v_;
  std::map<const CLI::App*, VerbSpec> specs_;
};

Result<std::string> Format(Output output, const Json& result) {
  switch (output) {
    case Output::kNothing:
      return FormatNothing(result);
    case Output::kInfo:
      return FormatInfo(result);
    case Output::kDeviceList:
      return FormatDeviceList(result);
    case Output::kLines:
      return FormatLines(result);
    case Output::kMessage:
      return FormatMessageReply(result);
    case Output::kKeyList:
      return FormatKeyList(result);
    case Output::kHardwareList:
      return FormatHardwareList(result);
    case Output::kHardwareInfo:
      return FormatHardwareInfo(result);
    case Output::kMetrics:
      return FormatMetrics(result);
    case Output::kExportCheck:
      return FormatExportCheck(result);
    case Output::kVersion:
      return FormatVersion(result);
  }
  return FormatNothing(result);
}

// Prints "icectl: <kind>: <message>" as one line.
void Say(std::ostream& err, const char* kind, std::string message) {
  for (char& c : message)
    if (c == '\n' || c == '\r') c = ' ';
  err << "icectl: " << kind << ": " << message << std::endl;
}

// Prints "icectl: error: <message>" as one line and returns `code`.
int Fail(std::ostream& err, const std::string& message, int code) {
  Say(err, "error", message);
  return code;
}

}  // namespace

ParseOutcome ParseCommandLine(const std::vector<std::string>& args, const char* env_socket,
                              std::ostream& out, std::ostream& err) {
  CommandLine cl;
  return cl.Parse(args, env_socket, out, err);
}

int Execute(const Invocation& inv, int stdin_fd, std::ostream& out, std::ostream& err) {
  constexpr int64_t kId = 1;
  Json args = inv.args;
  if (inv.table_file) {
    auto lines = ReadTableFile(*inv.table_file, stdin_fd);
    if (!lines.ok()) return Fail(err, lines.status().message(), kExitFailed);
    args["table"] = *lines;
  } else if (args.contains("table")) {
    // Too late to hide the key (it is in our argv), but not to stop the habit.
    Status s = CheckCommandLineTable(args["table"].get<std::vector<std::string>>());
    if (!s.ok()) return Fail(err, s.message(), kExitFailed);
  }

  // The request line; for key.add it holds the key and lives only in a SecretBuffer.
  std::optional<SecretBuffer> secret_line;
  std::string plain_line;
  if (inv.key_file) {
    // Keep the key out of core dumps (and away from same-user ptrace) for the rest of the run.
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    auto key = ReadKeyFile(*inv.key_file, stdin_fd);
    if (!key.ok()) return Fail(err, key.status().message(), kExitFailed);
    const SecretBuffer hex = HexEncode(key->view());
    auto line =
        SecretRequestLine(inv.verb, args, kId, "key_hex", hex.view(), DaemonTimeout(inv.timeout));
    if (!line.ok()) return Fail(err, line.status().message(), kExitUsage);
    secret_line.emplace(std::move(*line));
  } else {
    auto line = RequestLine(inv.verb, args, kId, DaemonTimeout(inv.timeout));
    if (!line.ok()) return Fail(err, line.status().message(), kExitUsage);
    plain_line = std::move(*line);
  }
  const std::string_view request = secret_line ? secret_line->view() : plain_line;
  if (request.size() > kMaxRequestBytes) {
    return Fail(err,
                "the request is " + std::to_string(request.size()) +
                    " bytes; the control protocol takes at most 1 MiB",
                kExitFailed);
  }

  auto reply_line = Exchange(inv.socket_path, request, inv.timeout);
  secret_line.reset();
  if (!reply_line.ok()) return Fail(err, reply_line.status().message(), kExitUnreachable);
  auto reply = ParseReply(*reply_line, kId);
  if (!reply.ok()) {
    return Fail(err, "malformed reply from " + inv.socket_path + ": " + reply.status().message(),
                kExitUnreachable);
  }
  if (!reply->ok) {
    return Fail(err, reply->error_message.empty() ? reply->error_code : reply->error_message,
                kExitFailed);
  }
  // Checked in --json mode too, so that both modes agree on what a good reply is.
  auto text = Format(inv.output, reply->result);
  auto warnings = Warnings(reply->result);
  if (!text.ok() || !warnings.ok()) {
    return Fail(err,
                "malformed reply from " + inv.socket_path + " to " + inv.verb + ": " +
                    (text.ok() ? warnings.status() : text.status()).message(),
                kExitUnreachable);
  }
  // Hardening 10: the command succeeded, but the user must know (exit status 0).
  for (const std::string& w : *warnings) Say(err, "warning", w);
  if (inv.json) {
    out << reply->result.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  } else {
    out << *text;
  }
  out.flush();
  if (!out) return Fail(err, "cannot write to standard output", kExitFailed);
  return kExitOk;
}

int Main(int argc, char** argv) {
  try {
    std::vector<std::string> args(argv + 1, argv + argc);
    ParseOutcome parsed = ParseCommandLine(args, std::getenv("ICE_SOCKET"), std::cout, std::cerr);
    if (!parsed.invocation) return parsed.exit_code;
    return Execute(*parsed.invocation, STDIN_FILENO, std::cout, std::cerr);
  } catch (const std::exception& e) {
    return Fail(std::cerr, std::string("internal error: ") + e.what(), kExitFailed);
  }
}

}  // namespace ice::cli
