// One block I/O request: what every layer of ice passes down (the kernel's bio).
#pragma once

#include <cstdint>
#include <optional>

#include "block/dun.h"

namespace ice {

class CryptoKey;  // keyslot/crypto_key.h; block never looks inside it.

// A key and the DUN of the request's first data unit (the kernel's bio_crypt_ctx).
// The key is owned elsewhere and outlives every request that names it.
struct CryptoContext {
  const CryptoKey* key = nullptr;
  Dun dun;
};

enum class IoOp : uint8_t { kRead, kWrite, kFlush, kWriteZeroes, kDiscard };

const char* IoOpName(IoOp op);

struct IoRequest {
  IoOp op = IoOp::kRead;
  uint64_t offset_bytes = 0;
  uint64_t length_bytes = 0;
  uint8_t* read_buf = nullptr;         // kRead: where the data goes, length_bytes long.
  const uint8_t* write_buf = nullptr;  // kWrite: the data; no layer ever modifies it.
  bool fua = false;                    // kWrite/kWriteZeroes: durable before completion.
  // Set by the software fallback on the requests it sends down: their data was already
  // en/decrypted above the device (counted as the device's fallback_ios).
  bool via_fallback = false;
  // Present on kRead/kWrite (and kWriteZeroes, which then means "write encrypted zeros": rule N5).
  std::optional<CryptoContext> crypt;

  bool has_data() const { return op == IoOp::kRead || op == IoOp::kWrite; }
  uint64_t end_bytes() const { return offset_bytes + length_bytes; }
};

}  // namespace ice
