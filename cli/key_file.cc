#include "cli/key_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace ice::cli {
namespace {

std::string ModeText(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

// Reads until EOF into `out`, refusing more than its capacity minus one byte (that byte tells
// "exactly full" from "too large").
Status ReadAll(int fd, const std::string& what, SecretBuffer& out) {
  for (;;) {
    const size_t room = out.capacity() - out.size();
    if (room == 0) {
      return Status::Error(EFBIG, what + " is larger than " + std::to_string(kMaxKeyFileBytes) +
                                      " bytes: it is not a raw key");
    }
    const size_t old = out.size();
    out.Resize(out.capacity());
    const ssize_t n = read(fd, out.data() + old, room);
    out.Resize(old + (n > 0 ? static_cast<size_t>(n) : 0));
    if (n == 0) return Status::Ok();
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      return Status::Error(e, "cannot read " + what + ": " + std::strerror(e));
    }
  }
}

}  // namespace

Status CheckPrivateFile(int fd, const std::string& what, const std::string& path,
                        const std::string& why, const std::string& fix) {
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int e = errno;
    return Status::Error(e, "cannot stat " + what + ": " + std::strerror(e));
  }
  if ((st.st_mode & 077) == 0) return Status::Ok();
  return Status::Error(EPERM, what + " has mode " + ModeText(st.st_mode) + why +
                                  ": it must not be accessible by group or others (chmod 600 " +
                                  path + ")" + fix);
}

Result<SecretBuffer> ReadKeyFile(const std::string& path, int stdin_fd) {
  const bool from_stdin = path == "-";
  const std::string what = from_stdin ? std::string("the key on stdin") : "key file " + path;
  int fd = stdin_fd;
  if (!from_stdin) {
    fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
      const int e = errno;
      return Status::Error(e, "cannot open key file " + path + ": " + std::strerror(e));
    }
    Status s = CheckPrivateFile(fd, what, path);
    if (!s.ok()) {
      close(fd);
      return s;
    }
  }
  SecretBuffer key(kMaxKeyFileBytes + 1);
  Status s = ReadAll(fd, what, key);
  if (!from_stdin) close(fd);
  if (!s.ok()) return s;
  if (key.empty()) return Status::Error(EINVAL, what + " is empty");
  return key;
}

}  // namespace ice::cli
