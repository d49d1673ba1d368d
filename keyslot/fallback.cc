#include "keyslot/fallback.h"

#include <algorithm>
#include <cerrno>

#include "block/log.h"
#include "keyslot/bounce_buffer.h"

namespace ice {
namespace {

constexpr uint32_t kAllDataUnitSizes = (kMaxDataUnitSize << 1) - kMinDataUnitSize;

Status Fail(const IoRequest& req, int errno_value, const std::string& why) {
  ICE_LOG_RATELIMITED(spdlog::level::warn, "crypto fallback: {} at offset {} length {} failed: {}",
                      IoOpName(req.op), req.offset_bytes, req.length_bytes, why);
  return Status::Error(errno_value, why);
}

}  // namespace

// A 0-slot profile would be a passthrough that prepares nothing: the pool has at least one slot.
Fallback::Fallback(unsigned num_slots)
    : ciphers_(std::max(1u, num_slots)), profile_(Capabilities(), std::max(1u, num_slots), this) {}

Fallback::~Fallback() = default;

CryptoCapabilities Fallback::Capabilities() {
  CryptoCapabilities caps;
  for (int m = 0; m < kNumCryptoModes; ++m) {
    if (ModeInfo(static_cast<CryptoMode>(m)).implemented) {
      caps.data_unit_masks[m] = kAllDataUnitSizes;
    }
  }
  caps.max_dun_bytes = 32;
  caps.key_types = static_cast<uint8_t>(KeyType::kRaw);
  return caps;
}

Status Fallback::Submit(BlockDevice& dev, const IoRequest& req) {
  const CryptoKey& key = *req.crypt->key;
  const CryptoConfig& config = key.config();
  if (config.key_type != KeyType::kRaw) {
    return Fail(req, EOPNOTSUPP, "hardware-wrapped keys need native inline encryption");
  }
  if (!profile_.SupportsNatively(config)) {
    return Fail(req, EOPNOTSUPP, "no software implementation of " + config.ToString());
  }
  if (!req.has_data()) return Fail(req, EIO, "crypto context on a request without data");
  const uint32_t unit = config.data_unit_size;
  if (req.offset_bytes % unit != 0 || req.length_bytes % unit != 0) {
    return Fail(req, EINVAL, "crypto I/O not aligned to the data unit size");
  }

  Dun dun = req.crypt->dun;
  if (req.op == IoOp::kRead) {
    // F1: read the ciphertext first, with no slot held (F2); a failed read is not decrypted.
    IoRequest down = req;
    down.crypt.reset();
    down.via_fallback = true;
    ICE_RETURN_IF_ERROR(dev.Submit(down));
    for (uint64_t done = 0; done < req.length_bytes;) {
      const size_t n = std::min<uint64_t>(BounceBuffer::kBytes, req.length_bytes - done);
      Result<Keyslot> slot = profile_.GetKeyslot(key);
      if (!slot.ok()) return Fail(req, slot.status().code(), slot.status().message());
      uint8_t* data = req.read_buf + done;
      ICE_RETURN_IF_ERROR(ciphers_[slot->index()]->Decrypt(dun, data, data, n));
      dun.Advance(n / unit);
      done += n;
    }
    return Status::Ok();
  }

  // F1: the caller's buffer is never modified; each chunk is encrypted into the bounce buffer with
  // the slot held, and written down with the slot released (F2).
  BounceBuffer bounce;
  for (uint64_t done = 0; done < req.length_bytes;) {
    const size_t n = std::min<uint64_t>(BounceBuffer::kBytes, req.length_bytes - done);
    {
      Result<Keyslot> slot = profile_.GetKeyslot(key);
      if (!slot.ok()) return Fail(req, slot.status().code(), slot.status().message());
      ICE_RETURN_IF_ERROR(
          ciphers_[slot->index()]->Encrypt(dun, req.write_buf + done, bounce.data(), n));
    }
    ICE_RETURN_IF_ERROR(dev.Submit(IoRequest{.op = IoOp::kWrite,
                                             .offset_bytes = req.offset_bytes + done,
                                             .length_bytes = n,
                                             .write_buf = bounce.data(),
                                             .fua = req.fua,
                                             .via_fallback = true}));
    dun.Advance(n / unit);
    done += n;
  }
  return Status::Ok();
}

Status Fallback::EvictKey(const CryptoKey& key) { return profile_.EvictKey(key); }

// F2: "programming" a fallback slot prepares the key schedule once, so I/O never rebuilds it.
// Called under the profile's exclusive lock with the slot unreferenced: no I/O reads
// ciphers_[slot].
Status Fallback::ProgramKey(const CryptoKey& key, unsigned slot) {
  ICE_ASSIGN_OR_RETURN(std::unique_ptr<DataUnitCipher> cipher, DataUnitCipher::Create(key));
  if (ciphers_[slot] == nullptr) prepared_.fetch_add(1, std::memory_order_relaxed);
  ciphers_[slot] = std::move(cipher);  // the previous key's schedule is freed (and wiped) here
  return Status::Ok();
}

// Freeing the cipher wipes its key schedule (OpenSSL clears its contexts when freeing them).
Status Fallback::EvictKey(const CryptoKey& /*key*/, std::optional<unsigned> slot) {
  if (slot && ciphers_[*slot] != nullptr) {
    ciphers_[*slot].reset();
    prepared_.fetch_sub(1, std::memory_order_relaxed);
  }
  return Status::Ok();
}

}  // namespace ice
