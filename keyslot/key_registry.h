// The daemon's named keys (DESIGN: `[[key]]`, `icectl key add/rm/ls`). Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "block/status.h"
#include "keyslot/crypto_key.h"

namespace ice {

class KeyRegistry;

// A use of a named key by a connection or a table (rule N8): while any use exists the key cannot
// be removed. Move-only; releases on destruction.
class KeyUse {
 public:
  KeyUse() = default;
  KeyUse(KeyUse&& o) noexcept;
  KeyUse& operator=(KeyUse&& o) noexcept;
  ~KeyUse();
  const KeyPtr& key() const { return key_; }
  const std::string& name() const { return name_; }

 private:
  friend class KeyRegistry;
  KeyUse(KeyRegistry* reg, std::string name, KeyPtr key)
      : reg_(reg), name_(std::move(name)), key_(std::move(key)) {}
  KeyRegistry* reg_ = nullptr;
  std::string name_;
  KeyPtr key_;
};

struct KeyInfo {
  std::string name;
  CryptoConfig config;
  int users = 0;
};

class KeyRegistry {
 public:
  KeyRegistry() = default;
  KeyRegistry(const KeyRegistry&) = delete;
  KeyRegistry& operator=(const KeyRegistry&) = delete;

  // EEXIST when the name is taken; EINVAL for an empty or malformed name (allowed: [A-Za-z0-9._-]).
  Status Add(const std::string& name, KeyPtr key);
  // ENOENT when unknown; EBUSY (naming the users' count) while a KeyUse exists. Does not evict:
  // the caller evicts the returned key from every device before dropping it.
  Result<KeyPtr> Remove(const std::string& name);
  // ENOENT when unknown.
  Result<KeyUse> Use(const std::string& name);
  Result<KeyPtr> Find(const std::string& name) const;
  std::vector<KeyInfo> List() const;

 private:
  friend class KeyUse;
  void Release(const std::string& name);
  struct Entry {
    KeyPtr key;
    int users = 0;
  };
  mutable std::mutex mu_;
  std::map<std::string, Entry> keys_;
};

// Whether `name` is a valid device or key name: 1…127 of [A-Za-z0-9._-], not starting with '-' or
// '.'.
bool IsValidName(const std::string& name);

}  // namespace ice
