#!/usr/bin/env bash
# hw-reset-under-fio.sh: inline-encryption controllers losing their keyslots under load.
#
# What it shows: when a controller is reset (all its keyslots forgotten, as after a host
# controller reset in the kernel), the keyslot manager reprograms every key before any crypto
# I/O touches the controller again, so I/O in flight carries on with no error and no wrong data.
# fio writes to an encrypted export and verifies every block it wrote (crc32c, as it goes) while
# the controllers under the export are reset again and again with `icectl hw reset`.
#
# Usage (with the daemon running; fio talks NBD itself, no root needed):
#   hw-reset-under-fio.sh [-t SECONDS] [-i RESET_INTERVAL_MS] -y EXPORT HW [HW...]
# e.g.  hw-reset-under-fio.sh -t 30 -y lin0@demo hw0 hw1
# -t: how long fio runs (default 20); -i: pause between resets (default 20 ms); -y: agree that
# EXPORT is overwritten. Environment: ICE_NBD_SOCKET (default /run/ice/nbd.sock), ICE_SOCKET,
# ICECTL (as icectl).
#
# Expected output (numbers vary):
#   hw-reset-under-fio: fio on lin0@demo for 20s while resetting hw0 hw1
#   hw-reset-under-fio: 613 resets; fio: 51234 writes, 51170 reads verified, 0 errors
#   hw-reset-under-fio: hw0: +301 resets, +1290 programs, 0 errors
#   hw-reset-under-fio: hw1: +312 resets, +1322 programs, 0 errors
#   hw-reset-under-fio: PASS
# Exit 0 on PASS; FAIL with fio's error and exit 1 otherwise.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ICECTL=${ICECTL:-$(command -v icectl || echo "$HERE/../build/icectl")}
NBD_SOCKET=${ICE_NBD_SOCKET:-/run/ice/nbd.sock}
SECS=20 INTERVAL=20 YES=""
while getopts t:i:y o; do
  case $o in
    t) SECS=$OPTARG ;;
    i) INTERVAL=$OPTARG ;;
    y) YES=1 ;;
    *) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 2 ] || { echo "usage: $0 [-t S] [-i MS] -y EXPORT HW..." >&2; exit 2; }
[ -n "$YES" ] || { echo "hw-reset-under-fio: this overwrites $1; add -y to go on" >&2; exit 2; }
EXPORT=$1
shift
HWS=("$@")
say() { printf 'hw-reset-under-fio: %s\n' "$*"; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/hw-reset-under-fio.XXXXXX")
FIO_PID=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "$FIO_PID" ] && kill "$FIO_PID" 2>/dev/null && wait "$FIO_PID" 2>/dev/null
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# counters HW: "RESETS PROGRAMS ERRORS".
counters() {
  "$ICECTL" --json hw info "$1" | /usr/bin/python3 -c '
import json, sys
c = json.load(sys.stdin)["counters"]
print(c["resets"], c["slot_programs"], c.get("errors", 0))'
}
declare -A BEFORE
for hw in "${HWS[@]}"; do BEFORE[$hw]=$(counters "$hw") || exit 1; done

say "fio on $EXPORT for ${SECS}s while resetting ${HWS[*]}"
fio --name=reset-under-fio --ioengine=nbd --uri="nbd+unix:///$EXPORT?socket=$NBD_SOCKET" \
  --rw=randwrite --bsrange=4k-64k --blockalign=4k --iodepth=8 --size=128M \
  --verify=crc32c --verify_backlog=64 --verify_fatal=1 --verify_state_save=0 --time_based --runtime="$SECS" \
  --output-format=json --output="$WORK/fio.json" >"$WORK/fio.err" 2>&1 &
FIO_PID=$!
resets=0
while kill -0 "$FIO_PID" 2>/dev/null; do
  for hw in "${HWS[@]}"; do
    kill -0 "$FIO_PID" 2>/dev/null || break
    "$ICECTL" hw reset "$hw" || { say "FAIL: icectl hw reset $hw"; exit 1; }
    resets=$((resets + 1))
    sleep "$(awk -v ms="$INTERVAL" 'BEGIN { print ms / 1000 }')"
  done
done
wait "$FIO_PID"
fio_rc=$?
FIO_PID=""
read -r writes reads errs < <(/usr/bin/python3 -c '
import json, sys
t = open(sys.argv[1]).read()
j = json.loads(t[t.index("{"):])["jobs"][0]
print(j["write"]["total_ios"], j["read"]["total_ios"], j["error"])' "$WORK/fio.json" 2>/dev/null) ||
  { writes=0 reads=0 errs=unknown; }
say "$resets resets; fio: $writes writes, $reads reads verified, $errs errors"
ok=1
[ "$fio_rc" = 0 ] && [ "$errs" = 0 ] && [ "$reads" -gt 0 ] || { ok=0; say "FAIL: fio exit $fio_rc: $(tail -5 "$WORK/fio.err")"; }
for hw in "${HWS[@]}"; do
  read -r r0 p0 e0 <<<"${BEFORE[$hw]}"
  read -r r1 p1 e1 <<<"$(counters "$hw")"
  say "$hw: +$((r1 - r0)) resets, +$((p1 - p0)) programs, $((e1 - e0)) errors"
  [ $((e1 - e0)) = 0 ] || ok=0
done
[ $ok = 1 ] || exit 1
say PASS
