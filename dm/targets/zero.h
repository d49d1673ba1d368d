// The `zero` target (rule T3; the kernel's dm-zero): no arguments; reads return zeros, writes,
// write-zeroes and discards are dropped, flushes succeed. It has no device below, so it does not
// pass crypto (D7): a table holding it has no crypto capabilities. Table and status: empty.
#pragma once

#include "dm/target.h"

namespace ice::dm {

extern const TargetType kZeroTarget;

}  // namespace ice::dm
