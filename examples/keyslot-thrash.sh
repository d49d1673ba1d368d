#!/usr/bin/env bash
# keyslot-thrash.sh: more keys in use than the hardware has keyslots, with real filesystems.
#
# What it shows: the keyslot manager (the kernel's blk_crypto_profile semantics) shares a few
# slots among many keys — programming, evicting the least recently used idle key, making I/O wait
# when every slot is busy — without mixing up data. Each export given (DEVICE@KEY, each with its
# own key, on devices that do not overlap) gets a filesystem; all are mounted and written at the
# same time, unmounted, checked, remounted and verified with sha256sum. Before and after, the
# controllers' slot counters (icectl hw ls --json) are read: more programs than keys using a
# controller mean the keys took its slots from each other and were programmed again (taking an
# idle slot over is a program, as in the kernel; `evictions` counts explicit key removals only).
#
# Usage (as root, with the daemon running):
#   keyslot-thrash.sh [-f ext4|xfs] [-m MiB] -y EXPORT EXPORT [EXPORT...]
# e.g. with three linear devices over two 2-slot controllers:
#   keyslot-thrash.sh -y lin1@k1 lin2@k2 lin3@k3
# -m: MiB written per filesystem (default 64). -y: agree that the exports are overwritten.
# mkfs.xfs needs devices of 300 MB or more.
# Environment: ICE_NBD_SOCKET (default /run/ice/nbd.sock), ICE_SOCKET, ICECTL (as icectl).
#
# Expected output (numbers vary):
#   keyslot-thrash: lin1@k1: 48 files (64 MiB) written, e2fsck -f -n clean, 48 files verified
#   keyslot-thrash: lin2@k2: 51 files (64 MiB) written, e2fsck -f -n clean, 51 files verified
#   keyslot-thrash: lin3@k3: 45 files (64 MiB) written, e2fsck -f -n clean, 45 files verified
#   keyslot-thrash: hw0: 2 slots, +16 programs, +0 waits, +576 hits
#   keyslot-thrash: hw1: 2 slots, +12 programs, +1 waits, +531 hits
#   keyslot-thrash: PASS (3 keys, 144 files verified)
# Exit 0 on PASS; FAIL lines and exit 1 otherwise.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ICECTL=${ICECTL:-$(command -v icectl || echo "$HERE/../build/icectl")}
NBD_SOCKET=${ICE_NBD_SOCKET:-/run/ice/nbd.sock}
FS=ext4 MIB=64 YES=""
while getopts f:m:y o; do
  case $o in
    f) FS=$OPTARG ;;
    m) MIB=$OPTARG ;;
    y) YES=1 ;;
    *) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 2 ] || { echo "usage: $0 [-f ext4|xfs] [-m MiB] -y EXPORT EXPORT..." >&2; exit 2; }
[ -n "$YES" ] || { echo "keyslot-thrash: this overwrites $*; add -y to go on" >&2; exit 2; }
case $FS in ext4) CHECK=(e2fsck -f -n) ;; xfs) CHECK=(xfs_repair -n) ;; *) echo "ext4 or xfs" >&2; exit 2 ;; esac
EXPORTS=("$@")

say() { printf 'keyslot-thrash: %s\n' "$*"; }
FAILED=0
fail() { say "FAIL: $*"; FAILED=1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/keyslot-thrash.XXXXXX")
cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  for i in "${!EXPORTS[@]}"; do
    mountpoint -q "$WORK/m$i" && umount "$WORK/m$i"
    [ -d "$WORK/att$i" ] && "$HERE/ice-attach" detach "$WORK/att$i"
  done
  rm -rf --one-file-system "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# counters: "NAME SLOTS PROGRAMS WAITS HITS" for every controller.
counters() {
  "$ICECTL" --json hw ls | /usr/bin/python3 -c '
import json, sys
for h in json.load(sys.stdin)["hardware"]:
    c = h["counters"]
    print(h["name"], h["keyslots"], c["slot_programs"], c["slot_waits"], c["slot_hits"])'
}
before=$(counters) || exit 1

declare -a DEVS
for i in "${!EXPORTS[@]}"; do
  DEVS[i]=$("$HERE/ice-attach" attach --dir "$WORK/att$i" "nbd+unix:///${EXPORTS[i]}?socket=$NBD_SOCKET") || exit 1
  if [ "$FS" = ext4 ]; then mkfs.ext4 -q -F "${DEVS[i]}"; else mkfs.xfs -q -f "${DEVS[i]}"; fi || { fail "mkfs on ${EXPORTS[i]}"; exit 1; }
  mkdir -p "$WORK/m$i" && mount "${DEVS[i]}" "$WORK/m$i" || { fail "mount ${EXPORTS[i]}"; exit 1; }
done

# fill DIR MiB: random files up to MiB in total, each fsynced; then a manifest.
fill() {
  local dir=$1 left=$(($2 * 1024)) n=0 kib
  while [ $left -gt 0 ]; do
    kib=$((RANDOM % 2048 + 1))
    [ $kib -gt $left ] && kib=$left
    head -c $((kib * 1024)) /dev/urandom >"$dir/f$n" && sync "$dir/f$n" || return 1
    left=$((left - kib))
    n=$((n + 1))
  done
  (cd "$dir" && sha256sum f*) >"$dir.manifest"
}
pids=()
for i in "${!EXPORTS[@]}"; do
  fill "$WORK/m$i" "$MIB" &
  pids+=($!)
done
for i in "${!pids[@]}"; do wait "${pids[i]}" || fail "writing on ${EXPORTS[i]} failed"; done

total=0
for i in "${!EXPORTS[@]}"; do
  n=$(wc -l <"$WORK/m$i.manifest")
  umount "$WORK/m$i" || fail "umount ${EXPORTS[i]}"
  out=$("${CHECK[@]}" "${DEVS[i]}" 2>&1) || fail "${EXPORTS[i]}: ${CHECK[*]}: $out"
  mount "${DEVS[i]}" "$WORK/m$i" || fail "remount ${EXPORTS[i]}"
  if bad=$(cd "$WORK/m$i" && sha256sum --quiet -c "$WORK/m$i.manifest" 2>&1); then
    say "${EXPORTS[i]}: $n files ($MIB MiB) written, ${CHECK[*]} clean, $n files verified"
    total=$((total + n))
  else
    fail "${EXPORTS[i]}: files differ after remount: $bad"
  fi
done

after=$(counters) || exit 1
join <(sort <<<"$before") <(sort <<<"$after") | while read -r name slots p0 w0 h0 _ p1 w1 h1; do
  [ "$p1" = "$p0" ] && [ "$h1" = "$h0" ] && continue # a controller these exports do not use
  say "$name: $slots slots, +$((p1 - p0)) programs, +$((w1 - w0)) waits, +$((h1 - h0)) hits"
done
[ $FAILED = 0 ] || exit 1
say "PASS (${#EXPORTS[@]} keys, $total files verified)"
