#include "cli/format.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <string>
#include <vector>

namespace ice::cli {
namespace {

Json MappedInfo() {
  return Json::parse(R"({"name": "lin0", "kind": "mapped", "major": 253, "minor": 0,
    "size_bytes": 1073741824, "state": "ACTIVE", "live_table": true, "inactive_table": false,
    "open_count": 2, "holders": 0, "num_targets": 1, "event_nr": 3,
    "capabilities": "aes-256-xts:512,4096 dun_bytes=8 keys=raw"})");
}

TEST(Format, T7_InfoIsDmsetupLayoutThenIceLines) {
  auto text = FormatInfo(MappedInfo());
  ASSERT_TRUE(text.ok()) << text.status().message();
  EXPECT_EQ(*text,
            "Name:              lin0\n"
            "State:             ACTIVE\n"
            "Read Ahead:        256\n"
            "Tables present:    LIVE\n"
            "Open count:        2\n"
            "Event number:      3\n"
            "Major, minor:      253, 0\n"
            "Number of targets: 1\n"
            "Size:              1073741824 bytes (2097152 sectors)\n"
            "Crypto capabilities: aes-256-xts:512,4096 dun_bytes=8 keys=raw\n"
            "\n");
}

TEST(Format, T7_InfoTablesPresentAsDmsetupSpellsThem) {
  struct Case {
    bool live, inactive;
    const char* line;
  };
  for (const Case& c : {Case{false, false, "Tables present:    None\n"},
                        Case{true, false, "Tables present:    LIVE\n"},
                        Case{false, true, "Tables present:    INACTIVE\n"},
                        Case{true, true, "Tables present:    LIVE & INACTIVE\n"}}) {
    Json info = MappedInfo();
    info["live_table"] = c.live;
    info["inactive_table"] = c.inactive;
    auto text = FormatInfo(info);
    ASSERT_TRUE(text.ok());
    EXPECT_NE(text->find(c.line), std::string::npos) << *text;
  }
}

TEST(Format, T7_InfoOfSuspendedDeviceWithoutCapabilities) {
  Json info = MappedInfo();
  info["state"] = "SUSPENDED";
  info["capabilities"] = "none";
  info["read_ahead"] = 512;
  auto text = FormatInfo(info);
  ASSERT_TRUE(text.ok());
  EXPECT_NE(text->find("State:             SUSPENDED\n"), std::string::npos);
  EXPECT_NE(text->find("Read Ahead:        512\n"), std::string::npos);
  EXPECT_NE(text->find("Crypto capabilities: none\n"), std::string::npos);
}

TEST(Format, InfoAcceptsCapabilitiesAsAList) {
  Json info = MappedInfo();
  info["capabilities"] = Json::array({"aes-256-xts/512", "aes-256-xts/4096"});
  auto text = FormatInfo(info);
  ASSERT_TRUE(text.ok());
  EXPECT_NE(text->find("Crypto capabilities: aes-256-xts/512 aes-256-xts/4096\n"),
            std::string::npos);
}

TEST(Format, InfoWithAMissingOrMistypedFieldIsAProtocolError) {
  for (const char* field : {"name", "state", "major", "minor", "open_count", "event_nr",
                            "num_targets", "live_table", "size_bytes", "capabilities"}) {
    Json info = MappedInfo();
    info.erase(field);
    auto text = FormatInfo(info);
    ASSERT_FALSE(text.ok()) << field;
    EXPECT_EQ(text.status().code(), EPROTO);
    EXPECT_NE(text.status().message().find(field), std::string::npos);
  }
  Json info = MappedInfo();
  info["major"] = "253";
  EXPECT_FALSE(FormatInfo(info).ok());
}

TEST(Format, T7_LsIsDmsetupLayout) {
  Json a = MappedInfo();
  Json b = MappedInfo();
  b["name"] = "crypt0";
  b["minor"] = 4;
  auto text = FormatDeviceList(Json{{"devices", Json::array({b, a})}});
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "crypt0\t(253:4)\nlin0\t(253:0)\n");
  auto none = FormatDeviceList(Json{{"devices", Json::array()}});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, "No devices found\n");
  EXPECT_FALSE(FormatDeviceList(Json::object()).ok());
}

TEST(Format, T7_TableAndStatusPrintTheLines) {
  auto text = FormatLines(Json{{"lines", {"0 2048 linear hw0 0", "2048 2048 zero"}}});
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "0 2048 linear hw0 0\n2048 2048 zero\n");
  auto empty = FormatLines(Json{{"lines", Json::array()}});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, "");
  EXPECT_FALSE(FormatLines(Json{{"lines", {1, 2}}}).ok());
}

TEST(Format, T7_MessageReplyPrintedLikeDmsetup) {
  EXPECT_EQ(*FormatMessageReply(Json{{"reply", "countbadblocks: 2 badblock(s) found"}}),
            "countbadblocks: 2 badblock(s) found\n");
  EXPECT_EQ(*FormatMessageReply(Json{{"reply", "1\n5\n"}}), "1\n5\n");
  EXPECT_EQ(*FormatMessageReply(Json{{"reply", ""}}), "");
  EXPECT_FALSE(FormatMessageReply(Json::object()).ok());
}

TEST(Format, KeyListIsAnAlignedTable) {
  Json keys = Json::parse(R"({"keys": [
    {"name": "demo", "mode": "aes-256-xts", "data_unit_size": 4096, "dun_bytes": 8, "users": 1},
    {"name": "k2", "mode": "aes-128-cbc-essiv", "data_unit_size": 512, "dun_bytes": 4,
     "users": 0}]})");
  auto text = FormatKeyList(keys);
  ASSERT_TRUE(text.ok()) << text.status().message();
  EXPECT_EQ(*text,
            "NAME  MODE               DATA_UNIT_SIZE  DUN_BYTES  USERS\n"
            "demo  aes-256-xts        4096            8          1\n"
            "k2    aes-128-cbc-essiv  512             4          0\n");
  EXPECT_EQ(*FormatKeyList(Json{{"keys", Json::array()}}), "No keys found\n");
}

Json Hardware() {
  return Json::parse(R"({"name": "hw0", "size_bytes": 67108864, "backing": "memory",
    "keyslots": 2, "capabilities": "aes-256-xts:4096 dun_bytes=8 keys=raw",
    "slots": [{"slot": 0, "key": "demo", "refs": 1}, {"slot": 1, "key": null, "refs": 0}],
    "counters": {"read_bytes": 8192, "new_counter": 5, "slot_evictions": 1,
                 "slot_programs": 3}})");
}

TEST(Format, HardwareListCountsSlotsInUse) {
  auto text = FormatHardwareList(Json{{"hardware", Json::array({Hardware()})}});
  ASSERT_TRUE(text.ok()) << text.status().message();
  EXPECT_EQ(*text,
            "NAME  SIZE      KEYSLOTS  IN_USE  BACKING  CAPABILITIES\n"
            "hw0   67108864  2         1       memory   aes-256-xts:4096 dun_bytes=8 keys=raw\n");
  EXPECT_EQ(*FormatHardwareList(Json{{"hardware", Json::array()}}), "No hardware found\n");
}

TEST(Format, HardwareInfoShowsSlotsThenCountersInTheProtocolsOrder) {
  auto text = FormatHardwareInfo(Hardware());
  ASSERT_TRUE(text.ok()) << text.status().message();
  EXPECT_EQ(*text,
            "Name:              hw0\n"
            "Size:              67108864 bytes (131072 sectors)\n"
            "Backing:           memory\n"
            "Keyslots:          2\n"
            "Crypto capabilities: aes-256-xts:4096 dun_bytes=8 keys=raw\n"
            "\n"
            "SLOT  KEY   REFS\n"
            "0     demo  1\n"
            "1     -     0\n"
            "\n"
            "COUNTER         VALUE\n"
            "slot_programs   3\n"
            "slot_evictions  1\n"
            "read_bytes      8192\n"
            "new_counter     5\n");
}

TEST(Format, HardwareInfoWithBadSlotsOrCountersIsAProtocolError) {
  Json hw = Hardware();
  hw["slots"][0].erase("refs");
  EXPECT_EQ(FormatHardwareInfo(hw).status().code(), EPROTO);
  hw = Hardware();
  hw["slots"][1]["key"] = 7;
  EXPECT_EQ(FormatHardwareInfo(hw).status().code(), EPROTO);
  hw = Hardware();
  hw["counters"]["resets"] = "many";
  EXPECT_EQ(FormatHardwareInfo(hw).status().code(), EPROTO);
  hw = Hardware();
  hw.erase("counters");
  EXPECT_EQ(FormatHardwareInfo(hw).status().code(), EPROTO);
}

TEST(Format, P6_MetricsTextPrintedAsIs) {
  const std::string text = "# TYPE ice_slot_programs counter\nice_slot_programs{hw=\"hw0\"} 3\n";
  EXPECT_EQ(*FormatMetrics(Json{{"text", text}}), text);
  EXPECT_EQ(*FormatMetrics(Json{{"text", "x 1"}}), "x 1\n");
}

TEST(Format, ExportCheckAndVersion) {
  auto text = FormatExportCheck(Json{{"export", "lin0@demo"},
                                     {"size", 4096},
                                     {"block_size", 4096},
                                     {"keyed", true},
                                     {"trim", "zero"}});
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text,
            "Export:            lin0@demo\n"
            "Size:              4096 bytes (8 sectors)\n"
            "Block size:        4096\n"
            "Keyed:             yes\n"
            "Trim:              writes zeros\n");
  EXPECT_EQ(*FormatVersion(Json{{"protocol", 1}, {"version", "0.1.0"}}),
            "ice daemon 0.1.0 (control protocol 1)\n");
  EXPECT_EQ(*FormatNothing(Json::object()), "");
}

// Hardening 10: create and load results may carry warnings, a list of strings.
TEST(Format, Hardening10_WarningsOfAResult) {
  EXPECT_TRUE(Warnings(Json::object())->empty());
  EXPECT_EQ(*Warnings(Json{{"warnings", {"a", "b"}}}), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(Warnings(Json{{"warnings", "a"}}).status().code(), EPROTO);
  EXPECT_EQ(Warnings(Json{{"warnings", {1}}}).status().code(), EPROTO);
}

}  // namespace
}  // namespace ice::cli
