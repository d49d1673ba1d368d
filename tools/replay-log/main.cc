// replay-log: see tools/replay-log/replay_log.h.
#include <cstdio>
#include <optional>

#include "tools/replay-log/replay_log.h"

int main(int argc, char** argv) {
  bool help = false;
  std::optional<ice::replay::Options> o = ice::replay::ParseArgs(argc, argv, stdout, stderr, &help);
  if (!o) return help ? 0 : 1;
  const int rc = ice::replay::Run(*o, stdout, stderr);
  std::fflush(stdout);
  return rc;
}
