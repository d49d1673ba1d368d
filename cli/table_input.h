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

// ParseTableText of the file at `path` ("-" = the file descriptor `stdin_fd`).
Result<std::vector<std::string>> ReadTableFile(const std::string& path, int stdin_fd);

}  // namespace ice::cli
