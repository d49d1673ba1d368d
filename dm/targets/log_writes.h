// The `log-writes` target (the kernel's dm-log-writes, drivers/md/dm-log-writes.c): passes every
// request to <dev> and logs every write that completed, with its flags, onto <logdev> in the
// kernel's on-disk format (dm/log_writes_format.h), so that tools/replay-log (or xfstests'
// replay-log) can rebuild the device as it was at any flush, FUA or mark.
//
//   log-writes <dev> <logdev>
//
// Words after the second are ignored, as in the kernel. The log's sector size S is <dev>'s logical
// block size (at least 512), and so is the target's: every request is a whole number of S-byte
// sectors. Table: "<dev> <logdev>"; status: "<logged entries> <highest allocated log sector>" (in
// 512-byte sectors), then " logging_disabled" once logging stopped (the log device is full or a
// log write failed). Message: `mark <name>` logs a mark entry (the name cut to S - 33 bytes).
//
// What is logged, and in which order (the kernel's rules, kept exactly):
//  - reads pass untouched; a write, write-zeroes or discard is logged once it has completed, in
//    the order of completion, even when it failed (the kernel does not look at the status);
//  - a completed write without FUA waits, in memory, for the next flush: a flush takes every
//    write that completed before the flush was *submitted*, and once the flush has completed
//    logs them, then its own entry (kFlush, no data). A write that completes while a flush is in
//    flight waits for the flush after it;
//  - a FUA write is logged as soon as it completes (kFua), and the super block's nr_entries is
//    rewritten after it; a mark is logged at once (kMark) and the super block rewritten after
//    it. A flush does *not* rewrite the super block;
//  - a discard is logged with kDiscard and no data, and reaches <dev> only when <dev> supports
//    discards (the target always accepts them). write-zeroes is logged as a write of zeros (the
//    kernel's block layer turns it into such writes, as dm-log-writes does not take it);
//  - when the table is destroyed (remove, or a new table resumed), the writes still waiting for
//    a flush are logged and a mark "dm-log-writes-end" ends the log.
// The kernel logs from a kthread in that order; ice logs synchronously under one lock in the same
// order, so an entry is on the log device before the request that logged it returns. Neither
// flushes the log device. LOG_METADATA_FLAG (REQ_META) is never set: NBD carries no such flag.
//
// Crypto: log-writes does not pass crypto (the kernel's target type has no
// DM_TARGET_PASSES_CRYPTO, D7), so a table with it has no crypto profile and a keyed request is
// encrypted by the fallback above the mapped device: the log holds ciphertext, as the kernel's
// would below keyed I/O.
//
// Devices(): <dev> and <logdev> (the kernel's iterate_devices names only <dev>, but its
// dm_get_device holds both open). Thread-safe.
#pragma once

#include "dm/target.h"

namespace ice::dm {

extern const TargetType kLogWritesTarget;

}  // namespace ice::dm
