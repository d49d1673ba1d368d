// Fuzzes the control protocol: each line of the input (split at '\n') is one request for
// daemon::ControlHandler::Handle, in order, on a small engine built afresh for every input
// (memory-backed hardware with and without inline crypto, a registry key, a mapped device). Every
// reply must be one line holding a JSON object, without the registry key's bytes.
//
// The engine's clock is a JumpClock: `hw.fault program_latency_ms` may ask for an hour per slot
// program, and `hw.reset` then reprograms every slot; on a real clock that would sleep (a
// legitimate block of the control thread, issue 13 item 3), here time jumps instead. Verbs that
// block on I/O (a suspended device) do not block here: the harness sends no I/O.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/config.h"
#include "daemon/control_handler.h"
#include "daemon/engine.h"
#include "tests/fuzz/fuzz_util.h"

namespace ice::fuzz {
namespace {

// The registry key k1's bytes, and each half of them in hex (lower case, as a reply would spell
// it).
std::vector<uint8_t> KeyBytes() {
  std::vector<uint8_t> raw(64);
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<uint8_t>(i * 3 + 1);
  return raw;
}

const std::vector<std::string>& KeyHalvesHex() {
  static const std::vector<std::string> halves = [] {
    const std::vector<uint8_t> raw = KeyBytes();
    std::string hex;
    for (uint8_t b : raw) {
      hex += "0123456789abcdef"[b >> 4];
      hex += "0123456789abcdef"[b & 15];
    }
    return std::vector<std::string>{hex.substr(0, 64), hex.substr(64)};
  }();
  return halves;
}

std::unique_ptr<daemon::Engine> MakeEngine(Clock& clock) {
  config::Config cfg;
  cfg.daemon.fallback_slots = 4;
  cfg.hardware = {Hardware("hw0", 2), Hardware("hw1", 1), Hardware("plain", 0)};
  cfg.devices.push_back({"lin0", {"0 2048 linear hw0 0"}});
  auto e = daemon::Engine::Create(cfg, clock);
  if (!e.ok()) std::abort();
  if (!(*e)->AddKey("k1", {CryptoMode::kAes256Xts, 4096, 8, KeyType::kRaw}, KeyBytes()).ok())
    std::abort();
  return std::move(*e);
}

// A reply is one line holding a JSON object with "ok" (P2), and no half of the key k1 (P4).
void CheckReply(const std::string& line, const std::string& reply) {
  const auto j = nlohmann::json::parse(reply, nullptr, /*allow_exceptions=*/false);
  const char* wrong = nullptr;
  if (reply.find('\n') != std::string::npos || !j.is_object() || !j.contains("ok"))
    wrong = "is not one JSON object";
  for (const std::string& half : KeyHalvesHex()) {
    if (reply.find(half) != std::string::npos) wrong = "holds key bytes";
  }
  if (wrong == nullptr) return;
  std::fprintf(stderr, "control_fuzz: request %s\nhas a reply that %s: %s\n", line.c_str(), wrong,
               reply.c_str());
  std::abort();
}

}  // namespace
}  // namespace ice::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ice;
  fuzz::JumpClock clock;
  std::unique_ptr<daemon::Engine> engine = fuzz::MakeEngine(clock);
  daemon::ControlHandler handler(*engine);
  for (const std::string& line : fuzz::Lines(data, size)) {
    fuzz::CheckReply(line, handler.Handle(line));
  }
  return 0;
}
