#include "dm/targets/default_key.h"

#include <openssl/crypto.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "block/log.h"
#include "dm/table.h"
#include "dm/targets/linear.h"
#include "keyslot/crypto_key.h"
#include "keyslot/crypto_profile.h"
#include "keyslot/key_registry.h"

namespace ice::dm {
namespace {

constexpr size_t kMaxKeyBytes = 128;  // the kernel's DM_DEFAULT_KEY_MAX_WRAPPED_KEY_SIZE
constexpr unsigned kMaxOptions = 4;

// Hardening 9: no message quotes an argument. A line whose fields are shifted may hold the key in
// any of them, so each is named by its position (dmsetup's, from 1 after the type) instead.
Status Invalid(const std::string& what) { return Status::Error(EINVAL, "default-key: " + what); }

std::string Arg(size_t index) { return "argument " + std::to_string(index + 1); }

struct Cipher {
  const char* name;
  CryptoMode mode;
};
constexpr Cipher kCiphers[] = {
    {"aes-xts-plain64", CryptoMode::kAes256Xts},
    {"xchacha12,aes-adiantum-plain64", CryptoMode::kAdiantum},
};

// Raw key bytes on the stack, wiped when they go out of scope.
struct RawKey {
  uint8_t bytes[kMaxKeyBytes];
  size_t size = 0;
  ~RawKey() { OPENSSL_cleanse(bytes, sizeof(bytes)); }
  std::span<const uint8_t> span() const { return {bytes, size}; }
};

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The key argument in hex (never echoed in messages: it is secret).
Status ParseHexKey(const std::string& hex, RawKey& key) {
  if (hex.size() > 2 * kMaxKeyBytes || hex.size() % 2 != 0) return Invalid("Invalid keysize");
  for (size_t i = 0; i < hex.size() / 2; ++i) {
    const int hi = HexValue(hex[2 * i]), lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return Invalid("Malformed key string");
    key.bytes[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  key.size = hex.size() / 2;
  return Status::Ok();
}

// dm-crypt's keyring form ":<size>:logon:<name>".
struct KeyringRef {
  uint64_t size = 0;
  std::string name;
};

// Once parsed, the name is quoted in messages: a keyring reference holds no secret (the table
// prints it as given).
Result<KeyringRef> ParseKeyringRef(const std::string& text) {
  const std::string key = "key (" + Arg(1) + ")";
  const size_t type_at = text.find(':', 1);
  const size_t name_at = type_at == std::string::npos ? type_at : text.find(':', type_at + 1);
  if (name_at == std::string::npos) {
    return Invalid(key + " is neither hex nor of the form :<size>:logon:<name>");
  }
  KeyringRef ref;
  Result<uint64_t> size = ParseU64(text.substr(1, type_at - 1), "key size");
  if (!size.ok()) return Invalid("the size of the " + key + " is not a number");
  ref.size = *size;
  if (text.compare(type_at + 1, name_at - type_at - 1, "logon") != 0) {
    return Invalid("the type of the " + key + " is not supported (only logon)");
  }
  ref.name = text.substr(name_at + 1);
  return ref;
}

struct Options {
  bool allow_discards = false;
  uint32_t sector_size = kSectorBytes;
};

// The optional arguments from <#opts> on (argument `first` of the target). As in the kernel,
// words after the counted group are ignored, and a later sector_size replaces an earlier one.
Result<Options> ParseOptions(std::span<const std::string> words, size_t first) {
  Options o;
  if (words.empty()) return o;
  Result<uint64_t> n = ParseU64(words[0], "value");
  if (!n.ok() || *n > kMaxOptions || *n > words.size() - 1) {
    return Invalid("Invalid number of feature args (" + Arg(first) + ")");
  }
  bool iv_large_sectors = false;
  for (size_t i = 1; i <= *n; ++i) {
    const std::string& opt = words[i];
    if (opt == "allow_discards") {
      o.allow_discards = true;
    } else if (opt.rfind("sector_size:", 0) == 0) {
      Result<uint64_t> size = ParseU64(opt.substr(12), "sector_size");
      if (!size.ok() || *size < kSectorBytes || *size > 4096 || (*size & (*size - 1)) != 0) {
        return Invalid("Invalid sector_size (" + Arg(first + i) + "): 512 to 4096, a power of 2");
      }
      o.sector_size = static_cast<uint32_t>(*size);
    } else if (opt == "iv_large_sectors") {
      iv_large_sectors = true;
    } else if (opt == "wrappedkey_v0") {
      return Invalid(
          "wrappedkey_v0: hardware-wrapped keys are not supported (ice has raw keys only)");
    } else {
      return Invalid("Invalid feature arguments (" + Arg(first + i) + ")");
    }
  }
  // dm-default-key implements only the iv_large_sectors layout.
  if (o.sector_size != kSectorBytes && !iv_large_sectors) {
    return Invalid("iv_large_sectors must be specified");
  }
  return o;
}

unsigned BytesOf(uint64_t v) {
  unsigned n = 0;
  for (; v != 0; v >>= 8) ++n;
  return n;
}

class DefaultKeyTarget final : public Target {
 public:
  struct Params {
    std::string cipher;
    std::string key_text;  // what the table prints for the key
    uint64_t iv_offset = 0;
    DeviceRef dev;
    uint64_t start_sectors = 0;
    Options options;
    uint64_t max_dun = 0;
    KeyPtr key;
    std::optional<KeyUse> use;  // set for a keyring-form key
  };

  DefaultKeyTarget(const TargetEnv& env, Params p) : blk_(env.blk), p_(std::move(p)) {}

  ~DefaultKeyTarget() override {
    // A key of the registry is evicted everywhere by `key rm`; only an inline key is ours. It is
    // evicted from every slot that holds it, not only from those the device below reaches now:
    // that device's table may have moved to other hardware, or its routing from the fallback to
    // native, since the key was programmed (the kernel's dm_keyslot_evict has exactly that gap).
    if (p_.use) return;
    Status s = CryptoProfile::EvictEverywhere(*p_.key);
    if (!s.ok()) {
      spdlog::warn("default-key on {}: evicting its key failed: {}", p_.dev.name, s.ToString());
    }
  }

  Status Map(const IoRequest& req) override {
    if (req.op == IoOp::kDiscard && !p_.options.allow_discards) {
      return Status::Error(EOPNOTSUPP, "default-key: discards need allow_discards");
    }
    IoRequest out = req;
    if (req.op == IoOp::kFlush || req.length_bytes == 0) {
      return blk_->Submit(*p_.dev.device, out);
    }
    out.offset_bytes += p_.start_sectors * kSectorBytes;
    const bool takes_key = req.has_data() || req.op == IoOp::kWriteZeroes;
    if (req.crypt || !takes_key) return blk_->Submit(*p_.dev.device, out);

    const uint64_t units = p_.options.sector_size / kSectorBytes;
    const uint64_t dun_sectors = p_.iv_offset + req.offset_bytes / kSectorBytes;
    if (req.offset_bytes % kSectorBytes != 0 || dun_sectors % units != 0) {
      ICE_LOG_RATELIMITED(spdlog::level::err,
                          "default-key on {}: {} at byte {} is not aligned to its {}-byte sectors",
                          p_.dev.name, IoOpName(req.op), req.offset_bytes, p_.options.sector_size);
      return Status::Error(EIO, "default-key: request not aligned to the crypto sector size");
    }
    const uint64_t dun = dun_sectors / units;
    if (dun > p_.max_dun) return Status::Error(EIO, "default-key: DUN beyond the target's end");
    out.crypt = CryptoContext{p_.key.get(), Dun::FromU64(dun)};
    return blk_->Submit(*p_.dev.device, out);
  }

  std::string TableParams() const override {
    std::string s = p_.cipher + " " + p_.key_text + " " + std::to_string(p_.iv_offset) + " " +
                    p_.dev.name + " " + std::to_string(p_.start_sectors);
    const bool large = p_.options.sector_size != kSectorBytes;
    const int n = (p_.options.allow_discards ? 1 : 0) + (large ? 2 : 0);
    if (n == 0) return s;
    s += " " + std::to_string(n);
    if (p_.options.allow_discards) s += " allow_discards";
    if (large) s += " sector_size:" + std::to_string(p_.options.sector_size) + " iv_large_sectors";
    return s;
  }

  std::vector<DeviceRef> Devices() const override { return {p_.dev}; }
  std::optional<StoredRange> Locate(uint64_t offset, uint64_t length) const override {
    return LocateOn(p_.dev, p_.start_sectors * kSectorBytes, offset, length);
  }

  bool supports_discard() const override {
    return p_.options.allow_discards && p_.dev.device->supports_discard();
  }

  uint32_t logical_block_size() const override { return p_.options.sector_size; }

 private:
  BlkCrypto* const blk_;
  Params p_;
};

// The key of the registry named by a keyring-form <key>, checked against what the target needs.
Status UseRegistryKey(const TargetEnv& env, const KeyringRef& ref, const CryptoConfig& needed,
                      DefaultKeyTarget::Params& p) {
  if (env.keys == nullptr) return Invalid("no key registry to look up key '" + ref.name + "'");
  Result<KeyUse> use = env.keys->Use(ref.name);
  if (!use.ok()) return use.status().WithContext("default-key");
  const CryptoConfig& have = use->key()->config();
  const std::string name = "key '" + ref.name + "' ";
  if (ref.size != use->key()->raw_bytes().size()) {
    return Invalid(name + "has " + std::to_string(use->key()->raw_bytes().size()) + " bytes, not " +
                   std::to_string(ref.size));
  }
  if (have.mode != needed.mode || have.key_type != needed.key_type) {
    return Invalid(name + "is " + have.ToString() + ", not " + ModeInfo(needed.mode).name);
  }
  if (have.data_unit_size != needed.data_unit_size) {
    return Invalid(name + "has data unit size " + std::to_string(have.data_unit_size) +
                   ", not the sector size " + std::to_string(needed.data_unit_size));
  }
  if (have.dun_bytes < needed.dun_bytes) {
    return Invalid(name + "has dun_bytes " + std::to_string(have.dun_bytes) +
                   ", the target needs " + std::to_string(needed.dun_bytes));
  }
  p.key = use->key();
  p.use.emplace(std::move(*use));
  return Status::Ok();
}

Result<std::unique_ptr<Target>> CreateDefaultKey(const TargetEnv& env, const TargetArgs& args) {
  const std::vector<std::string>& a = args.args;
  if (a.size() < 5) return Invalid("Not enough arguments");
  DefaultKeyTarget::Params p;

  const Cipher* cipher = nullptr;
  for (const Cipher& c : kCiphers) {
    if (a[0] == c.name) cipher = &c;
  }
  if (cipher == nullptr) {
    return Invalid("Unsupported cipher (" + Arg(0) + "): aes-xts-plain64 is the one ice has");
  }
  if (!ModeInfo(cipher->mode).implemented) {
    return Invalid(std::string("cipher ") + cipher->name + " needs " + ModeInfo(cipher->mode).name +
                   ", which ice cannot compute");
  }
  p.cipher = a[0];

  RawKey raw;
  std::optional<KeyringRef> keyring;
  if (!a[1].empty() && a[1][0] == ':') {
    ICE_ASSIGN_OR_RETURN(keyring, ParseKeyringRef(a[1]));
    p.key_text = a[1];
  } else {
    ICE_RETURN_IF_ERROR(ParseHexKey(a[1], raw));
    p.key_text = "-";
  }

  Result<uint64_t> iv_offset = ParseU64(a[2], "iv_offset");
  if (!iv_offset.ok()) return Invalid("Invalid iv_offset sector (" + Arg(2) + ")");
  p.iv_offset = *iv_offset;

  Result<uint64_t> start = ParseU64(a[4], "start sector");
  if (!start.ok()) return Invalid("Invalid start sector (" + Arg(4) + ")");
  p.start_sectors = *start;
  Result<DeviceRef> dev = GetDeviceArea(env, a[3], p.start_sectors, args.length_sectors);
  // Only a failed lookup quotes the word itself; the other errors name a device that exists.
  if (!dev.ok() && dev.status().code() == ENXIO) {
    return Status::Error(ENXIO, "default-key: Device lookup failed: no device named by " + Arg(3));
  }
  if (!dev.ok()) return dev.status().WithContext("default-key");
  p.dev = std::move(*dev);

  ICE_ASSIGN_OR_RETURN(p.options, ParseOptions(std::span(a).subspan(5), 5));
  const uint64_t units = p.options.sector_size / kSectorBytes;
  if (args.length_sectors % units != 0) {
    return Invalid("Device size is not a multiple of sector_size");
  }
  if (args.length_sectors == 0 || p.iv_offset > UINT64_MAX - (args.length_sectors - 1)) {
    return Invalid("iv_offset (" + Arg(2) + ") leaves no room for the target's DUNs");
  }
  p.max_dun = (p.iv_offset + args.length_sectors - 1) / units;

  CryptoConfig config;
  config.mode = cipher->mode;
  config.data_unit_size = p.options.sector_size;
  config.dun_bytes = BytesOf(p.max_dun);
  config.key_type = KeyType::kRaw;
  if (config.dun_bytes == 0) {
    return Invalid("target too small: its largest DUN is 0, so the key would need 0 DUN bytes");
  }
  if (keyring) {
    ICE_RETURN_IF_ERROR(UseRegistryKey(env, *keyring, config, p));
  } else {
    Result<KeyPtr> key = CryptoKey::Create(config, raw.span());
    if (!key.ok())
      return key.status().WithContext("default-key: Error initializing blk-crypto key");
    p.key = std::move(*key);
  }

  Status servable = env.blk->CheckServable(*p.dev.device, p.key->config());
  if (!servable.ok()) return servable.WithContext("default-key: Error starting to use blk-crypto");
  return std::unique_ptr<Target>(std::make_unique<DefaultKeyTarget>(env, std::move(p)));
}

}  // namespace

const TargetType kDefaultKeyTarget{"default-key", /*passes_crypto=*/true, &CreateDefaultKey,
                                   /*key_arg=*/1};

}  // namespace ice::dm
