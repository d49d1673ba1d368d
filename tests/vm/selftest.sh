#!/bin/bash
# Checks tests/vm/vmrun itself: one PASS/FAIL line per check, then a count.
# Exits non-zero if any check failed. Needs root (the guest's 9p shares) and
# the packages listed in tests/vm/README.md.
set -u

here=$(cd "$(dirname "$0")" && pwd)
vmrun=$here/vmrun
passed=0
failed=0

# Every temporary file of the runner goes here, so the last check can prove
# none is left behind.
scratch=$(mktemp -d /tmp/vmrun-selftest.XXXXXX)
export TMPDIR=$scratch/tmp
mkdir "$TMPDIR"
trap 'rm -rf "$scratch"' EXIT

pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

# run NAME [vmrun args...]: runs vmrun, leaving out/err/rc in $scratch/NAME.*
run() {
  local name=$1
  shift
  "$vmrun" "$@" >"$scratch/$name.out" 2>"$scratch/$name.err"
  echo $? >"$scratch/$name.rc"
}
out() { cat "$scratch/$1.out"; }
err() { cat "$scratch/$1.err"; }
rc() { cat "$scratch/$1.rc"; }

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# --- boot time, and the plainest command
t0=$(now)
run boot --timing -- true
if [ "$(rc boot)" = 0 ]; then
  timing=$(grep -o 'boot [0-9.]* s.*' "$scratch/boot.err")
  pass "boot: 'true' exits 0 ($timing; wall $(elapsed "$t0") s)"
else
  fail "boot" "rc $(rc boot): $(err boot)"
fi

# --- stdout, stderr and exit status come back, separately
run io -- sh -c 'echo to-stdout; echo to-stderr >&2; exit 0'
if [ "$(rc io)" = 0 ] && [ "$(out io)" = to-stdout ] && [ "$(err io)" = to-stderr ]; then
  pass "stdout, stderr and exit 0 come back"
else
  fail "stdout/stderr" "rc $(rc io), out '$(out io)', err '$(err io)'"
fi

run exit7 -- sh -c 'exit 7'
if [ "$(rc exit7)" = 7 ]; then
  pass "exit 7 comes back as 7"
else
  fail "exit 7" "rc $(rc exit7): $(err exit7)"
fi

# --- arguments verbatim, cwd, --env, the guest's identity
# shellcheck disable=SC2016 # the guest's shell expands these
(cd "$here" && run args --env 'GREETING=hello world' -- /bin/sh -c \
  'printf "<%s>" "$@"; echo; pwd; echo "$GREETING"; id -u; uname -r' argv0 'a b' "c'd" '$x' '')
want="<a b><c'd><\$x><>
$here
hello world
0"
guest_kernel=$(out args | tail -n 1)
if [ "$(rc args)" = 0 ] && [ "$(out args | head -n 4)" = "$want" ] &&
  [ -d "/lib/modules/$guest_kernel" ] && [ "$guest_kernel" != "$(uname -r)" ]; then
  pass "arguments, cwd, --env, root, the Debian kernel ($guest_kernel)"
else
  fail "arguments" "rc $(rc args), out '$(out args)', err '$(err args)'"
fi

# --- timeout: the runner kills the VM and says so
t0=$(now)
run timeout --timeout 3 -- sleep 600
secs=$(elapsed "$t0")
if [ "$(rc timeout)" = 124 ] && grep -q '^vmrun: timeout' "$scratch/timeout.err" &&
  awk -v s="$secs" 'BEGIN { exit !(s < 120) }'; then
  pass "sleep past --timeout 3 gives 124 after ${secs%.*} s"
else
  fail "timeout" "rc $(rc timeout) after $secs s: $(err timeout)"
fi

# --- boot failures: 125 and a reason, never the command's status
ICE_VM_KERNEL=/nonexistent run nokernel -- true
if [ "$(rc nokernel)" = 125 ] && grep -q '^vmrun: .*nonexistent' "$scratch/nokernel.err"; then
  pass "ICE_VM_KERNEL=/nonexistent gives 125 ($(err nokernel))"
else
  fail "missing kernel" "rc $(rc nokernel): $(err nokernel)"
fi

ICE_VM_APPEND=rdinit=/nonexistent run panic -- true
if [ "$(rc panic)" = 125 ] &&
  grep -q '^vmrun: boot failed: .*Kernel panic' "$scratch/panic.err"; then
  pass "a kernel that cannot start init gives 125 ($(cut -c1-100 "$scratch/panic.err"))"
else
  fail "kernel panic at boot" "rc $(rc panic): $(err panic)"
fi

# --- the kernel devices the real-kernel tier needs, in one VM
# shellcheck disable=SC2016 # the guest's shell expands these
run devices -- /bin/sh -c '
  modprobe nbd && ls /dev/nbd0 && echo NBD-OK
  dmsetup version
  dev=$(losetup -f) && echo "LOOP-FREE $dev"
  truncate -s 16M /tmp/img && dev=$(losetup -f --show /tmp/img) && echo "LOOP-ATTACHED $dev"
  echo "0 32768 linear $dev 0" | dmsetup create selftest && ls /dev/mapper/selftest &&
    echo DM-CREATE-OK'
if grep -q '^NBD-OK$' "$scratch/devices.out"; then
  pass "modprobe nbd && ls /dev/nbd0"
else
  fail "nbd" "$(out devices) $(err devices)"
fi
if grep -q '^Driver version: *4\.' "$scratch/devices.out"; then
  pass "dmsetup version reaches device-mapper ($(grep '^Driver' "$scratch/devices.out"))"
else
  fail "dmsetup version" "$(out devices) $(err devices)"
fi
if grep -q '^LOOP-FREE /dev/loop[0-9]' "$scratch/devices.out" &&
  grep -q '^LOOP-ATTACHED /dev/loop[0-9]' "$scratch/devices.out"; then
  pass "losetup -f finds and attaches a loop device"
else
  fail "losetup" "$(out devices) $(err devices)"
fi
if grep -q '^DM-CREATE-OK$' "$scratch/devices.out"; then
  pass "dmsetup create makes /dev/mapper/NAME without udev"
else
  fail "dmsetup create" "$(out devices) $(err devices)"
fi

# --- --share is read-write; the rest of the host is not writable from the guest
share=$scratch/share
mkdir "$share"
hostfile=/etc/hostname
before=$(sha256sum "$hostfile")
run share --share "$share" -- /bin/sh -c "
  echo from-guest >$share/result.txt
  echo guest-was-here >>$hostfile && echo probe >/etc/vmrun-selftest-probe &&
    grep -q guest-was-here $hostfile && echo GUEST-WROTE-ETC"
if [ "$(cat "$share/result.txt" 2>/dev/null)" = from-guest ]; then
  pass "a file written to --share comes back on the host"
else
  fail "share" "rc $(rc share), out '$(out share)', err '$(err share)'"
fi
if grep -q '^GUEST-WROTE-ETC$' "$scratch/share.out" && [ "$(sha256sum "$hostfile")" = "$before" ] &&
  [ ! -e /etc/vmrun-selftest-probe ]; then
  pass "the guest writes /etc, the host's /etc is unchanged"
else
  fail "host read-only" "rc $(rc share), out '$(out share)', err '$(err share)'"
fi

# --- nothing left behind
if [ -z "$(ls -A "$TMPDIR")" ] && ! pgrep -f "$TMPDIR" >/dev/null; then
  pass "no temporary files or qemu processes left"
else
  fail "cleanup" "left: $(ls -A "$TMPDIR") $(pgrep -af "$TMPDIR")"
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
