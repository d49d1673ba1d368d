#include "cli/key_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

namespace ice::cli {
namespace {

class KeyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/ice-cli-key-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
  }
  void TearDown() override {
    for (const std::string& f : files_) unlink(f.c_str());
    rmdir(dir_.c_str());
  }
  std::string Write(const std::string& name, const std::string& bytes, mode_t mode) {
    const std::string path = dir_ + "/" + name;
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    close(fd);
    EXPECT_EQ(chmod(path.c_str(), mode), 0);
    files_.push_back(path);
    return path;
  }

  std::string dir_;
  std::vector<std::string> files_;
};

TEST_F(KeyFileTest, P4_ReadsRawBytesUnchanged) {
  const std::string key("\x00\x01\n\xff key\n", 10);
  auto read = ReadKeyFile(Write("k", key, 0600), -1);
  ASSERT_TRUE(read.ok()) << read.status().message();
  EXPECT_EQ(read->view(), key);
  auto ro = ReadKeyFile(Write("ro", key, 0400), -1);
  ASSERT_TRUE(ro.ok());
  EXPECT_EQ(ro->view(), key);
}

TEST_F(KeyFileTest, P4_FileAccessibleByGroupOrOthersIsRefused) {
  for (mode_t mode : {0644, 0640, 0604, 0620, 0602, 0610, 0601}) {
    const std::string path = Write("k" + std::to_string(mode), std::string(64, 'k'), mode);
    auto read = ReadKeyFile(path, -1);
    ASSERT_FALSE(read.ok()) << std::oct << mode;
    EXPECT_EQ(read.status().code(), EPERM);
    EXPECT_NE(read.status().message().find(path), std::string::npos);
    EXPECT_NE(read.status().message().find("must not be accessible by group or others"),
              std::string::npos)
        << read.status().message();
  }
  auto read = ReadKeyFile(Write("k644", "x", 0644), -1);
  EXPECT_NE(read.status().message().find("mode 0644"), std::string::npos);
}

TEST_F(KeyFileTest, MissingEmptyAndOversizedFilesAreRefused) {
  auto missing = ReadKeyFile(dir_ + "/none", -1);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), ENOENT);
  EXPECT_EQ(missing.status().message(),
            "cannot open key file " + dir_ + "/none: No such file or directory");

  auto empty = ReadKeyFile(Write("empty", "", 0600), -1);
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), EINVAL);

  auto exact = ReadKeyFile(Write("max", std::string(kMaxKeyFileBytes, 'a'), 0600), -1);
  ASSERT_TRUE(exact.ok());
  EXPECT_EQ(exact->size(), kMaxKeyFileBytes);
  auto big = ReadKeyFile(Write("big", std::string(kMaxKeyFileBytes + 1, 'a'), 0600), -1);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().code(), EFBIG);
}

TEST(KeyFile, P4_DashReadsTheGivenStdin) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const std::string key(32, '\x5a');
  ASSERT_EQ(write(fds[1], key.data(), key.size()), 32);
  close(fds[1]);
  auto read = ReadKeyFile("-", fds[0]);
  close(fds[0]);
  ASSERT_TRUE(read.ok()) << read.status().message();
  EXPECT_EQ(read->view(), key);
}

TEST(SecretBuffer, HexEncodeIsLowercaseAndSizedExactly) {
  SecretBuffer hex = HexEncode(std::string("\x00\x9f\xff\x10", 4));
  EXPECT_EQ(hex.view(), "009fff10");
  EXPECT_EQ(hex.capacity(), 8u);
}

TEST(SecretBuffer, AppendNeverGrowsPastCapacity) {
  SecretBuffer b(4);
  EXPECT_TRUE(b.Append("ab"));
  EXPECT_FALSE(b.Append("cde"));
  EXPECT_EQ(b.view(), "ab");
  EXPECT_TRUE(b.Append("cd"));
  EXPECT_EQ(b.view(), "abcd");
  b.Resize(1);
  EXPECT_EQ(b.view(), "a");
  SecretBuffer moved = std::move(b);
  EXPECT_EQ(moved.view(), "a");
  EXPECT_EQ(b.size(), 0u);  // NOLINT(bugprone-use-after-move): moved-from state is specified
}

}  // namespace
}  // namespace ice::cli
