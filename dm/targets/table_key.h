// What `default-key` and `inlinecrypt` share: a key given in the table line, the device range it
// encrypts, and the DUN of each request in dm-crypt's iv_large_sectors layout. Both parse
//
//   <cipher> <key> <iv_offset> <dev> <start> [<#opts> <opt>...]
//
// <key>: the raw key in hex, or (dm-crypt's keyring syntax) `:<size>:logon:<name>` naming a key of
// the daemon's key registry, which keeps key bytes off command lines (P4). Such a key must have
// the cipher's mode, size and key type, a data unit size equal to the sector size and enough DUN
// bytes; the table holds a use of it (N8: `key rm` is refused while the table exists).
// <opts> (at most 4): allow_discards; sector_size:<512..4096, a power of two>, which requires
// iv_large_sectors (only that layout exists); iv_large_sectors; and the target's own (default-key:
// wrappedkey_v0; inlinecrypt: keytype:raw|hw-wrapped). The length must be a multiple of the
// sector size (and inlinecrypt's iv_offset too).
//
// DUN of a request = (iv_offset + its 512-byte sector within the target) / (sector_size / 512);
// a request where that sum is not a multiple of sector_size / 512 fails with EIO. An inline key is
// created with dun_bytes = the bytes of the largest DUN the target can produce (a target too small
// to produce a non-zero DUN is refused, as the kernel refuses dun_bytes 0), and is evicted from
// every device (and the fallback's pool) it reached when the target goes (rules K6, I5). The
// device must be able to serve the key, natively or through the fallback (the kernel's
// blk_crypto_start_using_key).
//
// No message ever quotes an argument (hardening 9): a line whose fields are shifted may hold the
// key in any of them, so each is named by its position (dmsetup's, from 1 after the type).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "dm/target.h"
#include "keyslot/crypto_key.h"
#include "keyslot/key_registry.h"

namespace ice::dm {

struct TableKeyCipher {
  const char* name;  // "aes-xts-plain64"
  CryptoMode mode;
};

// How a target's arguments differ from the shared ones.
struct TableKeyDialect {
  const char* target;  // "default-key": the prefix of every message
  std::span<const TableKeyCipher> ciphers;
  // The target's own option: true when `opt` is one (and *key_type may be set by it), false when
  // it is not; an error refuses the table.
  Result<bool> (*own_option)(const std::string& opt, KeyType* key_type);
  // inlinecrypt refuses an iv_offset that is not a multiple of the sector size; default-key takes
  // it, and every request then fails its DUN check.
  bool iv_offset_aligned;
};

class TableKey {
 public:
  // Parses the arguments and builds (or finds, for the keyring form) the key. EINVAL naming the
  // argument by its position; ENXIO for an unknown device; what CheckServable says otherwise.
  static Result<TableKey> Create(const TargetEnv& env, const TargetArgs& args,
                                 const TableKeyDialect& dialect);
  TableKey(TableKey&&) = default;
  TableKey& operator=(TableKey&&) = default;
  // Evicts an inline key from everywhere it went (a registry key is the registry's to evict).
  ~TableKey();

  // Sends `req` to the device: remapped, and with the key and the request's DUN when it carries
  // data (or is a write-zeroes, which in ice writes encrypted zeros, rule N5). A request that
  // already has a context passes unchanged when `pass_contexts`, otherwise fails with EIO.
  // Discards need allow_discards (EOPNOTSUPP otherwise); flushes pass.
  Status Map(BlkCrypto& blk, const IoRequest& req, bool pass_contexts) const;

  // "<cipher> <key> " with the key as "-" or its keyring form.
  std::string CipherAndKeyText() const { return cipher_ + " " + key_text_; }
  // "<iv_offset> <dev> <start>[ <n> allow_discards sector_size:N iv_large_sectors]".
  std::string RangeAndOptionsText() const;

  const DeviceRef& dev() const { return dev_; }
  uint64_t start_bytes() const;
  uint32_t sector_size() const { return sector_size_; }
  bool allow_discards() const { return allow_discards_; }
  KeyType key_type() const { return key_type_; }

 private:
  TableKey() = default;

  const char* target_ = "";
  std::string cipher_;
  std::string key_text_;
  uint64_t iv_offset_ = 0;
  DeviceRef dev_;
  uint64_t start_sectors_ = 0;
  bool allow_discards_ = false;
  uint32_t sector_size_ = 512;
  KeyType key_type_ = KeyType::kRaw;
  uint64_t max_dun_ = 0;
  KeyPtr key_;
  std::optional<KeyUse> use_;  // set for a keyring-form key
};

// The Target that default-key and inlinecrypt both are, but for the table line each prints.
class TableKeyTarget : public Target {
 public:
  // `pass_contexts`: what Map does with a request that already carries a context (TableKey::Map).
  TableKeyTarget(const TargetEnv& env, TableKey key, bool pass_contexts)
      : blk_(*env.blk), key_(std::move(key)), pass_contexts_(pass_contexts) {}

  Status Map(const IoRequest& req) override { return key_.Map(blk_, req, pass_contexts_); }
  std::vector<DeviceRef> Devices() const override { return {key_.dev()}; }
  std::optional<StoredRange> Locate(uint64_t offset, uint64_t length) const override {
    return LocateOn(key_.dev(), key_.start_bytes(), offset, length);
  }
  bool supports_discard() const override {
    return key_.allow_discards() && key_.dev().device->supports_discard();
  }
  uint32_t logical_block_size() const override { return key_.sector_size(); }

 protected:
  const TableKey& key() const { return key_; }

 private:
  BlkCrypto& blk_;
  TableKey key_;
  const bool pass_contexts_;
};

}  // namespace ice::dm
