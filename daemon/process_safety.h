// Keeping the daemon's key material out of core dumps (hardening 7) and reporting how safe its
// memory is (`hw ls`, `hw info`: the "daemon" object).
#pragma once

#include <string>

#include "block/status.h"
#include "keyslot/key_memory.h"

namespace ice::daemon {

struct ProcessSafety {
  bool dumpable = true;    // prctl(PR_GET_DUMPABLE)
  std::string core_dumps;  // "off" when the kernel would write no core file; otherwise "on"
  KeyMemoryState key_memory;
};

// Makes the process non-dumpable: the kernel then writes no core file whatever RLIMIT_CORE and
// core_pattern say (and processes of the same uid cannot ptrace it). That keeps out of cores what
// ice cannot put in the key arena itself: OpenSSL's cipher contexts (key schedules) and the
// bytes of requests. Root can still ptrace it (gdb, strace, gcore). Call from .after_fork, before
// any key exists: changing credentials afterwards would reset it.
Status ForbidCoreDumps();

// The state now. Thread-safe.
ProcessSafety CurrentProcessSafety();

}  // namespace ice::daemon
