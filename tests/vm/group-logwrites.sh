#!/usr/bin/env bash
# Real-kernel group "logwrites" (issue 15 item 4): ice's log-writes and replay-log against the
# kernel's dm-log-writes (6.1) and xfstests' replay-log.
#
# The same writes go to the kernel's log-writes device (dmsetup, over two loop devices) and to
# ice's (the daemon in the guest, attached with the kernel's NBD client): O_DIRECT writes, an
# fsync (a flush), O_DIRECT|O_DSYNC writes (FUA, then a flush), a mark (`dmsetup message` /
# `icectl message`), a discard, more writes, a flush, a last mark, and the device removed (the
# kernel's end mark). Checks:
#   - the two logs are the same bytes, but for the 4 padding bytes of the super block's struct,
#     which the kernel copies from its stack;
#   - ice's replay-log replays the kernel's log to the kernel's data device's bytes, and up to the
#     first mark to the device as it was then; its --find and -v output is xfstests' own;
#   - xfstests' replay-log replays ice's log to ice's data device's bytes. xfstests is not packaged
#     by Debian: the tool is built here from a source tree named by ICE_XFSTESTS_SRC (a checkout
#     of xfstests; `cc src/log-writes/{replay-log,log-writes}.c`). Without it, those checks print
#     SKIP lines and say why.
#
# Runs inside the VM (tests/vm/run.sh): cwd = repository root, ICE_BUILD set (with replay-log).
set -u
. tests/vm/lib.sh
: "${ICE_BUILD:?}"
REPLAY=$ICE_BUILD/replay-log
SECTORS=16384 # 8 MiB data devices; the logs are 16 MiB

vm_start "$(
  printf '\n[[hardware]]\nname = "hw0"\nbacking = "memory"\nsize = "%d"\nkeyslots = 0\n' $((SECTORS * 512))
  printf '\n[[hardware]]\nname = "hwlog"\nbacking = "memory"\nsize = "%d"\nkeyslots = 0\n' $((SECTORS * 1024))
  printf '\n[[device]]\nname = "lw"\ntable = ["0 %d log-writes hw0 hwlog"]\n' $SECTORS
)"
W=$VM_DIR/w
mkdir -p "$W"
KD="" KL=""
cleanup_kernel() {
  dmsetup remove klw >/dev/null 2>&1
  [ -n "$KD" ] && losetup -d "$KD" 2>/dev/null
  [ -n "$KL" ] && losetup -d "$KL" 2>/dev/null
}
trap 'cleanup_kernel; vm_finish' EXIT

modprobe dm-log-writes || { fail "modprobe dm-log-writes" "exit $?"; exit 1; }
truncate -s $((SECTORS * 512)) "$W/kdata.img"
truncate -s $((SECTORS * 1024)) "$W/klog.img"
KD=$(losetup -f --show "$W/kdata.img") && KL=$(losetup -f --show "$W/klog.img") ||
  { fail "losetup" "failed"; exit 1; }
dmsetup create klw --table "0 $SECTORS log-writes $KD $KL" || { fail "dmsetup create" "failed"; exit 1; }
attach /dev/nbd0 lw -b 512 || { fail "attach lw" "nbd-client exit $?"; exit 1; }
for i in 1 2 3 4; do head -c $((i * 16384)) /dev/urandom >"$W/p$i"; done

# The same operations on DEV; MARK NAME marks its log.
ops() {
  local dev=$1 mark=$2
  dd if="$W/p1" of="$dev" bs=4096 seek=10 oflag=direct conv=notrunc status=none &&
    dd if="$W/p2" of="$dev" bs=8192 seek=100 oflag=direct conv=notrunc status=none &&
    dd if=/dev/null of="$dev" conv=fsync,notrunc status=none &&
    dd if="$W/p3" of="$dev" bs=16384 seek=200 oflag=direct,dsync conv=notrunc status=none &&
    $mark m1 &&
    cp "$dev" "$W/at-m1.$3" &&
    blkdiscard -o $((2048 * 512)) -l 65536 "$dev" &&
    dd if="$W/p4" of="$dev" bs=4096 seek=1200 oflag=direct conv=notrunc status=none &&
    dd if="$W/p1" of="$dev" bs=4096 seek=12 oflag=direct conv=notrunc status=none &&
    dd if=/dev/null of="$dev" conv=fsync,notrunc status=none &&
    dd if="$W/p2" of="$dev" bs=4096 seek=1500 oflag=direct conv=notrunc status=none &&
    $mark m2
}
kmark() { dmsetup message klw 0 mark "$1"; }
imark() { ice message lw 0 mark "$1"; }
check "the writes on the kernel's dm-log-writes" ops /dev/mapper/klw kmark k
check "the writes on ice's log-writes (/dev/nbd0)" ops /dev/nbd0 imark i
ice status lw >"$W/istatus"
dmsetup status klw >"$W/kstatus"
check "status: the same entry count and last sector" \
  test "$(awk '{print $4, $5}' "$W/kstatus")" = "$(awk '{print $4, $5}' "$W/istatus")"
detach /dev/nbd0
dmsetup remove klw || fail "dmsetup remove klw" "failed"
ice remove lw || fail "icectl remove lw" "failed"
# The data devices and the logs, as files.
cp "$KD" "$W/kdata" && cp "$KL" "$W/klog" || fail "copy the kernel's devices" "failed"
nbdcopy "nbd+unix:///hw0?socket=$VM_DIR/nbd.sock" "$W/idata" &&
  nbdcopy "nbd+unix:///hwlog?socket=$VM_DIR/nbd.sock" "$W/ilog" || fail "copy ice's devices" "failed"
check "the data devices hold the same bytes" cmp "$W/kdata" "$W/idata"

# Bytes 28..31 of the super block: padding of the kernel's on-stack struct, not initialised.
for f in klog ilog; do
  cp "$W/$f" "$W/$f.masked"
  dd if=/dev/zero of="$W/$f.masked" bs=1 seek=28 count=4 conv=notrunc status=none
done
check "ice's log is the kernel's, byte for byte (the super block's 4 padding bytes aside)" \
  cmp "$W/klog.masked" "$W/ilog.masked"
"$REPLAY" --log "$W/klog" --list >"$W/kentries" 2>&1
log "kernel log: $(head -c 400 "$W/kentries" | tr '\n' ';')"
check "the kernel's log has FLUSH, FUA, DISCARD and MARK entries" \
  sh -c "grep -q 'FLUSH' '$W/kentries' && grep -q '(FUA)' '$W/kentries' &&
         grep -q 'DISCARD' '$W/kentries' && grep -q 'mark dm-log-writes-end' '$W/kentries'"

# ice's replay-log on the kernel's log.
replay_cmp() { # TOOL LOG WANT [ARGS]: replays onto a fresh image of the data devices' size
  local tool=$1 logf=$2 want=$3 out=$W/replayed
  shift 3
  rm -f "$out" && truncate -s $((SECTORS * 512)) "$out" &&
    "$tool" --log "$logf" --replay "$out" "$@" && cmp "$out" "$want"
}
check "ice's replay-log: the kernel's log replays to the kernel's data device" \
  replay_cmp "$REPLAY" "$W/klog" "$W/kdata"
check "ice's replay-log: the kernel's log replayed to mark m1 is the device as it was then" \
  replay_cmp "$REPLAY" "$W/klog" "$W/at-m1.k" --end-mark m1
check "ice's replay-log over NBD: ice's log replays to ice's data device" \
  replay_cmp "$REPLAY" "nbd+unix:///hwlog?socket=$VM_DIR/nbd.sock" "$W/idata"

# xfstests' replay-log, built from its source.
SRC=${ICE_XFSTESTS_SRC:-}
[ -n "$SRC" ] && [ -d "$SRC/src/log-writes" ] && SRC=$SRC/src/log-writes
if [ -z "$SRC" ] || ! [ -f "$SRC/replay-log.c" ]; then
  echo "SKIP logwrites: xfstests' replay-log: ICE_XFSTESTS_SRC does not name an xfstests source" \
    "tree (Debian 12 has no xfstests package, and the tier downloads nothing)"
else
  XR=$W/xfstests-replay-log
  if ! out=$(cc -O2 -o "$XR" "$SRC/replay-log.c" "$SRC/log-writes.c" 2>&1); then
    fail "build xfstests' replay-log from $SRC" "$out"
  else
    check "xfstests' replay-log: ice's log replays to ice's data device" \
      replay_cmp "$XR" "$W/ilog" "$W/idata"
    check "xfstests' replay-log: ice's log replayed to mark m1 is ice's device as it was then" \
      replay_cmp "$XR" "$W/ilog" "$W/at-m1.i" --end-mark m1
    same_output() { # ARGS...: both tools print the same, exit the same
      local a b ra rb
      a=$("$XR" "$@" 2>&1)
      ra=$?
      b=$("$REPLAY" "$@" 2>&1)
      rb=$?
      [ "$a" = "$b" ] && [ $ra = $rb ] || { echo "xfstests ($ra): $a / ice ($rb): $b"; return 1; }
    }
    both_print_the_same() {
      same_output --log "$W/klog" --find --end-mark m1 &&
        same_output --log "$W/klog" --find --next-fua -vv &&
        same_output --log "$W/ilog" --num-entries &&
        same_output --log "$W/ilog" &&
        rm -f "$W/v" && truncate -s $((SECTORS * 512)) "$W/v" &&
        same_output --log "$W/ilog" --replay "$W/v" -vv
    }
    check "both tools print the same: --find --end-mark m1, --next-fua -vv, --num-entries, -vv replay" \
      both_print_the_same
  fi
fi
