// Reading a raw key for `icectl key add` (P4: key bytes come from a file or stdin, never from the
// command line).
#pragma once

#include <string>

#include "block/status.h"
#include "cli/secret_buffer.h"

namespace ice::cli {

// Larger than any key a crypto mode takes; a bigger file is certainly not a raw key.
inline constexpr size_t kMaxKeyFileBytes = 1024;

// EPERM when the file open as `fd` gives any access to group or others (st_mode & 077), with the
// message "<what> has mode 0644<why>: it must not be accessible by group or others (chmod 600
// <path>)<fix>"; fstat's error as it is.
Status CheckPrivateFile(int fd, const std::string& what, const std::string& path,
                        const std::string& why = "", const std::string& fix = "");

// Reads the whole of `path` ("-" = the file descriptor `stdin_fd`) as raw key bytes. Refuses, with
// a message naming the file and the fix: a file that cannot be opened or read, a file whose mode
// gives any access to group or others (st_mode & 077; stdin is not checked), an empty file, and a
// file larger than kMaxKeyFileBytes. The bytes are never copied outside the returned buffer.
Result<SecretBuffer> ReadKeyFile(const std::string& path, int stdin_fd);

}  // namespace ice::cli
