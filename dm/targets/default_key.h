// The `default-key` target (rule T6; Android's dm-default-key v2.1): attaches one key to every
// data request that has none, so that everything below it is encrypted inline, in dm-crypt's
// layout.
//
//   default-key <cipher> <key> <iv_offset> <dev> <start> [<#opts> <opt>...]
//
// The arguments, the key and the DUN of each request: dm/targets/table_key.h. <cipher>:
// aes-xts-plain64 (a 64-byte key, ice's aes-256-xts); xchacha12,aes-adiantum-plain64 is parsed
// but refused (EINVAL): ice cannot compute Adiantum. Its own option: wrappedkey_v0 (a
// hardware-wrapped key, rule W6), refused until ice has wrapped keys.
//
// Requests: reads and writes get the key; so does write-zeroes, which in ice means "write
// encrypted zeros" (rule N5) where the kernel, which gives default-key no write-zeroes support,
// has the block layer write zero pages through it, with the same result on the medium. A request
// that already carries a context (a keyed export, fscrypt's file contents in Android) passes
// unchanged. Discards pass without a key with allow_discards and fail with EOPNOTSUPP otherwise;
// flushes pass. The target needs requests aligned to its sector size (logical_block_size()).
//
// Table: "<cipher> - <iv_offset> <dev> <start>[ <n> allow_discards sector_size:N
// iv_large_sectors]" (the key is printed as "-"; a keyring-form key as given, since it holds no
// secret). Status: empty. default-key passes crypto (D7).
#pragma once

#include "dm/target.h"

namespace ice::dm {

extern const TargetType kDefaultKeyTarget;

}  // namespace ice::dm
