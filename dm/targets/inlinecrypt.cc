#include "dm/targets/inlinecrypt.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dm/targets/table_key.h"

namespace ice::dm {
namespace {

constexpr TableKeyCipher kCiphers[] = {{"aes-xts-plain64", CryptoMode::kAes256Xts}};

Result<bool> OwnOption(const std::string& opt, KeyType* key_type) {
  if (opt.rfind("keytype:", 0) != 0) return false;
  const std::string type = opt.substr(8);
  if (type == "raw") {
    *key_type = KeyType::kRaw;
  } else if (type == "hw-wrapped") {
    *key_type = KeyType::kHwWrapped;
  } else {
    return Status::Error(EINVAL, "inlinecrypt: Invalid block key type");
  }
  return true;
}

constexpr TableKeyDialect kDialect{"inlinecrypt", kCiphers, &OwnOption, /*iv_offset_aligned=*/true};

class InlineCryptTarget final : public TableKeyTarget {
 public:
  InlineCryptTarget(const TargetEnv& env, TableKey key)
      : TableKeyTarget(env, std::move(key), /*pass_contexts=*/false) {}

  std::string TableParams() const override {
    return key().CipherAndKeyText() + " " + std::to_string(static_cast<int>(key().key_type())) +
           " " + key().RangeAndOptionsText();
  }
};

Result<std::unique_ptr<Target>> CreateInlineCrypt(const TargetEnv& env, const TargetArgs& args) {
  ICE_ASSIGN_OR_RETURN(TableKey key, TableKey::Create(env, args, kDialect));
  return std::unique_ptr<Target>(std::make_unique<InlineCryptTarget>(env, std::move(key)));
}

}  // namespace

const TargetType kInlineCryptTarget{"inlinecrypt", /*passes_crypto=*/false, &CreateInlineCrypt,
                                    /*key_arg=*/1};

}  // namespace ice::dm
