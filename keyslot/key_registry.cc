#include "keyslot/key_registry.h"

#include <cerrno>

namespace ice {

bool IsValidName(const std::string& name) {
  if (name.empty() || name.size() > 127 || name[0] == '-' || name[0] == '.') return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

KeyUse::KeyUse(KeyUse&& o) noexcept
    : reg_(std::exchange(o.reg_, nullptr)), name_(std::move(o.name_)), key_(std::move(o.key_)) {}

KeyUse& KeyUse::operator=(KeyUse&& o) noexcept {
  if (this != &o) {
    if (reg_) reg_->Release(name_);
    reg_ = std::exchange(o.reg_, nullptr);
    name_ = std::move(o.name_);
    key_ = std::move(o.key_);
  }
  return *this;
}

KeyUse::~KeyUse() {
  if (reg_) reg_->Release(name_);
}

Status KeyRegistry::Add(const std::string& name, KeyPtr key) {
  if (!IsValidName(name)) return Status::Error(EINVAL, "invalid key name '" + name + "'");
  std::lock_guard g(mu_);
  if (keys_.count(name)) return Status::Error(EEXIST, "key '" + name + "' already exists");
  keys_[name] = Entry{std::move(key), 0};
  return Status::Ok();
}

Result<KeyPtr> KeyRegistry::Remove(const std::string& name) {
  std::lock_guard g(mu_);
  auto it = keys_.find(name);
  if (it == keys_.end()) return Status::Error(ENOENT, "no key named '" + name + "'");
  if (it->second.users > 0) {
    return Status::Error(EBUSY, "key '" + name + "' is in use by " +
                                    std::to_string(it->second.users) +
                                    " connection(s) or table(s)");
  }
  KeyPtr key = std::move(it->second.key);
  keys_.erase(it);
  return key;
}

Result<KeyUse> KeyRegistry::Use(const std::string& name) {
  std::lock_guard g(mu_);
  auto it = keys_.find(name);
  if (it == keys_.end()) return Status::Error(ENOENT, "no key named '" + name + "'");
  ++it->second.users;
  return KeyUse(this, name, it->second.key);
}

Result<KeyPtr> KeyRegistry::Find(const std::string& name) const {
  std::lock_guard g(mu_);
  auto it = keys_.find(name);
  if (it == keys_.end()) return Status::Error(ENOENT, "no key named '" + name + "'");
  return it->second.key;
}

std::vector<KeyInfo> KeyRegistry::List() const {
  std::lock_guard g(mu_);
  std::vector<KeyInfo> out;
  for (const auto& [name, e] : keys_) out.push_back({name, e.key->config(), e.users});
  return out;
}

void KeyRegistry::Release(const std::string& name) {
  std::lock_guard g(mu_);
  auto it = keys_.find(name);
  if (it != keys_.end() && it->second.users > 0) --it->second.users;
}

}  // namespace ice
