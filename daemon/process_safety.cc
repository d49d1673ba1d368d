#include "daemon/process_safety.h"

#include <sys/prctl.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace ice::daemon {
namespace {

// A core_pattern that pipes to a program (systemd-coredump) ignores RLIMIT_CORE 0.
bool CorePatternIsAPipe() {
  std::ifstream in("/proc/sys/kernel/core_pattern");
  return in.peek() == '|';
}

}  // namespace

Status ForbidCoreDumps() {
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    return Status::Error(errno, std::string("prctl(PR_SET_DUMPABLE, 0): ") + std::strerror(errno));
  }
  return Status::Ok();
}

ProcessSafety CurrentProcessSafety() {
  ProcessSafety s;
  s.dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0;
  rlimit core{};
  const bool no_core_size = getrlimit(RLIMIT_CORE, &core) == 0 && core.rlim_cur == 0;
  // The kernel's do_coredump gives up at once for a non-dumpable process.
  s.core_dumps = !s.dumpable || (no_core_size && !CorePatternIsAPipe()) ? "off" : "on";
  s.key_memory = GetKeyMemoryState();
  return s;
}

}  // namespace ice::daemon
