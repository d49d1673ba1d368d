#include "config/config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>

#include <gtest/gtest.h>

namespace ice::config {
namespace {

// From the build (tests/CMakeLists.txt): __FILE__ may be relative when ccache rewrites paths.
std::string SourceDir() { return ICE_SOURCE_DIR; }

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/ice-config-test.XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

constexpr const char* kMinimal = R"(
[daemon]
control_socket = "/tmp/ice.sock"
default_export = "lin@k"

[[hardware]]
name = "hw0"
backing = "file:disk0.img"
size = "1M"
keyslots = 2
  [[hardware.capability]]
  mode = "aes-256-xts"
  data_unit_sizes = [4096, 512]
  max_dun_bytes = 4

[[key]]
name = "k"
mode = "aes-256-xts"
data_unit_size = 4096
key_file = "k.key"

[[device]]
name = "lin"
table = ["0 2048 linear hw0 0"]
)";

TEST(Config, ParsesTheSchema) {
  auto c = ParseConfig(kMinimal, "/etc/ice/ice.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->daemon.control_socket, "/tmp/ice.sock");
  EXPECT_EQ(c->daemon.default_export, "lin@k");
  EXPECT_EQ(c->daemon.fallback_slots, 100u);
  ASSERT_EQ(c->hardware.size(), 1u);
  EXPECT_EQ(c->hardware[0].backing, "file:/etc/ice/disk0.img");  // resolved against the config
  EXPECT_EQ(c->hardware[0].size_bytes, 1u << 20);
  EXPECT_EQ(c->hardware[0].keyslots, 2u);
  EXPECT_TRUE(c->hardware[0].capabilities.SupportsNatively(
      {CryptoMode::kAes256Xts, 512, 4, KeyType::kRaw}));
  EXPECT_FALSE(c->hardware[0].capabilities.SupportsNatively(
      {CryptoMode::kAes256Xts, 4096, 5, KeyType::kRaw}));
  ASSERT_EQ(c->keys.size(), 1u);
  EXPECT_EQ(c->keys[0].key_file, "/etc/ice/k.key");
  EXPECT_EQ(c->keys[0].crypto.dun_bytes, 8u);  // default
  ASSERT_EQ(c->devices.size(), 1u);
  EXPECT_EQ(c->devices[0].table, std::vector<std::string>{"0 2048 linear hw0 0"});
}

// Each bad input must be refused with EINVAL and a message naming file, line and key.
struct BadCase {
  const char* toml;
  const char* expect;  // substring of the message
};

// Hardening 6: a size no backend can serve is a config error naming the line, not an abort at
// start (the memory backing's chunk table for 2^63 - 512 bytes cannot be allocated).
TEST(Config, Hardening6_HugeSizesAreConfigErrors) {
  auto hw = [](const std::string& backing, const std::string& size) {
    return "[[hardware]]\nname = \"a\"\nbacking = \"" + backing + "\"\nsize = " + size + "\n";
  };
  const std::pair<std::string, std::string> refused[] = {
      {hw("memory", "9223372036854775296"), "/x.toml:4: hardware 'a'.size = 9223372036854775296"},
      {hw("memory", "\"9T\""), "the most a memory backing holds"},
      {hw("file:/tmp/x.img", "\"8388608T\""), "is above INT64_MAX"},
      {hw("memory", "\"16777215T\""), "is above INT64_MAX"},
  };
  for (const auto& [toml, expect] : refused) {
    auto c = ParseConfig(toml, "/x.toml");
    ASSERT_FALSE(c.ok()) << toml;
    EXPECT_EQ(c.status().code(), EINVAL) << toml;
    EXPECT_NE(c.status().message().find(expect), std::string::npos)
        << "got: " << c.status().message() << "\nwanted: " << expect;
  }
  EXPECT_TRUE(ParseConfig(hw("memory", "\"8T\""), "/x.toml").ok());
  // A file backing may be as large as NBD allows; whether the file can be is the OS's to say.
  EXPECT_TRUE(ParseConfig(hw("file:/tmp/x.img", "9223372036854775296"), "/x.toml").ok());
}

TEST(Config, RefusesBadInputNamingFileLineAndKey) {
  const BadCase cases[] = {
      {"[daemon]\ncolour = 1\n", "/x.toml:2: unknown key 'colour' in [daemon]"},
      {"[[hardware]]\nname = \"a\"\nbacking = \"memory\"\nsize = 4096\nslots = 2\n",
       "/x.toml:5: unknown key 'slots'"},
      {"[[hardware]]\nname = \"a\"\nbacking = \"tape\"\nsize = 4096\n", "backing 'tape'"},
      {"[[hardware]]\nname = \"a\"\nbacking = \"memory\"\nsize = \"12X\"\n", "unknown suffix"},
      {"[[hardware]]\nname = \"a\"\nbacking = \"memory\"\nsize = 1000\n", "multiple of 512"},
      {"[[hardware]]\nname = \"a b\"\nbacking = \"memory\"\nsize = 4096\n", "invalid device name"},
      {"[[hardware]]\nname = \"a\"\nbacking = \"memory\"\nsize = 4096\n[[hardware.capability]]\n"
       "mode = \"aes-256-xts\"\ndata_unit_sizes = [4096]\n",
       "has crypto capabilities but no keyslots"},
      {"[[hardware]]\nname = \"a\"\nbacking = \"memory\"\nsize = 4096\nkeyslots = 1\n"
       "[[hardware.capability]]\nmode = \"aes-256-xts\"\ndata_unit_sizes = [3000]\n",
       "/x.toml:8: hardware 'a' capability.data_unit_sizes: 3000 is not a power of two"},
      {"[[hardware]]\nname = \"a\"\nbacking = \"memory\"\nsize = 4096\nkeyslots = 1\n"
       "[[hardware.capability]]\nmode = \"aes-256-xts\"\ndata_unit_sizes = [\"4K\"]\n",
       "data_unit_sizes: each must be an integer"},
      {"[[key]]\nname = \"k\"\nmode = \"des\"\ndata_unit_size = 4096\nkey_file = \"/k\"\n",
       "unknown crypto mode 'des'"},
      {"[[key]]\nname = \"k\"\nmode = \"aes-256-xts\"\ndata_unit_size = 4000\nkey_file = \"/k\"\n",
       "data unit size 4000"},
      {"[[key]]\nname = \"k\"\nmode = \"aes-256-xts\"\ndata_unit_size = 4096\ndun_bytes = 17\n"
       "key_file = \"/k\"\n",
       "dun_bytes 17"},
      {"[[key]]\nname = \"k\"\nmode = \"adiantum\"\ndata_unit_size = 4096\nkey_file = \"/k\"\n",
       "cannot compute adiantum"},
      {"[[device]]\nname = \"d\"\ntable = \"0 8 zero\"\n", "table must be an array"},
      {"[[device]]\nname = \"d\"\ntable = []\n[[device]]\nname = \"d\"\ntable = []\n",
       "'d' is used twice"},
      {"[daemon]\ndefault_export = \"nope\"\n", "default_export names no device"},
      {"[daemon]\nlog_level = \"loud\"\n", "log_level 'loud'"},
      {"[daemon]\ncontrol_socket = \"relative.sock\"\n", "absolute path"},
      {"hardware = 3\n", "array of tables"},
      {"[daemon\n", "/x.toml:1:"},
  };
  for (const auto& bad : cases) {
    auto c = ParseConfig(bad.toml, "/x.toml");
    ASSERT_FALSE(c.ok()) << bad.toml;
    EXPECT_EQ(c.status().code(), EINVAL) << bad.toml;
    EXPECT_NE(c.status().message().find(bad.expect), std::string::npos)
        << "got: " << c.status().message() << "\nwanted: " << bad.expect;
  }
}

TEST(Config, DemoConfigIsValid) {
  auto c = LoadConfig(SourceDir() + "/config/examples/demo.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->hardware.size(), 2u);
  EXPECT_EQ(c->daemon.default_export, "lin0@demo");
}

// Issue 18: metrics over HTTP are off unless asked for, and stay on this machine unless the config
// says otherwise.
TEST(Config, MetricsListenIsOffByDefaultAndLoopbackUnlessAny) {
  auto daemon = [](const std::string& lines) {
    return ParseConfig("[daemon]\n" + lines, "/x.toml");
  };
  auto off = daemon("");
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(off->daemon.metrics_listen, "");
  EXPECT_FALSE(off->daemon.metrics_listen_any);
  for (const char* ok : {"127.0.0.1:9717", "127.1.2.3:80", "localhost:9717", "[::1]:9717",
                         "/run/ice/metrics.sock"}) {
    auto c = daemon(std::string("metrics_listen = \"") + ok + "\"\n");
    ASSERT_TRUE(c.ok()) << ok << ": " << c.status().ToString();
    EXPECT_EQ(c->daemon.metrics_listen, ok);
  }
  for (const char* wide : {"0.0.0.0:9717", "192.0.2.1:9717", "[::]:9717", "[2001:db8::1]:80"}) {
    auto refused = daemon(std::string("metrics_listen = \"") + wide + "\"\n");
    ASSERT_FALSE(refused.ok()) << wide;
    EXPECT_NE(
        refused.status().message().find("/x.toml:2: [daemon].metrics_listen '" + std::string(wide) +
                                        "' is reachable from other "
                                        "machines"),
        std::string::npos)
        << refused.status().message();
    auto allowed =
        daemon(std::string("metrics_listen = \"") + wide + "\"\nmetrics_listen_any = true\n");
    EXPECT_TRUE(allowed.ok()) << wide << ": " << allowed.status().ToString();
    EXPECT_TRUE(allowed->daemon.metrics_listen_any);
  }
  const BadCase bad[] = {
      {"metrics_listen = \"127.0.0.1\"\n",
       "/x.toml:2: [daemon].metrics_listen: '127.0.0.1' is not"},
      {"metrics_listen = \"127.0.0.1:0\"\n", "needs a port"},
      {"metrics_listen = \"127.0.0.1:65536\"\n", "port '65536' is not 0…65535"},
      {"metrics_listen = \"127.0.0.1:\"\n", "has no port"},
      {"metrics_listen = \"metrics.example:9717\"\n", "'metrics.example' is not an IPv4"},
      {"metrics_listen = \"::1:9717\"\n", "is not an IPv4"},
      {"metrics_listen = \"relative.sock\"\n", "is not HOST:PORT"},
      {"metrics_listen = 9717\n", "metrics_listen must be a string"},
      {"metrics_listen_any = \"yes\"\n", "metrics_listen_any must be true or false"},
  };
  for (const auto& b : bad) {
    auto c = daemon(b.toml);
    ASSERT_FALSE(c.ok()) << b.toml;
    EXPECT_EQ(c.status().code(), EINVAL);
    EXPECT_NE(c.status().message().find(b.expect), std::string::npos)
        << "got: " << c.status().message() << "\nwanted: " << b.expect;
  }
}

TEST(Config, ParseListenAddress) {
  auto v4 = ParseListenAddress("127.0.0.1:0");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, 0);
  EXPECT_TRUE(v4->loopback);
  auto v6 = ParseListenAddress("[::1]:9717");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 9717);
  auto path = ParseListenAddress("/run/ice/metrics.sock");
  ASSERT_TRUE(path.ok());
  EXPECT_EQ(path->unix_path, "/run/ice/metrics.sock");
  EXPECT_TRUE(path->loopback);
  EXPECT_FALSE(ParseListenAddress("/" + std::string(200, 'a')).ok());
  EXPECT_FALSE(ParseListenAddress(":9717").ok());
  EXPECT_FALSE(ParseListenAddress("").ok());
}

TEST(Config, ParseSize) {
  EXPECT_EQ(*ParseSize("512"), 512u);
  EXPECT_EQ(*ParseSize("4K"), 4096u);
  EXPECT_EQ(*ParseSize("256M"), 256u << 20);
  EXPECT_EQ(*ParseSize("2GiB"), 2ull << 30);
  EXPECT_FALSE(ParseSize("").ok());
  EXPECT_FALSE(ParseSize("M").ok());
  EXPECT_FALSE(ParseSize("0").ok());
  EXPECT_FALSE(ParseSize("99999999999999999999").ok());
  EXPECT_FALSE(ParseSize("1P").ok());
}

TEST(KeyFile, ReadsExactlySizedPrivateFile) {
  TempDir d;
  const std::string p = d.path() + "/k";
  {
    std::ofstream f(p, std::ios::binary);
    f << std::string(64, '\x42');
  }
  chmod(p.c_str(), 0600);
  auto k = ReadKeyFile(p, 64, false);
  ASSERT_TRUE(k.ok()) << k.status().ToString();
  EXPECT_EQ(k->size(), 64u);
  EXPECT_EQ(k->data()[63], 0x42);
  auto wrong = ReadKeyFile(p, 16, false);
  EXPECT_EQ(wrong.status().code(), EINVAL);
}

TEST(KeyFile, RefusesGroupOrWorldReadable) {
  TempDir d;
  const std::string p = d.path() + "/k";
  {
    std::ofstream f(p, std::ios::binary);
    f << std::string(64, '\x42');
  }
  for (mode_t m : {0640, 0604, 0660, 0644}) {
    chmod(p.c_str(), m);
    auto k = ReadKeyFile(p, 64, false);
    ASSERT_FALSE(k.ok());
    EXPECT_EQ(k.status().code(), EPERM);
    EXPECT_NE(k.status().message().find("group/world"), std::string::npos);
  }
}

TEST(KeyFile, GeneratesMissingFileWhenAsked) {
  TempDir d;
  const std::string p = d.path() + "/gen.key";
  EXPECT_EQ(ReadKeyFile(p, 64, false).status().code(), ENOENT);
  auto k = ReadKeyFile(p, 64, true);
  ASSERT_TRUE(k.ok()) << k.status().ToString();
  struct stat st {};
  ASSERT_EQ(stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_size, 64);
  auto again = ReadKeyFile(p, 64, true);  // an existing file is read, not regenerated
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(0, memcmp(k->data(), again->data(), 64));
}

// ---- Hardening 8: a key in a table line is as secret as a key file ----

constexpr const char* kInlineKeyConfig = R"(
[[hardware]]
name = "hw0"
backing = "memory"
size = "1M"

[[device]]
name = "dk"
table = ["0 2048 default-key aes-xts-plain64 %s 0 hw0 0"]
)";
constexpr const char* kHexKey =
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
    "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

std::string WriteConfig(const TempDir& d, const std::string& key, mode_t mode) {
  const std::string p = d.path() + "/ice.toml";
  char text[1024];
  std::snprintf(text, sizeof text, kInlineKeyConfig, key.c_str());
  {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f << text;
  }
  chmod(p.c_str(), mode);
  return p;
}

TEST(Config, Hardening8_AnInlineKeyInAGroupOrWorldReadableConfigIsRefused) {
  TempDir d;
  for (mode_t m : {0640, 0604, 0644}) {
    auto c = LoadConfig(WriteConfig(d, kHexKey, m));
    ASSERT_FALSE(c.ok()) << std::oct << m;
    EXPECT_EQ(c.status().code(), EPERM);
    const std::string msg = c.status().message();
    EXPECT_NE(msg.find("group/world accessible"), std::string::npos) << msg;
    EXPECT_NE(msg.find("chmod 600"), std::string::npos) << msg;
    EXPECT_NE(msg.find("device 'dk'"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("00112233"), std::string::npos) << "the key is never echoed: " << msg;
  }
  auto private_config = LoadConfig(WriteConfig(d, kHexKey, 0600));
  ASSERT_TRUE(private_config.ok()) << private_config.status().ToString();
  ASSERT_EQ(private_config->devices.size(), 1u);
  // A keyring reference names a key and holds no secret: any mode will do.
  auto keyring = LoadConfig(WriteConfig(d, ":64:logon:k", 0644));
  EXPECT_TRUE(keyring.ok()) << keyring.status().ToString();
}

TEST(Config, Hardening8_WipeDeviceTablesLeavesNoTableLine) {
  TempDir d;
  auto c = LoadConfig(WriteConfig(d, kHexKey, 0600));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->devices[0].table.size(), 1u);
  WipeDeviceTables(*c);
  EXPECT_TRUE(c->devices[0].table.empty());
  EXPECT_EQ(c->devices[0].name, "dk");  // only the secret part goes
}

}  // namespace
}  // namespace ice::config
