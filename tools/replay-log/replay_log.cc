#include "tools/replay-log/replay_log.h"

#include <getopt.h>
#include <sys/wait.h>

#include <cerrno>
#include <cinttypes>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "dm/log_writes_format.h"
#include "tools/replay-log/storage.h"

namespace ice::replay {
namespace lw = ice::logwrites;
namespace {

// xfstests' tool keeps marks to 4097 bytes less its 40-byte in-memory entry struct.
constexpr size_t kMaxMarkBytes = 4097 - 40;
constexpr uint64_t kMaxDiscardChunk = uint64_t{1} << 30;
constexpr uint64_t kMaxZeroBytes = uint64_t{128} << 20;

void Usage(std::FILE* f) {
  std::fputs(
      "Usage: replay-log --log <log> [options]\n"
      "  --replay <dev>          replay onto <dev> (a file, block device or NBD URI)\n"
      "  --limit <n>             replay (or find) at most <n> entries\n"
      "  --next-flush            stop at the next flush entry\n"
      "  --next-fua              stop at the next FUA entry\n"
      "  --start-entry <n>       begin at entry <n>\n"
      "  --start-mark <mark>     begin after the mark <mark>\n"
      "  --end-mark <mark>       stop at the mark <mark>\n"
      "  --find                  print ENTRY@SECTOR of the entry the stop options select\n"
      "  --num-entries           print the number of entries of the log\n"
      "  --no-discard            skip discard entries\n"
      "  --fsck <cmd>            command to run at each check point (needs --check)\n"
      "  --check <n>|flush|fua|discard\n"
      "                          when to run the --fsck command (needs --fsck)\n"
      "  --start-sector <s>      replay only entries at or after sector <s>\n"
      "  --end-sector <s>        replay only entries at or before sector <s>\n"
      "  --list                  print every entry (ice)\n"
      "  -v, --verbose           print replayed entries; -vv also skipped ones\n",
      f);
}

// strtoull with base 0, as xfstests' tool parses its numbers; false on trailing text.
bool ParseNumber(const char* text, uint64_t* v) {
  char* end = nullptr;
  *v = std::strtoull(text, &end, 0);
  return end != nullptr && *end == '\0';
}

// The state of one pass over the log: which entry comes next and where (xfstests' struct log).
class Log {
 public:
  Log(Storage& storage, const lw::Super& super, const Options& o, std::FILE* out, std::FILE* err)
      : storage_(storage),
        o_(o),
        out_(out),
        err_(err),
        sectorsize_(super.sectorsize),
        nr_entries_(super.nr_entries),
        cur_pos_(super.sectorsize),
        block_(super.sectorsize) {}

  uint64_t sectorsize() const { return sectorsize_; }
  uint64_t nr_entries() const { return nr_entries_; }
  uint64_t cur_entry() const { return cur_entry_; }
  uint64_t cur_pos() const { return cur_pos_; }
  const std::vector<uint8_t>& block() const { return block_; }
  lw::EntryHeader header() const { return lw::DecodeEntry(block_); }

  // log_seek_entry: positions the log at entry `n` (0-based) from the first.
  bool SeekEntry(uint64_t n) {
    if (n >= nr_entries_) {
      std::fputs("Invalid entry number\n", err_);
      return false;
    }
    cur_pos_ = sectorsize_;
    cur_entry_ = 0;
    for (uint64_t i = 0; i < n; ++i) {
      if (!ReadHeader()) return false;
      const lw::EntryHeader h = header();
      if (o_.verbose > 1) {
        std::fprintf(
            out_, "seek entry %d@%" PRIu64 ": %" PRIu64 ", size %" PRIu64 ", flags 0x%" PRIx64 "\n",
            static_cast<int>(i), cur_pos_ / sectorsize_, h.sector, h.nr_sectors, h.flags);
      }
      cur_pos_ += sectorsize_;
      if ((h.flags & lw::kDiscard) == 0) cur_pos_ += h.nr_sectors * sectorsize_;
      ++cur_entry_;
    }
    return true;
  }

  // log_seek_next_entry: reads the next header and steps over its data. 1: an entry; 0: the end;
  // -1: an error (printed).
  int SeekNext() {
    if (cur_entry_ >= nr_entries_) return 0;
    if (!ReadHeader()) return -1;
    ++cur_entry_;
    cur_pos_ += sectorsize_;
    const lw::EntryHeader h = header();
    if (o_.verbose > 1) {
      std::fprintf(out_,
                   "seek entry %d@%" PRIu64 ": %" PRIu64 ", size %" PRIu64 ", flags 0x%" PRIx64
                   "(%s)\n",
                   static_cast<int>(cur_entry_ - 1), cur_pos_ / sectorsize_, h.sector, h.nr_sectors,
                   h.flags, lw::FlagNames(h.flags).c_str());
    }
    if (h.nr_sectors != 0 && (h.flags & lw::kDiscard) == 0) cur_pos_ += h.nr_sectors * sectorsize_;
    return 1;
  }

  // log_replay_next_entry: replays the next entry onto `replay`. 1: replayed (or skipped);
  // 0: the end; -1: an error (printed).
  int ReplayNext(Storage& replay) {
    if (cur_entry_ >= nr_entries_) return 0;
    if (!ReadHeader()) return -1;
    ++cur_entry_;
    cur_pos_ += sectorsize_;
    const lw::EntryHeader h = header();
    const uint64_t size = h.nr_sectors * sectorsize_;
    const bool skip = ShouldSkip(h);
    if (o_.verbose > 1 || (o_.verbose > 0 && !skip)) {
      std::fprintf(out_,
                   "%s %d@%" PRIu64 ": sector %" PRIu64 ", size %" PRIu64 ", flags 0x%" PRIx64
                   "(%s)\n",
                   skip ? "skipping" : "replaying", static_cast<int>(cur_entry_ - 1),
                   cur_pos_ / sectorsize_, h.sector, size, h.flags, lw::FlagNames(h.flags).c_str());
    }
    if (size == 0) return 1;
    if ((h.flags & lw::kDiscard) != 0) return Discard(replay, h) ? 1 : -1;
    if (skip) {
      cur_pos_ += size;
      return 1;
    }
    data_.resize(size);
    Status s = storage_.Read(data_.data(), size, cur_pos_);
    if (!s.ok()) {
      std::fprintf(err_, "Error reading data: %s\n", s.message().c_str());
      return -1;
    }
    cur_pos_ += size;
    s = replay.Write(data_.data(), size, h.sector * sectorsize_);
    if (!s.ok()) {
      std::fprintf(err_, "Error writing data: %s\n", s.message().c_str());
      return -1;
    }
    return 1;
  }

 private:
  // Reads the header block at cur_pos_ and checks it as xfstests' log_entry_valid does.
  bool ReadHeader() {
    Status s = storage_.Read(block_.data(), block_.size(), cur_pos_);
    if (!s.ok()) {
      std::fprintf(err_, "Error reading entry: %s\n", s.message().c_str());
      return false;
    }
    if (!lw::EntryLooksValid(block_)) {
      std::fprintf(err_, "Malformed entry @%" PRIu64 "\n", cur_pos_ / sectorsize_);
      return false;
    }
    return true;
  }

  bool ShouldSkip(const lw::EntryHeader& h) const {
    if (h.nr_sectors == 0) return false;
    return h.sector + h.nr_sectors <= o_.start_sector || h.sector > o_.end_sector;
  }

  // log_discard: a native discard while the device takes them, then zeros; ranges over
  // kMaxZeroBytes are not zeroed.
  bool Discard(Storage& replay, const lw::EntryHeader& h) {
    if (!o_.discard) return true;
    uint64_t start = h.sector * sectorsize_;
    uint64_t size = h.nr_sectors * sectorsize_;
    while (size > 0) {
      const uint64_t len = std::min(size, kMaxDiscardChunk);
      if (!discard_unsupported_ && !replay.Discard(start, len).ok()) {
        if (o_.verbose > 0) {
          std::fputs("replay device doesn't support discard, switching to writing zeros\n", out_);
        }
        discard_unsupported_ = true;
      }
      if (discard_unsupported_) {
        if (len > kMaxZeroBytes) {
          if (o_.verbose > 0) {
            std::fprintf(out_, "discard len %" PRIu64 " larger than max %" PRIu64 "\n", len,
                         kMaxZeroBytes);
          }
        } else if (Status s = replay.Zero(start, len); !s.ok()) {
          std::fprintf(err_, "Error zeroing file: %s\n", s.message().c_str());
          return false;
        }
      }
      size -= len;
      start += len;
    }
    return true;
  }

  Storage& storage_;
  const Options& o_;
  std::FILE* const out_;
  std::FILE* const err_;
  const uint64_t sectorsize_;
  const uint64_t nr_entries_;
  uint64_t cur_entry_ = 0;
  uint64_t cur_pos_;  // byte offset of the next header in the log
  std::vector<uint8_t> block_;
  std::vector<uint8_t> data_;
  bool discard_unsupported_ = false;
};

// xfstests' should_stop: the entry has one of `stop_flags`; when they include kMark, only a mark
// named `mark` counts.
bool ShouldStop(const Log& log, uint64_t stop_flags, const std::optional<std::string>& mark) {
  const lw::EntryHeader h = log.header();
  if ((h.flags & stop_flags) == 0) return false;
  if ((stop_flags & lw::kMark) == 0) return true;
  return (h.flags & lw::kMark) != 0 && mark.has_value() &&
         lw::MarkText(log.block()) == mark->substr(0, h.data_len + 1).c_str();
}

// Syncs the replay device and runs the check command; false when either fails.
bool RunFsck(Storage& replay, const std::string& cmd, uint64_t entry, std::FILE* out) {
  if (!replay.Sync().ok()) return false;
  std::fflush(out);
  setenv("REPLAY_LOG_ENTRY", std::to_string(entry).c_str(), 1);
  const int status = std::system(cmd.c_str());
  return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

bool IsCheckPoint(const Options& o, const Log& log, uint64_t replayed) {
  const uint64_t flags = log.header().flags;
  switch (o.check) {
    case CheckMode::kNumber:
      return replayed % o.check_number == 0;
    case CheckMode::kFua:
      return (flags & lw::kFua) != 0;
    case CheckMode::kFlush:
      return (flags & lw::kFlush) != 0;
    case CheckMode::kDiscard:
      return (flags & lw::kDiscard) != 0;
    case CheckMode::kNone:
      break;
  }
  return false;
}

int Find(const Options& o, Log& log, std::FILE* out, std::FILE* err) {
  uint64_t n = 0;
  int r;
  while ((r = log.SeekNext()) == 1) {
    ++n;
    if ((o.limit != 0 && n == o.limit) || ShouldStop(log, o.stop_flags, o.end_mark)) {
      std::fprintf(out, "%" PRIu64 "@%" PRIu64 "\n", log.cur_entry() - 1,
                   log.cur_pos() / log.sectorsize());
      return 0;
    }
  }
  if (r < 0) return 255;
  std::fputs("Couldn't find entry\n", err);
  return 1;
}

int List(Log& log, std::FILE* out) {
  int r;
  while ((r = log.SeekNext()) == 1) {
    const lw::EntryHeader h = log.header();
    // Where the entry's data begins: right after its header.
    const uint64_t data_at = (h.flags & lw::kDiscard) != 0 || h.nr_sectors == 0
                                 ? log.cur_pos() / log.sectorsize()
                                 : log.cur_pos() / log.sectorsize() - h.nr_sectors;
    std::fprintf(out,
                 "%" PRIu64 "@%" PRIu64 ": sector %" PRIu64 ", size %" PRIu64 ", flags 0x%" PRIx64
                 "(%s)",
                 log.cur_entry() - 1, data_at, h.sector, h.nr_sectors * log.sectorsize(), h.flags,
                 lw::FlagNames(h.flags).c_str());
    if ((h.flags & lw::kMark) != 0)
      std::fprintf(out, ", mark %s", lw::MarkText(log.block()).c_str());
    std::fputc('\n', out);
  }
  return r < 0 ? 1 : 0;
}

int Replay(const Options& o, Log& log, Storage& replay, std::FILE* out, std::FILE* err) {
  uint64_t n = 0;
  int r;
  while ((r = log.ReplayNext(replay)) == 1) {
    ++n;
    if (o.fsck && IsCheckPoint(o, log, n) && !RunFsck(replay, *o.fsck, log.cur_entry() - 1, out)) {
      std::fprintf(err, "Fsck errored out on entry %" PRIu64 "\n", log.cur_entry() - 1);
      r = -1;
      break;
    }
    if ((o.limit != 0 && n == o.limit) || ShouldStop(log, o.stop_flags, o.end_mark)) break;
  }
  (void)replay.Sync();
  return r < 0 ? 1 : 0;
}

}  // namespace

std::optional<Options> ParseArgs(int argc, char** argv, std::FILE* out, std::FILE* err,
                                 bool* help) {
  enum {
    kNextFlush = 256,
    kNextFua,
    kStartEntry,
    kEndMark,
    kLog,
    kReplay,
    kLimit,
    kFind,
    kNumEntries,
    kNoDiscard,
    kFsck,
    kCheck,
    kStartMark,
    kStartSector,
    kEndSector,
    kList,
    kHelp,
  };
  static const option kLong[] = {
      {"next-flush", no_argument, nullptr, kNextFlush},
      {"next-fua", no_argument, nullptr, kNextFua},
      {"start-entry", required_argument, nullptr, kStartEntry},
      {"end-mark", required_argument, nullptr, kEndMark},
      {"log", required_argument, nullptr, kLog},
      {"replay", required_argument, nullptr, kReplay},
      {"limit", required_argument, nullptr, kLimit},
      {"verbose", no_argument, nullptr, 'v'},
      {"find", no_argument, nullptr, kFind},
      {"num-entries", no_argument, nullptr, kNumEntries},
      {"no-discard", no_argument, nullptr, kNoDiscard},
      {"fsck", required_argument, nullptr, kFsck},
      {"check", required_argument, nullptr, kCheck},
      {"start-mark", required_argument, nullptr, kStartMark},
      {"start-sector", required_argument, nullptr, kStartSector},
      {"end-sector", required_argument, nullptr, kEndSector},
      {"list", no_argument, nullptr, kList},
      {"help", no_argument, nullptr, kHelp},
      {nullptr, 0, nullptr, 0},
  };
  *help = false;
  Options o;
  auto invalid = [&](const char* what) {
    std::fprintf(err, "%s\n", what);
    return std::nullopt;
  };
  optind = 0;  // getopt's state is global: start over on every call
  opterr = 1;
  int c;
  while ((c = getopt_long(argc, argv, "v", kLong, nullptr)) != -1) {
    switch (c) {
      case 'v':
        ++o.verbose;
        break;
      case kNextFlush:
        o.stop_flags |= lw::kFlush;
        break;
      case kNextFua:
        o.stop_flags |= lw::kFua;
        break;
      case kStartEntry:
        if (!ParseNumber(optarg, &o.start_entry)) return invalid("Invalid entry number");
        break;
      case kStartMark:
        o.start_mark = std::string(optarg).substr(0, kMaxMarkBytes);
        break;
      case kEndMark:
        o.end_mark = std::string(optarg).substr(0, kMaxMarkBytes);
        o.stop_flags |= lw::kMark;
        break;
      case kLog:
        o.log = optarg;
        break;
      case kReplay:
        o.replay = optarg;
        break;
      case kLimit:
        if (!ParseNumber(optarg, &o.limit)) return invalid("Invalid entry number");
        break;
      case kFind:
        o.find = true;
        break;
      case kList:
        o.list = true;
        break;
      case kNumEntries:
        o.num_entries = true;
        break;
      case kNoDiscard:
        o.discard = false;
        break;
      case kFsck:
        o.fsck = optarg;
        break;
      case kCheck:
        if (std::strcmp(optarg, "flush") == 0) {
          o.check = CheckMode::kFlush;
        } else if (std::strcmp(optarg, "fua") == 0) {
          o.check = CheckMode::kFua;
        } else if (std::strcmp(optarg, "discard") == 0) {
          o.check = CheckMode::kDiscard;
        } else {
          o.check = CheckMode::kNumber;
          if (!ParseNumber(optarg, &o.check_number) || o.check_number == 0) {
            return invalid("Invalid entry number");
          }
        }
        break;
      case kStartSector:
        if (!ParseNumber(optarg, &o.start_sector)) return invalid("Invalid sector number");
        break;
      case kEndSector:
        if (!ParseNumber(optarg, &o.end_sector)) return invalid("Invalid sector number");
        break;
      case kHelp:
        Usage(out);
        *help = true;
        return std::nullopt;
      default:
        Usage(err);
        return std::nullopt;
    }
  }
  if (o.log.empty() || optind < argc) {
    Usage(err);
    return std::nullopt;
  }
  return o;
}

int Run(const Options& o, std::FILE* out, std::FILE* err) {
  Result<std::unique_ptr<Storage>> log_storage = OpenStorage(o.log, /*writable=*/false);
  if (!log_storage.ok()) {
    std::fprintf(err, "Couldn't open log %s: %s\n", o.log.c_str(),
                 log_storage.status().message().c_str());
    return 1;
  }
  std::unique_ptr<Storage> replay;
  if (o.replay) {
    Result<std::unique_ptr<Storage>> r = OpenStorage(*o.replay, /*writable=*/true);
    if (!r.ok()) {
      std::fprintf(err, "Couldn't open replay file %s: %s\n", o.replay->c_str(),
                   r.status().message().c_str());
      return 1;
    }
    replay = std::move(*r);
  }
  std::vector<uint8_t> first(32);  // the super block's fields, as xfstests' tool reads them
  Status read = (*log_storage)->Read(first.data(), first.size(), 0);
  if (!read.ok()) {
    std::fprintf(err, "Error reading super: %s\n", read.message().c_str());
    return 1;
  }
  Result<lw::Super> super = lw::DecodeSuper(first);
  if (!super.ok()) {
    std::fprintf(err, "%s\n", super.status().message().c_str());
    return 1;
  }
  Log log(**log_storage, *super, o, out, err);

  if (o.start_mark) {
    int r;
    while ((r = log.SeekNext()) == 1) {
      if (ShouldStop(log, lw::kMark, o.start_mark)) break;
    }
    if (r == 0) std::fputs("Couldn't find starting mark\n", err);
    if (r != 1) return 1;
  } else if (!log.SeekEntry(o.start_entry)) {
    return 1;
  }
  if (o.fsck.has_value() != (o.check != CheckMode::kNone)) {
    Usage(err);
    return 1;
  }
  if (o.find) return Find(o, log, out, err);
  if (o.list) return List(log, out);
  if (o.num_entries) {
    std::fprintf(out, "%" PRIu64 "\n", log.nr_entries());
    return 0;
  }
  if (!replay) {
    std::fprintf(out, "Log version=%d, sectorsize=%lu, entries=%" PRIu64 "\n",
                 static_cast<int>(lw::kVersion), static_cast<unsigned long>(log.sectorsize()),
                 log.nr_entries());
    return 0;
  }
  return Replay(o, log, *replay, out, err);
}

}  // namespace ice::replay
