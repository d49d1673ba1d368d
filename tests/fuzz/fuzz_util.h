// What the fuzz targets share: a clock on which no wait takes time, hardware for engines, the input
// as lines, and a private temporary folder.
#pragma once

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <spdlog/spdlog.h>

#include "block/clock.h"
#include "config/config.h"
#include "tests/unit/daemon/engine_test_util.h"

namespace ice::fuzz {

// ICE_FUZZ_VERBOSE set: the targets say what they did with an input (for whoever writes seeds).
inline bool Verbose() {
  static const bool verbose = std::getenv("ICE_FUZZ_VERBOSE") != nullptr;
  return verbose;
}

// The log lines of the code under test (dust's bad blocks, refused keys…) cost more time than the
// code itself and say nothing a crash report does not: off unless Verbose().
inline const bool kQuietLogs = [] {
  if (!Verbose()) spdlog::set_level(spdlog::level::off);
  return true;
}();

// A clock whose waits end at once: a wait with a deadline moves time to it instead of sleeping,
// so an input that asks for an hour of programming latency (hw.fault) costs nothing, and the same
// input always sees the same times. Waits without a deadline still wait for their condition.
class JumpClock final : public Clock {
 public:
  TimePoint Now() const override {
    std::lock_guard g(mu_);
    return now_;
  }
  bool WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                 TimePoint deadline, const std::function<bool()>& done) override {
    if (done()) return true;
    if (deadline == TimePoint::max()) {
      cv.wait(lock, done);
      return true;
    }
    {
      std::lock_guard g(mu_);
      if (now_ < deadline) now_ = deadline;
    }
    return done();
  }

 private:
  mutable std::mutex mu_;
  TimePoint now_{};
};

// Memory-backed hardware of 1 MiB with inline AES-256-XTS at 512- and 4096-byte data units, or
// without inline encryption when `slots` is 0.
inline config::HardwareConfig Hardware(const std::string& name, unsigned slots) {
  config::HardwareConfig hw = daemon::testing::XtsHardware(name, slots);
  if (slots == 0) {
    hw.capabilities = CryptoCapabilities();
  } else {
    hw.capabilities.Add(CryptoMode::kAes256Xts, 512);
  }
  return hw;
}

// The input split at '\n' (a last line without one counts too; an empty input is no lines).
inline std::vector<std::string> Lines(const uint8_t* data, size_t size) {
  std::vector<std::string> lines;
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  while (!rest.empty()) {
    const size_t nl = rest.find('\n');
    lines.emplace_back(rest.substr(0, nl));
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  return lines;
}

// A folder of the process's own under $TMPDIR (or /tmp), removed at exit. Not thread-safe.
inline const std::string& TempDir() {
  struct Folder {
    std::string path;
    Folder() {
      const char* base = std::getenv("TMPDIR");
      path = std::string(base && *base ? base : "/tmp") + "/ice-fuzz-XXXXXX";
      if (::mkdtemp(path.data()) == nullptr) std::abort();
    }
    ~Folder() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  };
  static const Folder folder;
  return folder.path;
}

}  // namespace ice::fuzz
