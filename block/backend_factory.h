// Opens the backend a `backing` spec of the config names.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "block/block_device.h"
#include "block/status.h"

namespace ice {

// `spec` is one of
//   "memory"     a sparse in-memory device of `size_bytes` (block/memory_backend.h);
//   "file:PATH"  the file or block device PATH, created at `size_bytes` if missing
//                (block/file_backend.h);
//   "nbd:URI"    a remote NBD export: not implemented yet, fails with ENOTSUP.
// Anything else, or "file:" without a path, fails with EINVAL naming the spec. A size above
// INT64_MAX bytes fails with EINVAL (NBD sizes and file offsets are signed), and so does a memory
// device above MemoryBackend::kMaxSizeBytes; ENOMEM when its chunk table cannot be allocated.
Result<std::unique_ptr<BlockDevice>> OpenBackend(std::string_view spec, uint64_t size_bytes);

}  // namespace ice
