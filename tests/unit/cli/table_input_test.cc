#include "cli/table_input.h"

#include <gtest/gtest.h>
#include <unistd.h>

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

}  // namespace
}  // namespace ice::cli
