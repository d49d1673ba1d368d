// En/decryption of whole data units with the IV taken from the DUN (rules C4, C5): what a
// programmed keyslot holds. Key schedules are prepared once, at creation, never per I/O.
#pragma once

#include <cstdint>
#include <memory>

#include "block/dun.h"
#include "block/status.h"
#include "keyslot/crypto_key.h"

namespace ice {

class DataUnitCipher {
 public:
  // ENOTSUP for a mode ice cannot compute (ModeInfo(mode).implemented == false).
  static Result<std::unique_ptr<DataUnitCipher>> Create(const CryptoKey& key);
  virtual ~DataUnitCipher() = default;
  DataUnitCipher(const DataUnitCipher&) = delete;
  DataUnitCipher& operator=(const DataUnitCipher&) = delete;

  uint32_t data_unit_size() const { return data_unit_size_; }

  // Transforms `length` bytes (a multiple of the data unit size) from `in` to `out`; the first
  // data unit uses `first`, each next one the DUN after it. `in` may equal `out` (in place) but
  // must not otherwise overlap it. Thread-safe; allocates nothing in steady state.
  virtual Status Encrypt(const Dun& first, const uint8_t* in, uint8_t* out,
                         size_t length) const = 0;
  virtual Status Decrypt(const Dun& first, const uint8_t* in, uint8_t* out,
                         size_t length) const = 0;

 protected:
  explicit DataUnitCipher(uint32_t data_unit_size) : data_unit_size_(data_unit_size) {}

 private:
  uint32_t data_unit_size_;
};

}  // namespace ice
