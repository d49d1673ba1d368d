#include "cli/icectl.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sstream>

namespace ice::cli {
namespace {

using Args = std::vector<std::string>;

struct Parsed {
  ParseOutcome outcome;
  std::string out, err;
};

Parsed Parse(const Args& args, const char* env_socket = nullptr) {
  std::ostringstream out, err;
  Parsed p{ParseCommandLine(args, env_socket, out, err), "", ""};
  p.out = out.str();
  p.err = err.str();
  return p;
}

Invocation MustParse(const Args& args, const char* env_socket = nullptr) {
  Parsed p = Parse(args, env_socket);
  EXPECT_TRUE(p.outcome.invocation.has_value()) << p.err;
  return p.outcome.invocation.value_or(Invocation{});
}

TEST(Icectl, SocketFromFlagElseEnvironmentElseDefault) {
  EXPECT_EQ(MustParse({"ls"}).socket_path, "/run/ice/control.sock");
  EXPECT_EQ(MustParse({"ls"}, "").socket_path, "/run/ice/control.sock");
  EXPECT_EQ(MustParse({"ls"}, "/env.sock").socket_path, "/env.sock");
  EXPECT_EQ(MustParse({"--socket", "/flag.sock", "ls"}, "/env.sock").socket_path, "/flag.sock");
  EXPECT_EQ(MustParse({"ls", "--socket=/late.sock"}).socket_path, "/late.sock");
}

TEST(Icectl, GlobalOptionsBeforeOrAfterTheVerb) {
  Invocation a = MustParse({"--json", "--timeout", "2.5", "info", "lin0"});
  EXPECT_TRUE(a.json);
  EXPECT_EQ(a.timeout, std::chrono::milliseconds(2500));
  Invocation b = MustParse({"info", "lin0", "--json"});
  EXPECT_TRUE(b.json);
  EXPECT_EQ(b.timeout, std::chrono::seconds(30));
}

TEST(Icectl, DeviceVerbsMapToProtocolVerbs) {
  struct Case {
    Args args;
    const char* verb;
    Json args_json;
    Output output;
  };
  const std::vector<Case> cases = {
      {{"ls"}, "ls", Json::object(), Output::kDeviceList},
      {{"clear", "d"}, "clear", {{"name", "d"}}, Output::kNothing},
      {{"suspend", "d"}, "suspend", {{"name", "d"}}, Output::kNothing},
      {{"resume", "d"}, "resume", {{"name", "d"}}, Output::kNothing},
      {{"remove", "d"}, "remove", {{"name", "d"}}, Output::kNothing},
      {{"table", "d"}, "table", {{"name", "d"}}, Output::kLines},
      {{"table", "d", "--inactive"}, "table", {{"name", "d"}, {"inactive", true}}, Output::kLines},
      {{"status", "d"}, "status", {{"name", "d"}}, Output::kLines},
      {{"info", "hw0"}, "info", {{"name", "hw0"}}, Output::kInfo},
      {{"key", "rm", "k"}, "key.rm", {{"name", "k"}}, Output::kNothing},
      {{"key", "ls"}, "key.ls", Json::object(), Output::kKeyList},
      {{"hw", "ls"}, "hw.ls", Json::object(), Output::kHardwareList},
      {{"hw", "info", "hw0"}, "hw.info", {{"name", "hw0"}}, Output::kHardwareInfo},
      {{"hw", "reset", "hw0"}, "hw.reset", {{"name", "hw0"}}, Output::kNothing},
      {{"metrics"}, "metrics", Json::object(), Output::kMetrics},
      {{"export", "check", "lin0@k"}, "export.check", {{"export", "lin0@k"}}, Output::kExportCheck},
      {{"version"}, "version", Json::object(), Output::kVersion},
  };
  for (const Case& c : cases) {
    Invocation inv = MustParse(c.args);
    EXPECT_EQ(inv.verb, c.verb) << c.args[0];
    EXPECT_EQ(inv.args, c.args_json) << c.verb;
    EXPECT_EQ(inv.output, c.output) << c.verb;
    EXPECT_FALSE(inv.key_file.has_value());
    EXPECT_FALSE(inv.table_file.has_value());
  }
}

TEST(Icectl, CreateAndLoadTables) {
  Invocation none = MustParse({"create", "d"});
  EXPECT_EQ(none.args, (Json{{"name", "d"}, {"table", Json::array()}}));

  Invocation lines = MustParse({"create", "d", "--table", "0 8 zero", "--table",
                                "8 8 error # failing tail\n# comment\n16 8 zero"});
  EXPECT_EQ(lines.args["table"], (Json{"0 8 zero", "8 8 error", "16 8 zero"}));

  Invocation file = MustParse({"load", "d", "--table-file", "-"});
  EXPECT_EQ(file.verb, "load");
  EXPECT_EQ(file.table_file, "-");

  EXPECT_EQ(Parse({"load", "d"}).outcome.exit_code, kExitUsage);
  Parsed both = Parse({"create", "d", "--table", "0 8 zero", "--table-file", "f"});
  EXPECT_FALSE(both.outcome.invocation.has_value());
  EXPECT_EQ(both.outcome.exit_code, kExitUsage);
  EXPECT_NE(both.err.find("excludes"), std::string::npos) << both.err;
  // One --table takes one value: a stray word is a usage error, not a second line.
  EXPECT_EQ(Parse({"create", "d", "--table", "0 8 zero", "extra"}).outcome.exit_code, kExitUsage);
}

TEST(Icectl, MessageWordsMayLookLikeOptions) {
  Invocation inv = MustParse({"message", "dust0", "0", "addbadblock", "-1", "--json"});
  EXPECT_EQ(inv.verb, "message");
  EXPECT_EQ(inv.args,
            (Json{{"name", "dust0"}, {"sector", 0}, {"words", {"addbadblock", "-1", "--json"}}}));
  EXPECT_FALSE(inv.json);
  EXPECT_EQ(Parse({"message", "dust0", "0"}).outcome.exit_code, kExitUsage);
  EXPECT_EQ(Parse({"message", "dust0", "x", "enable"}).outcome.exit_code, kExitUsage);
}

TEST(Icectl, P4_KeyAddTakesTheKeyOnlyFromAFile) {
  Invocation inv = MustParse({"key", "add", "k", "--mode", "aes-256-xts", "--data-unit-size",
                              "4096", "--key-file", "/etc/ice/k.key"});
  EXPECT_EQ(inv.verb, "key.add");
  EXPECT_EQ(inv.args, (Json{{"name", "k"}, {"mode", "aes-256-xts"}, {"data_unit_size", 4096}}));
  EXPECT_EQ(inv.key_file, "/etc/ice/k.key");

  Invocation dun = MustParse({"key", "add", "k", "--mode", "aes-256-xts", "--data-unit-size", "512",
                              "--dun-bytes", "4", "--key-file", "-"});
  EXPECT_EQ(dun.args["dun_bytes"], 4);
  EXPECT_EQ(dun.key_file, "-");

  // No way to put key bytes on the command line; every required option is required.
  EXPECT_EQ(Parse({"key", "add", "k", "--mode", "aes-256-xts", "--data-unit-size", "4096", "--key",
                   "00ff"})
                .outcome.exit_code,
            kExitUsage);
  EXPECT_EQ(Parse({"key", "add", "k", "--mode", "aes-256-xts", "--data-unit-size", "4096"})
                .outcome.exit_code,
            kExitUsage);
  EXPECT_EQ(Parse({"key", "add", "k", "--mode", "m", "--data-unit-size", "0", "--key-file", "f"})
                .outcome.exit_code,
            kExitUsage);
}

TEST(Icectl, HwFaultNeedsAtLeastOneFault) {
  Invocation inv = MustParse({"hw", "fault", "hw0", "--fail-programs", "2", "--fail-evictions", "1",
                              "--program-latency-ms", "30"});
  EXPECT_EQ(inv.verb, "hw.fault");
  EXPECT_EQ(inv.args, (Json{{"name", "hw0"},
                            {"fail_programs", 2},
                            {"program_latency_ms", 30},
                            {"fail_evictions", 1}}));
  Parsed none = Parse({"hw", "fault", "hw0"});
  EXPECT_EQ(none.outcome.exit_code, kExitUsage);
  EXPECT_NE(none.err.find("at least one of"), std::string::npos);
  EXPECT_EQ(Parse({"hw", "fault", "hw0", "--fail-programs", "-1"}).outcome.exit_code, kExitUsage);
}

TEST(Icectl, UsageErrorsExitTwoWithCli11sMessage) {
  for (const Args& args : std::vector<Args>{{},
                                            {"frobnicate"},
                                            {"info"},
                                            {"info", "a", "b"},
                                            {"key"},
                                            {"hw", "info"},
                                            {"--timeout", "0", "ls"},
                                            {"--timeout", "x", "ls"},
                                            {"ls", "--bogus"}}) {
    Parsed p = Parse(args);
    EXPECT_FALSE(p.outcome.invocation.has_value());
    EXPECT_EQ(p.outcome.exit_code, kExitUsage) << (args.empty() ? "" : args[0]);
    EXPECT_NE(p.err.find("Run with --help for more information."), std::string::npos) << p.err;
    EXPECT_EQ(p.out, "");
  }
}

TEST(Icectl, HelpExitsZeroOnStdout) {
  Parsed top = Parse({"--help"});
  EXPECT_EQ(top.outcome.exit_code, kExitOk);
  EXPECT_FALSE(top.outcome.invocation.has_value());
  EXPECT_NE(top.out.find("Usage: icectl"), std::string::npos);
  Parsed sub = Parse({"key", "add", "--help"});
  EXPECT_EQ(sub.outcome.exit_code, kExitOk);
  EXPECT_NE(sub.out.find("--key-file"), std::string::npos);
}

struct Ran {
  int code;
  std::string out, err;
};

Ran ExecuteCaptured(const Invocation& inv, int stdin_fd = -1) {
  std::ostringstream out, err;
  const int code = Execute(inv, stdin_fd, out, err);
  return {code, out.str(), err.str()};
}

TEST(Icectl, CannotConnectExitsThreeWithOneLine) {
  for (bool json : {false, true}) {
    Invocation inv = MustParse({"--socket", "/nonexistent/control.sock", "ls"});
    inv.json = json;
    Ran r = ExecuteCaptured(inv);
    EXPECT_EQ(r.code, kExitUnreachable);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err,
              "icectl: error: cannot connect to /nonexistent/control.sock: No such file or "
              "directory\n");
  }
}

TEST(Icectl, P4_WorldReadableKeyFileRefusedBeforeConnecting) {
  char path[] = "/tmp/ice-cli-key-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "0123456789abcdef", 16), 16);
  close(fd);
  ASSERT_EQ(chmod(path, 0644), 0);
  Invocation inv = MustParse({"--socket", "/nonexistent/control.sock", "key", "add", "k", "--mode",
                              "aes-128-cbc-essiv", "--data-unit-size", "4096", "--key-file", path});
  Ran r = ExecuteCaptured(inv);
  unlink(path);
  EXPECT_EQ(r.code, kExitFailed);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, std::string("icectl: error: key file ") + path +
                       " has mode 0644: it must not be accessible by group or others (chmod 600 " +
                       path + ")\n");
}

// Hardening 9: a key in hex on the command line is in every user's `ps`: icectl refuses it before
// connecting, pointing to --table-file and the keyring form. Lines without one go as before.
TEST(Icectl, Hardening9_TableWithAHexKeyOnTheCommandLineIsRefused) {
  const std::string key(128, 'a');
  for (const Args& args : {
           Args{"create", "d", "--table", "0 8 default-key aes-xts-plain64 " + key + " 0 hw0 0"},
           Args{"load", "d", "--table", "0 8 zero", "--table",
                "8 8 default-key " + key + " aes-xts-plain64 0 hw0 0"},  // shifted fields
       }) {
    Args full = {"--socket", "/nonexistent/control.sock"};
    full.insert(full.end(), args.begin(), args.end());
    Ran r = ExecuteCaptured(MustParse(full));
    EXPECT_EQ(r.code, kExitFailed) << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find("icectl: error: table line"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("--table-file"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(":<size>:logon:<name>"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find(key.substr(0, 32)), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("cannot connect"), std::string::npos) << "sent anyway: " << r.err;
  }
  // A keyring reference, or no key at all, reaches the daemon (here: cannot connect).
  Ran ok =
      ExecuteCaptured(MustParse({"--socket", "/nonexistent/control.sock", "create", "d", "--table",
                                 "0 8 default-key aes-xts-plain64 :64:logon:k 0 hw0 0"}));
  EXPECT_EQ(ok.code, kExitUnreachable) << ok.err;
}

TEST(Icectl, UnreadableTableFileFailsBeforeConnecting) {
  Invocation inv =
      MustParse({"--socket", "/nonexistent/s", "create", "d", "--table-file", "/nonexistent/t"});
  Ran r = ExecuteCaptured(inv);
  EXPECT_EQ(r.code, kExitFailed);
  EXPECT_EQ(r.err,
            "icectl: error: cannot open table file /nonexistent/t: No such file or directory\n");
}

}  // namespace
}  // namespace ice::cli
