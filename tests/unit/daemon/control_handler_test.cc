#include "daemon/control_handler.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "config/config.h"
#include "daemon/engine.h"
#include "ice_version.h"
#include "tests/unit/daemon/engine_test_util.h"

namespace ice::daemon {
namespace {

using json = nlohmann::json;

constexpr const char* kKeyHex =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f";

// An engine with one hardware device (inline XTS at 4096) and one mapped device over it.
class ControlHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config::Config cfg;
    cfg.hardware.push_back(testing::XtsHardware("hw0"));
    cfg.devices.push_back({"lin0", {"0 2048 linear hw0 0"}});
    auto e = Engine::Create(cfg);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    engine_ = std::move(*e);
    handler_ = std::make_unique<ControlHandler>(*engine_);
  }

  json Call(std::string_view line) {
    const std::string reply = handler_->Handle(line);
    EXPECT_EQ(reply.find('\n'), std::string::npos) << "a reply is one line";
    json j = json::parse(reply, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << reply;
    return j;
  }
  json Verb(const std::string& verb, json args = json::object(), json id = 1) {
    return Call(json{{"v", 1}, {"id", id}, {"verb", verb}, {"args", args}}.dump());
  }
  static std::string Code(const json& reply) {
    if (reply.value("ok", true)) return "ok";
    return reply["error"]["code"].get<std::string>();
  }

  std::unique_ptr<Engine> engine_;
  std::unique_ptr<ControlHandler> handler_;
};

TEST_F(ControlHandlerTest, P2_VersionReplyHasTheProtocolShape) {
  json r = Verb("version", json::object(), 7);
  EXPECT_EQ(r["v"], 1);
  EXPECT_EQ(r["id"], 7);
  EXPECT_EQ(r["ok"], true);
  EXPECT_EQ(r["result"]["protocol"], 1);
  EXPECT_EQ(r["result"]["version"], ice::kVersion);
}

// Issue 18: hw.ls (and hw.info) say which daemon answers, with the one version CMake writes.
TEST_F(ControlHandlerTest, HardwareListingsCarryTheDaemonVersion) {
  EXPECT_EQ(Verb("hw.ls")["result"]["daemon"]["version"], ice::kVersion);
  EXPECT_EQ(Verb("hw.info", {{"name", "hw0"}})["result"]["daemon"]["version"], ice::kVersion);
  EXPECT_STRNE(ice::kVersion, "");
}

TEST_F(ControlHandlerTest, P2_NotJsonIsEinval) {
  json r = Call("this is not json");
  EXPECT_EQ(Code(r), "EINVAL");
  EXPECT_EQ(r["v"], 1);
  EXPECT_TRUE(r["id"].is_null());
  EXPECT_FALSE(r["error"]["message"].get<std::string>().empty());
  EXPECT_EQ(Code(Call("")), "EINVAL");
  EXPECT_EQ(Code(Call("{\"v\":1,\"verb\":\"version\"")), "EINVAL");  // truncated
}

TEST_F(ControlHandlerTest, P2_NonObjectIsEinval) {
  EXPECT_EQ(Code(Call("[1,2,3]")), "EINVAL");
  EXPECT_EQ(Code(Call("\"version\"")), "EINVAL");
  EXPECT_EQ(Code(Call("42")), "EINVAL");
  EXPECT_EQ(Code(Call("null")), "EINVAL");
}

TEST_F(ControlHandlerTest, P2_DeeplyNestedJsonIsRefusedWithoutCrashing) {
  // Half a MiB of nesting: neither the parser nor the destructor may recurse that deep.
  const std::string deep = std::string(256 * 1024, '[') + std::string(256 * 1024, ']');
  EXPECT_EQ(Code(Call(deep)), "EINVAL");
  const std::string deep_args =
      "{\"v\":1,\"verb\":\"ls\",\"args\":{\"x\":" + std::string(200 * 1024, '[') +
      std::string(200 * 1024, ']') + "}}";
  EXPECT_EQ(Code(Call(deep_args)), "EINVAL");
}

TEST_F(ControlHandlerTest, P2_WrongOrMissingVersionIsEproto) {
  EXPECT_EQ(Code(Call(R"({"v":2,"id":1,"verb":"version"})")), "EPROTO");
  EXPECT_EQ(Code(Call(R"({"v":"1","id":1,"verb":"version"})")), "EPROTO");
  EXPECT_EQ(Code(Call(R"({"id":1,"verb":"version"})")), "EPROTO");
}

TEST_F(ControlHandlerTest, P2_IdIsEchoedOnErrorsToo) {
  json r = Call(R"({"v":1,"id":12,"verb":"nosuch"})");
  EXPECT_EQ(r["id"], 12);
  EXPECT_EQ(Call(R"({"v":2,"id":"x","verb":"version"})")["id"], "x");
  EXPECT_TRUE(Call(R"({"v":1,"verb":"version"})")["id"].is_null());
}

// Hardening 2: ids are scalars; a structured id (which a deep one would copy and print
// recursively) is refused without being echoed.
TEST_F(ControlHandlerTest, Hardening2_StructuredIdsAreRefused) {
  for (const char* id : {R"({"a":[1,"b"]})", "[1]", "{}"}) {
    json r = Call(std::string(R"({"v":1,"verb":"version","id":)") + id + "}");
    EXPECT_EQ(Code(r), "EINVAL") << id;
    EXPECT_TRUE(r["id"].is_null()) << id;
  }
  EXPECT_EQ(Code(Call(R"({"v":1,"verb":"version","id":null})")), "ok");
  EXPECT_EQ(Call(R"({"v":1,"verb":"version","id":1.5})")["id"], 1.5);
}

// Hardening 2: a 100,000-level id (200 KB) crashed the control thread; every depth beyond what a
// request needs is refused by the parser, wherever it is.
TEST_F(ControlHandlerTest, Hardening2_DeeplyNestedIdIsRefusedWithoutCrashing) {
  const std::string deep_id = std::string(100000, '[') + std::string(100000, ']');
  json r = Call(R"({"v":1,"verb":"version","id":)" + deep_id + "}");
  EXPECT_EQ(Code(r), "EINVAL");
  EXPECT_NE(r["error"]["message"].get<std::string>().find("deeper"), std::string::npos);
  const std::string deep_obj = std::string(50000, '{') + std::string(50000, '}');
  EXPECT_EQ(Code(Call(R"({"v":1,"verb":"version","id":)" + deep_obj + "}")), "EINVAL");
  json shallow = json::array();
  for (int i = 0; i < ControlHandler::kMaxDepth - 2; ++i) shallow = json::array({shallow});
  EXPECT_EQ(Code(Verb("ls", {{"x", shallow}})), "EINVAL");  // refused as an unknown arg, parsed
}

// Hardening 3: "timeout_ms" bounds how long a verb may wait; a bad one is refused.
TEST_F(ControlHandlerTest, Hardening3_TimeoutMsIsCheckedAndSetsTheDeadline) {
  EXPECT_EQ(Code(Call(R"({"v":1,"verb":"version","timeout_ms":0})")), "EINVAL");
  EXPECT_EQ(Code(Call(R"({"v":1,"verb":"version","timeout_ms":"5"})")), "EINVAL");
  EXPECT_EQ(Code(Call(R"({"v":1,"verb":"version","timeout_ms":1e20})")), "EINVAL");
  EXPECT_EQ(Code(Call(R"({"v":1,"verb":"version","timeout_ms":1000})")), "ok");
  Interrupt stop;
  json r = json::parse(
      handler_->Handle(R"({"v":1,"verb":"suspend","args":{"name":"lin0"},"timeout_ms":1})", stop));
  EXPECT_EQ(Code(r), "ok");  // nothing in flight: the suspend needs no wait
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(stop.Check("x").code(), ETIMEDOUT);
  EXPECT_EQ(Verb("info", {{"name", "lin0"}})["result"]["state"], "SUSPENDED");
  EXPECT_EQ(Code(Verb("resume", {{"name", "lin0"}})), "ok");
}

TEST_F(ControlHandlerTest, P2_MissingOrMistypedVerbIsEinval) {
  EXPECT_EQ(Code(Call(R"({"v":1,"id":1})")), "EINVAL");
  EXPECT_EQ(Code(Call(R"({"v":1,"id":1,"verb":7})")), "EINVAL");
  EXPECT_EQ(Code(Call(R"({"v":1,"id":1,"verb":null})")), "EINVAL");
}

TEST_F(ControlHandlerTest, P2_UnknownVerbIsEopnotsuppNamingIt) {
  json r = Verb("frobnicate");
  EXPECT_EQ(Code(r), "EOPNOTSUPP");
  EXPECT_NE(r["error"]["message"].get<std::string>().find("frobnicate"), std::string::npos);
}

TEST_F(ControlHandlerTest, P2_ArgsMustBeAnObject) {
  EXPECT_EQ(Code(Call(R"({"v":1,"id":1,"verb":"ls","args":[]})")), "EINVAL");
  EXPECT_EQ(Code(Call(R"({"v":1,"id":1,"verb":"ls","args":"x"})")), "EINVAL");
  EXPECT_EQ(Code(Call(R"({"v":1,"id":1,"verb":"ls"})")), "ok");  // optional when none are taken
}

TEST_F(ControlHandlerTest, P2_UnknownMissingAndMistypedArgsAreEinval) {
  EXPECT_EQ(Code(Verb("ls", {{"x", 1}})), "EINVAL");
  EXPECT_EQ(Code(Verb("info")), "EINVAL");
  EXPECT_EQ(Code(Verb("info", {{"name", 7}})), "EINVAL");
  EXPECT_EQ(Code(Verb("table", {{"name", "lin0"}, {"inactive", "yes"}})), "EINVAL");
  EXPECT_EQ(Code(Verb("create", {{"name", "x"}, {"table", "0 8 zero"}})), "EINVAL");
  EXPECT_EQ(Code(Verb("create", {{"name", "x"}, {"table", {1, 2}}})), "EINVAL");
  EXPECT_EQ(Code(Verb("load", {{"name", "lin0"}})), "EINVAL");
  EXPECT_EQ(Code(Verb("message", {{"name", "lin0"}, {"sector", -1}, {"words", {"x"}}})), "EINVAL");
  EXPECT_EQ(Code(Verb("message", {{"name", "lin0"}, {"sector", 0}, {"words", json::array()}})),
            "EINVAL");
  EXPECT_EQ(Code(Verb("message", {{"name", "lin0"}, {"sector", 1.5}, {"words", {"x"}}})), "EINVAL");
  EXPECT_EQ(Code(Verb("hw.fault", {{"name", "hw0"}})), "EINVAL");
  EXPECT_EQ(Code(Verb("hw.fault", {{"name", "hw0"}, {"fail_programs", -5}})), "EINVAL");
  EXPECT_EQ(Code(Verb("hw.fault", {{"name", "hw0"}, {"program_latency_ms", 1e12}})), "EINVAL");
}

// Devices as device-mapper says it (ENXIO); hardware, keys and exports ENOENT.
TEST_F(ControlHandlerTest, P2_UnknownObjectsAreRefusedByName) {
  json r = Verb("info", {{"name", "nosuch"}});
  EXPECT_EQ(Code(r), "ENXIO");
  EXPECT_NE(r["error"]["message"].get<std::string>().find("nosuch"), std::string::npos);
  EXPECT_EQ(Code(Verb("hw.info", {{"name", "lin0"}})), "ENOENT");
  EXPECT_EQ(Code(Verb("key.rm", {{"name", "nosuch"}})), "ENOENT");
  EXPECT_EQ(Code(Verb("export.check", {{"export", "hw0@nosuch"}})), "ENOENT");
}

TEST_F(ControlHandlerTest, P2_TooLargeReplyIsE2big) {
  json r = json::parse(ControlHandler::TooLargeReply());
  EXPECT_EQ(Code(r), "E2BIG");
  EXPECT_EQ(r["v"], 1);
}

TEST_F(ControlHandlerTest, P3_FailedKeyAddsChangeNothing) {
  const json before = Verb("key.ls")["result"];
  auto add = [&](json args) { return Code(Verb("key.add", args)); };
  json good = {
      {"name", "k"}, {"mode", "aes-256-xts"}, {"data_unit_size", 4096}, {"key_hex", kKeyHex}};
  json a = good;
  a["key_hex"] = std::string(kKeyHex).substr(0, 64);  // 32 bytes for a 64-byte mode
  EXPECT_EQ(add(a), "EINVAL");
  a["key_hex"] = std::string(kKeyHex).substr(0, 127);  // odd number of digits
  EXPECT_EQ(add(a), "EINVAL");
  a["key_hex"] = std::string(127, '0') + "g";  // not hex
  EXPECT_EQ(add(a), "EINVAL");
  a = good;
  a["mode"] = "rot13";
  EXPECT_EQ(add(a), "EINVAL");
  a = good;
  a["data_unit_size"] = 1000;
  EXPECT_EQ(add(a), "EINVAL");
  a = good;
  a["dun_bytes"] = 65;
  EXPECT_EQ(add(a), "EINVAL");
  a = good;
  a["extra"] = true;
  EXPECT_EQ(add(a), "EINVAL");
  a = good;
  a.erase("key_hex");
  EXPECT_EQ(add(a), "EINVAL");
  EXPECT_EQ(Verb("key.ls")["result"], before);
  EXPECT_EQ(add(good), "ok");
  EXPECT_EQ(add(good), "EEXIST");
}

// Hardening 10: the reply to create and load carries the table's warnings; other replies stay {}.
TEST_F(ControlHandlerTest, Hardening10_CreateAndLoadRepliesCarryWarnings) {
  const json corrupts = {"0 2048 flakey hw0 0 0 1 5 corrupt_bio_byte 1 w 0 0"};
  json r = Verb("create", {{"name", "fl"}, {"table", corrupts}});
  ASSERT_EQ(Code(r), "ok") << r.dump();
  ASSERT_TRUE(r["result"]["warnings"].is_array()) << r.dump();
  ASSERT_EQ(r["result"]["warnings"].size(), 1u);
  EXPECT_NE(r["result"]["warnings"][0].get<std::string>().find("flakey at sector 0: "),
            std::string::npos);
  r = Verb("load", {{"name", "lin0"}, {"table", corrupts}});
  ASSERT_EQ(Code(r), "ok") << r.dump();
  EXPECT_EQ(r["result"]["warnings"].size(), 1u) << r.dump();
  EXPECT_EQ(Verb("load", {{"name", "lin0"}, {"table", {"0 2048 linear hw0 0"}}})["result"],
            json::object());
  EXPECT_EQ(Verb("create", {{"name", "e"}, {"table", json::array()}})["result"], json::object());
}

TEST_F(ControlHandlerTest, P3_FailedCreateAndLoadChangeNothing) {
  const json before = Verb("ls")["result"];
  EXPECT_NE(Code(Verb("create", {{"name", "bad"}, {"table", {"0 8 linear nosuch 0"}}})), "ok");
  EXPECT_NE(Code(Verb("create", {{"name", "lin0"}, {"table", json::array()}})), "ok");
  EXPECT_NE(Code(Verb("load", {{"name", "lin0"}, {"table", {"0 8 frobnicate"}}})), "ok");
  EXPECT_EQ(Verb("ls")["result"], before);
}

TEST_F(ControlHandlerTest, P4_RepliesNeverHoldKeyBytes) {
  ASSERT_EQ(Code(Verb("key.add", {{"name", "k"},
                                  {"mode", "aes-256-xts"},
                                  {"data_unit_size", 4096},
                                  {"key_hex", kKeyHex}})),
            "ok");
  ASSERT_EQ(Code(Verb("export.check", {{"export", "lin0@k"}})), "ok");
  const std::string key_start = std::string(kKeyHex).substr(0, 32);
  const std::string key_end = std::string(kKeyHex).substr(96);
  for (const char* verb : {"key.ls", "hw.ls", "ls", "metrics"}) {
    const std::string reply = handler_->Handle(json{{"v", 1}, {"verb", verb}}.dump());
    EXPECT_EQ(reply.find(key_start), std::string::npos) << verb;
    EXPECT_EQ(reply.find(key_end), std::string::npos) << verb;
  }
  // A refused key.add does not echo its key either.
  const std::string bad = handler_->Handle(json{
      {"v", 1},
      {"verb", "key.add"},
      {"args",
       {{"name", "k"}, {"mode", "aes-256-xts"}, {"data_unit_size", 4096}, {"key_hex", kKeyHex}}}}
                                               .dump());
  EXPECT_EQ(bad.find(key_start), std::string::npos);
}

}  // namespace
}  // namespace ice::daemon
