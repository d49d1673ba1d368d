#!/usr/bin/env bash
# Integration tier: the real nbdkit with the ice plugin, driven by libnbd (Python), nbdsh,
# nbdinfo and icectl. Each test-*.py / test-*.sh runs with a time limit; one summary line ends it.
set -uo pipefail
cd "$(dirname "$0")"
export ICE_BUILD=${ICE_BUILD:-$(cd ../.. && pwd)/build}
export PYTHONPATH="$(cd ../lib && pwd)${PYTHONPATH:+:$PYTHONPATH}"
pass=0 fail=0 failed=()
for t in test-*.py test-*.sh; do
  [ -e "$t" ] || continue
  case $t in
    *.py) cmd=(/usr/bin/python3 "$t") ;;
    *) cmd=(bash "$t") ;;
  esac
  start=$(date +%s)
  if timeout -k 10 300 "${cmd[@]}"; then
    pass=$((pass + 1)); echo "PASS $t ($(( $(date +%s) - start ))s)"
  else
    fail=$((fail + 1)); failed+=("$t"); echo "FAIL $t ($(( $(date +%s) - start ))s)"
  fi
done
echo "integration: $pass passed, $fail failed${failed:+ (${failed[*]})}"
[ $fail -eq 0 ] && [ $pass -gt 0 ]
