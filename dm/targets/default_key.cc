#include "dm/targets/default_key.h"

#include <cerrno>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dm/targets/table_key.h"

namespace ice::dm {
namespace {

constexpr TableKeyCipher kCiphers[] = {
    {"aes-xts-plain64", CryptoMode::kAes256Xts},
    {"xchacha12,aes-adiantum-plain64", CryptoMode::kAdiantum},
};

// wrappedkey_v0: the key is hardware-wrapped (rule W6).
Result<bool> OwnOption(const std::string& opt, KeyType* key_type) {
  if (opt != "wrappedkey_v0") return false;
  *key_type = KeyType::kHwWrapped;
  return true;
}

constexpr TableKeyDialect kDialect{"default-key", kCiphers, &OwnOption,
                                   /*iv_offset_aligned=*/false};

class DefaultKeyTarget final : public Target {
 public:
  explicit DefaultKeyTarget(const TargetEnv& env, TableKey key)
      : blk_(*env.blk), key_(std::move(key)) {}

  // A request that already carries a context (a keyed export, fscrypt's file contents in
  // Android) passes unchanged.
  Status Map(const IoRequest& req) override { return key_.Map(blk_, req, /*pass_contexts=*/true); }

  std::string TableParams() const override {
    return key_.CipherAndKeyText() + " " + key_.RangeAndOptionsText();
  }

  std::vector<DeviceRef> Devices() const override { return {key_.dev()}; }
  std::optional<StoredRange> Locate(uint64_t offset, uint64_t length) const override {
    return LocateOn(key_.dev(), key_.start_bytes(), offset, length);
  }

  bool supports_discard() const override {
    return key_.allow_discards() && key_.dev().device->supports_discard();
  }

  uint32_t logical_block_size() const override { return key_.sector_size(); }

 private:
  BlkCrypto& blk_;
  TableKey key_;
};

Result<std::unique_ptr<Target>> CreateDefaultKey(const TargetEnv& env, const TargetArgs& args) {
  ICE_ASSIGN_OR_RETURN(TableKey key, TableKey::Create(env, args, kDialect));
  return std::unique_ptr<Target>(std::make_unique<DefaultKeyTarget>(env, std::move(key)));
}

}  // namespace

const TargetType kDefaultKeyTarget{"default-key", /*passes_crypto=*/true, &CreateDefaultKey,
                                   /*key_arg=*/1};

}  // namespace ice::dm
