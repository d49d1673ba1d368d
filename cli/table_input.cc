#include "cli/table_input.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "cli/key_file.h"

namespace ice::cli {
namespace {

constexpr std::string_view kSpace = " \t\r\v\f";

// A table bigger than this cannot fit in one request line (1 MiB) anyway.
constexpr size_t kMaxTableFileBytes = 1 << 20;

}  // namespace

bool LineHoldsHexKey(std::string_view line) {
  size_t digits = 0;  // of the word being read, while all of it is hex
  bool hex = true;
  for (size_t i = 0; i <= line.size(); ++i) {
    const char c = i < line.size() ? line[i] : ' ';
    if (kSpace.find(c) != std::string_view::npos || c == '\n') {
      if (hex && digits >= 32) return true;
      digits = 0;
      hex = true;
    } else if (std::isxdigit(static_cast<unsigned char>(c)) != 0) {
      ++digits;
    } else {
      hex = false;
    }
  }
  return false;
}

Status CheckCommandLineTable(const std::vector<std::string>& lines) {
  for (size_t i = 0; i < lines.size(); ++i) {
    if (!LineHoldsHexKey(lines[i])) continue;
    return Status::Error(EPERM, "table line " + std::to_string(i + 1) +
                                    " holds a key in hex on the command line, where every user "
                                    "can read it (ps): give the table with --table-file (mode "
                                    "0600, or - for stdin), or name a key of the daemon's "
                                    "registry as :<size>:logon:<name>");
  }
  return Status::Ok();
}

std::vector<std::string> ParseTableText(std::string_view text) {
  std::vector<std::string> lines;
  while (!text.empty()) {
    const size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    line = line.substr(0, line.find('#'));
    const size_t first = line.find_first_not_of(kSpace);
    if (first == std::string_view::npos) continue;
    line = line.substr(first, line.find_last_not_of(kSpace) - first + 1);
    lines.emplace_back(line);
  }
  return lines;
}

Result<std::vector<std::string>> ReadTableFile(const std::string& path, int stdin_fd) {
  const bool from_stdin = path == "-";
  const std::string what = from_stdin ? std::string("the table on stdin") : "table file " + path;
  int fd = stdin_fd;
  if (!from_stdin) {
    fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
      const int e = errno;
      return Status::Error(e, "cannot open " + what + ": " + std::strerror(e));
    }
  }
  std::string text;
  char chunk[64 * 1024];
  Status status;
  for (;;) {
    const ssize_t n = read(fd, chunk, sizeof chunk);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      status = Status::Error(e, "cannot read " + what + ": " + std::strerror(e));
      break;
    }
    text.append(chunk, static_cast<size_t>(n));
    if (text.size() > kMaxTableFileBytes) {
      status = Status::Error(EFBIG, what + " is larger than 1 MiB");
      break;
    }
  }
  std::vector<std::string> lines = ParseTableText(text);
  if (status.ok() && !from_stdin &&
      std::any_of(lines.begin(), lines.end(),
                  [](const std::string& l) { return LineHoldsHexKey(l); })) {
    status = CheckPrivateFile(fd, what, path, " and holds a key in hex",
                              ", or name a key of the daemon's registry as :<size>:logon:<name>");
  }
  if (!from_stdin) close(fd);
  if (!status.ok()) return status;
  return lines;
}

}  // namespace ice::cli
