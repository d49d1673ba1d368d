// The dmsetup verbs of the device registry: create/load/resume/clear/remove (D2, D4, D5, P3),
// EBUSY rules (N8), table/status/info/ls/message formats (T7), eviction everywhere (D6), and I/O
// that keeps running correctly while tables are loaded and swapped.
#include "dm/device_registry.h"

#include <cerrno>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "dm/mapped_device.h"
#include "keyslot/blk_crypto.h"
#include "keyslot/hardware_device.h"
#include "tests/unit/dm/dm_test_util.h"

namespace ice::dm {
namespace {

using testing::Caps;
using testing::MakeKey;
using testing::Pattern;
using testing::ReadReq;
using testing::WriteReq;

constexpr uint64_t kMiB = 1 << 20;

std::shared_ptr<HardwareDevice> Hardware(uint64_t size, const CryptoCapabilities& caps,
                                         unsigned slots = 4) {
  return std::make_shared<HardwareDevice>(std::make_unique<MemoryBackend>(size), slots, caps);
}

class RegistryTest : public ::testing::Test {
 protected:
  RegistryTest() {
    hw0_ = Hardware(32 * kMiB, Caps({{CryptoMode::kAes256Xts, 4096}}));
    hw1_ = Hardware(8 * kMiB, Caps({{CryptoMode::kAes256Xts, 4096}}));
    wide_ = Hardware(8 * kMiB, Caps({{CryptoMode::kAes256Xts, 4096},
                                     {CryptoMode::kAes256Xts, 512},
                                     {CryptoMode::kAes128CbcEssiv, 4096}}));
    plain_ = std::make_shared<HardwareDevice>(std::make_unique<MemoryBackend>(8 * kMiB), 0,
                                              CryptoCapabilities());
    EXPECT_TRUE(reg_.AddHardware("hw0", hw0_).ok());
    EXPECT_TRUE(reg_.AddHardware("hw1", hw1_).ok());
    EXPECT_TRUE(reg_.AddHardware("wide", wide_).ok());
    EXPECT_TRUE(reg_.AddHardware("plain", plain_).ok());
  }

  std::vector<std::string> Lines(const std::string& name, bool inactive = false) {
    auto lines = reg_.Table(name, inactive);
    EXPECT_TRUE(lines.ok()) << lines.status().ToString();
    return lines.ok() ? *lines : std::vector<std::string>{"<error>"};
  }
  DeviceInfo InfoOf(const std::string& name) {
    auto info = reg_.Info(name);
    EXPECT_TRUE(info.ok()) << info.status().ToString();
    return info.ok() ? *info : DeviceInfo();
  }

  KeyRegistry keys_;
  BlkCrypto blk_{8};
  DeviceRegistry reg_{keys_, blk_};
  std::shared_ptr<HardwareDevice> hw0_, hw1_, wide_, plain_;
};

TEST_F(RegistryTest, D2_CreateLoadResumeClear) {
  ASSERT_TRUE(reg_.Create("md", {}).ok());
  DeviceInfo info = InfoOf("md");
  EXPECT_FALSE(info.live_table);
  EXPECT_EQ(info.size_bytes, 0u);
  ASSERT_TRUE(reg_.Load("md", {"0 64 linear hw0 0"}).ok());
  info = InfoOf("md");
  EXPECT_FALSE(info.live_table);
  EXPECT_TRUE(info.inactive_table);
  EXPECT_EQ(Lines("md", true), std::vector<std::string>{"0 64 linear hw0 0"});
  EXPECT_TRUE(Lines("md").empty());
  ASSERT_TRUE(reg_.Resume("md").ok());
  info = InfoOf("md");
  EXPECT_TRUE(info.live_table);
  EXPECT_FALSE(info.inactive_table);
  EXPECT_EQ(info.size_bytes, 64u * 512);
  EXPECT_EQ(info.num_targets, 1);
  EXPECT_FALSE(info.suspended);

  ASSERT_TRUE(reg_.Load("md", {"0 8 zero"}).code() == EINVAL);  // D4: would drop xts/4096
  ASSERT_TRUE(reg_.Load("md", {"0 32 linear hw1 0"}).ok());
  ASSERT_TRUE(reg_.Clear("md").ok());
  EXPECT_FALSE(InfoOf("md").inactive_table);
  ASSERT_TRUE(reg_.Clear("md").ok());  // nothing loaded: still fine

  ASSERT_TRUE(reg_.Suspend("md").ok());
  EXPECT_TRUE(InfoOf("md").suspended);
  ASSERT_TRUE(reg_.Resume("md").ok());
  EXPECT_FALSE(InfoOf("md").suspended);
}

TEST_F(RegistryTest, D4_ALoadDroppingAes256Xts4096IsRefusedNamingIt) {
  ASSERT_TRUE(reg_.Create("md", {"0 64 linear hw0 0"}).ok());
  ASSERT_TRUE(reg_.Load("md", {"0 64 linear hw1 0"}).ok());
  Status s = reg_.Load("md", {"0 64 linear plain 0"});
  EXPECT_EQ(s.code(), EINVAL);
  EXPECT_NE(s.message().find("aes-256-xts/4096"), std::string::npos) << s.message();
  // A rejected load leaves both tables as they were.
  EXPECT_EQ(Lines("md"), std::vector<std::string>{"0 64 linear hw0 0"});
  EXPECT_EQ(Lines("md", true), std::vector<std::string>{"0 64 linear hw1 0"});
  // So does one refused for its syntax or a missing device.
  EXPECT_EQ(reg_.Load("md", {"0 64 linear hw1"}).code(), EINVAL);
  EXPECT_EQ(reg_.Load("md", {"0 64 linear nosuch 0"}).code(), ENXIO);
  EXPECT_EQ(Lines("md"), std::vector<std::string>{"0 64 linear hw0 0"});
  EXPECT_EQ(Lines("md", true), std::vector<std::string>{"0 64 linear hw1 0"});
}

TEST_F(RegistryTest, D4_D5_ALoadAddingCapabilitiesTakesEffectAtResume) {
  ASSERT_TRUE(reg_.Create("md", {"0 64 linear hw0 0"}).ok());
  EXPECT_EQ(InfoOf("md").capabilities, "aes-256-xts:4096 dun_bytes=8 keys=raw");
  ASSERT_TRUE(reg_.Load("md", {"0 64 linear wide 0"}).ok());
  EXPECT_EQ(InfoOf("md").capabilities, "aes-256-xts:4096 dun_bytes=8 keys=raw");
  ASSERT_TRUE(reg_.Resume("md").ok());
  EXPECT_EQ(InfoOf("md").capabilities, wide_->crypto_profile()->capabilities().ToString());
  // Going back to the narrower device would now drop capabilities.
  Status s = reg_.Load("md", {"0 64 linear hw0 0"});
  EXPECT_EQ(s.code(), EINVAL);
  EXPECT_NE(s.message().find("aes-128-cbc-essiv/4096"), std::string::npos) << s.message();
}

// Hardening 10: create and load pass on what the new table warns of (flakey's write corruption
// sends plaintext on keyed paths), naming the target; nothing for other tables.
TEST_F(RegistryTest, Hardening10_CreateAndLoadPassOnTheTablesWarnings) {
  std::vector<std::string> warnings = {"stale"};
  ASSERT_TRUE(reg_.Create("fl",
                          {"0 8 linear hw0 0", "8 8 flakey hw0 8 0 1 5 corrupt_bio_byte 1 w 0 0"},
                          &warnings)
                  .ok());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0].rfind("flakey at sector 8: ", 0), 0u) << warnings[0];
  EXPECT_NE(warnings[0].find("plaintext"), std::string::npos) << warnings[0];
  ASSERT_TRUE(reg_.Load("fl", {"0 16 flakey hw0 0 0 1 2 random_write_corrupt 9"}, &warnings).ok());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0].rfind("flakey at sector 0: ", 0), 0u) << warnings[0];
  ASSERT_TRUE(reg_.Load("fl", {"0 16 flakey hw0 0 0 1 1 drop_writes"}, &warnings).ok());
  EXPECT_TRUE(warnings.empty());
  ASSERT_TRUE(reg_.Create("lin", {"0 16 linear hw0 0"}, &warnings).ok());
  EXPECT_TRUE(warnings.empty());
  ASSERT_TRUE(reg_.Create("empty", {}, &warnings).ok());
  EXPECT_TRUE(warnings.empty());
  // A refused table warns of nothing and leaves `warnings` alone.
  warnings = {"kept"};
  EXPECT_FALSE(
      reg_.Load("fl", {"0 16 flakey hw0 0 0 1 5 corrupt_bio_byte 1 x 0 0"}, &warnings).ok());
  EXPECT_EQ(warnings, std::vector<std::string>{"kept"});
}

TEST_F(RegistryTest, P3_CreateIsAllOrNothing) {
  EXPECT_EQ(reg_.Create("md", {"0 64 linear hw0 0", "65 8 zero"}).code(), EINVAL);
  EXPECT_EQ(reg_.Info("md").status().code(), ENXIO);
  EXPECT_TRUE(reg_.List().empty());
  ASSERT_TRUE(reg_.Create("md", {"0 64 linear hw0 0"}).ok());
  EXPECT_EQ(reg_.Create("md", {}).code(), EEXIST);
  EXPECT_EQ(reg_.Create("hw0", {}).code(), EEXIST);
  EXPECT_EQ(reg_.Create("bad/name", {}).code(), EINVAL);
  EXPECT_EQ(reg_.AddHardware("hw0", hw1_).code(), EEXIST);
}

TEST_F(RegistryTest, RemoveIsRefusedWhileOpenOrHeld) {
  ASSERT_TRUE(reg_.Create("low", {"0 64 linear hw0 0"}).ok());
  {
    auto open = reg_.Open("low");
    ASSERT_TRUE(open.ok());
    EXPECT_EQ(InfoOf("low").open_count, 1);
    Status s = reg_.Remove("low");
    EXPECT_EQ(s.code(), EBUSY);
    EXPECT_NE(s.message().find("open"), std::string::npos) << s.message();
    OpenDevice moved = std::move(*open);
    EXPECT_EQ(InfoOf("low").open_count, 1);
  }
  EXPECT_EQ(InfoOf("low").open_count, 0);

  ASSERT_TRUE(reg_.Create("top", {"0 64 linear low 0"}).ok());
  EXPECT_EQ(InfoOf("low").holders, 1);
  Status held = reg_.Remove("low");
  EXPECT_EQ(held.code(), EBUSY);
  EXPECT_NE(held.message().find("'top'"), std::string::npos) << held.message();
  // Held by an inactive table too.
  ASSERT_TRUE(reg_.Create("other", {"0 64 linear hw1 0"}).ok());
  ASSERT_TRUE(reg_.Load("other", {"0 64 linear low 0"}).ok());
  EXPECT_EQ(InfoOf("low").holders, 2);
  ASSERT_TRUE(reg_.Remove("top").ok());
  EXPECT_EQ(reg_.Remove("low").code(), EBUSY);
  ASSERT_TRUE(reg_.Clear("other").ok());
  EXPECT_EQ(InfoOf("low").holders, 0);
  EXPECT_TRUE(reg_.Remove("low").ok());
  EXPECT_EQ(reg_.Remove("low").code(), ENXIO);
  EXPECT_EQ(reg_.Remove("hw0").code(), EINVAL);
  EXPECT_EQ(reg_.Open("low").status().code(), ENOENT);
}

TEST_F(RegistryTest, D1_ATableMayNotUseItsOwnDeviceOrMakeACycle) {
  ASSERT_TRUE(reg_.Create("a", {"0 64 linear hw0 0"}).ok());
  Status self = reg_.Load("a", {"0 64 linear a 0"});
  EXPECT_EQ(self.code(), EINVAL);
  EXPECT_NE(self.message().find("table line 1"), std::string::npos) << self.message();
  EXPECT_EQ(reg_.Create("s", {"0 8 linear s 0"}).code(), EINVAL);
  ASSERT_TRUE(reg_.Create("b", {"0 64 linear a 0"}).ok());
  ASSERT_TRUE(reg_.Create("c", {}).ok());
  ASSERT_TRUE(reg_.Load("c", {"0 64 linear b 0"}).ok());  // inactive, still an edge
  Status cycle = reg_.Load("a", {"0 32 linear hw0 0", "32 32 linear c 0"});
  EXPECT_EQ(cycle.code(), EINVAL);
  EXPECT_NE(cycle.message().find("cycle"), std::string::npos) << cycle.message();
  EXPECT_NE(cycle.message().find("table line 2"), std::string::npos) << cycle.message();
}

TEST_F(RegistryTest, T7_TableStatusInfoAndLs) {
  ASSERT_TRUE(reg_.Create("zz", {"0 65536 zero"}).ok());
  ASSERT_TRUE(reg_.Create("lin", {"0 65536 linear hw0 0"}).ok());
  ASSERT_TRUE(reg_.Create("err", {"0 65536 error"}).ok());
  ASSERT_TRUE(reg_.Create("str", {"0 1024 striped 2 64 hw0 0 hw1 8"}).ok());
  EXPECT_EQ(Lines("lin"), std::vector<std::string>{"0 65536 linear hw0 0"});
  EXPECT_EQ(*reg_.StatusLines("lin"), std::vector<std::string>{"0 65536 linear "});
  EXPECT_EQ(Lines("zz"), std::vector<std::string>{"0 65536 zero "});
  EXPECT_EQ(*reg_.StatusLines("zz"), std::vector<std::string>{"0 65536 zero "});
  EXPECT_EQ(Lines("err"), std::vector<std::string>{"0 65536 error "});
  EXPECT_EQ(*reg_.StatusLines("err"), std::vector<std::string>{"0 65536 error "});
  EXPECT_EQ(Lines("str"), std::vector<std::string>{"0 1024 striped 2 64 hw0 0 hw1 8"});
  EXPECT_EQ(*reg_.StatusLines("str"), std::vector<std::string>{"0 1024 striped 2 hw0 hw1 1 AA"});
  EXPECT_EQ(reg_.Table("nosuch").status().code(), ENXIO);
  EXPECT_EQ(reg_.StatusLines("hw0").status().code(), EINVAL);

  // ls: mapped devices only, by name.
  std::vector<std::string> names;
  for (const DeviceInfo& i : reg_.List()) names.push_back(i.name);
  EXPECT_EQ(names, (std::vector<std::string>{"err", "lin", "str", "zz"}));

  DeviceInfo lin = InfoOf("lin");
  EXPECT_EQ(lin.kind, DeviceKind::kMapped);
  EXPECT_EQ(lin.size_bytes, 65536u * 512);
  EXPECT_EQ(lin.capabilities, "aes-256-xts:4096 dun_bytes=8 keys=raw");
  EXPECT_EQ(InfoOf("zz").capabilities, "none");
  DeviceInfo hw = InfoOf("hw0");
  EXPECT_EQ(hw.kind, DeviceKind::kHardware);
  EXPECT_EQ(hw.size_bytes, 32 * kMiB);
  EXPECT_EQ(hw.holders, 2);  // lin and str
  EXPECT_EQ(hw.capabilities, "aes-256-xts:4096 dun_bytes=8 keys=raw");
  EXPECT_EQ(InfoOf("plain").capabilities, "none");
}

TEST_F(RegistryTest, MessagesGoToTheTargetHoldingTheSector) {
  ASSERT_TRUE(reg_.Create("md", {"0 64 linear hw0 0", "64 64 zero"}).ok());
  auto reply = reg_.Message("md", 70, {"hello"});
  EXPECT_EQ(reply.status().code(), EINVAL);  // zero accepts no message
  EXPECT_NE(reply.status().message().find("hello"), std::string::npos);
  Status outside = reg_.Message("md", 128, {"hello"}).status();
  EXPECT_EQ(outside.code(), EINVAL);
  EXPECT_NE(outside.message().find("outside"), std::string::npos) << outside.message();
  EXPECT_EQ(reg_.Message("nosuch", 0, {"x"}).status().code(), ENXIO);
  EXPECT_EQ(reg_.Message("hw0", 0, {"x"}).status().code(), EINVAL);
  ASSERT_TRUE(reg_.Create("empty", {}).ok());
  EXPECT_EQ(reg_.Message("empty", 0, {"x"}).status().code(), EINVAL);
}

// The key used on both halves of a linear device is evicted from both devices' slots, whether by
// its placement (what `key rm` does) or through the top device (blk-crypto's evict, D6).
TEST_F(RegistryTest, D6_EvictionReachesEveryDeviceThroughStackedDevices) {
  ASSERT_TRUE(reg_.Create("md", {"0 2048 linear hw0 0", "2048 2048 linear hw1 0"}).ok());
  ASSERT_TRUE(reg_.Create("top", {"0 4096 linear md 0"}).ok());
  EXPECT_EQ(InfoOf("top").capabilities, "aes-256-xts:4096 dun_bytes=8 keys=raw");
  auto key = MakeKey(4096);
  auto open = reg_.Open("top");
  ASSERT_TRUE(open.ok());
  const auto data = Pattern(0, 2 * 4096, 1);
  // Two units on each side of the boundary at 1 MiB.
  ASSERT_TRUE(blk_.Submit(*open->get(), WriteReq(kMiB - 4096, data, key.get(), 255)).ok());
  auto holds = [&](HardwareDevice& hw) {
    for (const SlotState& s : hw.slots()) {
      if (s.key_id == key->id()) return true;
    }
    return false;
  };
  ASSERT_TRUE(holds(*hw0_));
  ASSERT_TRUE(holds(*hw1_));
  EXPECT_EQ(hw0_->counters().fallback_ios, 0u);  // native all the way down

  EXPECT_TRUE(CryptoProfile::EvictEverywhere(*key).ok());
  EXPECT_FALSE(holds(*hw0_));
  EXPECT_FALSE(holds(*hw1_));
  EXPECT_EQ(hw0_->counters().slot_evictions, 1u);
  EXPECT_EQ(hw1_->counters().slot_evictions, 1u);

  // Evicting from the top device alone (blk-crypto's evict) also reaches both.
  std::vector<uint8_t> back(data.size());
  ASSERT_TRUE(blk_.Submit(*open->get(), ReadReq(kMiB - 4096, back, key.get(), 255)).ok());
  EXPECT_EQ(back, data);
  ASSERT_TRUE(holds(*hw0_) && holds(*hw1_));
  EXPECT_TRUE(blk_.EvictKey(*open->get(), *key).ok());
  EXPECT_FALSE(holds(*hw0_));
  EXPECT_FALSE(holds(*hw1_));
}

// A keyed export on a table without capabilities goes through the fallback above the device (D7).
TEST_F(RegistryTest, D7_KeyedIoOnANonPassingTableUsesTheFallback) {
  ASSERT_TRUE(reg_.Create("md", {"0 64 linear hw0 0", "64 64 error"}).ok());
  EXPECT_EQ(InfoOf("md").capabilities, "none");
  auto open = reg_.Open("md");
  ASSERT_TRUE(open.ok());
  auto key = MakeKey(4096);
  const auto data = Pattern(0, 4096, 2);
  ASSERT_TRUE(blk_.Submit(*open->get(), WriteReq(0, data, key.get(), 0)).ok());
  EXPECT_EQ(hw0_->counters().fallback_ios, 1u);
  std::vector<uint8_t> raw(4096);
  ASSERT_TRUE(hw0_->Submit(ReadReq(0, raw)).ok());
  EXPECT_NE(raw, data);  // ciphertext below
  std::vector<uint8_t> back(4096);
  ASSERT_TRUE(blk_.Submit(*open->get(), ReadReq(0, back, key.get(), 0)).ok());
  EXPECT_EQ(back, data);
}

// Suspend of a stacked device whose I/O waits on a suspended device below does not stop the
// control plane: the lower device can still be resumed.
TEST_F(RegistryTest, D2_StackedSuspendDoesNotBlockOtherVerbs) {
  ASSERT_TRUE(reg_.Create("low", {"0 64 linear hw0 0"}).ok());
  ASSERT_TRUE(reg_.Create("top", {"0 64 linear low 0"}).ok());
  auto top = reg_.Open("top");
  ASSERT_TRUE(top.ok());
  ASSERT_TRUE(reg_.Suspend("low").ok());
  const auto data = Pattern(0, 4096, 3);
  Status io;
  std::thread writer([&] { io = top->get()->Submit(WriteReq(0, data)); });
  auto low = reg_.Open("low");
  auto* low_md = dynamic_cast<MappedDevice*>(low->get());
  ASSERT_NE(low_md, nullptr);
  ASSERT_TRUE(testing::Eventually([&] { return low_md->queued_requests() == 1; }));
  std::thread suspender([&] { EXPECT_TRUE(reg_.Suspend("top").ok()); });
  auto* top_md = dynamic_cast<MappedDevice*>(top->get());
  ASSERT_TRUE(testing::Eventually([&] { return top_md->dispatch_blocked(); }));
  EXPECT_TRUE(reg_.Load("low", {"0 64 linear hw0 0"}).ok());  // verbs still run
  EXPECT_TRUE(reg_.Resume("low").ok());
  writer.join();
  suspender.join();
  EXPECT_TRUE(io.ok()) << io.ToString();
  EXPECT_TRUE(InfoOf("top").suspended);
  EXPECT_TRUE(reg_.Resume("top").ok());
}

// Several threads do keyed and plain I/O, directly and through a stacked device, while two
// control threads load, suspend and resume tables that map the same bytes in different shapes;
// every read returns what its thread last wrote.
TEST_F(RegistryTest, IoStaysCorrectWhileTablesAreSwapped) {
  const std::vector<std::vector<std::string>> shapes = {
      {"0 8192 linear hw0 0"},
      {"0 4096 linear hw0 0", "4096 4096 linear hw0 4096"},
      {"0 8192 striped 1 64 hw0 0"},
      {"0 1024 linear hw0 0", "1024 7168 striped 1 8 hw0 1024"},
  };
  ASSERT_TRUE(reg_.Create("cc", shapes[0]).ok());
  ASSERT_TRUE(reg_.Create("top", {"0 8192 linear cc 0"}).ok());
  auto key = MakeKey(4096);

  constexpr int kThreads = 6;
  constexpr uint64_t kRegion = 256 * 1024;
  constexpr uint64_t kBase = kMiB + 128 * 1024;  // thread 3's region straddles 2 MiB
  constexpr int kOps = 150;
  constexpr int kMinSwaps = 100;  // I/O goes on at least until cc has had this many resumes
  std::atomic<int> failures{0};
  std::atomic<int> swaps{0};
  std::atomic<int> writers_done{0};

  auto io_thread = [&](int t) {
    auto dev = reg_.Open(t % 2 == 0 ? "cc" : "top");
    ASSERT_TRUE(dev.ok());
    const CryptoKey* k = t < 4 ? key.get() : nullptr;  // threads 4, 5 do plain I/O
    const uint64_t base = kBase + t * kRegion;
    std::vector<uint8_t> shadow(kRegion, 0);
    std::mt19937 rng(t);
    bool first = true;
    for (int op = 0; op < kOps || swaps.load() < kMinSwaps; ++op) {
      const uint64_t units = 1 + rng() % 4;
      const uint64_t off = (rng() % (kRegion / 4096 - units + 1)) * 4096;
      const uint64_t len = first ? kRegion : units * 4096;
      const uint64_t at = first ? 0 : off;
      first = false;
      auto data = Pattern(base + at, len, static_cast<uint8_t>(op * 7 + t));
      Status w = blk_.Submit(*dev->get(), WriteReq(base + at, data, k, (base + at) / 4096));
      if (!w.ok()) {
        ++failures;
        ADD_FAILURE() << w.ToString();
        continue;
      }
      std::copy(data.begin(), data.end(), shadow.begin() + at);
      std::vector<uint8_t> back(len);
      Status r = blk_.Submit(*dev->get(), ReadReq(base + at, back, k, (base + at) / 4096));
      if (!r.ok() || !std::equal(back.begin(), back.end(), shadow.begin() + at)) {
        ++failures;
        ADD_FAILURE() << "thread " << t << " op " << op << ": " << r.ToString();
      }
    }
    std::vector<uint8_t> all(kRegion);
    Status r = blk_.Submit(*dev->get(), ReadReq(base, all, k, base / 4096));
    if (!r.ok() || all != shadow) {
      ++failures;
      ADD_FAILURE() << "thread " << t << " final read: " << r.ToString();
    }
    ++writers_done;
  };

  auto control_low = [&] {
    std::mt19937 rng(99);
    for (int i = 0; writers_done.load() < kThreads && i < 100000; ++i) {
      switch (rng() % 4) {
        case 0:
          EXPECT_TRUE(reg_.Load("cc", shapes[rng() % shapes.size()]).ok());
          break;
        case 1:
          EXPECT_TRUE(reg_.Suspend("cc").ok());
          break;
        default:
          EXPECT_TRUE(reg_.Resume("cc").ok());
          ++swaps;
      }
      (void)reg_.StatusLines("cc");
      (void)reg_.Info("top");
    }
    EXPECT_TRUE(reg_.Resume("cc").ok());
  };
  auto control_top = [&] {
    for (int i = 0; writers_done.load() < kThreads && i < 100000; ++i) {
      if (i % 3 == 0) {
        EXPECT_TRUE(reg_.Load("top", {"0 8192 linear cc 0"}).ok());
      }
      // May wait for I/O queued on a suspended cc, which control_low resumes.
      EXPECT_TRUE(reg_.Suspend("top").ok());
      EXPECT_TRUE(reg_.Resume("top").ok());
    }
  };

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(io_thread, t);
  threads.emplace_back(control_low);
  threads.emplace_back(control_top);
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GE(swaps.load(), kMinSwaps);
  EXPECT_FALSE(InfoOf("cc").suspended);
  EXPECT_FALSE(InfoOf("top").suspended);
}

}  // namespace
}  // namespace ice::dm
