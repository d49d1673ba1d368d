// Fuzzes the control protocol: each line of the input (split at '\n') is one request for
// daemon::ControlHandler::Handle, in order, on a small engine built afresh for every input
// (memory-backed hardware with and without inline crypto, a registry key, a mapped device). Every
// reply must be one line holding a JSON object, without the registry key's bytes.
//
// The engine's clock is a JumpClock: `hw.fault program_latency_ms` may ask for an hour per slot
// program, and `hw.reset` then reprograms every slot; on a real clock that would sleep (a
// legitimate block of the control thread, issue 13 item 3), here time jumps instead.
//
// Two kinds of lines are the harness's own, so that verbs meet programmed keyslots, open devices
// and written bytes: "io <export> <op> <offset> <length>" opens the export (`NAME` or `NAME@KEY`),
// sends one request (op r, w, W for FUA, f, z, t for trim, e for block status, whose holes must
// read as zeros; at most 256 KiB, within the export) and closes it; "hold <export>" opens an export
// and keeps it open until the input ends, as a connected client would. I/O to a suspended device
// waits for a resume (legitimately, D2), so while any device is suspended io lines are skipped.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.h"
#include "daemon/control_handler.h"
#include "daemon/engine.h"
#include "daemon/export.h"
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
  // Only bytes the request did not bring itself (the fuzzer learns the hex from this very check).
  for (const std::string& half : KeyHalvesHex()) {
    if (reply.find(half) != std::string::npos && line.find(half) == std::string::npos)
      wrong = "holds key bytes";
  }
  if (wrong == nullptr) return;
  std::fprintf(stderr, "control_fuzz: request %s\nhas a reply that %s: %s\n", line.c_str(), wrong,
               reply.c_str());
  std::abort();
}

constexpr uint64_t kMaxIoBytes = 256 * 1024;

bool AnySuspended(daemon::Engine& engine) {
  for (const auto& info : engine.devices().List()) {
    if (info.suspended) return true;
  }
  return false;
}

// N6: block status covers the range in order, and what it calls a hole reads as zeros.
void CheckExtents(daemon::Export& e, uint64_t offset, uint64_t length) {
  std::vector<std::pair<uint64_t, bool>> extents;
  uint64_t covered = 0;
  Status s = e.Extents(length, offset, [&](uint64_t n, bool hole) {
    extents.emplace_back(n, hole);
    covered += n;
    return true;
  });
  if (!s.ok()) return;
  const char* wrong = covered == length ? nullptr : "do not cover the range";
  uint64_t at = offset;
  for (const auto& [n, hole] : extents) {
    if (n == 0) wrong = "hold an empty extent";
    if (hole && wrong == nullptr) {
      std::vector<uint8_t> buf(n, 0xff);
      if (e.Read(buf.data(), n, at).ok() &&
          std::any_of(buf.begin(), buf.end(), [](uint8_t b) { return b != 0; }))
        wrong = "call a hole what does not read as zeros";
    }
    at += n;
  }
  if (wrong == nullptr) return;
  std::fprintf(stderr, "control_fuzz: extents of %s [%llu, +%llu) %s:\n", e.name().c_str(),
               static_cast<unsigned long long>(offset), static_cast<unsigned long long>(length),
               wrong);
  for (const auto& [n, hole] : extents)
    std::fprintf(stderr, "  %llu %s\n", static_cast<unsigned long long>(n), hole ? "hole" : "data");
  std::abort();
}

// An "io …" line (see the top of the file); ill-formed ones and those beyond the export do nothing.
void RunIo(daemon::Engine& engine, const std::string& line) {
  std::istringstream in(line);
  std::string io, name, op;
  uint64_t offset = 0, length = 0;
  if (!(in >> io >> name >> op >> offset >> length) || length > kMaxIoBytes) return;
  if (AnySuspended(engine)) return;
  auto exp = engine.OpenExport(name);
  if (!exp.ok() || offset > (*exp)->size_bytes() || length > (*exp)->size_bytes() - offset) return;
  std::vector<uint8_t> buf(length);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<uint8_t>(i * 13 + offset);
  daemon::Export& e = **exp;
  if (op == "r") (void)e.Read(buf.data(), length, offset);
  if (op == "w" || op == "W") (void)e.Write(buf.data(), length, offset, op == "W");
  if (op == "f") (void)e.Flush();
  if (op == "z") (void)e.Zero(length, offset, false);
  if (op == "t") (void)e.Trim(length, offset, false);
  if (op == "e") CheckExtents(e, offset, length);
}

}  // namespace
}  // namespace ice::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ice;
  fuzz::JumpClock clock;
  std::unique_ptr<daemon::Engine> engine = fuzz::MakeEngine(clock);
  daemon::ControlHandler handler(*engine);
  std::vector<std::unique_ptr<daemon::Export>> held;  // closed before the engine goes
  for (const std::string& line : fuzz::Lines(data, size)) {
    if (line.starts_with("io ")) {
      fuzz::RunIo(*engine, line);
    } else if (line.starts_with("hold ")) {
      auto exp = engine->OpenExport(line.substr(5));
      if (exp.ok()) held.push_back(std::move(*exp));
    } else {
      const std::string reply = handler.Handle(line);
      if (fuzz::Verbose()) std::fprintf(stderr, "%s\n-> %s\n", line.c_str(), reply.c_str());
      fuzz::CheckReply(line, reply);
    }
  }
  return 0;
}
