// Hardening 4: a dropped key — a default-key's inline key or a registry key — leaves no slot and no
// prepared cipher on any device that ever served it, however tables and routing moved in between
// (the kernel's dm_keyslot_evict reaches only the devices of the live table). The sequences are run
// under AddressSanitizer too: a stale slot mapping is a use-after-free at the next `hw reset`.
#include <gtest/gtest.h>

#include "dm/device_registry.h"
#include "keyslot/blk_crypto.h"
#include "keyslot/hardware_device.h"
#include "tests/unit/dm/dm_test_util.h"

namespace ice::dm {
namespace {

using testing::Caps;
using testing::MakeKey;
using testing::Pattern;
using testing::WriteReq;

constexpr uint64_t kMiB = 1 << 20;
// 2048 sectors, in 4096-byte crypto sectors: DUNs 0…255.
constexpr const char* kKeyOptions = " 0 low 0 2 sector_size:4096 iv_large_sectors";
constexpr const char* kInlineHex =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeffe0e1e2e3e4e5e6e7e8e9eaebecedeeef";

std::string DefaultKeyLine(const std::string& key) {
  return "0 2048 default-key aes-xts-plain64 " + key + kKeyOptions;
}

class KeyLifetime : public ::testing::Test {
 protected:
  KeyLifetime() {
    hw0_ = Hardware();
    hw1_ = Hardware();
    plain_ = std::make_shared<HardwareDevice>(std::make_unique<MemoryBackend>(4 * kMiB), 0,
                                              CryptoCapabilities());
    EXPECT_TRUE(reg_.AddHardware("hw0", hw0_).ok());
    EXPECT_TRUE(reg_.AddHardware("hw1", hw1_).ok());
    EXPECT_TRUE(reg_.AddHardware("plain", plain_).ok());
  }

  static std::shared_ptr<HardwareDevice> Hardware() {
    return std::make_shared<HardwareDevice>(std::make_unique<MemoryBackend>(4 * kMiB), 4,
                                            Caps({{CryptoMode::kAes256Xts, 4096}}));
  }

  // One 4096-byte write through `name`, as a client of its export.
  void WriteThrough(const std::string& name, uint8_t seed) {
    auto open = reg_.Open(name);
    ASSERT_TRUE(open.ok()) << open.status().ToString();
    ASSERT_TRUE(blk_.Submit(*open->get(), WriteReq(0, Pattern(0, 4096, seed))).ok());
  }
  void SwapLowOnto(const std::string& hw) {
    ASSERT_TRUE(reg_.Load("low", {"0 2048 linear " + hw + " 0"}).ok());
    ASSERT_TRUE(reg_.Resume("low").ok());
  }

  static int Mapped(const std::vector<SlotState>& slots) {
    int n = 0;
    for (const SlotState& s : slots) n += s.key_id != 0;
    return n;
  }
  int FallbackMapped() { return Mapped(blk_.fallback().profile().Slots()); }

  // Nothing of any key is left anywhere: no mapping, no prepared cipher.
  void ExpectNoKeyAnywhere() {
    for (const auto& hw : {hw0_, hw1_}) {
      EXPECT_EQ(Mapped(hw->slots()), 0);
      EXPECT_EQ(hw->prepared_ciphers(), 0u);
    }
    EXPECT_EQ(FallbackMapped(), 0);
    EXPECT_EQ(blk_.fallback().prepared_ciphers(), 0u);
  }

  KeyRegistry keys_;
  BlkCrypto blk_{8};
  std::shared_ptr<HardwareDevice> hw0_, hw1_, plain_;
  DeviceRegistry reg_{keys_, blk_};  // declared last: its tables go before the hardware
};

// The sequence: on the old code the reset reprograms hw0's slot from the freed key (ASan:
// heap-use-after-free in ReprogramAllKeys).
TEST_F(KeyLifetime, Hardening4_HwResetAfterATableSwapBelowADefaultKey) {
  ASSERT_TRUE(reg_.Create("low", {"0 2048 linear hw0 0"}).ok());
  ASSERT_TRUE(reg_.Create("top", {DefaultKeyLine(kInlineHex)}).ok());
  WriteThrough("top", 1);
  ASSERT_EQ(Mapped(hw0_->slots()), 1);
  ASSERT_EQ(hw0_->prepared_ciphers(), 1u);
  SwapLowOnto("hw1");
  ASSERT_TRUE(reg_.Remove("top").ok());
  hw0_->Reset();
  ExpectNoKeyAnywhere();
  EXPECT_EQ(hw0_->counters().slot_evictions, 1u);
  EXPECT_EQ(hw0_->counters().slot_programs, 1u) << "the reset reprogrammed a dropped key";
}

// The key went through the fallback while `low` had no inline crypto, then natively once `low`
// moved onto hardware that has it: the fallback's pool must forget it too.
TEST_F(KeyLifetime, Hardening4_RoutingMovedFromFallbackToNativeLeavesNothingInThePool) {
  ASSERT_TRUE(reg_.Create("low", {"0 2048 linear plain 0"}).ok());
  ASSERT_TRUE(reg_.Create("top", {DefaultKeyLine(kInlineHex)}).ok());
  WriteThrough("top", 1);
  ASSERT_EQ(FallbackMapped(), 1);
  ASSERT_EQ(plain_->counters().fallback_ios, 1u);
  SwapLowOnto("hw1");  // capabilities only grow (D4): from none to hw1's
  WriteThrough("top", 2);
  ASSERT_EQ(Mapped(hw1_->slots()), 1) << "now native";
  ASSERT_TRUE(reg_.Remove("top").ok());
  ExpectNoKeyAnywhere();
}

// A registry key used by a default-key table on both sides of a swap, the table removed, then the
// key dropped by `key rm` (the registry lets go of it): every slot it reached is emptied.
TEST_F(KeyLifetime, Hardening4_RegistryKeyRemovedAfterATableSwap) {
  ASSERT_TRUE(keys_.Add("k", MakeKey(4096, 3)).ok());
  ASSERT_TRUE(reg_.Create("low", {"0 2048 linear hw0 0"}).ok());
  ASSERT_TRUE(reg_.Create("top", {DefaultKeyLine(":64:logon:k")}).ok());
  WriteThrough("top", 1);
  SwapLowOnto("hw1");
  WriteThrough("top", 2);
  ASSERT_EQ(Mapped(hw0_->slots()), 1);
  ASSERT_EQ(Mapped(hw1_->slots()), 1);
  ASSERT_TRUE(reg_.Remove("top").ok());
  EXPECT_EQ(Mapped(hw0_->slots()) + Mapped(hw1_->slots()), 2) << "the registry still has it";
  ASSERT_TRUE(keys_.Remove("k").ok());  // the returned reference is the last one
  hw0_->Reset();
  hw1_->Reset();
  ExpectNoKeyAnywhere();
}

// Keys of a registry that goes away before the hardware (the daemon stopping) leave nothing.
TEST_F(KeyLifetime, Hardening4_RegistryDroppedAtShutdownLeavesNoSlot) {
  {
    KeyRegistry keys;
    ASSERT_TRUE(keys.Add("k", MakeKey(4096, 4)).ok());
    auto key = keys.Find("k");
    ASSERT_TRUE(key.ok());
    ASSERT_TRUE(blk_.Submit(*hw0_, WriteReq(0, Pattern(0, 4096, 1), key->get(), 0)).ok());
    ASSERT_TRUE(blk_.Submit(*plain_, WriteReq(0, Pattern(0, 4096, 1), key->get(), 0)).ok());
    ASSERT_EQ(Mapped(hw0_->slots()), 1);
    ASSERT_EQ(FallbackMapped(), 1);
  }
  hw0_->Reset();
  ExpectNoKeyAnywhere();
}

}  // namespace
}  // namespace ice::dm
