// The on-disk format of the kernel's dm-log-writes (drivers/md/dm-log-writes.c), which xfstests'
// src/log-writes/replay-log reads. The `log-writes` target (dm/targets/log_writes.h) writes it and
// the replay tool (tools/replay-log) reads it; this file is the one place that knows its bytes.
//
// The log device, in units of the log's sector size S (the logical block size of the logged
// device, at least 512):
//
//   block 0        the super block: magic, version, nr_entries, sectorsize (little-endian), zeros
//   block 1 ...    entries, one after another: a header block, then the entry's data
//
// An entry header is one S-byte block: sector, nr_sectors, flags, data_len (four little-endian
// 64-bit words, 32 bytes), then, for a mark only, the mark's text (data_len bytes), then zeros.
// `sector` and `nr_sectors` count S-byte sectors of the logged device. A write's data follows its
// header (nr_sectors * S bytes); a discard and a flush have none; a mark's is in its header.
//
// Readers (replay-log) trust nr_entries of the super block, which the kernel rewrites only after a
// FUA or a mark entry; and they take an entry with neither flags nor sectors, or a non-mark entry
// whose byte 32 is not zero, as the end of a damaged log.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "block/status.h"

namespace ice::logwrites {

// Entry flags (LOG_*_FLAG).
constexpr uint64_t kFlush = 1u << 0;
constexpr uint64_t kFua = 1u << 1;
constexpr uint64_t kDiscard = 1u << 2;
constexpr uint64_t kMark = 1u << 3;
constexpr uint64_t kMetadata = 1u << 4;

constexpr uint64_t kMagic = 0x6a736677736872ULL;  // WRITE_LOG_MAGIC
constexpr uint64_t kVersion = 1;                  // WRITE_LOG_VERSION
constexpr uint32_t kEntryHeaderBytes = 32;        // sizeof(struct log_write_entry)
// The name a table's destructor marks the end of its log with.
constexpr std::string_view kEndMark = "dm-log-writes-end";

struct Super {
  uint64_t magic = kMagic;
  uint64_t version = kVersion;
  uint64_t nr_entries = 0;
  uint32_t sectorsize = 512;
};

struct EntryHeader {
  uint64_t sector = 0;      // in the log's sectors
  uint64_t nr_sectors = 0;  // in the log's sectors
  uint64_t flags = 0;
  uint64_t data_len = 0;  // a mark's text length; 0 for every other entry
};

// Fills `block` (S bytes, S >= 32) with the super block and zeros.
void EncodeSuper(const Super& super, std::span<uint8_t> block);
// Fills `block` (S bytes) with the header, the mark text (only when header.flags has kMark) and
// zeros. REQUIRES: a mark's text fits with a zero after it: mark.size() < S - 32.
void EncodeEntry(const EntryHeader& header, std::string_view mark, std::span<uint8_t> block);

// The super block from the first bytes of the log (at least 28). EINVAL "Magic doesn't match" or
// "Version mismatch, wanted 1, have N" (replay-log's words) for a block that is not a version-1
// log; EINVAL also for a sector size that is not a power of two in 512 ... 65536.
Result<Super> DecodeSuper(std::span<const uint8_t> block);
// The header in the first 32 bytes of `block`.
EntryHeader DecodeEntry(std::span<const uint8_t> block);
// replay-log's sanity rule (log_entry_valid) for a header block of at least 33 bytes: false for an
// entry with no flags and no sectors, and for a non-mark entry whose byte 32 is not zero.
bool EntryLooksValid(std::span<const uint8_t> block);
// A mark entry's text: the data_len bytes after the header, up to the first zero byte.
std::string MarkText(std::span<const uint8_t> block);

// Flag names as replay-log prints them: "FLUSH|FUA", "NONE" for 0, unknown bits as
// "UNKNOWN.0x<hex>".
std::string FlagNames(uint64_t flags);

}  // namespace ice::logwrites
