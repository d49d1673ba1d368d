#include "dm/table.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <span>
#include <string_view>

#include "keyslot/crypto_profile.h"
#include "keyslot/key_memory.h"

namespace ice::dm {
namespace {

// The kernel's dm_split_args: words separated by white space, where a backslash makes the next
// character part of the word. Each word is reserved at the length of the rest of the line, so
// that growing it never leaves a partial copy (of a key, perhaps) behind in freed memory.
std::vector<std::string> SplitWords(const std::string& line) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (!in_word && !std::isspace(static_cast<unsigned char>(c))) word.reserve(line.size() - i);
    if (c == '\\' && i + 1 < line.size()) {
      word += line[++i];
      in_word = true;
    } else if (std::isspace(static_cast<unsigned char>(c))) {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
    } else {
      word += c;
      in_word = true;
    }
  }
  if (in_word) words.push_back(std::move(word));
  return words;
}

// The words of a line, wiped when dropped.
struct WipedWords {
  std::vector<std::string> words;
  ~WipedWords() {
    for (std::string& w : words) WipeString(w);
  }
};

bool IsSkipped(const std::string& line) {
  const size_t first = line.find_first_not_of(" \t\r\n\v\f");
  return first == std::string::npos || line[first] == '#';
}

std::string Line(const TableEntry& e, const std::string& params) {
  return std::to_string(e.start_sector) + " " + std::to_string(e.length_sectors) + " " +
         std::string(e.type->name) + " " + params;
}

// The largest logical block size of a target and of the devices it sends I/O to.
uint32_t EntryBlockSize(const TableEntry& e) {
  uint32_t lbs = std::max<uint32_t>(1, e.target->logical_block_size());
  for (const DeviceRef& d : e.target->Devices())
    lbs = std::max(lbs, d.device->logical_block_size());
  return lbs;
}

// Whether `word` could be a raw key in hex wherever a shifted or garbled line put it: nothing but
// hex digits, at least as many as the shortest key ice takes (aes-128-cbc-essiv: 16 bytes).
bool MayBeHexKey(std::string_view word) {
  return word.size() >= 32 && std::all_of(word.begin(), word.end(), [](char c) {
           return std::isxdigit(static_cast<unsigned char>(c)) != 0;
         });
}

// How messages about a line that may hold a key name a word instead of quoting it: its field of
// the line, or for a target's arguments dmsetup's argument number.
std::string Position(size_t word) {
  return word < 3 ? "field " + std::to_string(word + 1) : "argument " + std::to_string(word - 2);
}

// Hardening 9: a target's error with every word of its line that may be key material (the key
// argument of a type that takes one, unless too short to be mistaken for one anywhere in a
// message, and any hex run long enough to be a key) replaced by its position. The targets that take
// keys quote none of their arguments; this keeps every other message (a device named by a shifted
// key, say) from ever echoing one. `head` holds the line's first three words, `args` the rest.
Status Redacted(const Status& error, std::span<const std::string> head,
                const std::vector<std::string>& args, int key_arg) {
  std::string message = error.message();
  for (size_t i = 0; i < head.size() + args.size(); ++i) {
    const std::string& word = i < head.size() ? head[i] : args[i - head.size()];
    const bool is_key_arg = i >= head.size() && static_cast<int>(i - head.size()) == key_arg;
    if (!((is_key_arg && word.size() >= 8) || MayBeHexKey(word))) continue;
    const std::string at = "<" + Position(i) + ">";
    for (size_t pos = message.find(word); pos != std::string::npos;
         pos = message.find(word, pos + at.size())) {
      message.replace(pos, word.size(), at);
    }
  }
  if (message == error.message()) return error;
  return Status::Error(error.code(), message);
}

}  // namespace

bool LineHoldsKey(const std::string& line) {
  WipedWords split{SplitWords(line)};
  const std::vector<std::string>& words = split.words;
  if (words.size() < 3) return false;
  const TargetType* type = FindTargetType(words[2]);
  if (type == nullptr || type->key_arg < 0) return false;
  const size_t at = 3 + static_cast<size_t>(type->key_arg);
  return at < words.size() && !words[at].empty() && words[at][0] != ':';
}

Table::~Table() = default;

Result<std::unique_ptr<Table>> Table::Create(const std::vector<std::string>& lines,
                                             const TargetEnv& env) {
  std::unique_ptr<Table> table(new Table());
  for (size_t n = 0; n < lines.size(); ++n) {
    if (IsSkipped(lines[n])) continue;
    const std::string where = "table line " + std::to_string(n + 1);
    auto bad = [&](const std::string& what) { return Status::Error(EINVAL, where + ": " + what); };

    WipedWords split{SplitWords(lines[n])};
    std::vector<std::string>& words = split.words;
    if (words.size() < 3) return bad("expected '<start> <length> <type> [<args>…]'");
    // Hardening 9: the words of a line that may hold a key are named, never quoted.
    const bool secret =
        LineHoldsKey(lines[n]) || std::any_of(words.begin(), words.end(), MayBeHexKey);
    auto number = [&](size_t i, const char* field) -> Result<uint64_t> {
      Result<uint64_t> v = ParseU64(words[i], field);
      if (v.ok() || !secret) return v;
      return Status::Error(EINVAL, std::string(field) + " (" + Position(i) + ") is not a number");
    };
    auto start = number(0, "start");
    if (!start.ok()) return start.status().WithContext(where);
    auto length = number(1, "length");
    if (!length.ok()) return length.status().WithContext(where);
    if (*length == 0) return bad("zero-length target");
    // D1: each target begins where the previous one ended, the first at sector 0.
    if (table->entries_.empty() && *start != 0) {
      return bad("the first target starts at sector " + std::to_string(*start) + ", not 0");
    }
    if (*start != table->size_sectors_) {
      return bad(std::string(*start < table->size_sectors_ ? "overlap" : "gap") +
                 " in table: start " + std::to_string(*start) + " is not sector " +
                 std::to_string(table->size_sectors_) + ", where the previous target ends");
    }
    // Sizes are kept in bytes, and NBD's are signed: the end must fit in an int64 of bytes.
    if (*length > kMaxDeviceSectors - *start) {
      return bad("length " + std::to_string(*length) + " makes the device larger than " +
                 std::to_string(kMaxDeviceSectors * kSectorBytes) +
                 " bytes (NBD sizes are signed 64-bit)");
    }
    const TargetType* type = FindTargetType(words[2]);
    if (type == nullptr) {
      return bad("unknown target type " +
                 (secret ? "(" + Position(2) + ")" : "'" + words[2] + "'"));
    }

    TargetArgs args;
    args.start_sector = *start;
    args.length_sectors = *length;
    args.args.assign(std::make_move_iterator(words.begin() + 3),
                     std::make_move_iterator(words.end()));
    auto target = type->create(env, args);
    const Status error = target.ok() ? Status::Ok()
                                     : Redacted(target.status(), std::span(words.data(), 3),
                                                args.args, type->key_arg);
    for (std::string& arg : args.args) WipeString(arg);
    if (!target.ok()) {
      // Named once, as the kernel logs "<type>: <error>": some targets name themselves already.
      const std::string name(type->name);
      if (error.message().starts_with(name + ": ")) return error.WithContext(where);
      return error.WithContext(where + ": " + name);
    }

    TableEntry entry;
    entry.start_sector = *start;
    entry.length_sectors = *length;
    entry.type = type;
    entry.target = std::move(*target);
    // The kernel's validate_hardware_logical_block_alignment, per target: every piece of an
    // aligned request that falls in this target is then aligned for it.
    const uint32_t lbs = EntryBlockSize(entry);
    if (entry.start_bytes() % lbs != 0 || entry.end_bytes() % lbs != 0) {
      return bad("target (start sector " + std::to_string(*start) + ", length " +
                 std::to_string(*length) + ") is not aligned to its logical block size of " +
                 std::to_string(lbs) + " bytes");
    }
    table->size_sectors_ += *length;
    table->entries_.push_back(std::move(entry));
  }
  if (table->entries_.empty()) return Status::Error(EINVAL, "table has no targets");
  ICE_RETURN_IF_ERROR(table->Finish());
  return table;
}

// The table-wide properties, once every target exists (the kernel's dm_table_complete).
Status Table::Finish() {
  // D3: everything, narrowed by every device of every target; a target type that does not pass
  // crypto clears it all.
  CryptoCapabilities caps = CryptoCapabilities::All();
  for (const TableEntry& e : entries_) {
    if (!e.type->passes_crypto) {
      caps.IntersectWith(nullptr);
      break;
    }
    for (const DeviceRef& d : e.target->Devices()) {
      const CryptoProfile* profile = d.device->crypto_profile();
      if (profile == nullptr) {
        caps.IntersectWith(nullptr);
      } else {
        const CryptoCapabilities child = profile->capabilities();
        caps.IntersectWith(&child);
      }
    }
  }
  if (caps.HasAnyMode()) caps_ = caps;

  for (const TableEntry& e : entries_) {
    supports_discard_ = supports_discard_ && e.target->supports_discard();
    logical_block_size_ = std::max(logical_block_size_, EntryBlockSize(e));
    for (DeviceRef& d : e.target->Devices()) {
      const bool seen = std::any_of(device_sizes_.begin(), device_sizes_.end(),
                                    [&](const DeviceSize& s) { return s.ref.device == d.device; });
      if (!seen) {
        const uint64_t size = d.device->size_bytes();
        device_sizes_.push_back({std::move(d), size});
      }
    }
  }
  return Status::Ok();
}

size_t Table::IndexOf(uint64_t offset_bytes) const {
  const uint64_t sector = offset_bytes / kSectorBytes;
  auto it = std::upper_bound(entries_.begin(), entries_.end(), sector,
                             [](uint64_t s, const TableEntry& e) { return s < e.start_sector; });
  return static_cast<size_t>(it - entries_.begin()) - 1;
}

std::vector<DeviceRef> Table::Devices() const {
  std::vector<DeviceRef> out;
  out.reserve(device_sizes_.size());
  for (const DeviceSize& s : device_sizes_) out.push_back(s.ref);
  return out;
}

bool Table::Uses(const std::string& name) const {
  return std::any_of(device_sizes_.begin(), device_sizes_.end(),
                     [&](const DeviceSize& s) { return s.ref.name == name; });
}

Status Table::CheckDevicesStillFit() const {
  for (const DeviceSize& s : device_sizes_) {
    const uint64_t now = s.ref.device->size_bytes();
    if (now < s.size_bytes) {
      return Status::Error(EINVAL, "device '" + s.ref.name + "' shrank from " +
                                       std::to_string(s.size_bytes / kSectorBytes) + " to " +
                                       std::to_string(now / kSectorBytes) +
                                       " sectors since the table was loaded");
    }
  }
  return Status::Ok();
}

std::vector<std::string> Table::TableLines() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const TableEntry& e : entries_) out.push_back(Line(e, e.target->TableParams()));
  return out;
}

std::vector<std::string> Table::Warnings() const {
  std::vector<std::string> out;
  for (const TableEntry& e : entries_) {
    const std::string warning = e.target->Warning();
    if (warning.empty()) continue;
    out.push_back(std::string(e.type->name) + " at sector " + std::to_string(e.start_sector) +
                  ": " + warning);
  }
  return out;
}

std::vector<std::string> Table::StatusLines() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const TableEntry& e : entries_) out.push_back(Line(e, e.target->StatusParams()));
  return out;
}

}  // namespace ice::dm
