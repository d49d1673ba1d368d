// A backend on a regular file or a block device: the storage of `file:PATH` hardware.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "block/block_device.h"
#include "block/request.h"
#include "block/status.h"

namespace ice {

// Serves [0, size_bytes) of a file with pread/pwrite. Every error the operating system reports
// is returned as its errno with a message naming the call, the path and the offset; none is
// retried away or ignored, except that discard, being advisory, succeeds without effect on a
// filesystem that cannot punch holes (as nbdkit's file plugin does).
//
// - FLUSH is fdatasync. A FUA write is pwritev2(RWF_DSYNC), or pwrite + fdatasync where the
//   kernel or filesystem refuses RWF_DSYNC; a FUA write-zeroes or discard ends in fdatasync.
// - Write-zeroes is fallocate(ZERO_RANGE), else fallocate(PUNCH_HOLE | KEEP_SIZE), else writing
//   zeros; each refused mode is remembered and not tried again.
// - Discard is fallocate(PUNCH_HOLE | KEEP_SIZE); the range reads as zeros afterwards only if
//   the filesystem punched it (callers must not rely on it).
// - A request carrying a crypto context fails with EIO: crypto is handled above backends.
//
// Thread-safe: requests run concurrently on one descriptor (positional I/O only).
class FileBackend final : public BlockDevice {
 public:
  // Opens `path` read-write (close-on-exec). A missing file is created with mode 0600 and
  // extended to `size_bytes`. A regular file or block device smaller than `size_bytes` is
  // refused with EINVAL; a larger one is served up to `size_bytes`. Anything else (a directory,
  // a character device, …) is refused with EINVAL. OS errors are returned as they are.
  static Result<std::unique_ptr<FileBackend>> Open(const std::string& path, uint64_t size_bytes);

  ~FileBackend() override;

  uint64_t size_bytes() const override { return size_bytes_; }
  Status Submit(const IoRequest& req) override;
  // Always true: whether the filesystem can punch holes is only learnt by trying (discard is
  // advisory, and advertising it where it ends up a no-op is harmless).
  bool supports_discard() const override { return true; }
  // The file's holes (SEEK_HOLE/SEEK_DATA); all data where the file system cannot tell.
  Status Extents(uint64_t offset_bytes, uint64_t length_bytes,
                 const ExtentSink& sink) const override;

  const std::string& path() const { return path_; }

 private:
  FileBackend(std::string path, int fd, uint64_t size_bytes);

  Status Read(uint64_t offset, uint64_t length, uint8_t* out);
  Status Write(uint64_t offset, uint64_t length, const uint8_t* in, bool fua);
  Status WriteDsync(uint64_t offset, uint64_t length, const uint8_t* in, bool* unsupported);
  Status WriteZeroes(uint64_t offset, uint64_t length);
  Status WriteZeroBuffers(uint64_t offset, uint64_t length);
  Status Discard(uint64_t offset, uint64_t length);
  Status Flush();
  // Status::Error(err, "<call> <path> at <offset>: <strerror>").
  Status OsError(int err, const char* call, uint64_t offset) const;

  const std::string path_;
  const int fd_;
  const uint64_t size_bytes_;
  // Capabilities found missing at run time; once false, never tried again.
  std::atomic<bool> can_dsync_{true};
  std::atomic<bool> can_zero_range_{true};
  std::atomic<bool> can_punch_hole_{true};
};

}  // namespace ice
