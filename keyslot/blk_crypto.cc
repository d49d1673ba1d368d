#include "keyslot/blk_crypto.h"

#include <algorithm>
#include <cerrno>
#include <string>

#include "block/log.h"
#include "keyslot/crypto_profile.h"

namespace ice {
namespace {

// Encrypted write-zeroes are written from here, a chunk at a time (N5). A multiple of every data
// unit size, so each chunk's DUN is a whole number of units past the previous one.
constexpr size_t kZeroChunkBytes = 256 * 1024;
alignas(64) const uint8_t kZeros[kZeroChunkBytes] = {};

Status Reject(const IoRequest& req, int errno_value, const char* why) {
  ICE_LOG_RATELIMITED(spdlog::level::warn, "blk-crypto: {} at offset {} length {} failed: {}",
                      IoOpName(req.op), req.offset_bytes, req.length_bytes, why);
  return Status::Error(errno_value, why);
}

bool SupportedNatively(BlockDevice& dev, const CryptoConfig& config) {
  const CryptoProfile* profile = dev.crypto_profile();
  return profile != nullptr && profile->SupportsNatively(config);
}

}  // namespace

BlkCrypto::BlkCrypto(unsigned fallback_slots) : fallback_(fallback_slots) {}

Status BlkCrypto::Submit(BlockDevice& dev, const IoRequest& req) {
  if (!req.crypt) return dev.Submit(req);
  const CryptoConfig& config = req.crypt->key->config();
  // C6, as the kernel's __blk_crypto_bio_prep: no data first, then alignment.
  if (req.op != IoOp::kRead && req.op != IoOp::kWrite && req.op != IoOp::kWriteZeroes) {
    return Reject(req, EIO, "crypto context on a request without data");
  }
  if (req.length_bytes == 0) return Reject(req, EIO, "crypto context on a request without data");
  const uint32_t unit = config.data_unit_size;
  if (req.offset_bytes % unit != 0 || req.length_bytes % unit != 0) {
    return Reject(req, EINVAL, "crypto I/O not aligned to the key's data unit size");
  }
  if (req.op != IoOp::kWriteZeroes) {
    return SupportedNatively(dev, config) ? dev.Submit(req) : fallback_.Submit(dev, req);
  }

  // N5: zeros are encrypted like any data, never punched, so a later read decrypts to zeros.
  const bool native = SupportedNatively(dev, config);
  IoRequest chunk{.op = IoOp::kWrite, .write_buf = kZeros, .fua = req.fua, .crypt = req.crypt};
  for (uint64_t done = 0; done < req.length_bytes;) {
    chunk.offset_bytes = req.offset_bytes + done;
    chunk.length_bytes = std::min<uint64_t>(kZeroChunkBytes, req.length_bytes - done);
    ICE_RETURN_IF_ERROR(native ? dev.Submit(chunk) : fallback_.Submit(dev, chunk));
    chunk.crypt->dun.Advance(chunk.length_bytes / unit);
    done += chunk.length_bytes;
  }
  return Status::Ok();
}

Status BlkCrypto::EvictKey(BlockDevice& dev, const CryptoKey& key) {
  if (SupportedNatively(dev, key.config())) return dev.crypto_profile()->EvictKey(key);
  return fallback_.EvictKey(key);
}

Status BlkCrypto::CheckServable(BlockDevice& dev, const CryptoConfig& config) const {
  ICE_RETURN_IF_ERROR(ValidateConfig(config));
  if (SupportedNatively(dev, config)) return Status::Ok();
  if (Fallback::Capabilities().SupportsNatively(config)) return Status::Ok();

  CryptoCapabilities wanted;
  wanted.Add(config.mode, config.data_unit_size);
  wanted.max_dun_bytes = config.dun_bytes;
  wanted.key_types = static_cast<uint8_t>(config.key_type);
  const CryptoProfile* profile = dev.crypto_profile();
  const CryptoCapabilities have =
      profile != nullptr ? profile->capabilities() : CryptoCapabilities();
  const std::string lacks =
      "the device lacks " + MissingCapabilities(profile != nullptr ? &have : nullptr, &wanted);
  if (config.key_type != KeyType::kRaw) {
    return Status::Error(ENOTSUP, config.ToString() + ": " + lacks +
                                      " and the software fallback takes raw keys only");
  }
  if (!ModeInfo(config.mode).implemented) {
    return Status::Error(ENOTSUP, config.ToString() + ": " + lacks + " and ice has no software " +
                                      ModeInfo(config.mode).name);
  }
  return Status::Error(
      EINVAL, config.ToString() + ": " + lacks + " and the software fallback cannot serve it");
}

}  // namespace ice
