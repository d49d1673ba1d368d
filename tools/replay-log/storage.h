// Where a log is read from and replayed to: a file, a block device, or an NBD export (an ice
// device, through libnbd).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "block/status.h"

namespace ice::replay {

// Byte-addressed storage. Not thread-safe: one replay uses one from one thread.
class Storage {
 public:
  Storage() = default;
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  virtual ~Storage() = default;

  // Exactly `length` bytes at `offset`; EIO "short read" when the storage ends first.
  virtual Status Read(uint8_t* buf, uint64_t length, uint64_t offset) = 0;
  virtual Status Write(const uint8_t* buf, uint64_t length, uint64_t offset) = 0;
  // A native discard (BLKDISCARD, NBD trim). EOPNOTSUPP where there is none (a regular file, an
  // export without trim); what a discarded range then reads back is the device's business.
  virtual Status Discard(uint64_t offset, uint64_t length) = 0;
  // Makes the range read back as zeros (holes punched in a file where it can).
  virtual Status Zero(uint64_t offset, uint64_t length) = 0;
  // Everything written so far is durable (fsync, NBD flush).
  virtual Status Sync() = 0;
};

// `spec` is an NBD URI (nbd://, nbd+unix://, nbds://, ...: libnbd's nbd_connect_uri, e.g.
// "nbd+unix:///hw0?socket=/run/ice/nbd.sock") or a path, which must exist (a file is never
// created). Errors carry the errno and name the spec.
Result<std::unique_ptr<Storage>> OpenStorage(const std::string& spec, bool writable);

// Whether `spec` is an NBD URI rather than a path.
bool IsNbdUri(const std::string& spec);

}  // namespace ice::replay
