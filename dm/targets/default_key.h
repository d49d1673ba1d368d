// The `default-key` target (rule T6; Android's dm-default-key v2.1): attaches one key to every
// data request that has none, so that everything below it is encrypted inline, in dm-crypt's
// layout.
//
//   default-key <cipher> <key> <iv_offset> <dev> <start> [<#opts> <opt>...]
//
// <cipher>: aes-xts-plain64 (a 64-byte key, ice's aes-256-xts). xchacha12,aes-adiantum-plain64 is
// parsed but refused (EINVAL): ice cannot compute Adiantum.
// <key>: the raw key in hex, or (ice extension, dm-crypt's keyring syntax) `:<size>:logon:<name>`
// naming a key of the daemon's key registry, which keeps key bytes off command lines (P4). Such a
// key must have the cipher's mode and size, a data unit size equal to the sector size and enough
// DUN bytes; the table holds a use of it (N8: `key rm` is refused while the table exists).
// <opts> (at most 4): allow_discards; sector_size:<512..4096, a power of two>, which requires
// iv_large_sectors (default-key implements only that layout); iv_large_sectors;
// wrappedkey_v0 is refused (EINVAL): ice has raw keys only.
//
// DUN of a request = (iv_offset + its 512-byte sector within the target) / (sector_size / 512);
// a request where that sum is not a multiple of sector_size / 512 fails with EIO. An inline key is
// created with dun_bytes = the bytes of the largest DUN the target can produce (a target too small
// to produce a non-zero DUN is refused, as the kernel refuses dun_bytes 0), and is evicted from
// every device (and the fallback's pool) it reached when the target is destroyed, also where the
// device below has since moved its table or its routing. The device must be able to serve the key,
// natively or through the fallback (the kernel's blk_crypto_start_using_key).
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
