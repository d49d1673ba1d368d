// replay-log: reads a log in dm-log-writes' format (dm/log_writes_format.h) and replays it onto a
// device, as xfstests' src/log-writes/replay-log does, with the same options, output and exit
// codes where the two overlap, so scripts written for one run with the other.
//
//   replay-log --log LOG [--replay DEV] [options]
//
// LOG and DEV are paths (files, block devices) or NBD URIs (an ice device:
// "nbd+unix:///NAME?socket=/run/ice/nbd.sock"). Without --replay the log's summary is printed
// ("Log version=1, sectorsize=S, entries=N"). Entries are numbered from 0.
//
//   --limit N              replay (or find) N entries, then stop
//   --next-flush           stop after the next flush entry (with --find: print where it is)
//   --next-fua             stop after the next FUA entry
//   --start-entry N        start at entry N (EINVAL-like "Invalid entry number" past the end)
//   --start-mark NAME      start after the mark NAME
//   --end-mark NAME        stop after the mark NAME
//   --find                 replay nothing: print "ENTRY@SECTOR" of the entry the stop options
//                          name (SECTOR: the log sector right after that entry), exit 1 with
//                          "Couldn't find entry" when there is none
//   --num-entries          print the super block's entry count
//   --no-discard           skip discard entries
//   --fsck CMD --check N|flush|fua|discard
//                          run CMD (sh -c) after every Nth replayed entry, or after every flush,
//                          FUA or discard entry, once the replay device is synced; a failing CMD
//                          stops the replay: "Fsck errored out on entry N", exit 1
//   --start-sector S --end-sector E
//                          replay only entries touching log sectors [S, E] (discards always)
//   -v, --verbose          print each replayed entry; -vv also skipped and sought ones
//
// ice additions, not in xfstests' tool:
//   --list                 print every entry from the start position: "ENTRY@SECTOR: sector S,
//                          size BYTES, flags 0xF(NAMES)" and ", mark NAME" for marks (SECTOR as
//                          -v prints it: where the entry's data begins)
//   CMD of --fsck gets REPLAY_LOG_ENTRY (the number of the entry just replayed) in its
//   environment; a CMD killed by a signal counts as failed (xfstests' counts it as clean).
//
// Discards are replayed as xfstests' tool does: a native discard where the replay device has one
// (block devices, NBD exports with trim); otherwise, from then on, as zeros, in pieces of up to
// 1 GiB of which those over 128 MiB are skipped. Like xfstests' tool it trusts the super block's
// entry count, which the kernel (and ice) update only after a FUA write or a mark.
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "block/status.h"

namespace ice::replay {

enum class CheckMode { kNone, kNumber, kFua, kFlush, kDiscard };

struct Options {
  std::string log;
  std::optional<std::string> replay;
  uint64_t limit = 0;       // 0: no limit
  uint64_t stop_flags = 0;  // logwrites::kFlush | kFua | kMark (the last with end_mark)
  uint64_t start_entry = 0;
  std::optional<std::string> start_mark;
  std::optional<std::string> end_mark;
  bool find = false;
  bool list = false;
  bool num_entries = false;
  bool discard = true;
  std::optional<std::string> fsck;
  CheckMode check = CheckMode::kNone;
  uint64_t check_number = 0;
  uint64_t start_sector = 0;
  uint64_t end_sector = UINT64_MAX;
  int verbose = 0;
};

// Parses replay-log's command line. On a usage error or a bad number, prints to `err` (the usage,
// or "Invalid entry number" / "Invalid sector number") and returns nullopt: the exit code is 1.
// `--help` prints the usage to `out` and also returns nullopt with *help set.
std::optional<Options> ParseArgs(int argc, char** argv, std::FILE* out, std::FILE* err, bool* help);

// Runs replay-log with `o`; returns the process exit code (0 done; 1 a failure, including a
// failed fsck; 255 a read error in --find, as xfstests' tool returns -1 from main).
int Run(const Options& o, std::FILE* out, std::FILE* err);

}  // namespace ice::replay
