#!/usr/bin/env bash
# Real-kernel group "attach": the kernel's NBD client (nbd-client 3.24) on ice exports, with real
# filesystems on them.
#
#   lin0@k1  a keyed export of a linear device over two controllers, each with fewer keyslots than
#            the keys in use (k2 and k3 are kept busy on other exports by fio meanwhile):
#            ext4 made at nbd-client's default block size (512-byte requests: the read-modify-write
#            of 4096-byte data units, rule N3), checked, then attached again with -C 2 (two
#            connections, multi-conn flush, N4), more files written, checked, verified; without
#            the key (export lin0) blkid finds no filesystem: the medium holds ciphertext.
#   dk0      a default-key device (every I/O encrypted with the table's key): xfs made at -b 4096,
#            checked, attached again and verified.
# Every filesystem: files with kept checksums, unmount, e2fsck -fn / xfs_repair -n clean, mount
# again (after a fresh attach) and every checksum verified.
set -u
. tests/vm/lib.sh

vm_start "$(
  hw_toml hw0 320M 1
  hw_toml hw1 768M 2
  for k in k1 k2 k3 dk; do key_toml "$k"; done
)"'

# 256 MiB of hw0 then 64 MiB of hw1: the filesystem crosses from one controller to the other.
[[device]]
name = "lin0"
table = ["0 524288 linear hw0 0", "524288 131072 linear hw1 0"]

# Where the busy keys work: the rest of hw0, and 64 MiB of hw1.
[[device]]
name = "busy0"
table = ["0 131072 linear hw0 524288"]
[[device]]
name = "busy1"
table = ["0 131072 linear hw1 131072"]

# 512 MiB of hw1 (xfs wants 300 MB), encrypted by the table in 4096-byte sectors.
[[device]]
name = "dk0"
table = ["0 1048576 default-key aes-xts-plain64 :64:logon:dk 0 hw1 262144 2 sector_size:4096 iv_large_sectors"]
'
MNT=$VM_DIR/mnt
mkdir -p "$MNT"
FILES="python3 tests/vm/files.py"
fill() { $FILES fill "$1" "$2" "$3" "$VM_DIR/sums"; }
verify() { $FILES verify "$1" "$VM_DIR/sums"; }
fsck_clean() {
  case $1 in
    ext4) e2fsck -fn "$2" ;;
    xfs) xfs_repair -n "$2" ;;
  esac
}
lbs() { cat "/sys/block/${1#/dev/}/queue/logical_block_size"; }

# --- keep k2 and k3 busy on other exports, so that k1 competes for keyslots -------------------
NBD=$VM_DIR/nbd.sock
fio --ioengine=nbd --rw=randrw --bs=4k --iodepth=1 --rate_iops=20 --time_based --runtime=3600 \
  --size=32M --name=k2-hw0 --uri="nbd+unix:///busy0@k2?socket=$NBD" \
  --name=k2-hw1 --uri="nbd+unix:///busy1@k2?socket=$NBD" \
  --name=k3-hw1 --uri="nbd+unix:///busy1@k3?socket=$NBD" --offset=32M \
  --output="$VM_DIR/fio-busy.out" >/dev/null 2>&1 &
BUSY_PID=$!

# --- lin0@k1: ext4 at the default block size, then with two connections ----------------------
scenario_lin0() {
  local dev=/dev/nbd0 what="lin0@k1 (linear over hw0+hw1, 1+2 keyslots, k2/k3 busy)"
  : >"$VM_DIR/sums"
  attach $dev lin0@k1 || { fail "$what: attach" "nbd-client exit $?"; return; }
  local bs
  bs=$(lbs $dev)
  log "lin0@k1 attached, block size $bs"
  mkfs.ext4 -q $dev || { fail "$what: mkfs.ext4 at block size $bs" "exit $?"; return; }
  mount $dev "$MNT" || { fail "$what: mount ext4" "exit $?"; return; }
  fill "$MNT" a 20
  umount "$MNT" || { fail "$what: umount" "exit $?"; return; }
  check "$what: ext4 made and filled at nbd-client's default block size ($bs), e2fsck -fn clean" \
    fsck_clean ext4 $dev
  detach $dev || { fail "$what: detach" "still connected"; return; }

  attach $dev lin0@k1 -C 2 || { fail "$what: attach -C 2" "nbd-client exit $?"; return; }
  log "lin0@k1 attached with -C 2"
  mount $dev "$MNT" || { fail "$what: mount ext4 (-C 2)" "exit $?"; return; }
  check "$what: ext4 files intact after detach and attach with -C 2" verify "$MNT"
  fill "$MNT" b 20
  umount "$MNT" || { fail "$what: umount (-C 2)" "exit $?"; return; }
  check "$what: ext4 written over 2 connections (-C 2), e2fsck -fn clean" fsck_clean ext4 $dev
  detach $dev || { fail "$what: detach (-C 2)" "still connected"; return; }
  attach $dev lin0@k1 || { fail "$what: attach again" "nbd-client exit $?"; return; }
  mount $dev "$MNT" || { fail "$what: mount ext4 again" "exit $?"; return; }
  check "$what: every ext4 file written over 1 and 2 connections verified after a fresh attach" \
    verify "$MNT"
  umount "$MNT"
  # Without the key the same blocks are ciphertext: no filesystem signature anywhere blkid looks.
  if attach /dev/nbd2 lin0; then
    local keyed raw
    keyed=$(blkid -p -o value -s TYPE $dev)
    raw=$(blkid -p -o value -s TYPE /dev/nbd2)
    if [ "$keyed" = ext4 ] && [ -z "$raw" ]; then
      pass "$what: blkid sees ext4 through lin0@k1 and nothing through lin0 (ciphertext)"
    else
      fail "$what: ciphertext below the key" "blkid: '$keyed' with the key, '$raw' without"
    fi
    detach /dev/nbd2
  else
    fail "$what: attach lin0 without a key" "nbd-client exit $?"
  fi
  detach $dev
}

# --- dk0: xfs at -b 4096, then ext4 at the default block size --------------------------------
scenario_dk0() {
  local dev=/dev/nbd1 what="dk0 (default-key over hw1)"
  : >"$VM_DIR/sums"
  attach $dev dk0 -b 4096 || { fail "$what: attach -b 4096" "nbd-client exit $?"; return; }
  log "dk0 attached, block size $(lbs $dev)"
  mkfs.xfs -q -f $dev || { fail "$what: mkfs.xfs at -b 4096" "exit $?"; return; }
  mount $dev "$MNT" || { fail "$what: mount xfs" "exit $?"; return; }
  fill "$MNT" x 20
  umount "$MNT" || { fail "$what: umount xfs" "exit $?"; return; }
  check "$what: xfs made and filled at -b 4096 ($(lbs $dev)), xfs_repair -n clean" fsck_clean xfs $dev
  detach $dev || { fail "$what: detach" "still connected"; return; }
  attach $dev dk0 -b 4096 || { fail "$what: attach -b 4096 again" "nbd-client exit $?"; return; }
  mount $dev "$MNT" || { fail "$what: mount xfs again" "exit $?"; return; }
  check "$what: every xfs file verified after a fresh attach" verify "$MNT"
  umount "$MNT"
  detach $dev
}

scenario_lin0
scenario_dk0

# --- the keyslots were really fought over, and nothing failed ---------------------------------
kill "$BUSY_PID" 2>/dev/null
wait "$BUSY_PID" 2>/dev/null
# "PROGRAMS WAITS ERRORS" of hardware $1.
counters() {
  ice --json hw info "$1" | python3 -c '
import json, sys
c = json.load(sys.stdin)["counters"]
print(c["slot_programs"], c["slot_waits"], c["errors"])'
}
# hw0 serves 2 keys with 1 keyslot, hw1 3 keys (4 with dk) with 2: more programs than keys means
# slots were taken from one key and given to another while the filesystems ran.
for hw in hw0:2 hw1:4; do
  read -r pr wt er <<<"$(counters "${hw%:*}")"
  if [ "${pr:-0}" -gt "${hw#*:}" ] && [ "$er" = 0 ]; then
    pass "${hw%:*}: keys took keyslots from each other ($pr programs, $wt waits), 0 errors"
  else
    fail "${hw%:*}: keyslot contention without errors" "programs $pr, waits $wt, errors $er"
  fi
done
if [ "$(grep -c 'err= 0' "$VM_DIR/fio-busy.out")" = 3 ]; then
  pass "k2, k3 busy on busy0, busy1 meanwhile (fio over NBD): no errors"
else
  fail "k2, k3 busy on busy0, busy1 meanwhile" "$(grep -m1 'err=' "$VM_DIR/fio-busy.out")"
fi
vm_finish
