#include "block/backend_factory.h"

#include <cerrno>
#include <cstdint>
#include <string>
#include <utility>

#include "block/file_backend.h"
#include "block/memory_backend.h"

namespace ice {

Result<std::unique_ptr<BlockDevice>> OpenBackend(std::string_view spec, uint64_t size_bytes) {
  if (size_bytes > uint64_t{INT64_MAX}) {
    return Status::Error(EINVAL, "a backing of " + std::to_string(size_bytes) +
                                     " bytes is larger than INT64_MAX bytes (NBD sizes and file "
                                     "offsets are signed 64-bit)");
  }
  if (spec == "memory") {
    ICE_ASSIGN_OR_RETURN(std::unique_ptr<MemoryBackend> memory, MemoryBackend::Create(size_bytes));
    return std::unique_ptr<BlockDevice>(std::move(memory));
  }
  if (spec.starts_with("file:")) {
    const std::string path(spec.substr(5));
    if (path.empty()) return Status::Error(EINVAL, "backing 'file:' needs a path: file:PATH");
    ICE_ASSIGN_OR_RETURN(std::unique_ptr<FileBackend> file, FileBackend::Open(path, size_bytes));
    return std::unique_ptr<BlockDevice>(std::move(file));
  }
  if (spec.starts_with("nbd:")) {
    return Status::Error(
        ENOTSUP, "backing '" + std::string(spec) + "': nbd backends are not implemented yet");
  }
  return Status::Error(
      EINVAL, "unknown backing '" + std::string(spec) + "': expected memory, file:PATH or nbd:URI");
}

}  // namespace ice
