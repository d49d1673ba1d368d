#!/usr/bin/env bash
# Hardening 15: tests/bench/interleave.sh prints its ratio (it used to write it into a file named
# "0" in the current folder through an awk redirection) and leaves nothing behind.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/ice-interleave-test.XXXX)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
check() { if eval "$2"; then echo "PASS interleave: $1"; passed=$((passed + 1)); else
  echo "FAIL interleave: $1"; failed=$((failed + 1)); fi; }
out=$(cd "$work" && RT=1 SIZE=16m ICE_BUILD=${ICE_BUILD:-} timeout 120 \
  "$here/../bench/interleave.sh" randrw 4k 4 1 2>&1)
rc=$?
check "the script exits 0 (hardening 15)" '[ $rc -eq 0 ] || { echo "$out" | tail -5; false; }'
check "it prints the ratio of ice to file" 'echo "$out" | grep -Eq "^ice / file: [0-9]+\.[0-9]{2}$"'
check "it prints the CPU per request of both" 'echo "$out" | grep -q "CPU/request file=.* us ice=.* us"'
check "it writes no file into the current folder" '[ -z "$(ls -A "$work")" ]'
echo "interleave: $passed passed, $failed failed"
[ $failed -eq 0 ]
