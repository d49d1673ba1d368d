#include "keyslot/capabilities.h"

#include <algorithm>
#include <bit>
#include <climits>

namespace ice {
namespace {

// The kernel starts a mapped device's profile with ~0 masks. ice uses exactly the data unit sizes
// it accepts (C3), so that an intersection with All() is the other side unchanged and Pairs() of a
// mapped device never lists sizes no key can have.
constexpr uint32_t kAllDataUnitSizes = (kMaxDataUnitSize << 1) - kMinDataUnitSize;

std::string KeyTypesToString(uint8_t types) {
  std::string s;
  for (KeyType t : {KeyType::kRaw, KeyType::kHwWrapped}) {
    if ((types & static_cast<uint8_t>(t)) == 0) continue;
    if (!s.empty()) s += ',';
    s += KeyTypeName(t);
  }
  return s.empty() ? "none" : s;
}

std::string DunBytesToString(unsigned n) { return n == UINT_MAX ? "unlimited" : std::to_string(n); }

// Each set bit of `mask`, lowest first.
template <typename F>
void ForEachSize(uint32_t mask, F f) {
  while (mask != 0) {
    const uint32_t bit = mask & -mask;
    f(bit);
    mask &= mask - 1;
  }
}

}  // namespace

CryptoCapabilities CryptoCapabilities::All() {
  CryptoCapabilities caps;
  caps.data_unit_masks.fill(kAllDataUnitSizes);
  caps.max_dun_bytes = UINT_MAX;
  caps.key_types = kAllKeyTypes;
  return caps;
}

bool CryptoCapabilities::HasAnyMode() const {
  return std::any_of(data_unit_masks.begin(), data_unit_masks.end(),
                     [](uint32_t m) { return m != 0; });
}

bool CryptoCapabilities::SupportsNatively(const CryptoConfig& config) const {
  const int mode = static_cast<int>(config.mode);
  if (mode < 0 || mode >= kNumCryptoModes) return false;
  // A valid configuration has a single-bit size (C3); a malformed one must not match by sharing
  // one bit with the mask.
  if (!std::has_single_bit(config.data_unit_size)) return false;
  return (data_unit_masks[mode] & config.data_unit_size) != 0 &&
         config.dun_bytes <= max_dun_bytes &&
         (key_types & static_cast<uint8_t>(config.key_type)) != 0;
}

void CryptoCapabilities::IntersectWith(const CryptoCapabilities* child) {
  if (child == nullptr) {
    *this = CryptoCapabilities();
    return;
  }
  for (int i = 0; i < kNumCryptoModes; ++i) data_unit_masks[i] &= child->data_unit_masks[i];
  max_dun_bytes = std::min(max_dun_bytes, child->max_dun_bytes);
  key_types &= child->key_types;
}

std::string CryptoCapabilities::ToString() const {
  if (!HasAnyMode()) return "none";
  std::string s;
  for (int i = 0; i < kNumCryptoModes; ++i) {
    if (data_unit_masks[i] == 0) continue;
    s += ModeInfo(static_cast<CryptoMode>(i)).name;
    char sep = ':';
    ForEachSize(data_unit_masks[i], [&](uint32_t size) {
      s += sep;
      s += std::to_string(size);
      sep = ',';
    });
    s += ' ';
  }
  s += "dun_bytes=" + DunBytesToString(max_dun_bytes) + " keys=" + KeyTypesToString(key_types);
  return s;
}

std::vector<std::string> CryptoCapabilities::Pairs() const {
  std::vector<std::string> pairs;
  for (int i = 0; i < kNumCryptoModes; ++i) {
    const std::string name = ModeInfo(static_cast<CryptoMode>(i)).name;
    ForEachSize(data_unit_masks[i],
                [&](uint32_t size) { pairs.push_back(name + "/" + std::to_string(size)); });
  }
  return pairs;
}

bool HasCapabilities(const CryptoCapabilities* target, const CryptoCapabilities* reference) {
  if (reference == nullptr) return true;
  if (target == nullptr) return false;
  for (int i = 0; i < kNumCryptoModes; ++i) {
    if ((reference->data_unit_masks[i] & ~target->data_unit_masks[i]) != 0) return false;
  }
  if (reference->max_dun_bytes > target->max_dun_bytes) return false;
  return (reference->key_types & ~target->key_types) == 0;
}

std::string MissingCapabilities(const CryptoCapabilities* target,
                                const CryptoCapabilities* reference) {
  if (HasCapabilities(target, reference)) return "";
  const CryptoCapabilities none;
  const CryptoCapabilities& have = target != nullptr ? *target : none;
  CryptoCapabilities lacking;
  for (int i = 0; i < kNumCryptoModes; ++i) {
    lacking.data_unit_masks[i] = reference->data_unit_masks[i] & ~have.data_unit_masks[i];
  }
  std::string s;
  auto add = [&s](const std::string& item) {
    if (!s.empty()) s += ", ";
    s += item;
  };
  for (const std::string& pair : lacking.Pairs()) add(pair);
  if (reference->max_dun_bytes > have.max_dun_bytes) {
    add("max DUN bytes " + DunBytesToString(reference->max_dun_bytes) + " > " +
        DunBytesToString(have.max_dun_bytes));
  }
  const uint8_t types = reference->key_types & ~have.key_types;
  if (types != 0) add("key types " + KeyTypesToString(types));
  // A missing target with an empty (but present) reference lacks nothing nameable.
  if (s.empty()) add("inline encryption");
  return s;
}

}  // namespace ice
