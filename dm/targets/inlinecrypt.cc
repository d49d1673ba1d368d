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

class InlineCryptTarget final : public Target {
 public:
  InlineCryptTarget(const TargetEnv& env, TableKey key) : blk_(*env.blk), key_(std::move(key)) {}

  Status Map(const IoRequest& req) override { return key_.Map(blk_, req, /*pass_contexts=*/false); }

  std::string TableParams() const override {
    return key_.CipherAndKeyText() + " " + std::to_string(static_cast<int>(key_.key_type())) + " " +
           key_.RangeAndOptionsText();
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

Result<std::unique_ptr<Target>> CreateInlineCrypt(const TargetEnv& env, const TargetArgs& args) {
  ICE_ASSIGN_OR_RETURN(TableKey key, TableKey::Create(env, args, kDialect));
  return std::unique_ptr<Target>(std::make_unique<InlineCryptTarget>(env, std::move(key)));
}

}  // namespace

const TargetType kInlineCryptTarget{"inlinecrypt", /*passes_crypto=*/false, &CreateInlineCrypt,
                                    /*key_arg=*/1};

}  // namespace ice::dm
