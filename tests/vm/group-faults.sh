#!/usr/bin/env bash
# Real-kernel group "faults": faults under the kernel's NBD client.
#
#   hw reset   fio writes and verifies (crc32c) through /dev/nbd0 (lin0@k1: a keyed export of a
#              linear device over two controllers, requests of 1-64 KiB at 1 KiB alignment, so
#              also read-modify-write of 4096-byte data units) while both controllers lose their
#              keyslots again and again (`icectl hw reset`): no verify error, no I/O error.
#   flakey     ext4 on fl0@k1 (a flakey device that is up); files written and fsynced; the table
#              is switched (icectl load + resume) to an always-down interval with error_writes:
#              the next writer's fsync fails with EIO; the up table is loaded back; unmount, mount
#              (journal replay) and every file fsynced before the fault is intact; unmount,
#              e2fsck -fn clean.
set -u
. tests/vm/lib.sh

UP_TABLE="0 262144 flakey hw1 262144 3600 0"
DOWN_TABLE="0 262144 flakey hw1 262144 0 1 1 error_writes"
vm_start "$(
  hw_toml hw0 128M 2
  hw_toml hw1 256M 2
  key_toml k1
)

[[device]]
name = \"lin0\"
table = [\"0 131072 linear hw0 0\", \"131072 131072 linear hw1 0\"]

[[device]]
name = \"fl0\"
table = [\"$UP_TABLE\"]
"
MNT=$VM_DIR/mnt
mkdir -p "$MNT"
FILES="python3 tests/vm/files.py"

# "RESETS ERRORS" of hardware $1.
counters() {
  ice --json hw info "$1" | python3 -c '
import json, sys
c = json.load(sys.stdin)["counters"]
print(c["resets"], c["errors"])'
}

# --- icectl hw reset under fio --verify=crc32c on /dev/nbd0 ----------------------------------
scenario_reset() {
  local dev=/dev/nbd0 what="hw reset under fio (lin0@k1 on /dev/nbd0)"
  attach $dev lin0@k1 || { fail "$what: attach" "nbd-client exit $?"; return; }
  local r0 r1
  r0=$(counters hw0)
  r1=$(counters hw1)
  fio --name=reset --filename=$dev --ioengine=libaio --direct=1 --iodepth=8 \
    --rw=randwrite --bsrange=1k-64k --blockalign=1k --size=64M --offset=32M \
    --verify=crc32c --verify_backlog=32 --verify_fatal=1 --time_based --runtime=20 \
    --randseed="${ICE_SEED:-1}" --output-format=json --output="$VM_DIR/fio.json" \
    >"$VM_DIR/fio.err" 2>&1 &
  local fio_pid=$! resets=0
  while kill -0 $fio_pid 2>/dev/null; do
    if ! { ice hw reset hw0 && ice hw reset hw1; }; then fail "$what: icectl hw reset" "failed"; break; fi
    resets=$((resets + 2))
  done
  wait $fio_pid
  local fio_rc=$?
  local res
  res=$(python3 -c '
import json, sys
t = open(sys.argv[1]).read()
j = json.loads(t[t.index("{"):])["jobs"][0]
print(j["error"], j["write"]["total_ios"], j["read"]["total_ios"])' "$VM_DIR/fio.json" 2>&1)
  local err writes reads
  read -r err writes reads <<<"$res"
  if [ $fio_rc = 0 ] && [ "$err" = 0 ] && [ "${reads:-0}" -gt 0 ] && [ $resets -ge 4 ]; then
    pass "$what: $resets resets, fio $writes writes, $reads verified (crc32c), 0 errors"
  else
    fail "$what" "fio exit $fio_rc, error $err, $writes writes, $reads verified, $resets resets: $(tail -n 3 "$VM_DIR/fio.err" | tr '\n' ' ') $res"
  fi
  local hw before after
  for hw in hw0 hw1; do
    [ $hw = hw0 ] && before=$r0 || before=$r1
    after=$(counters $hw)
    if [ "${after% *}" -gt "${before% *}" ] && [ "${after#* }" = "${before#* }" ]; then
      pass "$what: $hw reset $((${after% *} - ${before% *})) times, no hardware errors"
    else
      fail "$what: $hw counters" "resets/errors before: $before, after: $after"
    fi
  done
  detach $dev
}

# --- flakey error_writes under a mounted ext4 ------------------------------------------------
switch() { ice load fl0 --table "$1" && ice resume fl0; }

scenario_flakey() {
  local dev=/dev/nbd1 what="flakey error_writes under ext4 (fl0@k1)"
  : >"$VM_DIR/sums"
  attach $dev fl0@k1 || { fail "$what: attach" "nbd-client exit $?"; return; }
  mkfs.ext4 -q $dev || { fail "$what: mkfs.ext4" "exit $?"; return; }
  mount $dev "$MNT" || { fail "$what: mount" "exit $?"; return; }
  $FILES fill "$MNT" pre 10 "$VM_DIR/sums" --fsync || { fail "$what: write and fsync files" "exit $?"; return; }

  switch "$DOWN_TABLE" || { fail "$what: switch fl0 down" "icectl failed"; return; }
  local got
  got=$($FILES write-fsync "$MNT/after-fault")
  if [ "$got" = EIO ]; then
    pass "$what: a write + fsync after the switch to error_writes fails with EIO"
  else
    fail "$what: fsync after the switch to error_writes" "got '$got', want EIO"
  fi

  switch "$UP_TABLE" || { fail "$what: switch fl0 up" "icectl failed"; return; }
  local table
  table=$(ice table fl0 | awk '{print $1, $2, $3, $4, $5, $6, $7}')
  if [ "$table" = "$UP_TABLE" ]; then pass "$what: table back up"; else fail "$what: table back up" "'$table'"; fi
  umount "$MNT" || { fail "$what: umount after the fault" "exit $?"; return; }
  # The journal aborted on the failed writes, so it may hold committed transactions that only a
  # mount replays (e2fsck -n does not): mount first, as after any crash, then check.
  mount $dev "$MNT" || { fail "$what: mount after the fault" "exit $?"; return; }
  check "$what: every file fsynced before the fault intact" $FILES verify "$MNT" "$VM_DIR/sums"
  umount "$MNT" || { fail "$what: umount after the check" "exit $?"; return; }
  check "$what: unmounted (journal replayed by a mount), e2fsck -fn clean" e2fsck -fn $dev
  detach $dev
}

scenario_reset
scenario_flakey
vm_finish
