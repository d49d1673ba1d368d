#include "daemon/quit_watch.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

namespace ice::daemon {
namespace {

std::atomic<int> g_previous_calls{0};
void PreviousHandler(int) { g_previous_calls.fetch_add(1); }

// Installs PreviousHandler for SIGHUP (as nbdkit installs its own) for one test.
class QuitWatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    g_previous_calls = 0;
    struct sigaction sa = {};
    sa.sa_handler = PreviousHandler;
    sigemptyset(&sa.sa_mask);
    ASSERT_EQ(sigaction(SIGHUP, &sa, &saved_), 0);
  }
  void TearDown() override { sigaction(SIGHUP, &saved_, nullptr); }

  struct sigaction saved_ = {};
};

TEST_F(QuitWatchTest, N7_QuitSignalRunsTheCallbackOnceAndStillReachesThePreviousHandler) {
  std::mutex mu;
  std::condition_variable cv;
  int calls = 0;
  auto watch = QuitWatch::Start([&] {
    std::lock_guard g(mu);
    ++calls;
    cv.notify_all();
  });
  ASSERT_TRUE(watch.ok()) << watch.status().ToString();
  ASSERT_EQ(raise(SIGHUP), 0);
  ASSERT_EQ(raise(SIGHUP), 0);
  {
    std::unique_lock g(mu);
    ASSERT_TRUE(cv.wait_for(g, std::chrono::seconds(30), [&] { return calls > 0; }));
  }
  EXPECT_EQ(g_previous_calls.load(), 2);  // nbdkit's handler still sees every signal
  watch->reset();
  EXPECT_EQ(calls, 1);
}

TEST_F(QuitWatchTest, WithoutASignalTheCallbackNeverRunsAndTheHandlerIsRestored) {
  bool ran = false;
  {
    auto watch = QuitWatch::Start([&] { ran = true; });
    ASSERT_TRUE(watch.ok());
  }
  EXPECT_FALSE(ran);
  struct sigaction now = {};
  ASSERT_EQ(sigaction(SIGHUP, nullptr, &now), 0);
  EXPECT_EQ(now.sa_handler, &PreviousHandler);
  ASSERT_EQ(raise(SIGHUP), 0);
  EXPECT_EQ(g_previous_calls.load(), 1);
}

TEST_F(QuitWatchTest, OnlyOneAtATime) {
  auto first = QuitWatch::Start([] {});
  ASSERT_TRUE(first.ok());
  auto second = QuitWatch::Start([] {});
  EXPECT_EQ(second.status().code(), EBUSY);
  first->reset();
  auto third = QuitWatch::Start([] {});
  EXPECT_TRUE(third.ok());
}

}  // namespace
}  // namespace ice::daemon
