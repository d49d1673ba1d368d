#include "block/log.h"

#include <gtest/gtest.h>

#include <string>

namespace ice {
namespace {

// Hardening 11: a refused export name cannot forge log lines or flood the log.
TEST(EscapeForLog, Hardening11_ControlBytesAndQuotesAreEscaped) {
  EXPECT_EQ(EscapeForLog("lin0@k1"), "lin0@k1");
  EXPECT_EQ(EscapeForLog("a\nice: ready"), "a\\x0aice: ready");
  EXPECT_EQ(EscapeForLog("x'y\\z"), "x'y\\x5cz");
  EXPECT_EQ(EscapeForLog(std::string("\x1b[2J\0\xff", 6)), "\\x1b[2J\\x00\\xff");
  EXPECT_EQ(EscapeForLog("").size(), 0u);
}

TEST(EscapeForLog, Hardening11_LongNamesAreCutSayingHowMuch) {
  const std::string name(3000, 'n');
  const std::string shown = EscapeForLog(name);
  EXPECT_EQ(shown, std::string(128, 'n') + "…(2872 more bytes)");
  EXPECT_EQ(EscapeForLog("abcdef", 3), "abc…(3 more bytes)");
  // The cut counts the original's bytes, so escapes cannot make a line longer than 4× the bound.
  EXPECT_LE(EscapeForLog(std::string(3000, '\n')).size(), 4 * 128 + 32);
}

// Hardening 11: a burst of events is let through, the rest of the second is counted, not logged.
TEST(RateLimit, Hardening11_BurstThenSuppressedWithACount) {
  RateLimit limit(std::chrono::hours(1), 10);
  uint64_t suppressed = 0;
  int allowed = 0;
  for (int i = 0; i < 2000; ++i) allowed += limit.Allow(&suppressed);
  EXPECT_EQ(allowed, 10);
  RateLimit next_window(std::chrono::milliseconds(0), 1);
  EXPECT_TRUE(next_window.Allow(&suppressed));
  EXPECT_EQ(suppressed, 0u);
}

}  // namespace
}  // namespace ice
