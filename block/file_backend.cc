#include "block/file_backend.h"

#include <fcntl.h>
#include <linux/fs.h>  // BLKGETSIZE64
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "block/log.h"

namespace ice {

namespace {

constexpr int kOpenFlags = O_RDWR | O_CLOEXEC | O_NOCTTY;

// strerror is not thread-safe; strerrordesc_np (glibc ≥ 2.32) is.
std::string ErrnoText(int err) {
  const char* text = strerrordesc_np(err);
  return text ? std::string(text) : "error " + std::to_string(err);
}

// fallocate's ways of saying "this filesystem or device does not do that mode" (ENODEV: block
// devices on old kernels).
bool IsUnsupported(int err) { return err == EOPNOTSUPP || err == ENOTSUP || err == ENODEV; }

// The source of the zeros written where fallocate cannot zero a range: static, so the fallback
// allocates nothing.
constexpr size_t kZeroBufferBytes = 64 * 1024;
constexpr int kZeroIovecs = 16;
alignas(4096) const uint8_t kZeros[kZeroBufferBytes] = {};

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

Status OpenError(int err, const char* call, const std::string& path) {
  return Status::Error(err, std::string(call) + " " + path + ": " + ErrnoText(err));
}

// Opens `path`, creating it at `size_bytes` if it does not exist. On failure after creating it,
// removes it again: a half-made file would be taken for a real one next time.
Result<int> OpenOrCreate(const std::string& path, uint64_t size_bytes) {
  int fd = open(path.c_str(), kOpenFlags);
  if (fd >= 0 || errno != ENOENT) {
    if (fd < 0) return OpenError(errno, "open", path);
    return fd;
  }
  fd = open(path.c_str(), kOpenFlags | O_CREAT | O_EXCL, 0600);
  if (fd < 0) {
    // Someone else created it between our two opens: use theirs.
    if (errno == EEXIST) fd = open(path.c_str(), kOpenFlags);
    if (fd < 0) return OpenError(errno, "open", path);
    return fd;
  }
  if (ftruncate(fd, static_cast<off_t>(size_bytes)) < 0) {
    const int err = errno;
    close(fd);
    unlink(path.c_str());
    return Status::Error(err, "ftruncate " + path + " to " + std::to_string(size_bytes) +
                                  " bytes: " + ErrnoText(err));
  }
  return fd;
}

Result<uint64_t> DeviceSize(int fd, const std::string& path) {
  struct stat st;
  if (fstat(fd, &st) < 0) return OpenError(errno, "fstat", path);
  if (S_ISREG(st.st_mode)) return static_cast<uint64_t>(st.st_size);
  if (S_ISBLK(st.st_mode)) {
    uint64_t size = 0;
    if (ioctl(fd, BLKGETSIZE64, &size) < 0) return OpenError(errno, "ioctl BLKGETSIZE64", path);
    return size;
  }
  return Status::Error(EINVAL, path + " is neither a regular file nor a block device");
}

}  // namespace

Result<std::unique_ptr<FileBackend>> FileBackend::Open(const std::string& path,
                                                       uint64_t size_bytes) {
  ICE_ASSIGN_OR_RETURN(int raw_fd, OpenOrCreate(path, size_bytes));
  Fd fd(raw_fd);
  ICE_ASSIGN_OR_RETURN(uint64_t actual, DeviceSize(fd.get(), path));
  if (actual < size_bytes) {
    return Status::Error(EINVAL, path + " is " + std::to_string(actual) +
                                     " bytes, smaller than the configured size of " +
                                     std::to_string(size_bytes) + " bytes");
  }
  return std::unique_ptr<FileBackend>(new FileBackend(path, fd.release(), size_bytes));
}

FileBackend::FileBackend(std::string path, int fd, uint64_t size_bytes)
    : path_(std::move(path)), fd_(fd), size_bytes_(size_bytes) {}

FileBackend::~FileBackend() {
  // Nobody is left to return this to; acknowledged writes were made durable by FLUSH or FUA.
  if (close(fd_) < 0) spdlog::warn("close {}: {}", path_, ErrnoText(errno));
}

Status FileBackend::OsError(int err, const char* call, uint64_t offset) const {
  return Status::Error(err, std::string(call) + " " + path_ + " at " + std::to_string(offset) +
                                ": " + ErrnoText(err));
}

Status FileBackend::Submit(const IoRequest& req) {
  if (req.crypt) {
    return Status::Error(
        EIO, "file backend " + path_ + " got a crypto context on a " + IoOpName(req.op));
  }
  if (req.op == IoOp::kFlush) return Flush();
  if (req.offset_bytes > size_bytes_ || req.length_bytes > size_bytes_ - req.offset_bytes) {
    return Status::Error(EINVAL, "file backend " + path_ + ": " + IoOpName(req.op) + " of " +
                                     std::to_string(req.length_bytes) + " bytes at " +
                                     std::to_string(req.offset_bytes) + " is beyond its " +
                                     std::to_string(size_bytes_) + " bytes");
  }
  if (req.length_bytes == 0) return req.fua ? Flush() : Status::Ok();
  switch (req.op) {
    case IoOp::kRead:
      if (req.read_buf == nullptr) break;
      return Read(req.offset_bytes, req.length_bytes, req.read_buf);
    case IoOp::kWrite:
      if (req.write_buf == nullptr) break;
      return Write(req.offset_bytes, req.length_bytes, req.write_buf, req.fua);
    case IoOp::kWriteZeroes:
      ICE_RETURN_IF_ERROR(WriteZeroes(req.offset_bytes, req.length_bytes));
      return req.fua ? Flush() : Status::Ok();
    case IoOp::kDiscard:
      ICE_RETURN_IF_ERROR(Discard(req.offset_bytes, req.length_bytes));
      return req.fua ? Flush() : Status::Ok();
    case IoOp::kFlush:
      break;
  }
  return Status::Error(
      EINVAL, "file backend " + path_ + ": " + IoOpName(req.op) + " without a data buffer");
}

Status FileBackend::Read(uint64_t offset, uint64_t length, uint8_t* out) {
  uint64_t done = 0;
  while (done < length) {
    const ssize_t r = pread(fd_, out + done, length - done, static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return OsError(errno, "pread", offset + done);
    }
    if (r == 0) {
      // The file shrank below the configured size behind our back.
      return Status::Error(EIO, "pread " + path_ + " at " + std::to_string(offset + done) +
                                    ": unexpected end of file");
    }
    done += static_cast<uint64_t>(r);
  }
  return Status::Ok();
}

Status FileBackend::Write(uint64_t offset, uint64_t length, const uint8_t* in, bool fua) {
  if (fua && can_dsync_.load(std::memory_order_relaxed)) {
    bool unsupported = false;
    Status s = WriteDsync(offset, length, in, &unsupported);
    if (!unsupported) return s;
    can_dsync_.store(false, std::memory_order_relaxed);
  }
  uint64_t done = 0;
  while (done < length) {
    const ssize_t r = pwrite(fd_, in + done, length - done, static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return OsError(errno, "pwrite", offset + done);
    }
    if (r == 0) return OsError(EIO, "pwrite (wrote nothing)", offset + done);
    done += static_cast<uint64_t>(r);
  }
  return fua ? Flush() : Status::Ok();
}

// Sets *unsupported (and writes nothing) when the kernel or filesystem refuses RWF_DSYNC.
Status FileBackend::WriteDsync(uint64_t offset, uint64_t length, const uint8_t* in,
                               bool* unsupported) {
  uint64_t done = 0;
  while (done < length) {
    struct iovec iov = {const_cast<uint8_t*>(in + done), length - done};
    const ssize_t r = pwritev2(fd_, &iov, 1, static_cast<off_t>(offset + done), RWF_DSYNC);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (done == 0 && (errno == EOPNOTSUPP || errno == EINVAL)) {
        *unsupported = true;
        return Status::Ok();
      }
      return OsError(errno, "pwritev2(RWF_DSYNC)", offset + done);
    }
    if (r == 0) return OsError(EIO, "pwritev2(RWF_DSYNC) (wrote nothing)", offset + done);
    done += static_cast<uint64_t>(r);
  }
  return Status::Ok();
}

Status FileBackend::WriteZeroes(uint64_t offset, uint64_t length) {
  struct Mode {
    std::atomic<bool>* can;
    int flags;
    const char* call;
  };
  const Mode modes[] = {
      {&can_zero_range_, FALLOC_FL_ZERO_RANGE, "fallocate(ZERO_RANGE)"},
      {&can_punch_hole_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, "fallocate(PUNCH_HOLE)"},
  };
  for (const Mode& mode : modes) {
    if (!mode.can->load(std::memory_order_relaxed)) continue;
    int r;
    do {
      r = fallocate(fd_, mode.flags, static_cast<off_t>(offset), static_cast<off_t>(length));
    } while (r < 0 && errno == EINTR);
    if (r == 0) return Status::Ok();
    if (!IsUnsupported(errno)) return OsError(errno, mode.call, offset);
    mode.can->store(false, std::memory_order_relaxed);
  }
  return WriteZeroBuffers(offset, length);
}

Status FileBackend::WriteZeroBuffers(uint64_t offset, uint64_t length) {
  struct iovec iov[kZeroIovecs];
  uint64_t done = 0;
  while (done < length) {
    int n = 0;
    uint64_t batch = 0;
    while (n < kZeroIovecs && done + batch < length) {
      const uint64_t len = std::min<uint64_t>(kZeroBufferBytes, length - done - batch);
      iov[n++] = {const_cast<uint8_t*>(kZeros), len};
      batch += len;
    }
    const ssize_t r = pwritev(fd_, iov, n, static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return OsError(errno, "pwritev (zeros)", offset + done);
    }
    if (r == 0) return OsError(EIO, "pwritev (zeros) (wrote nothing)", offset + done);
    done += static_cast<uint64_t>(r);
  }
  return Status::Ok();
}

Status FileBackend::Discard(uint64_t offset, uint64_t length) {
  if (!can_punch_hole_.load(std::memory_order_relaxed)) return Status::Ok();
  int r;
  do {
    r = fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                  static_cast<off_t>(length));
  } while (r < 0 && errno == EINTR);
  if (r == 0) return Status::Ok();
  if (!IsUnsupported(errno)) return OsError(errno, "fallocate(PUNCH_HOLE)", offset);
  // Discard is advisory: on a filesystem that cannot punch holes it does nothing.
  ICE_LOG_RATELIMITED(spdlog::level::debug, "{} cannot punch holes: discards are ignored", path_);
  can_punch_hole_.store(false, std::memory_order_relaxed);
  return Status::Ok();
}

Status FileBackend::Flush() {
  int r;
  do {
    r = fdatasync(fd_);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return Status::Ok();
  const int err = errno;
  return Status::Error(err, "fdatasync " + path_ + ": " + ErrnoText(err));
}

Status FileBackend::Extents(uint64_t offset, uint64_t length, const ExtentSink& sink) const {
  // lseek moves the shared file offset, which no other call uses (all I/O is positional).
  const uint64_t end = offset + length;
  for (uint64_t pos = offset; pos < end;) {
    const off_t data = ::lseek(fd_, static_cast<off_t>(pos), SEEK_DATA);
    if (data < 0) {
      // ENXIO: no data from pos to the end of the file, which reaches at least `end`.
      sink(end - pos, errno == ENXIO);
      return Status::Ok();
    }
    if (static_cast<uint64_t>(data) > pos) {
      const uint64_t n = std::min<uint64_t>(data, end) - pos;
      if (!sink(n, true)) return Status::Ok();
      pos += n;
      continue;
    }
    const off_t hole = ::lseek(fd_, static_cast<off_t>(pos), SEEK_HOLE);
    const uint64_t n = hole < 0 ? end - pos : std::min<uint64_t>(hole, end) - pos;
    if (!sink(n, false)) return Status::Ok();
    pos += n;
  }
  return Status::Ok();
}

}  // namespace ice
