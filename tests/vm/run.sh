#!/usr/bin/env bash
# Real-kernel tier: each tests/vm/group-*.sh runs as root inside one VM (Debian's kernel under
# qemu, booted by ./vmrun), so a group pays for one boot however many checks it makes.
#
# Contract of a group script: it runs inside the guest with the working directory at the
# repository root and ICE_ROOT / ICE_BUILD / ICE_SEED in its environment; it prints one line per
# check, "PASS <what>" or "FAIL <what>: <why>", and exits non-zero when any check failed. A group
# that never ran (boot failure, timeout, missing qemu or kernel) counts as a failed check, loudly.
# ICE_BUILD in the guest is a snapshot of the build's nbdkit-ice-plugin.so, icectl and replay-log
# (all a group may use from it), taken when the tier starts: a rebuild while the tier runs changes
# nothing. ICE_XFSTESTS_SRC, when set (an xfstests source tree), is passed on to the groups (the
# logwrites group builds xfstests' replay-log from it; Debian has no package of it).
#
#   tests/vm/run.sh [GROUP...]    GROUP = the part after "group-", e.g. "dmsetup"
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export ICE_BUILD=${ICE_BUILD:-$ROOT/build}
SEED=${ICE_SEED:-$RANDOM}
LIMIT=${ICE_VM_GROUP_TIMEOUT:-300}

# The snapshot lives under /tmp, which the guest sees as the host's.
SNAP=$(mktemp -d /tmp/ice-vm-build.XXXXXX)
trap 'rm -rf "$SNAP"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
for f in nbdkit-ice-plugin.so icectl replay-log; do
  if ! cp "$ICE_BUILD/$f" "$SNAP/$f"; then
    echo "FAIL vm: cannot copy $ICE_BUILD/$f (build first)"
    echo "vm: 0 passed, 1 failed"
    exit 1
  fi
done

groups=()
if [ $# -gt 0 ]; then
  for g in "$@"; do groups+=("$HERE/group-$g.sh"); done
else
  for g in "$HERE"/group-*.sh; do [ -e "$g" ] && groups+=("$g"); done
fi

XFSTESTS_ENV=()
[ -n "${ICE_XFSTESTS_SRC:-}" ] && XFSTESTS_ENV=(--env "ICE_XFSTESTS_SRC=$ICE_XFSTESTS_SRC")
pass=0 fail=0 start_all=$(date +%s)
if [ ${#groups[@]} -eq 0 ]; then
  echo "FAIL vm: no group-*.sh found under $HERE"
  fail=1
fi
for g in "${groups[@]}"; do
  name=$(basename "$g" .sh)
  name=${name#group-}
  out=$(mktemp) err=$(mktemp)
  start=$(date +%s)
  echo "--- vm group $name (limit ${LIMIT}s, seed $SEED)"
  "$HERE/vmrun" --timeout "$LIMIT" --mem 3072 --cpus 2 --timing \
    --env "ICE_ROOT=$ROOT" --env "ICE_BUILD=$SNAP" --env "ICE_SEED=$SEED" \
    "${XFSTESTS_ENV[@]}" \
    -- bash -c 'cd "$ICE_ROOT" && exec bash "$0"' "$g" >"$out" 2>"$err"
  rc=$?
  cat "$out"
  p=$(grep -c '^PASS ' "$out" || true)
  f=$(grep -c '^FAIL ' "$out" || true)
  pass=$((pass + p))
  fail=$((fail + f))
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
    # The group failed without naming a check: boot failure, timeout, or a crash of the script.
    echo "FAIL vm group $name: exit $rc: $(tail -n 1 "$err")"
    fail=$((fail + 1))
  fi
  if [ $rc -ne 0 ] || [ "$f" -ne 0 ]; then
    echo "--- stderr of group $name (last 40 lines)"
    tail -n 40 "$err"
  fi
  if [ "$p" -eq 0 ] && [ "$f" -eq 0 ] && [ $rc -eq 0 ]; then
    echo "FAIL vm group $name: ran no checks"
    fail=$((fail + 1))
  fi
  echo "--- vm group $name: $(($(date +%s) - start))s, $(grep -o 'boot [0-9.]* s' "$err" | head -1)"
  rm -f "$out" "$err"
done
echo "vm: tier took $(($(date +%s) - start_all))s"
echo "vm: $pass passed, $fail failed"
[ $fail -eq 0 ] && [ $pass -gt 0 ]
