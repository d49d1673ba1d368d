#include "dm/targets/delay.h"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/dm_targets/dm_target_test_env.h"

namespace ice::dm {
namespace {

using namespace std::chrono_literals;
using testing::Op;
using testing::Pattern;
using testing::Read;
using testing::TestEnv;
using testing::WaitForSleepers;
using testing::Write;

constexpr uint64_t kDevBytes = 1 << 20;
constexpr uint64_t kSectors = 256;

// Runs one request on its own thread (it blocks while delayed) and reports when it is done.
class Pending {
 public:
  template <typename F>
  explicit Pending(F f)
      : thread_([this, f] {
          status_ = f();
          done_ = true;
        }) {}
  ~Pending() {
    if (thread_.joinable()) thread_.join();
  }
  bool done() const { return done_; }
  Status Join() {
    thread_.join();
    return status_;
  }

 private:
  std::atomic<bool> done_{false};
  Status status_;
  std::thread thread_;
};

class Delay : public ::testing::Test {
 protected:
  Delay()
      : d0_(env_.AddDevice("d0", kDevBytes)),
        d1_(env_.AddDevice("d1", kDevBytes)),
        d2_(env_.AddDevice("d2", kDevBytes)) {}

  std::unique_ptr<Target> Make(std::vector<std::string> args) {
    auto t = env_.Create(kDelayTarget, kSectors, std::move(args));
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? std::move(*t) : nullptr;
  }

  TestEnv env_;
  std::shared_ptr<testing::RecordingDevice> d0_, d1_, d2_;
};

TEST_F(Delay, T4_TakesExactly3_6Or9Args) {
  for (size_t n : {0, 1, 2, 4, 5, 7, 8, 10}) {
    std::vector<std::string> args;
    for (size_t i = 0; i < n; ++i) args.push_back(i % 3 == 0 ? "d0" : "0");
    EXPECT_EQ(env_.Create(kDelayTarget, kSectors, args).status().code(), EINVAL) << n;
  }
  EXPECT_NE(Make({"d0", "0", "0"}), nullptr);
  EXPECT_NE(Make({"d0", "0", "0", "d1", "0", "0"}), nullptr);
  EXPECT_NE(Make({"d0", "0", "0", "d1", "0", "0", "d2", "0", "0"}), nullptr);
  EXPECT_EQ(env_.Create(kDelayTarget, kSectors, {"d0", "x", "0"}).status().code(), EINVAL);
  EXPECT_EQ(env_.Create(kDelayTarget, kSectors, {"d0", "0", "x"}).status().code(), EINVAL);
  EXPECT_EQ(env_.Create(kDelayTarget, kSectors, {"d0", "0", "4294967296"}).status().code(), EINVAL);
  EXPECT_EQ(env_.Create(kDelayTarget, kSectors, {"d0", "0", "0", "nope", "0", "0"}).status().code(),
            ENXIO);
  EXPECT_EQ(
      env_.Create(kDelayTarget, kSectors, {"d0", "0", "0", "d1", "1900", "0"}).status().code(),
      EINVAL)
      << "the write area must lie within its device";
}

TEST_F(Delay, T4_ReadWaitsItsDelayOnTheClock) {
  auto t = Make({"d0", "8", "100", "d1", "0", "500"});
  auto data = Pattern(4096, 1);
  d0_->Poke(4096, data);
  std::vector<uint8_t> buf(4096);
  Pending read([&] { return Read(*t, 0, buf); });
  ASSERT_TRUE(WaitForSleepers(env_.clock, 1));
  EXPECT_EQ(t->StatusParams(), "1 0 0");
  EXPECT_TRUE(d0_->seen().empty()) << "held before it reaches the device";
  env_.clock.Advance(99ms);
  EXPECT_FALSE(read.done());
  env_.clock.Advance(1ms);
  EXPECT_TRUE(read.Join().ok());
  EXPECT_EQ(buf, data);
  EXPECT_EQ(t->StatusParams(), "0 0 0");
  ASSERT_EQ(d0_->seen().size(), 1u);
  EXPECT_EQ(d0_->seen()[0].offset, 4096u);
}

TEST_F(Delay, T4_WritesUseTheSecondTripleAndFlushesTheThird) {
  auto t = Make({"d0", "0", "0", "d1", "8", "0", "d2", "16", "0"});
  auto data = Pattern(512, 2);
  ASSERT_TRUE(Write(*t, 512, data).ok());
  EXPECT_EQ(d1_->Bytes(4096 + 512, 512), data);
  ASSERT_TRUE(Op(*t, IoOp::kDiscard, 0, 512).ok());
  ASSERT_TRUE(Op(*t, IoOp::kWriteZeroes, 0, 512).ok());
  ASSERT_TRUE(Op(*t, IoOp::kFlush).ok());
  std::vector<uint8_t> buf(512);
  ASSERT_TRUE(Read(*t, 0, buf).ok());
  ASSERT_EQ(d0_->seen().size(), 1u);
  EXPECT_EQ(d0_->seen()[0].op, IoOp::kRead);
  ASSERT_EQ(d1_->seen().size(), 3u);
  EXPECT_EQ(d1_->seen()[1].op, IoOp::kDiscard);
  EXPECT_EQ(d1_->seen()[1].offset, 4096u);
  EXPECT_EQ(d1_->seen()[2].op, IoOp::kWriteZeroes);
  ASSERT_EQ(d2_->seen().size(), 1u);
  EXPECT_EQ(d2_->seen()[0].op, IoOp::kFlush);
  EXPECT_EQ(t->Devices().size(), 3u);
}

TEST_F(Delay, T4_FlushesUseTheWriteTripleWhenNoThird) {
  auto t = Make({"d0", "0", "0", "d1", "0", "0"});
  ASSERT_TRUE(Op(*t, IoOp::kFlush).ok());
  EXPECT_TRUE(d0_->seen().empty());
  ASSERT_EQ(d1_->seen().size(), 1u);
  EXPECT_EQ(d1_->seen()[0].op, IoOp::kFlush);

  auto one = Make({"d2", "0", "0"});
  ASSERT_TRUE(Op(*one, IoOp::kFlush).ok());
  ASSERT_TRUE(Write(*one, 0, Pattern(512, 3)).ok());
  EXPECT_EQ(d2_->seen().size(), 2u);
  EXPECT_EQ(one->Devices().size(), 1u);
}

TEST_F(Delay, T4_EachClassWaitsItsOwnDelay) {
  auto t = Make({"d0", "0", "10", "d1", "0", "20", "d2", "0", "30"});
  std::vector<uint8_t> buf(512);
  Pending read([&] { return Read(*t, 0, buf); });
  Pending write([&] { return Write(*t, 0, Pattern(512, 4)); });
  Pending flush([&] { return Op(*t, IoOp::kFlush); });
  ASSERT_TRUE(WaitForSleepers(env_.clock, 3));
  EXPECT_EQ(t->StatusParams(), "1 1 1");
  env_.clock.Advance(10ms);
  EXPECT_TRUE(read.Join().ok());
  EXPECT_EQ(t->StatusParams(), "0 1 1");
  env_.clock.Advance(10ms);
  EXPECT_TRUE(write.Join().ok());
  EXPECT_FALSE(flush.done());
  env_.clock.Advance(10ms);
  EXPECT_TRUE(flush.Join().ok());
  EXPECT_EQ(t->StatusParams(), "0 0 0");
}

TEST_F(Delay, T4_ZeroDelaySendsAtOnce) {
  auto t = Make({"d0", "0", "0", "d1", "0", "1000"});
  std::vector<uint8_t> buf(512);
  EXPECT_TRUE(Read(*t, 0, buf).ok());  // no thread: it would hang if it waited
  EXPECT_EQ(env_.clock.waiters(), 0);
}

TEST_F(Delay, T4_StatusCountsDelayedIOs) {
  auto t = Make({"d0", "0", "50"});
  std::vector<uint8_t> b1(512), b2(512);
  Pending r1([&] { return Read(*t, 0, b1); });
  Pending r2([&] { return Read(*t, 512, b2); });
  Pending w([&] { return Write(*t, 0, Pattern(512, 5)); });
  Pending f([&] { return Op(*t, IoOp::kFlush); });
  ASSERT_TRUE(WaitForSleepers(env_.clock, 4));
  EXPECT_EQ(t->StatusParams(), "2 1 1");
  env_.clock.Advance(50ms);
  EXPECT_TRUE(r1.Join().ok());
  EXPECT_TRUE(r2.Join().ok());
  EXPECT_TRUE(w.Join().ok());
  EXPECT_TRUE(f.Join().ok());
  EXPECT_EQ(t->StatusParams(), "0 0 0");
}

TEST_F(Delay, T4_PresuspendReleasesEveryDelayedIO) {
  auto t = Make({"d0", "0", "3600000"});  // an hour
  std::vector<std::vector<uint8_t>> bufs(4, std::vector<uint8_t>(512));
  std::vector<std::unique_ptr<Pending>> reads;
  for (auto& b : bufs)
    reads.push_back(std::make_unique<Pending>([&t, &b] { return Read(*t, 0, b); }));
  ASSERT_TRUE(WaitForSleepers(env_.clock, 4));
  EXPECT_EQ(t->StatusParams(), "4 0 0");
  t->Presuspend();
  for (auto& r : reads) EXPECT_TRUE(r->Join().ok());
  EXPECT_EQ(t->StatusParams(), "0 0 0");
  EXPECT_EQ(d0_->seen().size(), 4u);
  // Until resumed, nothing is delayed.
  EXPECT_TRUE(Read(*t, 0, bufs[0]).ok());
  t->Resume();
  Pending later([&] { return Read(*t, 0, bufs[1]); });
  ASSERT_TRUE(WaitForSleepers(env_.clock, 1));
  EXPECT_EQ(t->StatusParams(), "1 0 0");
  env_.clock.Advance(1h);
  EXPECT_TRUE(later.Join().ok());
}

TEST_F(Delay, T4_TablePrintsTheTriplesAsGiven) {
  EXPECT_EQ(Make({"d0", "0", "100"})->TableParams(), "d0 0 100");
  EXPECT_EQ(Make({"d0", "0", "50", "d1", "0", "100"})->TableParams(), "d0 0 50 d1 0 100");
  EXPECT_EQ(Make({"d0", "8", "1", "d0", "16", "2", "d2", "24", "3"})->TableParams(),
            "d0 8 1 d0 16 2 d2 24 3");
  EXPECT_EQ(Make({"d0", "0", "100"})->StatusParams(), "0 0 0");
}

TEST_F(Delay, T4_HasNoMessages) {
  EXPECT_EQ(Make({"d0", "0", "1"})->Message({"flush"}).status().code(), EINVAL);
}

TEST(TargetTypes, D7_DelayDoesNotPassCrypto) {
  EXPECT_EQ(kDelayTarget.name, "delay");
  EXPECT_FALSE(kDelayTarget.passes_crypto);
}

}  // namespace
}  // namespace ice::dm
