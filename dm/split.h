// Splitting one request into pieces (at target boundaries, stripe chunks): rule D8. Used by mapped
// devices and by targets that split. Header-only; nothing here allocates.
#pragma once

#include <cstdint>

#include "block/request.h"
#include "keyslot/crypto_key.h"

namespace ice::dm {

// The data unit size of a crypto request's key; 0 for a request without a context.
inline uint32_t DataUnitSize(const IoRequest& req) {
  return req.crypt ? req.crypt->key->config().data_unit_size : 0;
}

// Whether `req` may be split `skip_bytes` after its start: always for plain I/O; for crypto I/O
// only at a data unit boundary, because a data unit is en/decrypted whole with one DUN.
inline bool CanSplitAt(const IoRequest& req, uint64_t skip_bytes) {
  const uint32_t unit = DataUnitSize(req);
  return unit == 0 || skip_bytes % unit == 0;
}

// D8: the part of `req` that starts `skip_bytes` after its start and is `length_bytes` long, at
// `offset_bytes` (the caller's remapped offset). The buffers move with it and the DUN advances by
// skip_bytes / data unit size; everything else is kept. REQUIRES: CanSplitAt(req, skip_bytes) and
// the piece lies within req.
inline IoRequest SplitPiece(const IoRequest& req, uint64_t skip_bytes, uint64_t length_bytes,
                            uint64_t offset_bytes) {
  IoRequest piece = req;
  piece.offset_bytes = offset_bytes;
  piece.length_bytes = length_bytes;
  if (req.read_buf != nullptr) piece.read_buf = req.read_buf + skip_bytes;
  if (req.write_buf != nullptr) piece.write_buf = req.write_buf + skip_bytes;
  if (piece.crypt && skip_bytes != 0) piece.crypt->dun.Advance(skip_bytes / DataUnitSize(req));
  return piece;
}

}  // namespace ice::dm
