#include "cli/table_input.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace ice::cli {
namespace {

using Lines = std::vector<std::string>;

TEST(TableInput, D_OneTargetALineCommentsAndBlanksSkipped) {
  EXPECT_EQ(ParseTableText("# a linear device\n"
                           "0 2048 linear hw0 0\n"
                           "\n"
                           "   \t\n"
                           "  2048 2048 zero   # the rest reads zeros\r\n"
                           "#4096 8 error\n"
                           "4096 8 error"),
            (Lines{"0 2048 linear hw0 0", "2048 2048 zero", "4096 8 error"}));
  EXPECT_EQ(ParseTableText(""), Lines{});
  EXPECT_EQ(ParseTableText("\n\n# only comments\n"), Lines{});
}

TEST(TableInput, TableFileAndStdin) {
  char path[] = "/tmp/ice-cli-table-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string text = "0 8 zero\n# c\n8 8 error\n";
  ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
  auto lines = ReadTableFile(path, -1);
  unlink(path);
  ASSERT_TRUE(lines.ok());
  EXPECT_EQ(*lines, (Lines{"0 8 zero", "8 8 error"}));

  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  ASSERT_EQ(write(fds[1], text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fds[1]);
  auto from_stdin = ReadTableFile("-", fds[0]);
  close(fds[0]);
  ASSERT_TRUE(from_stdin.ok());
  EXPECT_EQ(*from_stdin, (Lines{"0 8 zero", "8 8 error"}));

  auto missing = ReadTableFile("/nonexistent/table", -1);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(),
            "cannot open table file /nonexistent/table: No such file or directory");
}

TEST(TableInput, Hardening9_LineHoldsHexKey) {
  const std::string key(128, 'F');
  EXPECT_TRUE(LineHoldsHexKey("0 8 default-key aes-xts-plain64 " + key + " 0 hw0 0"));
  EXPECT_TRUE(LineHoldsHexKey("0 8 default-key " + key + " aes-xts-plain64 0 hw0 0"));
  EXPECT_TRUE(LineHoldsHexKey(key));
  EXPECT_TRUE(LineHoldsHexKey("0 8 default-key aes-xts-plain64 " + key.substr(0, 32)));
  EXPECT_FALSE(LineHoldsHexKey("0 8 default-key aes-xts-plain64 :64:logon:k 0 hw0 0"));
  EXPECT_FALSE(LineHoldsHexKey("0 8 default-key aes-xts-plain64 " + key.substr(0, 31)));
  EXPECT_FALSE(LineHoldsHexKey("0 8 default-key aes-xts-plain64 :64:logon:" + key + " 0 hw0 0"));
  EXPECT_FALSE(LineHoldsHexKey("0 2048 linear hw0 0"));
  EXPECT_FALSE(LineHoldsHexKey(""));
}

// Hardening 9: a table file holding a key must be private, as a key file; stdin is not checked.
TEST(TableInput, Hardening9_TableFileHoldingAKeyMustBePrivate) {
  char path[] = "/tmp/ice-cli-table-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string text =
      "0 8 default-key aes-xts-plain64 " + std::string(128, 'a') + " 0 hw0 0\n";
  ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
  ASSERT_EQ(chmod(path, 0640), 0);
  auto shared = ReadTableFile(path, -1);
  ASSERT_FALSE(shared.ok());
  EXPECT_EQ(shared.status().code(), EPERM);
  EXPECT_EQ(shared.status().message(),
            std::string("table file ") + path +
                " has mode 0640 and holds a key in hex: it must not be accessible by group or "
                "others (chmod 600 " +
                path + "), or name a key of the daemon's registry as :<size>:logon:<name>");
  ASSERT_EQ(chmod(path, 0600), 0);
  auto own = ReadTableFile(path, -1);
  EXPECT_TRUE(own.ok()) << own.status().message();
  // Without a key, a table file may be read by anyone.
  const std::string plain = "0 8 zero\n";
  ASSERT_EQ(truncate(path, 0), 0);
  const int wfd = open(path, O_WRONLY);
  ASSERT_GE(wfd, 0);
  ASSERT_EQ(write(wfd, plain.data(), plain.size()), static_cast<ssize_t>(plain.size()));
  close(wfd);
  ASSERT_EQ(chmod(path, 0644), 0);
  EXPECT_TRUE(ReadTableFile(path, -1).ok());
  unlink(path);
}

}  // namespace
}  // namespace ice::cli
