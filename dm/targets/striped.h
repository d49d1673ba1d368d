// The `striped` target (rule T3; the kernel's dm-stripe): chunks of the target's range go round
// robin over several devices.
//
//   striped <#stripes> <chunk_sectors> (<dev> <offset>)…
//
// The length must divide by #stripes, and each stripe's share (length / #stripes) by the chunk
// size; the chunk need not be a power of two. Stripe i holds chunks i, i + N, i + 2N, … from its
// <offset>. Requests are split at chunk boundaries, each piece's DUN advanced by its byte offset
// (D8); flushes go to every stripe. Table: "N chunk dev off…"; status: "N dev… 1 A…", where a
// stripe turns from A (alive) to D (dead) once an I/O on its device failed. Passes crypto (D7).
#pragma once

#include "dm/target.h"

namespace ice::dm {

extern const TargetType kStripedTarget;

}  // namespace ice::dm
