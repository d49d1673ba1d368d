// Hardening 7: the daemon makes itself non-dumpable and says so. Checked in a child process, so
// that this test binary stays dumpable.
#include "daemon/process_safety.h"

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace ice::daemon {
namespace {

// Runs `fn` in a forked child; its return value is the child's exit code.
template <typename Fn>
int InChild(Fn fn) {
  const pid_t pid = fork();
  if (pid == 0) _exit(fn());
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, 0), pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

TEST(ProcessSafety, Hardening7_ForbidCoreDumpsMakesTheProcessNonDumpable) {
  EXPECT_TRUE(CurrentProcessSafety().dumpable);
  const int rc = InChild([] {
    if (!ForbidCoreDumps().ok()) return 1;
    const ProcessSafety s = CurrentProcessSafety();
    if (s.dumpable) return 2;
    if (s.core_dumps != "off") return 3;
    return 0;
  });
  EXPECT_EQ(rc, 0) << "1: prctl failed, 2: still dumpable, 3: core dumps not reported off";
}

}  // namespace
}  // namespace ice::daemon
