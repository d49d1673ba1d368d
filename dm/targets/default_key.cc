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

// A request that already carries a context (a keyed export, fscrypt's file contents in Android)
// passes unchanged.
class DefaultKeyTarget final : public TableKeyTarget {
 public:
  DefaultKeyTarget(const TargetEnv& env, TableKey key)
      : TableKeyTarget(env, std::move(key), /*pass_contexts=*/true) {}

  std::string TableParams() const override {
    return key().CipherAndKeyText() + " " + key().RangeAndOptionsText();
  }
};

Result<std::unique_ptr<Target>> CreateDefaultKey(const TargetEnv& env, const TargetArgs& args) {
  ICE_ASSIGN_OR_RETURN(TableKey key, TableKey::Create(env, args, kDialect));
  return std::unique_ptr<Target>(std::make_unique<DefaultKeyTarget>(env, std::move(key)));
}

}  // namespace

const TargetType kDefaultKeyTarget{"default-key", /*passes_crypto=*/true, &CreateDefaultKey,
                                   /*key_arg=*/1};

}  // namespace ice::dm
