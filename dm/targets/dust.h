// The `dust` target (rule T5; the kernel's dm-dust): a device with a list of bad blocks, to
// emulate a disk that returns medium errors on some blocks.
//
//   dust <dev> <offset> <blksz>
//
// <blksz> is a power of two, >= 512 and <= min(target length, 1 GiB). Block numbers count <blksz>
// blocks of the underlying device *including* <offset> (block N covers device bytes
// [N * blksz, (N + 1) * blksz)); requests are split at every <blksz> boundary of the target, and
// each piece is judged by the block its first byte falls in. The target starts disabled.
//
// Enabled ("fail_read_on_bad_block"): reading a bad block fails with EIO; writing (or discarding
// or write-zeroing) it fails with EIO while its write-fail count is above 0, each failure
// decrementing it; once the count is 0 a write succeeds and removes the block from the list.
// Disabled ("bypass"): every request passes and the list is left alone. A flush is a write to the
// kernel: enabled, it is judged as a write of one block, the one the kernel's dust_map computes
// for an empty flush (sector 0 of the mapped device, remapped: <offset> minus the target's start
// sector, wrapping below 0), so a target at sector 0 judges flushes by the block holding
// <offset>. The pieces of one request are all attempted; the request returns the first failure.
//
// Messages (`dmsetup message`), their replies exactly as the kernel's:
//   addbadblock N [wr_fail_cnt]  removebadblock N  queryblock N  -> "dust_query_block: block N
//   found in badblocklist" | "... not found in badblocklist"
//   enable  disable  quiet (toggles the log lines the target writes)
//   countbadblocks  -> "countbadblocks: N badblock(s) found"
//   clearbadblocks  -> "dust_clear_badblocks: badblocks cleared" | "... no badblocks found"
//   listbadblocks   -> one "N\n" per bad block in order, or "No blocks in badblocklist"
// N may be at most the underlying device's size in blocks (the kernel's bound, one past the last
// block). Status: "<dev> fail_read_on_bad_block|bypass quiet|verbose"; table: "<dev> <offset>
// <blksz>". dust does not pass crypto contexts (D7).
#pragma once

#include "dm/target.h"

namespace ice::dm {

extern const TargetType kDustTarget;

}  // namespace ice::dm
