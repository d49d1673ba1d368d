// The `inlinecrypt` target (rules I1–I6; mainline 7.2's dm-inlinecrypt): encrypts everything
// below it with one key, inline, in dm-crypt's iv_large_sectors layout — dm-crypt's syntax, with
// the crypto done by the device's keyslots (or the fallback) instead of the CPU above them.
//
//   inlinecrypt <cipher> <key> <iv_offset> <dev> <start> [<#opts> <opt>...]
//
// The arguments, the key and the DUN of each request: dm/targets/table_key.h. <cipher>:
// aes-xts-plain64 only. Its own option: keytype:raw|hw-wrapped (I1; hw-wrapped is refused until
// ice has wrapped keys). The target's logical block size is its sector size (I2).
//
// Requests: reads, writes and write-zeroes get the key and their DUN; one whose DUN is not a whole
// sector fails with EIO (I3); discards pass with allow_discards (EOPNOTSUPP otherwise); flushes
// pass. inlinecrypt does not pass crypto (I4, D7): nothing above it gets a profile, so a request
// never arrives with a context — one that does fails with EIO, as the kernel kills it. The key is
// evicted from every device it reached when the target goes (I5).
//
// Table (I6): mainline's "%s %*phN %u %llu %s %llu" — cipher, key, key type (1 raw, 2 hw-wrapped),
// iv_offset, device, start — then "<n> allow_discards sector_size:N iv_large_sectors" as present;
// as mainline, the key type option is not printed back, and the key type number stands where
// the constructor reads iv_offset, so the printed line is not a table line. ice deviation: the key
// is printed as "-" (a keyring-form key as given), never its bytes. Status: empty.
#pragma once

#include "dm/target.h"

namespace ice::dm {

extern const TargetType kInlineCryptTarget;

}  // namespace ice::dm
