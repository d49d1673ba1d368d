// The `error` target (rule T3; the kernel's "error" in dm-target.c, mainline): every read, write,
// write-zeroes and discard fails with EIO; flushes succeed (the kernel sends it none).
//
//   error [<dev> <offset>]
//
// As in mainline (since 6.6), exactly two arguments name a device and a start sector, as linear
// does, which the target then holds (the range is checked like linear's, and key eviction reaches
// the device, D6); any other number of arguments is accepted and ignored. Kernel 6.1 ignores all
// arguments. Table and status: empty, whatever the arguments (the kernel prints none). Does not
// pass crypto (D7).
#pragma once

#include "dm/target.h"

namespace ice::dm {

extern const TargetType kErrorTarget;

}  // namespace ice::dm
