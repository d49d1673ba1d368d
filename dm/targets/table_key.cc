#include "dm/targets/table_key.h"

#include <openssl/crypto.h>

#include <cerrno>
#include <utility>
#include <vector>

#include "block/log.h"
#include "dm/table.h"
#include "dm/targets/linear.h"
#include "keyslot/crypto_profile.h"

namespace ice::dm {
namespace {

constexpr size_t kMaxKeyBytes = 128;  // the kernel's BLK_CRYPTO_MAX_ANY_KEY_SIZE
constexpr unsigned kMaxOptions = 4;

std::string Arg(size_t index) { return "argument " + std::to_string(index + 1); }

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

unsigned BytesOf(uint64_t v) {
  unsigned n = 0;
  for (; v != 0; v >>= 8) ++n;
  return n;
}

// dm-crypt's keyring form ":<size>:logon:<name>".
struct KeyringRef {
  uint64_t size = 0;
  std::string name;
};

// Parsing for one target: every message starts with its name.
class Parser {
 public:
  explicit Parser(const TableKeyDialect& d) : d_(d) {}

  Status Invalid(const std::string& what) const {
    return Status::Error(EINVAL, std::string(d_.target) + ": " + what);
  }

  // The key argument in hex (never echoed in messages: it is secret).
  Status HexKey(const std::string& hex, RawKey& key) const {
    if (hex.empty() || hex.size() > 2 * kMaxKeyBytes || hex.size() % 2 != 0) {
      return Invalid("Invalid keysize");
    }
    for (size_t i = 0; i < hex.size() / 2; ++i) {
      const int hi = HexValue(hex[2 * i]), lo = HexValue(hex[2 * i + 1]);
      if (hi < 0 || lo < 0) return Invalid("Malformed key string");
      key.bytes[i] = static_cast<uint8_t>(hi << 4 | lo);
    }
    key.size = hex.size() / 2;
    return Status::Ok();
  }

  // Once parsed, the name is quoted in messages: a keyring reference holds no secret (the table
  // prints it as given).
  Result<KeyringRef> Keyring(const std::string& text) const {
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
    if (ref.name.empty()) return Invalid("the " + key + " names no key");
    return ref;
  }

  struct Options {
    bool allow_discards = false;
    uint32_t sector_size = kSectorBytes;
    KeyType key_type = KeyType::kRaw;
  };

  // The optional arguments from <#opts> on (argument `first` of the target). As in the kernel,
  // words after the counted group are ignored, and a later sector_size replaces an earlier one.
  Result<Options> OptionsFrom(std::span<const std::string> words, size_t first) const {
    Options o;
    if (words.empty()) return o;
    Result<uint64_t> n = ParseU64(words[0], "value");
    if (!n.ok() || *n > kMaxOptions || *n > words.size() - 1) {
      return Invalid("Invalid number of feature args (" + Arg(first) + ")");
    }
    bool iv_large_sectors = false;
    for (size_t i = 1; i <= *n; ++i) {
      const std::string& opt = words[i];
      ICE_ASSIGN_OR_RETURN(bool own, d_.own_option(opt, &o.key_type));
      if (own) continue;
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
      } else {
        return Invalid("Invalid feature arguments (" + Arg(first + i) + ")");
      }
    }
    // Only the iv_large_sectors layout is implemented (by the kernel's targets too).
    if (o.sector_size != kSectorBytes && !iv_large_sectors) {
      return Invalid("iv_large_sectors must be specified");
    }
    return o;
  }

  // The key of the registry named by a keyring-form <key>, checked against what the target
  // needs.
  Result<KeyUse> RegistryKey(const TargetEnv& env, const KeyringRef& ref,
                             const CryptoConfig& needed) const {
    if (env.keys == nullptr) return Invalid("no key registry to look up key '" + ref.name + "'");
    Result<KeyUse> use = env.keys->Use(ref.name);
    if (!use.ok()) return use.status().WithContext(d_.target);
    const CryptoConfig& have = use->key()->config();
    const std::string name = "key '" + ref.name + "' ";
    if (ref.size != use->key()->raw_bytes().size()) {
      return Invalid(name + "has " + std::to_string(use->key()->raw_bytes().size()) +
                     " bytes, not " + std::to_string(ref.size));
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
    return use;
  }

 private:
  const TableKeyDialect& d_;
};

}  // namespace

Result<TableKey> TableKey::Create(const TargetEnv& env, const TargetArgs& args,
                                  const TableKeyDialect& dialect) {
  const Parser parse(dialect);
  const std::vector<std::string>& a = args.args;
  if (a.size() < 5) return parse.Invalid("Not enough arguments");
  TableKey t;
  t.target_ = dialect.target;

  const TableKeyCipher* cipher = nullptr;
  for (const TableKeyCipher& c : dialect.ciphers) {
    if (a[0] == c.name) cipher = &c;
  }
  if (cipher == nullptr) {
    return parse.Invalid("Unsupported cipher (" + Arg(0) + "): aes-xts-plain64 is the one ice has");
  }
  if (!ModeInfo(cipher->mode).implemented) {
    return parse.Invalid(std::string("cipher ") + cipher->name + " needs " +
                         ModeInfo(cipher->mode).name + ", which ice cannot compute");
  }
  t.cipher_ = a[0];

  RawKey raw;
  std::optional<KeyringRef> keyring;
  if (!a[1].empty() && a[1][0] == ':') {
    ICE_ASSIGN_OR_RETURN(keyring, parse.Keyring(a[1]));
    t.key_text_ = a[1];
  } else {
    ICE_RETURN_IF_ERROR(parse.HexKey(a[1], raw));
    t.key_text_ = "-";
  }

  Result<uint64_t> iv_offset = ParseU64(a[2], "iv_offset");
  if (!iv_offset.ok()) return parse.Invalid("Invalid iv_offset sector (" + Arg(2) + ")");
  t.iv_offset_ = *iv_offset;

  Result<uint64_t> start = ParseU64(a[4], "start sector");
  if (!start.ok()) return parse.Invalid("Invalid start sector (" + Arg(4) + ")");
  t.start_sectors_ = *start;
  Result<DeviceRef> dev = GetDeviceArea(env, a[3], t.start_sectors_, args.length_sectors);
  // Only a failed lookup quotes the word itself; the other errors name a device that exists.
  if (!dev.ok() && dev.status().code() == ENXIO) {
    return Status::Error(ENXIO, std::string(dialect.target) +
                                    ": Device lookup failed: no device named by " + Arg(3));
  }
  if (!dev.ok()) return dev.status().WithContext(dialect.target);
  t.dev_ = std::move(*dev);

  ICE_ASSIGN_OR_RETURN(Parser::Options o, parse.OptionsFrom(std::span(a).subspan(5), 5));
  t.allow_discards_ = o.allow_discards;
  t.sector_size_ = o.sector_size;
  t.key_type_ = o.key_type;
  const uint64_t units = t.sector_size_ / kSectorBytes;
  if (args.length_sectors % units != 0) {
    return parse.Invalid("Device size is not a multiple of sector_size");
  }
  if (dialect.iv_offset_aligned && t.iv_offset_ % units != 0) {
    return parse.Invalid("Wrong alignment of iv_offset sector");
  }
  if (args.length_sectors == 0 || t.iv_offset_ > UINT64_MAX - (args.length_sectors - 1)) {
    return parse.Invalid("iv_offset (" + Arg(2) + ") leaves no room for the target's DUNs");
  }
  t.max_dun_ = (t.iv_offset_ + args.length_sectors - 1) / units;

  CryptoConfig config;
  config.mode = cipher->mode;
  config.data_unit_size = t.sector_size_;
  config.dun_bytes = BytesOf(t.max_dun_);
  config.key_type = t.key_type_;
  if (config.dun_bytes == 0) {
    return parse.Invalid(
        "target too small: its largest DUN is 0, so the key would need 0 DUN bytes");
  }
  if (t.key_type_ != KeyType::kRaw) {
    return parse.Invalid("hardware-wrapped keys are not supported yet (ice has raw keys only)");
  }
  if (keyring) {
    ICE_ASSIGN_OR_RETURN(KeyUse use, parse.RegistryKey(env, *keyring, config));
    t.key_ = use.key();
    t.use_.emplace(std::move(use));
  } else {
    Result<KeyPtr> key = CryptoKey::Create(config, raw.span());
    if (!key.ok()) {
      return key.status().WithContext(std::string(dialect.target) +
                                      ": Error initializing blk-crypto key");
    }
    t.key_ = std::move(*key);
  }

  Status servable = env.blk->CheckServable(*t.dev_.device, t.key_->config());
  if (!servable.ok()) {
    return servable.WithContext(std::string(dialect.target) + ": Error starting to use blk-crypto");
  }
  return t;
}

TableKey::~TableKey() {
  // A key of the registry is evicted everywhere by `key rm`; only an inline key is ours. It is
  // evicted from every slot that holds it, not only from those the device below reaches now:
  // that device's table may have moved to other hardware, or its routing from the fallback to
  // native, since the key was programmed (the kernel's dm_keyslot_evict has exactly that gap).
  if (!key_ || use_) return;
  Status s = CryptoProfile::EvictEverywhere(*key_);
  if (!s.ok())
    spdlog::warn("{} on {}: evicting its key failed: {}", target_, dev_.name, s.ToString());
}

uint64_t TableKey::start_bytes() const { return start_sectors_ * kSectorBytes; }

Status TableKey::Map(BlkCrypto& blk, const IoRequest& req, bool pass_contexts) const {
  if (req.op == IoOp::kDiscard && !allow_discards_) {
    return Status::Error(EOPNOTSUPP, std::string(target_) + ": discards need allow_discards");
  }
  IoRequest out = req;
  if (req.op == IoOp::kFlush || req.length_bytes == 0) return blk.Submit(*dev_.device, out);
  out.offset_bytes += start_bytes();
  if (req.crypt) {
    if (pass_contexts) return blk.Submit(*dev_.device, out);
    // The kernel's inlinecrypt: nothing above it can have attached a context, as it passes no
    // crypto capability up (D7), so one arriving is a bug: the request is killed.
    ICE_LOG_RATELIMITED(spdlog::level::err, "{} on {}: a request already carries a crypto context",
                        target_, dev_.name);
    return Status::Error(EIO, std::string(target_) + ": request already carries a crypto context");
  }
  const bool takes_key = req.has_data() || req.op == IoOp::kWriteZeroes;
  if (!takes_key) return blk.Submit(*dev_.device, out);

  const uint64_t units = sector_size_ / kSectorBytes;
  const uint64_t dun_sectors = iv_offset_ + req.offset_bytes / kSectorBytes;
  if (req.offset_bytes % kSectorBytes != 0 || dun_sectors % units != 0) {
    ICE_LOG_RATELIMITED(spdlog::level::err,
                        "{} on {}: {} at byte {} is not aligned to its {}-byte sectors", target_,
                        dev_.name, IoOpName(req.op), req.offset_bytes, sector_size_);
    return Status::Error(EIO,
                         std::string(target_) + ": request not aligned to the crypto sector size");
  }
  const uint64_t dun = dun_sectors / units;
  if (dun > max_dun_) {
    return Status::Error(EIO, std::string(target_) + ": DUN beyond the target's end");
  }
  out.crypt = CryptoContext{key_.get(), Dun::FromU64(dun)};
  return blk.Submit(*dev_.device, out);
}

std::string TableKey::RangeAndOptionsText() const {
  std::string s =
      std::to_string(iv_offset_) + " " + dev_.name + " " + std::to_string(start_sectors_);
  const bool large = sector_size_ != kSectorBytes;
  const int n = (allow_discards_ ? 1 : 0) + (large ? 2 : 0);
  if (n == 0) return s;
  s += " " + std::to_string(n);
  if (allow_discards_) s += " allow_discards";
  if (large) s += " sector_size:" + std::to_string(sector_size_) + " iv_large_sectors";
  return s;
}

}  // namespace ice::dm
