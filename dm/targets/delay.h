// The `delay` target (rule T4; the kernel's dm-delay as of mainline 6.x): holds every request for
// a fixed time, then sends it on, optionally to different devices by direction.
//
//   delay <dev> <offset> <ms> [<wdev> <woffset> <wms> [<fdev> <foffset> <fms>]]
//
// Exactly 3, 6 or 9 args. Reads use the first triple; writes (and discards and write-zeroes, which
// the kernel counts as writes) the second, or the first when absent; flushes the third, or the
// write triple when absent. A delay of 0 sends at once. Delays are measured on the table's clock.
// A flush goes only to its triple's device, as in the kernel.
//
// Presuspend releases every request being delayed at once, and until Resume new requests are not
// delayed (the kernel's may_delay). Status: "<reads> <writes> <flushes>" being delayed now; table:
// the triples as given ("dev off ms[ dev off ms[ dev off ms]]"). No messages. delay does not pass
// crypto contexts (D7).
#pragma once

#include "dm/target.h"

namespace ice::dm {

extern const TargetType kDelayTarget;

}  // namespace ice::dm
