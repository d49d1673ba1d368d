#include "tools/replay-log/storage.h"

#include <fcntl.h>
#include <libnbd.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace ice::replay {
namespace {

constexpr uint64_t kChunkBytes = 4 << 20;  // the largest single request to an NBD server

Status Errno(int err, const std::string& what) {
  return Status::Error(err > 0 ? err : EIO, what + ": " + std::strerror(err > 0 ? err : EIO));
}

// Writes zeros with ordinary writes, a chunk at a time.
Status WriteZeros(Storage& s, uint64_t offset, uint64_t length) {
  static const std::vector<uint8_t> zeros(1 << 20, 0);
  while (length > 0) {
    const uint64_t n = std::min<uint64_t>(length, zeros.size());
    ICE_RETURN_IF_ERROR(s.Write(zeros.data(), n, offset));
    offset += n;
    length -= n;
  }
  return Status::Ok();
}

class FileStorage final : public Storage {
 public:
  FileStorage(int fd, bool block_device, std::string path)
      : fd_(fd), block_device_(block_device), path_(std::move(path)) {}
  ~FileStorage() override { ::close(fd_); }

  Status Read(uint8_t* buf, uint64_t length, uint64_t offset) override {
    while (length > 0) {
      const ssize_t n = ::pread(fd_, buf, length, static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Errno(errno, "read of " + path_);
      if (n == 0) return Status::Error(EIO, "short read of " + path_);
      buf += n;
      offset += static_cast<uint64_t>(n);
      length -= static_cast<uint64_t>(n);
    }
    return Status::Ok();
  }

  Status Write(const uint8_t* buf, uint64_t length, uint64_t offset) override {
    while (length > 0) {
      const ssize_t n = ::pwrite(fd_, buf, length, static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Errno(n < 0 ? errno : EIO, "write of " + path_);
      buf += n;
      offset += static_cast<uint64_t>(n);
      length -= static_cast<uint64_t>(n);
    }
    return Status::Ok();
  }

  Status Discard(uint64_t offset, uint64_t length) override {
    if (!block_device_) return Status::Error(EOPNOTSUPP, path_ + " is not a block device");
    uint64_t range[2] = {offset, length};
    if (::ioctl(fd_, BLKDISCARD, &range) != 0) return Errno(errno, "BLKDISCARD on " + path_);
    return Status::Ok();
  }

  Status Zero(uint64_t offset, uint64_t length) override {
    if (block_device_) {
      uint64_t range[2] = {offset, length};
      if (::ioctl(fd_, BLKZEROOUT, &range) == 0) return Status::Ok();
      return WriteZeros(*this, offset, length);
    }
    // A hole reads as zeros; past the end of the file a hole would not extend it, so that part
    // is written (as a write of zeros would, making the file that long).
    struct stat st;
    if (::fstat(fd_, &st) != 0) return Errno(errno, "stat of " + path_);
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    const uint64_t inside = offset < size ? std::min(length, size - offset) : 0;
    if (inside > 0 && ::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                  static_cast<off_t>(offset), static_cast<off_t>(inside)) != 0) {
      return WriteZeros(*this, offset, length);
    }
    return WriteZeros(*this, offset + inside, length - inside);
  }

  Status Sync() override {
    if (::fsync(fd_) != 0) return Errno(errno, "fsync of " + path_);
    return Status::Ok();
  }

 private:
  const int fd_;
  const bool block_device_;
  const std::string path_;
};

class NbdStorage final : public Storage {
 public:
  NbdStorage(nbd_handle* h, std::string uri) : h_(h), uri_(std::move(uri)) {}
  ~NbdStorage() override {
    nbd_shutdown(h_, 0);
    nbd_close(h_);
  }

  Status Read(uint8_t* buf, uint64_t length, uint64_t offset) override {
    return Chunked(length, offset, [&](uint64_t n, uint64_t off, uint64_t done) {
      return nbd_pread(h_, buf + done, n, off, 0);
    });
  }

  Status Write(const uint8_t* buf, uint64_t length, uint64_t offset) override {
    return Chunked(length, offset, [&](uint64_t n, uint64_t off, uint64_t done) {
      return nbd_pwrite(h_, buf + done, n, off, 0);
    });
  }

  Status Discard(uint64_t offset, uint64_t length) override {
    if (nbd_can_trim(h_) != 1) return Status::Error(EOPNOTSUPP, uri_ + " cannot trim");
    return Chunked(length, offset,
                   [&](uint64_t n, uint64_t off, uint64_t) { return nbd_trim(h_, n, off, 0); });
  }

  Status Zero(uint64_t offset, uint64_t length) override {
    if (nbd_can_zero(h_) != 1) return WriteZeros(*this, offset, length);
    return Chunked(length, offset,
                   [&](uint64_t n, uint64_t off, uint64_t) { return nbd_zero(h_, n, off, 0); });
  }

  Status Sync() override {
    if (nbd_can_flush(h_) != 1) return Status::Ok();
    if (nbd_flush(h_, 0) != 0) return Error("flush");
    return Status::Ok();
  }

 private:
  template <typename Fn>
  Status Chunked(uint64_t length, uint64_t offset, Fn&& fn) {
    for (uint64_t done = 0; done < length;) {
      const uint64_t n = std::min(length - done, kChunkBytes);
      if (fn(n, offset + done, done) != 0) return Error("I/O at " + std::to_string(offset + done));
      done += n;
    }
    return Status::Ok();
  }

  Status Error(const std::string& what) {
    const int err = nbd_get_errno();
    return Status::Error(err > 0 ? err : EIO, uri_ + ": " + what + ": " + nbd_get_error());
  }

  nbd_handle* const h_;
  const std::string uri_;
};

Result<std::unique_ptr<Storage>> OpenNbd(const std::string& uri, bool writable) {
  nbd_handle* h = nbd_create();
  if (h == nullptr) return Status::Error(ENOMEM, std::string("nbd_create: ") + nbd_get_error());
  if (nbd_connect_uri(h, uri.c_str()) != 0) {
    const int err = nbd_get_errno();
    Status s = Status::Error(err > 0 ? err : EIO, uri + ": " + nbd_get_error());
    nbd_close(h);
    return s;
  }
  if (writable && nbd_is_read_only(h) == 1) {
    nbd_close(h);
    return Status::Error(EROFS, uri + " is read-only");
  }
  return std::unique_ptr<Storage>(new NbdStorage(h, uri));
}

}  // namespace

bool IsNbdUri(const std::string& spec) {
  const size_t scheme_end = spec.find("://");
  return spec.rfind("nbd", 0) == 0 && scheme_end != std::string::npos &&
         spec.find_first_not_of("nbdsuixvock+", 0) == scheme_end;
}

Result<std::unique_ptr<Storage>> OpenStorage(const std::string& spec, bool writable) {
  if (IsNbdUri(spec)) return OpenNbd(spec, writable);
  const int fd = ::open(spec.c_str(), (writable ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return Errno(errno, spec);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return Errno(err, spec);
  }
  return std::unique_ptr<Storage>(new FileStorage(fd, S_ISBLK(st.st_mode), spec));
}

}  // namespace ice::replay
