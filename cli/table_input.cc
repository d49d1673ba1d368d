#include "cli/table_input.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ice::cli {
namespace {

constexpr std::string_view kSpace = " \t\r\v\f";

// A table bigger than this cannot fit in one request line (1 MiB) anyway.
constexpr size_t kMaxTableFileBytes = 1 << 20;

}  // namespace

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
  if (!from_stdin) close(fd);
  if (!status.ok()) return status;
  return ParseTableText(text);
}

}  // namespace ice::cli
