#include "tools/replay-log/replay_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "dm/log_writes_format.h"
#include "dm/targets/log_writes.h"
#include "tests/unit/dm_targets/dm_target_test_env.h"
#include "tools/replay-log/storage.h"

namespace ice::replay {
namespace {

using dm::testing::Op;
using dm::testing::Pattern;
using dm::testing::TestEnv;
using dm::testing::Write;
namespace lw = ice::logwrites;

constexpr uint64_t kDevBytes = 1 << 20;
constexpr uint64_t kLogBytes = 4 << 20;

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void WriteFile(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// The outcome of one run of the tool.
struct Ran {
  int rc = 0;
  std::string out, err;
};

// A log made by the log-writes target on a recording device, written to a file, and a scratch
// file of the device's size to replay onto.
class ReplayLog : public ::testing::Test {
 protected:
  ReplayLog() : dev_(env_.AddDevice("disk", kDevBytes)), log_(env_.AddDevice("log", kLogBytes)) {
    char tmpl[] = "/tmp/ice-replay-test.XXXXXX";
    dir_ = mkdtemp(tmpl);
    auto t = env_.Create(dm::kLogWritesTarget, kDevBytes / 512, {"disk", "log"});
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    target_ = std::move(*t);
  }
  ~ReplayLog() override { std::system(("rm -rf " + dir_).c_str()); }

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  // The log device as it is now, in LOG; a zeroed REPLAY of the device's size.
  void Save() {
    WriteFile(Path("log"), log_->Bytes(0, kLogBytes));
    FreshReplay();
  }
  void FreshReplay() { WriteFile(Path("replay"), std::vector<uint8_t>(kDevBytes, 0)); }
  std::vector<uint8_t> Replayed() {
    std::string s = ReadFile(Path("replay"));
    return std::vector<uint8_t>(s.begin(), s.end());
  }

  Ran Tool(std::vector<std::string> args) {
    args.insert(args.begin(), "replay-log");
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::FILE* out = std::tmpfile();
    std::FILE* err = std::tmpfile();
    Ran r;
    bool help = false;
    std::optional<Options> o =
        ParseArgs(static_cast<int>(args.size()), argv.data(), out, err, &help);
    r.rc = o ? replay::Run(*o, out, err) : (help ? 0 : 1);
    for (auto [f, s] : {std::pair{out, &r.out}, std::pair{err, &r.err}}) {
      std::fflush(f);
      std::rewind(f);
      char buf[4096];
      size_t n;
      while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s->append(buf, n);
      std::fclose(f);
    }
    return r;
  }

  Status W(uint64_t off, uint64_t len, uint8_t seed, bool fua = false) {
    return Write(*target_, off, Pattern(len, seed), std::nullopt, fua);
  }
  void Mark(const std::string& name) { ASSERT_TRUE(target_->Message({"mark", name}).ok()); }

  TestEnv env_;
  std::shared_ptr<dm::testing::RecordingDevice> dev_, log_;
  std::unique_ptr<dm::Target> target_;
  std::string dir_;
};

TEST_F(ReplayLog, I15_2_SummaryAndEntryCount) {
  ASSERT_TRUE(W(0, 4096, 1).ok());
  ASSERT_TRUE(Op(*target_, IoOp::kFlush).ok());
  Mark("one");
  Save();
  Ran r = Tool({"--log", Path("log")});
  EXPECT_EQ(r.rc, 0);
  EXPECT_EQ(r.out, "Log version=1, sectorsize=512, entries=3\n");
  r = Tool({"--log", Path("log"), "--num-entries"});
  EXPECT_EQ(r.out, "3\n");
}

TEST_F(ReplayLog, I15_2_ReplaysToTheDevicesBytes) {
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(W(static_cast<uint64_t>(i) * 3 * 4096 % (kDevBytes - 65536), 512 * (i + 1),
                  static_cast<uint8_t>(i))
                    .ok());
    if (i % 4 == 3) {
      ASSERT_TRUE(Op(*target_, IoOp::kFlush).ok());
    }
  }
  ASSERT_TRUE(Op(*target_, IoOp::kFlush).ok());
  Mark("end");
  Save();
  Ran r = Tool({"--log", Path("log"), "--replay", Path("replay")});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(Replayed(), dev_->Bytes(0, kDevBytes));
}

TEST_F(ReplayLog, I15_2_MarksLimitsAndStopFlags) {
  ASSERT_TRUE(W(0, 4096, 1).ok());               // entry 1 (after the mark below)
  Mark("first");                                 // entry 0: marks are logged at once
  ASSERT_TRUE(Op(*target_, IoOp::kFlush).ok());  // entries 1, 2
  const std::vector<uint8_t> at_second = dev_->Bytes(0, kDevBytes);
  Mark("second");                                    // entry 3
  ASSERT_TRUE(W(8192, 4096, 2, /*fua=*/true).ok());  // entry 4
  ASSERT_TRUE(W(0, 512, 3).ok());
  ASSERT_TRUE(Op(*target_, IoOp::kFlush).ok());  // entries 5, 6
  Mark("third");                                 // entry 7
  Save();

  // --find prints the entry and the log sector after it.
  EXPECT_EQ(Tool({"--log", Path("log"), "--find", "--end-mark", "second"}).out, "3@13\n");
  EXPECT_EQ(Tool({"--log", Path("log"), "--find", "--next-fua"}).out, "4@22\n");
  EXPECT_EQ(Tool({"--log", Path("log"), "--find", "--next-flush"}).out, "2@12\n");
  EXPECT_EQ(Tool({"--log", Path("log"), "--find", "--next-flush", "--start-entry", "3"}).out,
            "6@25\n");
  EXPECT_EQ(Tool({"--log", Path("log"), "--find", "--limit", "2"}).out, "1@11\n");
  EXPECT_EQ(Tool({"--log", Path("log"), "--find", "--start-mark", "second", "--limit", "1"}).out,
            "4@22\n");
  Ran none = Tool({"--log", Path("log"), "--find", "--end-mark", "fourth"});
  EXPECT_EQ(none.rc, 1);
  EXPECT_EQ(none.err, "Couldn't find entry\n");
  // With --end-mark, another flag counts only on a mark of that name.
  EXPECT_EQ(Tool({"--log", Path("log"), "--find", "--next-fua", "--end-mark", "third"}).out,
            "7@26\n");

  ASSERT_EQ(Tool({"--log", Path("log"), "--replay", Path("replay"), "--end-mark", "second"}).rc, 0);
  EXPECT_EQ(Replayed(), at_second);
  FreshReplay();
  ASSERT_EQ(Tool({"--log", Path("log"), "--replay", Path("replay"), "--start-mark", "second"}).rc,
            0);
  std::vector<uint8_t> got = Replayed();
  EXPECT_EQ(std::vector<uint8_t>(got.begin(), got.begin() + 512), Pattern(512, 3));
  EXPECT_EQ(std::vector<uint8_t>(got.begin() + 512, got.begin() + 4096),
            std::vector<uint8_t>(3584, 0))
      << "entry 1 is before the start mark";
  EXPECT_EQ(std::vector<uint8_t>(got.begin() + 8192, got.begin() + 12288), Pattern(4096, 2));
  FreshReplay();
  Ran v = Tool({"--log", Path("log"), "--replay", Path("replay"), "--limit", "2", "-v"});
  EXPECT_EQ(v.out,
            "replaying 0@2: sector 0, size 0, flags 0x8(MARK)\n"
            "replaying 1@3: sector 0, size 4096, flags 0x0(NONE)\n");
  Ran bad = Tool({"--log", Path("log"), "--start-mark", "nope"});
  EXPECT_EQ(bad.rc, 1);
  EXPECT_EQ(bad.err, "Couldn't find starting mark\n");
  Ran past = Tool({"--log", Path("log"), "--start-entry", "8"});
  EXPECT_EQ(past.rc, 1);
  EXPECT_EQ(past.err, "Invalid entry number\n");

  Ran list = Tool({"--log", Path("log"), "--list"});
  EXPECT_EQ(list.rc, 0);
  EXPECT_NE(list.out.find("0@2: sector 0, size 0, flags 0x8(MARK), mark first\n"),
            std::string::npos)
      << list.out;
  EXPECT_NE(list.out.find("4@14: sector 16, size 4096, flags 0x2(FUA)\n"), std::string::npos)
      << list.out;
}

TEST_F(ReplayLog, I15_2_CheckRunsTheCommandAtEachCheckPoint) {
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(W(static_cast<uint64_t>(i) * 4096, 4096, static_cast<uint8_t>(i)).ok());
    ASSERT_TRUE(Op(*target_, IoOp::kFlush).ok());  // flushes are entries 1, 3, 5, ...
  }
  Mark("end");
  Save();
  const std::string seen = Path("seen");
  const std::string cmd = "echo $REPLAY_LOG_ENTRY >> " + seen;
  Ran r =
      Tool({"--log", Path("log"), "--replay", Path("replay"), "--check", "flush", "--fsck", cmd});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(ReadFile(seen), "1\n3\n5\n7\n9\n11\n");
  std::remove(seen.c_str());
  FreshReplay();
  ASSERT_EQ(
      Tool({"--log", Path("log"), "--replay", Path("replay"), "--check", "5", "--fsck", cmd}).rc,
      0);
  EXPECT_EQ(ReadFile(seen), "4\n9\n");
  // A failing check stops the replay there.
  FreshReplay();
  const std::string fail = "test $REPLAY_LOG_ENTRY -lt 5";
  Ran f =
      Tool({"--log", Path("log"), "--replay", Path("replay"), "--check", "flush", "--fsck", fail});
  EXPECT_EQ(f.rc, 1);
  EXPECT_EQ(f.err, "Fsck errored out on entry 5\n");
  std::vector<uint8_t> got = Replayed();
  EXPECT_EQ(std::vector<uint8_t>(got.begin() + 8192, got.begin() + 12288), Pattern(4096, 2));
  EXPECT_EQ(std::vector<uint8_t>(got.begin() + 12288, got.begin() + 16384),
            std::vector<uint8_t>(4096, 0));
  // --fsck and --check go together.
  EXPECT_EQ(Tool({"--log", Path("log"), "--fsck", "true"}).rc, 1);
  EXPECT_EQ(Tool({"--log", Path("log"), "--check", "flush"}).rc, 1);
  EXPECT_EQ(Tool({"--log", Path("log"), "--check", "0", "--fsck", "true"}).err,
            "Invalid entry number\n");
}

TEST_F(ReplayLog, I15_2_DiscardsAndSectorRanges) {
  ASSERT_TRUE(W(0, 16384, 7).ok());
  ASSERT_TRUE(Op(*target_, IoOp::kFlush).ok());
  ASSERT_TRUE(Op(*target_, IoOp::kDiscard, 4096, 4096).ok());
  ASSERT_TRUE(Op(*target_, IoOp::kFlush).ok());
  Mark("end");
  Save();
  ASSERT_EQ(Tool({"--log", Path("log"), "--replay", Path("replay")}).rc, 0);
  std::vector<uint8_t> want = Pattern(16384, 7);
  std::fill(want.begin() + 4096, want.begin() + 8192, 0);  // a file: the discard writes zeros
  std::vector<uint8_t> got = Replayed();
  EXPECT_EQ(std::vector<uint8_t>(got.begin(), got.begin() + 16384), want);
  FreshReplay();
  ASSERT_EQ(Tool({"--log", Path("log"), "--replay", Path("replay"), "--no-discard"}).rc, 0);
  got = Replayed();
  EXPECT_EQ(std::vector<uint8_t>(got.begin(), got.begin() + 16384), Pattern(16384, 7));
  // Entries outside [start, end] (log sectors) are skipped, and -vv says so.
  FreshReplay();
  Ran r = Tool({"--log", Path("log"), "--replay", Path("replay"), "--start-sector", "100", "-vv"});
  ASSERT_EQ(r.rc, 0);
  EXPECT_NE(r.out.find("skipping 0@2: sector 0, size 16384, flags 0x0(NONE)"), std::string::npos)
      << r.out;
  EXPECT_EQ(Replayed(), std::vector<uint8_t>(kDevBytes, 0));
}

TEST_F(ReplayLog, I15_2_LogsItRefuses) {
  WriteFile(Path("log"), std::vector<uint8_t>(4096, 0));
  Ran r = Tool({"--log", Path("log")});
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.err, "Magic doesn't match\n");
  // A super block that counts more entries than there are: the first all-zero header is refused.
  std::vector<uint8_t> block(4096, 0);
  lw::Super s;
  s.nr_entries = 2;
  lw::EncodeSuper(s, block);
  WriteFile(Path("log"), block);
  r = Tool({"--log", Path("log"), "--find", "--limit", "1"});
  EXPECT_EQ(r.rc, 255);
  EXPECT_EQ(r.err, "Malformed entry @1\n");
  // An empty log has no entry 0 to start at: xfstests' tool says so even for --num-entries.
  s.nr_entries = 0;
  lw::EncodeSuper(s, block);
  WriteFile(Path("log"), block);
  EXPECT_EQ(Tool({"--log", Path("log"), "--num-entries"}).err, "Invalid entry number\n");
  EXPECT_EQ(Tool({"--log", Path("nothing")}).rc, 1);
  EXPECT_EQ(Tool({"--replay", Path("replay")}).rc, 1);  // no --log
  EXPECT_EQ(Tool({"--log", Path("log"), "--limit", "x"}).err, "Invalid entry number\n");
}

TEST(ReplayStorage, I15_2_NbdUrisAndPaths) {
  EXPECT_TRUE(IsNbdUri("nbd+unix:///hw0?socket=/run/ice/nbd.sock"));
  EXPECT_TRUE(IsNbdUri("nbd://localhost/x"));
  EXPECT_TRUE(IsNbdUri("nbds+unix:///x?socket=/s"));
  EXPECT_FALSE(IsNbdUri("/tmp/nbd://x"));
  EXPECT_FALSE(IsNbdUri("nbdlog.img"));
  EXPECT_FALSE(IsNbdUri("http://x"));
  EXPECT_EQ(OpenStorage("/nonexistent/file", false).status().code(), ENOENT);
}

}  // namespace
}  // namespace ice::replay
