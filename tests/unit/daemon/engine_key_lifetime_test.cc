// Hardening 4 at the daemon's level: `key rm` and the engine's end leave no slot and no prepared
// cipher of the key anywhere, after tables moved below its users (run under ASan: a stale mapping
// is a use-after-free at the next `hw reset`).
#include <gtest/gtest.h>

#include <vector>

#include "config/config.h"
#include "daemon/engine.h"
#include "tests/unit/daemon/engine_test_util.h"

namespace ice::daemon {
namespace {

class EngineKeyLifetime : public ::testing::Test {
 protected:
  void SetUp() override {
    config::Config cfg;
    cfg.hardware = {testing::XtsHardware("hw0"), testing::XtsHardware("hw1")};
    cfg.hardware.push_back(testing::XtsHardware("plain", 0));
    cfg.hardware.back().capabilities = CryptoCapabilities();  // a plain device (H1)
    auto e = Engine::Create(cfg);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    engine_ = std::move(*e);
    std::vector<uint8_t> raw(64);
    for (size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<uint8_t>(i * 3 + 1);
    ASSERT_TRUE(
        engine_->AddKey("k", CryptoConfig{CryptoMode::kAes256Xts, 4096, 8, KeyType::kRaw}, raw)
            .ok());
  }

  void Write(const std::string& export_name) {
    auto exp = engine_->OpenExport(export_name);
    ASSERT_TRUE(exp.ok()) << exp.status().ToString();
    const std::vector<uint8_t> data(4096, 0x42);
    ASSERT_TRUE((*exp)->Write(data.data(), data.size(), 0, false).ok());
  }

  size_t Left() {
    size_t n = engine_->blk().fallback().prepared_ciphers();
    for (const SlotState& s : engine_->blk().fallback().profile().Slots()) n += s.key_id != 0;
    for (const auto& hw : engine_->hardware()) {
      n += hw.device->prepared_ciphers();
      for (const SlotState& s : hw.device->slots()) n += s.key_id != 0;
    }
    return n;
  }

  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineKeyLifetime, Hardening4_KeyRmAfterATableSwapLeavesNothing) {
  auto& dm = engine_->devices();
  ASSERT_TRUE(dm.Create("low", {"0 2048 linear plain 0"}).ok());
  ASSERT_TRUE(dm.Create("top", {"0 2048 default-key aes-xts-plain64 :64:logon:k 0 low 0 2 "
                                "sector_size:4096 iv_large_sectors"})
                  .ok());
  Write("top");  // through the fallback: low has no inline crypto
  ASSERT_TRUE(dm.Load("low", {"0 2048 linear hw0 0"}).ok());
  ASSERT_TRUE(dm.Resume("low").ok());
  Write("top");  // natively, on hw0
  ASSERT_TRUE(dm.Load("low", {"0 2048 linear hw1 0"}).ok());
  ASSERT_TRUE(dm.Resume("low").ok());
  Write("top");  // natively, on hw1
  Write("hw0@k");
  ASSERT_TRUE(dm.Remove("top").ok());
  ASSERT_GT(Left(), 0u);
  ASSERT_TRUE(engine_->RemoveKey("k").ok());
  for (const auto& hw : engine_->hardware()) hw.device->Reset();
  EXPECT_EQ(Left(), 0u);
}

// The engine's end drops the registry's keys: a device that outlives it (held elsewhere) keeps no
// slot or cipher of them, and a reset of it programs nothing.
TEST_F(EngineKeyLifetime, Hardening4_TheEnginesEndLeavesNoKeyOnHardwareThatOutlivesIt) {
  Write("hw0@k");
  std::shared_ptr<HardwareDevice> hw0 = engine_->hardware()[0].device;
  ASSERT_EQ(hw0->prepared_ciphers(), 1u);
  engine_.reset();
  for (const SlotState& s : hw0->slots()) EXPECT_EQ(s.key_id, 0u);
  EXPECT_EQ(hw0->prepared_ciphers(), 0u);
  hw0->Reset();
  EXPECT_EQ(hw0->counters().slot_programs, 1u);
}

}  // namespace
}  // namespace ice::daemon
