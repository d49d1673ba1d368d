// The registry of target types (the kernel's dm_register_target list): one line per type.
#include "dm/target.h"
#include "dm/targets/default_key.h"
#include "dm/targets/delay.h"
#include "dm/targets/dust.h"
#include "dm/targets/error.h"
#include "dm/targets/flakey.h"
#include "dm/targets/inlinecrypt.h"
#include "dm/targets/linear.h"
#include "dm/targets/log_writes.h"
#include "dm/targets/striped.h"
#include "dm/targets/zero.h"

namespace ice::dm {
namespace {

const TargetType* const kTargetTypes[] = {
    &kLinearTarget, &kStripedTarget, &kZeroTarget,       &kErrorTarget,     &kFlakeyTarget,
    &kDelayTarget,  &kDustTarget,    &kDefaultKeyTarget, &kLogWritesTarget, &kInlineCryptTarget,
};

}  // namespace

const TargetType* FindTargetType(std::string_view name) {
  for (const TargetType* t : kTargetTypes) {
    if (t->name == name) return t;
  }
  return nullptr;
}

std::vector<const TargetType*> AllTargetTypes() {
  return {std::begin(kTargetTypes), std::end(kTargetTypes)};
}

}  // namespace ice::dm
