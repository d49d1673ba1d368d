// The `flakey` target (rule T2; the kernel's dm-flakey as of mainline 6.x): a device that works
// for <up> seconds, then misbehaves for <down> seconds, over and over, counted in whole seconds
// of the table's clock from the moment the target was constructed.
//
//   flakey <dev> <offset> <up> <down> [<#feature_args> <feature>...]
//
// <#feature_args> counts words (0-11). Features act only in the down interval:
//   error_reads                    reads fail with EIO
//   drop_writes                    writes, write-zeroes, discards and flushes complete at once
//                                  without reaching the device
//   error_writes                   writes, write-zeroes, discards and flushes fail with EIO
//   corrupt_bio_byte <N> <r|w> <value> <flags>
//                                  byte N (from 1) of a matching request's data becomes <value>
//                                  (0-255); a request matches when its kernel bi_opf has every
//                                  bit of <flags> (0: all match). Reads are corrupted after they
//                                  succeed, writes in a private copy.
//   random_read_corrupt <P>        with probability P / 10^9 a successful read gets one random
//   random_write_corrupt <P>       byte set to a random value; a write's private copy likewise.
// Refused: a feature twice; drop_writes with error_writes; drop_writes or error_writes with any
// write corruption; error_reads with any read corruption. With no active feature the down
// interval fails reads and writes alike (the kernel then records error_reads and error_writes, and
// `table` prints them).
//
// Table: mainline's layout, "<dev> <offset> <up> <down> <#words>[ <feature>...]" in the order
// error_reads, drop_writes|error_writes, corrupt_bio_byte, random_read_corrupt,
// random_write_corrupt, no trailing space (kernel 6.1 printed one). Status: empty.
//
// Crypto: flakey passes crypto contexts through (D7). A corrupted write is sent from a private
// copy that carries no crypto context, as the kernel's clone does (D8): a write that came with a
// key (a keyed export, a default-key above) reaches the medium in plaintext. Warning() says so
// whenever write corruption is set (corrupt_bio_byte … w …, random_write_corrupt P > 0).
//
// The flags model of <flags>: bits 0-7 are the kernel's REQ_OP (read 0, write 1, discard 3,
// write-zeroes 9, and a flush is a write with REQ_PREFLUSH, bit 18); REQ_FUA is bit 17.
#pragma once

#include "dm/target.h"

namespace ice::dm {

extern const TargetType kFlakeyTarget;

}  // namespace ice::dm
