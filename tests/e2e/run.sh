#!/usr/bin/env bash
# End-to-end tier: real filesystems (ext4, xfs) on ice exports attached with examples/ice-attach
# (nbdfuse + losetup), flakey crash points, daemon kill -9, hardware resets and programming
# failures under fio. Needs root (loop devices, mounts) and a build with nbdkit-ice-plugin.so and
# icectl (ICE_BUILD, default build/).
#
# Each test-*.py / test-*.sh runs under a time limit (SIGTERM, then SIGKILL 60 s later: the tests
# unwind their mounts, loop devices and daemons on SIGTERM), prints its PASS/FAIL lines and one
# `e2e NAME: …: PASS|FAIL` summary. After each test this script also looks for anything a test
# left behind (loop devices, mounts, nbdfuse or nbdkit processes in the tests' private folders),
# counts that as a failure and takes it down. The last line is `e2e: N passed, N failed`.
#
#   ICE_E2E_SOAK=1     longer variants (more crash points, rounds, fio time)
#   ICE_E2E_SEED=N     reproduce a run (each test prints the seed it used)
#   ICE_E2E_ONLY=PAT   run only tests whose file name matches the glob PAT
set -uo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
ROOT=$(cd ../.. && pwd)
export ICE_BUILD=${ICE_BUILD:-$ROOT/build}
export PYTHONDONTWRITEBYTECODE=1
export PYTHONPATH="$HERE/lib:$ROOT/tests/lib${PYTHONPATH:+:$PYTHONPATH}"
export ICE_E2E_SEED=${ICE_E2E_SEED:-$(( $(date +%s) % 100000 ))}

if [ "$(id -u)" != 0 ]; then
  echo "e2e: needs root (loop devices and mounts)"
  echo "e2e: 0 passed, 1 failed"
  exit 1
fi

# Time limit of each test in seconds (the tier as a whole stays under 15 minutes).
limit_of() {
  local base
  case $1 in
    test-attach.py) base=150 ;;
    test-fs-*.py) base=300 ;;
    test-examples.py) base=420 ;;
    test-crash-flakey.py) base=360 ;;
    test-crash-points.py) base=420 ;;
    *) base=240 ;;
  esac
  [ "${ICE_E2E_SOAK:-0}" != 0 ] && base=$((base * 6))
  echo "$base"
}

# Every test makes its folders (daemon, attachments, mount points) under one folder of this run
# (TMPDIR), so what a test left behind is recognised by that path, and nothing of anyone else's
# (other tiers running at the same time) is ever touched.
RUNDIR=$(mktemp -d /tmp/ice-e2e-run.XXXXXX)
chmod 0700 "$RUNDIR"
export TMPDIR=$RUNDIR

# Things a test may have left: loop devices backed by files in the run folder, mounts under it,
# processes naming it. Prints one line each.
leftovers() {
  losetup -n -O NAME,BACK-FILE -l 2>/dev/null | grep -F "$RUNDIR/" | sed 's/^/loop /'
  awk -v d="$RUNDIR/" 'index($5, d) == 1 {print "mount " $5}' /proc/self/mountinfo
  local f p
  for f in $(grep -laF "$RUNDIR/" /proc/[0-9]*/cmdline 2>/dev/null); do
    p=${f#/proc/}
    p=${p%/cmdline}
    [ "$p" = $$ ] || [ "$p" = "$BASHPID" ] && continue
    echo "process $p $(tr '\0' ' ' 2>/dev/null <"$f")"
  done
}

# Takes leftovers down: mounts (innermost first), loop devices, FUSE mounts, then the processes
# (all started by this run's tests) by PID.
sweep() {
  local m d p
  for m in $(awk -v d="$RUNDIR/" 'index($5, d) == 1 && $9 != "fuse" {print $5}' /proc/self/mountinfo | tac); do
    timeout 60 umount "$m" 2>/dev/null || umount -l "$m"
  done
  for d in $(losetup -n -O NAME,BACK-FILE -l | grep -F "$RUNDIR/" | awk '{print $1}'); do
    losetup -d "$d"
  done
  for m in $(awk -v d="$RUNDIR/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | tac); do
    fusermount3 -u "$m" 2>/dev/null || umount -l "$m"
  done
  for p in $(leftovers | awk '$1 == "process" {print $2}'); do kill -KILL "$p" 2>/dev/null; done
}
finish() {
  [ -n "$(leftovers)" ] && sweep
  [ -z "$(leftovers)" ] && rm -rf --one-file-system "$RUNDIR"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

pass=0 fail=0 failed=() start_all=$(date +%s)
for t in test-*.py test-*.sh; do
  [ -e "$t" ] || continue
  # shellcheck disable=SC2254
  [ -n "${ICE_E2E_ONLY:-}" ] && case $t in $ICE_E2E_ONLY) ;; *) continue ;; esac
  case $t in
    *.py) cmd=(/usr/bin/python3 "$t") ;;
    *) cmd=(bash "$t") ;;
  esac
  start=$(date +%s)
  echo "--- $t (limit $(limit_of "$t")s, seed $ICE_E2E_SEED)"
  timeout -k 60 "$(limit_of "$t")" "${cmd[@]}"
  rc=$?
  left=$(leftovers)
  if [ -n "$left" ]; then
    echo "FAIL $t left things behind:"
    echo "$left" | sed 's/^/  /'
    sweep
    rc=1
  fi
  [ $rc = 124 ] && echo "FAIL $t: timed out after $(limit_of "$t")s"
  if [ $rc = 0 ]; then
    pass=$((pass + 1)); echo "PASS $t ($(( $(date +%s) - start ))s)"
  else
    fail=$((fail + 1)); failed+=("$t"); echo "FAIL $t ($(( $(date +%s) - start ))s, exit $rc)"
  fi
done
echo "e2e: tier took $(( $(date +%s) - start_all ))s${failed:+; failed: ${failed[*]}}"
echo "e2e: $pass passed, $fail failed"
[ $fail -eq 0 ] && [ $pass -gt 0 ]
