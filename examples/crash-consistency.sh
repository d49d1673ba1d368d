#!/usr/bin/env bash
# crash-consistency.sh: power-cut testing of a filesystem on an encrypted ice export, the way
# xfstests does it with dm-flakey.
#
# What it shows: a filesystem on inline encryption keeps every file it acknowledged with fsync
# across a power cut, and comes back consistent. At each crash point it writes files and fsyncs
# some of them, then switches the flakey device to `drop_writes` (icectl load + resume: from now on
# writes and flushes "succeed" but reach nothing, like a machine whose power just went), keeps
# writing, fsyncing, overwriting and deleting, unmounts, switches the device back, mounts it (the
# journal or log is replayed) and checks every fsynced file with sha256sum and the filesystem with
# e2fsck -fn / xfs_repair -n.
#
# Usage (as root, with the daemon running):
#   crash-consistency.sh [-f ext4|xfs] [-n CRASH_POINTS] -y DEVICE KEY
# DEVICE is a mapped device whose table is one flakey target that is up, e.g. made with
#   icectl create fl0 --table "0 1572864 flakey hw0 0 3600 0"
# and KEY a key it can carry (the export DEVICE@KEY is what gets the filesystem). -y: agree that
# everything on DEVICE is overwritten. The device's table is put back as it was on every exit.
# Environment: ICE_NBD_SOCKET (default /run/ice/nbd.sock), ICE_SOCKET (the control socket, as for
# icectl), ICECTL (default: icectl on PATH, else ../build/icectl next to this script).
#
# Expected output (ext4, 3 crash points; counts vary):
#   crash-consistency: ext4 on fl0@k1, crash point 1: 14 fsynced files intact, 0 after-crash files survived, e2fsck -f -n clean
#   crash-consistency: ext4 on fl0@k1, crash point 2: 23 fsynced files intact, 0 after-crash files survived, e2fsck -f -n clean
#   crash-consistency: ext4 on fl0@k1, crash point 3: 35 fsynced files intact, 0 after-crash files survived, e2fsck -f -n clean
#   crash-consistency: PASS (3 crash points, 35 fsynced files)
# and exit 0; a lost or damaged fsynced file, a surviving after-crash file or an unclean check
# prints FAIL with the details and exits 1.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ICECTL=${ICECTL:-$(command -v icectl || echo "$HERE/../build/icectl")}
NBD_SOCKET=${ICE_NBD_SOCKET:-/run/ice/nbd.sock}
FS=ext4 POINTS=3 YES=""
while getopts f:n:y o; do
  case $o in
    f) FS=$OPTARG ;;
    n) POINTS=$OPTARG ;;
    y) YES=1 ;;
    *) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -eq 2 ] || { echo "usage: $0 [-f ext4|xfs] [-n N] -y DEVICE KEY" >&2; exit 2; }
DEV_NAME=$1 KEY=$2
[ -n "$YES" ] || { echo "crash-consistency: this overwrites $DEV_NAME; add -y to go on" >&2; exit 2; }
case $FS in ext4) CHECK=(e2fsck -f -n) ;; xfs) CHECK=(xfs_repair -n) ;; *) echo "ext4 or xfs" >&2; exit 2 ;; esac

say() { printf 'crash-consistency: %s\n' "$*"; }
fail() { say "FAIL: $*"; exit 1; }

UP=$("$ICECTL" table "$DEV_NAME") || exit 1
[ "$(printf '%s\n' "$UP" | wc -l)" = 1 ] && [ "$(awk '{print $3}' <<<"$UP")" = flakey ] ||
  fail "$DEV_NAME's table must be one flakey target (it is: $UP)"
# Same target, always down, dropping writes: `START LEN flakey DEV OFF 0 1 1 drop_writes`.
DROP=$(awk '{print $1, $2, "flakey", $4, $5, 0, 1, 1, "drop_writes"}' <<<"$UP")
UP=$(sed 's/[[:space:]]*$//' <<<"$UP")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/crash-consistency.XXXXXX")
MNT=$WORK/mnt
mkdir -p "$MNT"
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  mountpoint -q "$MNT" && umount "$MNT"
  [ -d "$WORK/att" ] && "$HERE/ice-attach" detach "$WORK/att"
  # Leave the device as it was found.
  [ "$("$ICECTL" table "$DEV_NAME" 2>/dev/null | sed 's/[[:space:]]*$//')" = "$UP" ] ||
    { "$ICECTL" load "$DEV_NAME" --table "$UP" && "$ICECTL" resume "$DEV_NAME"; }
  rm -rf --one-file-system "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

switch() { "$ICECTL" load "$DEV_NAME" --table "$1" && "$ICECTL" resume "$DEV_NAME" || fail "cannot switch $DEV_NAME to: $1"; }
# new_file PATH: 1..300 KiB of random data.
new_file() { head -c $(((RANDOM % 300 + 1) * 1024 + RANDOM % 1000)) /dev/urandom >"$1"; }

BLK=$("$HERE/ice-attach" attach --dir "$WORK/att" "nbd+unix:///$DEV_NAME@$KEY?socket=$NBD_SOCKET") || exit 1
if [ "$FS" = ext4 ]; then mkfs.ext4 -q -F "$BLK"; else mkfs.xfs -q -f "$BLK"; fi || fail "mkfs.$FS failed"
mount "$BLK" "$MNT" || fail "mount failed"
: >"$WORK/manifest"
for point in $(seq 1 "$POINTS"); do
  mkdir -p "$MNT/pre$point"
  for i in $(seq 1 $((RANDOM % 12 + 8))); do
    f=pre$point/f$i
    new_file "$MNT/$f"
    if [ $((RANDOM % 2)) = 0 ]; then
      sync "$MNT/$f" "$MNT/pre$point" # fsync of the file and of its folder
      (cd "$MNT" && sha256sum "$f") >>"$WORK/manifest"
    fi
  done

  switch "$DROP" # the power cut

  mkdir "$MNT/post$point"
  for i in $(seq 1 10); do new_file "$MNT/post$point/g$i"; done
  sync "$MNT/post$point"/* "$MNT/post$point"
  # Overwrite and delete fsynced files: after the cut, neither may reach the medium.
  victims=$(awk '{print $2}' "$WORK/manifest" | shuf -n 4 --random-source=<(yes $point))
  n=0
  for v in $victims; do
    n=$((n + 1))
    if [ $((n % 2)) = 1 ]; then echo overwritten >"$MNT/$v" && sync "$MNT/$v"; else rm "$MNT/$v"; fi
  done
  sync -f "$MNT"
  umount "$MNT" || fail "umount after the cut failed"
  blockdev --flushbufs "$BLK"
  switch "$UP"

  mount "$BLK" "$MNT" || fail "crash point $point: mount (recovery) failed"
  if ! bad=$(cd "$MNT" && sha256sum --quiet -c "$WORK/manifest" 2>&1); then
    fail "crash point $point: fsynced files lost or damaged: $bad"
  fi
  survived=$(find "$MNT/post$point" -type f 2>/dev/null | wc -l)
  [ "$survived" = 0 ] || fail "crash point $point: $survived files written after the cut survived"
  umount "$MNT"
  out=$("${CHECK[@]}" "$BLK" 2>&1) || fail "crash point $point: ${CHECK[*]} found problems: $out"
  say "$FS on $DEV_NAME@$KEY, crash point $point: $(wc -l <"$WORK/manifest") fsynced files intact, 0 after-crash files survived, ${CHECK[*]} clean"
  mount "$BLK" "$MNT" || fail "remount failed"
done
say "PASS ($POINTS crash points, $(wc -l <"$WORK/manifest") fsynced files)"
