// Where key material lives (hardening 7 and 8): the key arena and SecretPages are excluded from
// core dumps and locked where the limits allow, and the state is reported.
#include "keyslot/key_memory.h"

#include <sys/resource.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "keyslot/crypto_key.h"

namespace ice {
namespace {

// The VmFlags of the mapping holding `p` (/proc/self/smaps: "dd" = excluded from core dumps,
// "lo" = locked), or "" when none holds it.
std::string VmFlagsOf(const void* p) {
  const auto addr = reinterpret_cast<uintptr_t>(p);
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    uintptr_t lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > line.find(' ')) {
      inside = lo <= addr && addr < hi;
    } else if (inside && line.rfind("VmFlags:", 0) == 0) {
      return line.substr(8) + " ";
    }
  }
  return "";
}

bool Has(const std::string& flags, const char* flag) {
  return flags.find(std::string(" ") + flag + " ") != std::string::npos;
}

bool CanLock(size_t bytes) {
  rlimit limit{};
  return getuid() == 0 || (getrlimit(RLIMIT_MEMLOCK, &limit) == 0 && limit.rlim_cur >= bytes);
}

TEST(KeyMemory, Hardening7_KeyBytesLiveInTheArenaOutOfCoreDumps) {
  auto key = CryptoKey::Create(CryptoConfig{CryptoMode::kAes128CbcEssiv, 4096, 8, KeyType::kRaw},
                               std::vector<uint8_t>(16, 0x5a));
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  const KeyMemoryState s = GetKeyMemoryState();
  ASSERT_TRUE(s.arena) << s.Describe();
  EXPECT_GE(s.arena_bytes, 256u * 1024);
  EXPECT_GT(s.used_bytes, 0u);
  const std::string flags = VmFlagsOf((*key)->raw_bytes().data());
  EXPECT_TRUE(Has(flags, "dd")) << flags;
  if (CanLock(s.arena_bytes)) {
    EXPECT_TRUE(s.locked) << s.Describe();
    EXPECT_EQ(s.Describe(), "locked");
    EXPECT_TRUE(Has(flags, "lo")) << flags;
  } else {
    EXPECT_EQ(s.Describe().rfind("unlocked: ", 0), 0u) << s.Describe();
    EXPECT_NE(s.problem.find("RLIMIT_MEMLOCK"), std::string::npos) << s.problem;
  }
  // Later setups change nothing.
  EXPECT_EQ(InitKeyMemory(1 << 20).arena_bytes, s.arena_bytes);
}

TEST(KeyMemory, Hardening7_SecretPagesAreOutOfCoreDumpsAndWipedOnResize) {
  SecretPages p(100);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p.size(), 100u);
  EXPECT_TRUE(Has(VmFlagsOf(p.data()), "dd")) << VmFlagsOf(p.data());
  for (size_t i = 0; i < p.size(); ++i) EXPECT_EQ(p.data()[i], 0) << i;
  std::fill_n(p.data(), p.size(), 0x77);
  ASSERT_TRUE(p.Resize(10));  // shrinks in place: the cut-off bytes are wiped
  EXPECT_EQ(p.data()[10], 0);
  EXPECT_EQ(p.data()[9], 0x77);
  ASSERT_TRUE(p.Resize(3 * 4096));  // grows into new pages, keeping the contents
  EXPECT_EQ(p.size(), 3u * 4096);
  EXPECT_EQ(p.data()[9], 0x77);
  EXPECT_EQ(p.data()[10], 0);
  EXPECT_TRUE(Has(VmFlagsOf(p.data() + 2 * 4096), "dd"));
  SecretPages moved = std::move(p);
  EXPECT_EQ(p.size(), 0u);
  EXPECT_EQ(moved.data()[9], 0x77);
}

TEST(KeyMemory, Hardening8_WipeStringClearsEvenEarlierLongerContents) {
  std::string s(200, 'k');
  const char* buffer = s.data();
  s.resize(10);  // the first 200 bytes of the buffer still hold 'k's past size()
  WipeString(s);
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(s.data(), buffer) << "no reallocation";
  for (size_t i = 0; i < 200; ++i) EXPECT_EQ(buffer[i], '\0') << i;
}

}  // namespace
}  // namespace ice
