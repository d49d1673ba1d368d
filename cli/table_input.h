// Tables for `icectl create` and `icectl load`, in dmsetup's table-file syntax: one target a line
// ("start length type args…", 512-byte sectors), blank lines and '#' comments skipped.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "block/status.h"

namespace ice::cli {

// The target lines of `text`, as dmsetup reads a table file: each line trimmed of surrounding
// white space, a '#' and everything after it dropped, lines left empty skipped. The lines are not
// otherwise checked: the daemon parses them (and refuses a bad table as a whole, P3).
std::vector<std::string> ParseTableText(std::string_view text);

// Whether a table line holds a raw key in hex: a word of at least 32 hex digits and nothing else
// (the shortest key ice takes is 16 bytes). default-key's <key> is one unless it names a key of
// the daemon's registry (`:64:logon:NAME`); so is a key a mistyped line put in another field.
bool LineHoldsHexKey(std::string_view line);

// Hardening 9: table lines given on the command line (`--table`), where any user sees them (ps):
// EPERM naming the first line that holds a key in hex, and the ways to give it instead.
Status CheckCommandLineTable(const std::vector<std::string>& lines);

// ParseTableText of the file at `path` ("-" = the file descriptor `stdin_fd`). A file that holds
// a key in hex (LineHoldsHexKey) must be private, as a key file (EPERM otherwise; stdin is not
// checked).
Result<std::vector<std::string>> ReadTableFile(const std::string& path, int stdin_fd);

}  // namespace ice::cli
