#!/usr/bin/env bash
# Real-kernel group "dmsetup" (rule T7): the same table loaded into the kernel's device-mapper
# (kernel 6.1, over loop devices) and into ice (icectl create, over ice hardware devices) prints
# the same `table` and `status` lines, once the kernel's MAJ:MIN device numbers are replaced by the
# ice names they stand for (loop device i <-> hw<i>). Tables the kernel refuses, ice refuses, for
# the same reason. Messages: kernel 6.1's flakey and delay take none, and neither does ice's.
# delay's status counts the I/Os held at that moment on both. Where ice follows a newer kernel
# than 6.1 (flakey's error_reads, random_read_corrupt, random_write_corrupt, "no feature = 2
# error_reads error_writes", mainline's wording of two refusals, and mainline's flakey table line,
# which does not end with the space 6.1's does), the check verifies that the difference is exactly
# that one and says so ("differs by design"); everything else is compared with 6.1 as it is.
#
# Runs inside the VM (tests/vm/run.sh): cwd = repository root, ICE_BUILD set. Uses nbdkit, nbdsh,
# dmsetup, losetup and perl from the host's root. Every program started is a cold exec under TCG
# (dmsetup ~0.3-0.8 s), so the kernel's side is batched: one `dmsetup create --concise` for every
# accepted table, one `dmsetup table` and one `dmsetup status` for all of them.
set -u
: "${ICE_BUILD:?ICE_BUILD is set by tests/vm/run.sh}"

W=$(mktemp -d /tmp/ice-vm-dmsetup.XXXXXX)
chmod 700 "$W"
ICECTL=("$ICE_BUILD/icectl" --socket "$W/ctl.sock")
NHW=3
SECTORS=65536 # 32 MiB: every device, loop and ice hardware alike
failed=0
pass() { echo "PASS dmsetup: $*"; }
fail() {
  echo "FAIL dmsetup: $*"
  failed=1
}
# A line (or lines) with each end marked, so that a trailing space shows in the output.
show() {
  local nl=$'\n'
  printf '%s' "${1//$nl/⏎|}⏎"
}

nbdkit_pid=
cleanup() {
  dmsetup remove_all >/dev/null 2>&1
  [ -n "$nbdkit_pid" ] && kill "$nbdkit_pid" 2>/dev/null && wait "$nbdkit_pid" 2>/dev/null
  for l in "${LOOP[@]}"; do losetup -d "$l" 2>/dev/null; done
  rm -rf "$W"
}
trap cleanup EXIT
# shellcheck source=tests/vm/daemon.sh
. "$(dirname "$0")/daemon.sh"
start=$(date +%s)

# --- the kernel's side: loop devices over sparse files ------------------------------------------
LOOP=() MAJMIN=()
for ((i = 0; i < NHW; i++)); do
  truncate -s $((SECTORS * 512)) "$W/loop$i.img"
  LOOP[i]=$(losetup -f --show "$W/loop$i.img") || {
    fail "losetup $i"
    exit 1
  }
  MAJMIN[i]=$(($(stat -c '0x%t' "${LOOP[i]}"))):$(($(stat -c '0x%T' "${LOOP[i]}")))
done

# --- ice's side: the daemon with plain (memory-backed) hardware of the same size ----------------
{
  printf '[daemon]\ncontrol_socket = "%s"\nlog_level = "warn"\n' "$W/ctl.sock"
  for ((i = 0; i < NHW; i++)); do
    printf '\n[[hardware]]\nname = "hw%d"\nbacking = "memory"\nsize = "%d"\nkeyslots = 0\n' \
      "$i" $((SECTORS * 512))
  done
} >"$W/ice.toml"
start_ice "$W" "$W/ctl.sock" 8
nbdkit_pid=$ICE_PID
if ! [ -S "$W/ctl.sock" ]; then
  fail "daemon start: $(tail -n 5 "$W/nbdkit.log")"
  exit 1
fi

# A template names devices @0, @1, @2 (/dev/loopN for the kernel, hwN for ice) and separates
# table lines with ';'.
kernel_table() {
  local t=$1 i
  for ((i = 0; i < NHW; i++)); do t=${t//@$i/${LOOP[i]}}; done
  printf '%s\n' "${t//;/$'\n'}"
}
ice_table() {
  local t=$1 i
  for ((i = 0; i < NHW; i++)); do t=${t//@$i/hw$i}; done
  printf '%s\n' "${t//;/$'\n'}"
}
# Kernel 6.1 ends a flakey table line with a space (each field printed as "%u "); mainline's
# flakey_status, which ice prints (spec T2, T7), prints " %u" and " <feature>" and ends without
# one. 6.1's lines as mainline prints them: one trailing space off each flakey line, nothing else.
flakey_mainline() {
  local out="" line
  while IFS= read -r line; do
    [[ $line =~ ^[0-9]+\ [0-9]+\ flakey\ .*\ $ ]] && line=${line% }
    out+="${out:+$'\n'}$line"
  done <<<"$1"
  printf '%s' "$out"
}
# The kernel's MAJ:MIN tokens -> ice names (whole tokens only; trailing spaces kept).
normalise() {
  local script="" i
  for ((i = 0; i < NHW; i++)); do script+="s/(?<=\\s)${MAJMIN[i]}(?=\\s|\$)/hw$i/g;"; done
  perl -pe "$script"
}

# --- the cases ------------------------------------------------------------------------------------
# kind: same     both accept; table and status equal.
#       refused  both refuse; ice's message holds ARG (default: the kernel's reason).
#       design6  kernel refuses with kernel 6.1's wording ARG, ice with mainline's wording WHY.
#       newer    6.1 refuses a flakey feature it does not have; ice accepts it and prints the
#                table ARG ("KERNEL REASON|TABLE" when 6.1's reason is not "Unrecognised ...").
#       nofeat   both accept; table differs exactly as ARG says (6.1's "0" vs ice's words).
KIND=() WHAT=() TMPL=() ARG=() WHY=()
add() {
  KIND+=("$1") WHAT+=("$2") TMPL+=("$3") ARG+=("${4:-}") WHY+=("${5:-}")
}
S=$SECTORS H=$((SECTORS / 2))

add same "linear" "0 $S linear @0 0"
add same "linear, two targets at offsets" "0 $H linear @0 2048;$H $H linear @1 8"
add same "striped 2x128" "0 $S striped 2 128 @0 0 @1 0"
add same "striped 3 stripes, chunk 96 (not a power of two), offsets" \
  "0 64512 striped 3 96 @0 64 @1 0 @2 512"
add same "zero" "0 $S zero"
add same "error" "0 $S error"
add same "error with a device (the kernel's table does not print it)" "0 $S error @0 0"
add refused "zero with an argument" "0 $S zero 1" "no arguments required"
add refused "striped length not divisible by the chunk" "0 65000 striped 2 128 @0 0 @1 0" \
  "not divisible by chunk size"
add refused "linear beyond its device" "0 $S linear @0 8" \
  "too small for target: start=8, len=$S, dev_size=$S"

add same "flakey drop_writes" "0 $H flakey @0 8 60 5 1 drop_writes"
add same "flakey error_writes" "0 $S flakey @0 0 60 5 1 error_writes"
add same "flakey corrupt_bio_byte w" "0 $S flakey @0 0 5 5 5 corrupt_bio_byte 32 w 1 0"
add same "flakey corrupt_bio_byte r with flags, error_writes (fixed order)" \
  "0 $S flakey @0 0 3 7 6 corrupt_bio_byte 512 r 255 131072 error_writes"
add same "flakey corrupt_bio_byte r + drop_writes (fixed order)" \
  "0 $S flakey @0 0 0 1 6 corrupt_bio_byte 32 r 1 0 drop_writes"
add same "flakey feature names in capitals" "0 $S flakey @0 0 1 1 1 DROP_WRITES"
add same "flakey, two targets" \
  "0 $H flakey @0 0 60 5 1 drop_writes;$H $H flakey @1 $H 0 9 1 error_writes"
add refused "flakey drop_writes + error_writes" "0 $S flakey @0 0 1 1 2 drop_writes error_writes"
add refused "flakey error_writes + drop_writes" "0 $S flakey @0 0 1 1 2 error_writes drop_writes"
add refused "flakey feature twice" "0 $S flakey @0 0 1 1 2 drop_writes drop_writes"
add refused "flakey unknown feature" "0 $S flakey @0 0 1 1 1 bogus"
add refused "flakey corrupt_bio_byte 0" "0 $S flakey @0 0 1 1 5 corrupt_bio_byte 0 r 1 0"
add refused "flakey corrupt_bio_byte direction x" "0 $S flakey @0 0 1 1 5 corrupt_bio_byte 1 x 1 0"
add refused "flakey corrupt_bio_byte value 256" "0 $S flakey @0 0 1 1 5 corrupt_bio_byte 1 r 256 0"
add refused "flakey feature count beyond the words" "0 $S flakey @0 0 1 1 3 drop_writes"
add refused "flakey zero interval" "0 $S flakey @0 0 0 0"
add refused "flakey beyond its device" "0 $S flakey @0 8 1 1" \
  "too small for target: start=8, len=$S, dev_size=$S"

# Differences by design: spec T2 follows current mainline (notes/real-kernel.md).
add design6 "flakey drop_writes + write corruption" \
  "0 $S flakey @0 0 1 1 6 drop_writes corrupt_bio_byte 1 w 0 0" \
  "flakey: drop_writes is incompatible with corrupt_bio_byte with the WRITE flag set" \
  "flakey: drop_writes is incompatible with random_write_corrupt or corrupt_bio_byte with the WRITE flag set"
add design6 "flakey error_writes + write corruption" \
  "0 $S flakey @0 0 1 1 6 error_writes corrupt_bio_byte 1 w 0 0" \
  "flakey: error_writes is incompatible with corrupt_bio_byte with the WRITE flag set" \
  "flakey: error_writes is incompatible with random_write_corrupt or corrupt_bio_byte with the WRITE flag set"
add design6 "flakey corrupt_bio_byte with 3 parameters" \
  "0 $S flakey @0 0 1 1 4 corrupt_bio_byte 1 r 1" "flakey: Invalid corrupt bio flags mask" \
  "flakey: Feature corrupt_bio_byte requires 4 parameters"
add newer "flakey 8 feature words: drop_writes, corrupt_bio_byte r, random_read_corrupt" \
  "0 $S flakey @0 0 60 5 8 random_read_corrupt 7 corrupt_bio_byte 1 r 0 0 drop_writes" \
  "flakey: Invalid number of feature args|0 $S flakey hw0 0 60 5 8 drop_writes corrupt_bio_byte 1 r 0 0 random_read_corrupt 7" \
  "6.1 takes at most 6 feature words, mainline 11 (its new features)"
add nofeat "flakey with no feature" "0 $S flakey @0 0 60 5" \
  "0 $S flakey hw0 0 60 5 0 |0 $S flakey hw0 0 60 5 2 error_reads error_writes"
add newer "flakey error_reads" "0 $S flakey @0 0 60 5 1 error_reads" \
  "0 $S flakey hw0 0 60 5 1 error_reads" "error_reads is a mainline (6.6+) feature"
add newer "flakey write corruption + error_reads (fixed order)" \
  "0 $S flakey @0 0 60 5 6 corrupt_bio_byte 9 w 7 1 error_reads" \
  "0 $S flakey hw0 0 60 5 6 error_reads corrupt_bio_byte 9 w 7 1" \
  "error_reads is a mainline (6.6+) feature, printed first"
add newer "flakey random_read_corrupt" "0 $S flakey @0 0 60 5 2 random_read_corrupt 100000000" \
  "0 $S flakey hw0 0 60 5 2 random_read_corrupt 100000000" \
  "random_read_corrupt is a mainline (6.6+) feature"
add newer "flakey random_write_corrupt + random_read_corrupt" \
  "0 $S flakey @0 0 60 5 4 random_write_corrupt 5 random_read_corrupt 1000000000" \
  "0 $S flakey hw0 0 60 5 4 random_read_corrupt 1000000000 random_write_corrupt 5" \
  "random_*_corrupt are mainline (6.6+) features, printed read first"

add same "delay, 1 group" "0 $S delay @0 0 100"
add same "delay, 2 groups" "0 $H delay @0 0 50 @1 8 100"
add same "delay, 3 groups" "0 $H delay @0 0 50 @1 8 100 @2 16 0"
add same "delay, 3 groups on one device, two targets" \
  "0 $H delay @0 0 1 @0 0 2 @0 0 3;$H $H delay @1 0 0 @2 $H 7"
add refused "delay with 4 arguments" "0 $S delay @0 0 50 @1"
add refused "delay beyond its write device" "0 $H delay @0 0 50 @1 $((H + 8)) 100" \
  "too small for target: start=$((H + 8)), len=$H, dev_size=$S"

mark() { echo "dmsetup group: $(($(date +%s) - start)) s: $*" >&2; }
mark "set up"

# --- ice: icectl create, table, status, in the background while the kernel's side runs -------------
(
  for i in "${!KIND[@]}"; do
    ice_table "${TMPL[i]}" >"$W/i$i.in"
    if "${ICECTL[@]}" create "i$i" --table-file "$W/i$i.in" 2>"$W/i$i.err"; then
      "${ICECTL[@]}" table "i$i" >"$W/i$i.table" 2>&1
      "${ICECTL[@]}" status "i$i" >"$W/i$i.status" 2>&1
      echo 0 >"$W/i$i.rc"
    else
      echo 1 >"$W/i$i.rc"
    fi
  done
) &
ice_pid=$!

# --- the kernel: every accepted table in one command, then the refusals one by one ---------------
spec=""
for i in "${!KIND[@]}"; do
  case ${KIND[i]} in same | nofeat) ;; *) continue ;; esac
  [ -n "$spec" ] && spec+=";"
  t=$(kernel_table "${TMPL[i]}")
  spec+="k$i,,,,${t//$'\n'/,}"
done
if ! dmsetup create --concise "$spec" 2>"$W/k.err"; then
  fail "kernel: dmsetup create --concise: $(tail -n 2 "$W/k.err" | paste -sd ' ' -)"
fi
dmsetup table 2>&1 | normalise >"$W/k.tables"
dmsetup status 2>&1 | normalise >"$W/k.status"
mark "kernel: accepted tables"
# The kernel gives the reason of a refused table only in its log: one "device-mapper: table:
# MAJ:MIN: reason" line for each refusal, in order.
dmesg -C
refusals=()
for i in "${!KIND[@]}"; do
  case ${KIND[i]} in same | nofeat) continue ;; esac
  kernel_table "${TMPL[i]}" >"$W/k.table"
  if dmsetup create "k$i" <"$W/k.table" 2>/dev/null; then
    KRC[i]=0
  else
    KRC[i]=1
    refusals+=("$i")
  fi
done
mapfile -t reasons < <(dmesg | sed -n 's/.*device-mapper: table: [0-9]*:[0-9]*: //p' |
  sed 's/ (-E[A-Z]*)$//')
if [ ${#reasons[@]} -ne ${#refusals[@]} ]; then
  fail "kernel log: ${#reasons[@]} table errors for ${#refusals[@]} refusals: ${reasons[*]}"
fi
for j in "${!refusals[@]}"; do KREASON[${refusals[j]}]=${reasons[j]:-?}; done

mark "kernel: refusals"
# `dmsetup table` / `status` of every device: "kN: line", a line a target.
KT=() KS=()
while IFS= read -r l; do
  [[ $l =~ ^k([0-9]+):\ (.*)$ ]] || continue
  KT[BASH_REMATCH[1]]+="${KT[BASH_REMATCH[1]]:+$'\n'}${BASH_REMATCH[2]}"
done <"$W/k.tables"
while IFS= read -r l; do
  [[ $l =~ ^k([0-9]+):\ (.*)$ ]] || continue
  KS[BASH_REMATCH[1]]+="${KS[BASH_REMATCH[1]]:+$'\n'}${BASH_REMATCH[2]}"
done <"$W/k.status"

wait $ice_pid
for i in "${!KIND[@]}"; do
  IRC[i]=$(<"$W/i$i.rc")
  if [ "${IRC[i]}" -eq 0 ]; then
    ITABLE[i]=$(<"$W/i$i.table")
    ISTATUS[i]=$(<"$W/i$i.status")
  else
    IREASON[i]=$(<"$W/i$i.err")
  fi
done
mark "ice"
# --- verdicts -----------------------------------------------------------------------------------------
for i in "${!KIND[@]}"; do
  what=${WHAT[i]} arg=${ARG[i]}
  case ${KIND[i]} in
  same | nofeat)
    kt=${KT[i]:-} ks=${KS[i]:-}
    if [ -z "$kt" ]; then
      fail "$what: the kernel did not create it"
    elif [ "${IRC[i]}" -ne 0 ]; then
      fail "$what: ice refused it: ${IREASON[i]}"
    elif [ "$ks" != "${ISTATUS[i]}" ]; then
      fail "$what: status: kernel $(show "$ks"), ice $(show "${ISTATUS[i]}")"
    elif [ "${KIND[i]}" = same ]; then
      km=$(flakey_mainline "$kt")
      if [ "$km" != "${ITABLE[i]}" ]; then
        fail "$what: table: kernel 6.1 $(show "$kt") (as mainline prints it: $(show "$km")), ice $(show "${ITABLE[i]}")"
      elif [ "$km" != "$kt" ]; then
        pass "$what: table $(show "${ITABLE[i]}"), status $(show "$ks"); differs by design from kernel 6.1's $(show "$kt") only by the trailing space mainline's flakey_status does not print"
      else
        pass "$what: table $(show "$kt"), status $(show "$ks")"
      fi
    elif [ "$kt" != "${arg%%|*}" ] || [ "${ITABLE[i]}" != "${arg#*|}" ]; then
      fail "$what: table: kernel $(show "$kt"), ice $(show "${ITABLE[i]}"), expected $(show "${arg%%|*}") and $(show "${arg#*|}")"
    else
      pass "$what: differs by design: kernel 6.1 prints $(show "$kt"), ice $(show "${ITABLE[i]}") (status $(show "$ks") on both): mainline (6.6+) records 'no feature' as error_reads + error_writes, which is what 6.1 does when down with none"
    fi
    ;;
  refused)
    want=${arg:-${KREASON[i]:-}}
    if [ "${KRC[i]}" -eq 0 ] || [ "${IRC[i]}" -eq 0 ]; then
      fail "$what: refused by the kernel: $([ "${KRC[i]}" -ne 0 ] && echo yes || echo no), by ice: $([ "${IRC[i]}" -ne 0 ] && echo yes || echo no)"
    elif [ -z "$want" ] || [[ ${IREASON[i],,} != *"${want,,}"* ]]; then
      fail "$what: kernel's reason '${KREASON[i]}' (wanted '$want') not in ice's '${IREASON[i]}'"
    else
      pass "$what: refused by both: kernel '${KREASON[i]}', ice '${IREASON[i]#icectl: error: }'"
    fi
    ;;
  design6)
    if [ "${KRC[i]}" -eq 0 ] || [ "${IRC[i]}" -eq 0 ]; then
      fail "$what: refused by the kernel: rc ${KRC[i]}, by ice: rc ${IRC[i]}"
    elif [ "${KREASON[i]}" != "$arg" ]; then
      fail "$what: kernel 6.1's reason '${KREASON[i]}', expected '$arg'"
    elif [[ ${IREASON[i]} != *"${WHY[i]}"* ]]; then
      fail "$what: ice's reason '${IREASON[i]}', expected mainline's '${WHY[i]}'"
    else
      pass "$what: refused by both; reason differs by design: kernel 6.1 '${KREASON[i]}', ice mainline's '${WHY[i]}'"
    fi
    ;;
  newer)
    kr="flakey: Unrecognised flakey feature requested"
    [[ $arg == *"|"* ]] && kr=${arg%%|*} arg=${arg#*|}
    if [ "${KRC[i]}" -eq 0 ]; then
      fail "$what: kernel 6.1 accepted it (the documented difference is gone)"
    elif [ "${KREASON[i]}" != "$kr" ]; then
      fail "$what: the kernel refused it for another reason: '${KREASON[i]}', expected '$kr'"
    elif [ "${IRC[i]}" -ne 0 ]; then
      fail "$what: ice refused it: ${IREASON[i]}"
    elif [ "${ITABLE[i]}" != "$arg" ] || [ "${ISTATUS[i]}" != "0 $S flakey " ]; then
      fail "$what: ice table $(show "${ITABLE[i]}") status $(show "${ISTATUS[i]}"), expected $(show "$arg")"
    else
      pass "$what: differs by design: kernel 6.1 refuses it ('$kr'), ice prints $(show "${ITABLE[i]}"): ${WHY[i]}"
    fi
    ;;
  esac
done

mark "verdicts"
# --- messages: kernel 6.1's flakey and delay take none; ice's neither ---------------------------------
for i in "${!KIND[@]}"; do
  case ${WHAT[i]} in "flakey drop_writes" | "delay, 2 groups") ;; *) continue ;; esac
  kout=$(dmsetup message "k$i" 0 foo 2>/dev/null)
  krc=$?
  iout=$("${ICECTL[@]}" message "i$i" 0 foo 2>"$W/i.err")
  irc=$?
  if [ $krc -eq 0 ] || [ $irc -eq 0 ] || [ -n "$kout$iout" ]; then
    fail "${WHAT[i]}: message: kernel rc $krc '$kout', ice rc $irc '$iout'"
  else
    pass "${WHAT[i]}: message 'foo' refused by both, no reply (ice: $(<"$W/i.err"))"
  fi
done

mark "messages"
# --- delay's status counts the I/Os it holds now ------------------------------------------------------
# A read held by a 2-group delay and a write held by a 3-group delay, on both sides, all four at
# once: each status shows its I/O while held, and 0 0 0 once it completed.
HELD_WHAT=("delay, 2 groups: a held read" "delay, 3 groups: a held write")
# 8 s: long enough to be seen by a poll of four status commands on a loaded machine under TCG.
HELD_TMPL=("0 $S delay @0 0 8000 @1 0 0" "0 $S delay @0 0 0 @1 0 8000 @2 0 0")
HELD_WANT=("1 0 0" "0 1 0")
HELD_KCMD=('dd if=/dev/mapper/$0 of=/dev/null bs=4096 count=1 iflag=direct'
  'dd if=/dev/zero of=/dev/mapper/$0 bs=4096 count=1 oflag=direct')
HELD_PY=('h.pread(4096, 0)' 'h.pwrite(bytearray(4096), 0)')
declare -A PID SEEN
for h in 0 1; do
  kernel_table "${HELD_TMPL[h]}" >"$W/k.table"
  ice_table "${HELD_TMPL[h]}" >"$W/i.table"
  dmsetup create "held$h" <"$W/k.table" && "${ICECTL[@]}" create "held$h" --table-file "$W/i.table" ||
    fail "${HELD_WHAT[h]}: create failed"
done
for h in 0 1; do
  bash -c "${HELD_KCMD[h]}" "held$h" >/dev/null 2>&1 &
  PID[k$h]=$!
  nbdsh -u "nbd+unix:///held$h?socket=$W/nbd.sock" -c "${HELD_PY[h]}" >/dev/null 2>&1 &
  PID[i$h]=$!
done
status_of() { if [ "${1:0:1}" = k ]; then dmsetup status "held${1:1}"; else "${ICECTL[@]}" status "held${1:1}"; fi; }
for ((t = 0; t < 600; t++)); do
  left=0
  # Both kernel devices in one (slow) dmsetup call: "heldN: status".
  declare -A NOW=()
  while IFS= read -r l; do NOW[k${l:4:1}]=${l#held?: }; done < <(dmsetup status held0 held1)
  for side in k0 i0 k1 i1; do
    [ -n "${SEEN[$side]:-}" ] && continue
    [ "${side:0:1}" = i ] && NOW[$side]=$(status_of $side)
    if [ "${NOW[$side]}" = "0 $S delay ${HELD_WANT[${side:1}]}" ]; then
      SEEN[$side]=1
    elif kill -0 "${PID[$side]}" 2>/dev/null; then
      left=1 # not seen yet, still running
    fi       # else: completed before it was seen held (the check fails)
  done
  [ $left -eq 0 ] && break
  sleep 0.05
done
for h in 0 1; do
  wait "${PID[k$h]}"
  krc=$?
  wait "${PID[i$h]}"
  irc=$?
  kafter=$(status_of k$h)
  iafter=$(status_of i$h)
  what=${HELD_WHAT[h]} want=${HELD_WANT[h]}
  if [ -z "${SEEN[k$h]:-}" ] || [ -z "${SEEN[i$h]:-}" ]; then
    fail "$what: status '$want' with the I/O held: seen on kernel: ${SEEN[k$h]:-no}, on ice: ${SEEN[i$h]:-no}"
  elif [ $krc -ne 0 ] || [ $irc -ne 0 ]; then
    fail "$what: the held I/O failed: kernel rc $krc, ice rc $irc"
  elif [ "$kafter" != "$iafter" ] || [ "$iafter" != "0 $S delay 0 0 0" ]; then
    fail "$what: status after: kernel $(show "$kafter"), ice $(show "$iafter")"
  else
    pass "$what: status '$want' while held, '0 0 0' after, on both"
  fi
done

mark "held I/O"
# --- flakey in its down interval: what reads and writes do -------------------------------------------
# Each case: 8 sectors of flakey (up 0, down 1: always down) over its own 4 KiB of @2, which holds
# pattern A; one O_DIRECT write of pattern B through flakey, one read through flakey, one read of
# the medium below. Outcomes: EIO, or the data as A / B, with "*" when byte 32 reads as 1 (the
# corrupt_bio_byte 32 <dir> 1 <flags> of the cases). Expected: kernel 6.1's result (as 6.1.192
# behaves: stable has mainline's rework of the down interval, but its reads come back without the
# corruption asked for) and mainline's, which ice follows (spec T2); where they differ the check
# says so.
FL_WHAT=() FL_FEAT=() FL_61=() FL_MAIN=()
fl() { FL_WHAT+=("$1") FL_FEAT+=("$2") FL_61+=("$3") FL_MAIN+=("${4:-$3}"); }
fl "no feature" "" "EIO EIO A"
fl "drop_writes" "1 drop_writes" "ok A A"
fl "error_writes" "1 error_writes" "EIO A A"
fl "corrupt_bio_byte r + drop_writes" "6 drop_writes corrupt_bio_byte 32 r 1 0" "ok A A" "ok A* A"
fl "corrupt_bio_byte r + error_writes" "6 error_writes corrupt_bio_byte 32 r 1 0" "EIO A A" \
  "EIO A* A"
fl "corrupt_bio_byte r" "5 corrupt_bio_byte 32 r 1 0" "ok B B" "ok B* B"
fl "corrupt_bio_byte w" "5 corrupt_bio_byte 32 w 1 0" "ok B* B*"
fl "corrupt_bio_byte r, flags FUA (no read has it)" "5 corrupt_bio_byte 32 r 1 131072" "ok B B"
FL_BASE=40000
spec=""
for c in "${!FL_WHAT[@]}"; do
  off=$((FL_BASE + c * 8))
  [ -n "$spec" ] && spec+=";"
  spec+="fk$c,,,,$(kernel_table "0 8 flakey @2 $off 0 1 ${FL_FEAT[c]}")"
  ice_table "0 8 flakey @2 $off 0 1 ${FL_FEAT[c]}" >"$W/fi$c.table"
  "${ICECTL[@]}" create "fi$c" --table-file "$W/fi$c.table" ||
    fail "flakey down, ${FL_WHAT[c]}: ice refused the table"
done
dmsetup create --concise "$spec" || fail "flakey down: the kernel refused a table"
cat >"$W/flakey_io.py" <<'PY'
import mmap, os, sys
import nbd

loop, sock, base, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
A = bytes([0xA5]) * 4096
B = bytes([0x5B]) * 4096


def classify(data):
    for name, pat in (("A", A), ("B", B)):
        if data == pat:
            return name
        if data[:31] + data[32:] == pat[:31] + pat[32:] and data[31] == 1:
            return name + "*"
    return "other"


class Kernel:
    """O_DIRECT I/O on a block device, page-aligned buffer."""
    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_DIRECT)
        self.buf = mmap.mmap(-1, 4096)

    def pwrite(self, data, off):
        self.buf[:] = data
        os.pwritev(self.fd, [self.buf], off)

    def pread(self, off):
        os.preadv(self.fd, [self.buf], off)
        return bytes(self.buf)


class Ice:
    def __init__(self, export):
        self.h = nbd.NBD()
        self.h.set_export_name(export)
        self.h.connect_unix(sock)

    def pwrite(self, data, off):
        self.h.pwrite(data, off)

    def pread(self, off):
        return self.h.pread(4096, off)


def attempt(f):
    try:
        r = f()
        return "ok" if r is None else classify(r)
    except (OSError, nbd.Error):
        return "EIO"


for side in ("kernel", "ice"):
    medium = Kernel(loop) if side == "kernel" else Ice("hw2")
    for c in range(count):
        off = (base + c * 8) * 512
        medium.pwrite(A, off)
        dev = Kernel("/dev/mapper/fk%d" % c) if side == "kernel" else Ice("fi%d" % c)
        w = attempt(lambda: dev.pwrite(B, 0))
        r = attempt(lambda: dev.pread(0))
        m = attempt(lambda: medium.pread(off))
        print(side, c, w, r, m, flush=True)
PY
python3 "$W/flakey_io.py" "${LOOP[2]}" "$W/nbd.sock" $FL_BASE ${#FL_WHAT[@]} >"$W/flakey_io.out" \
  2>"$W/flakey_io.err" || fail "flakey down: the I/O script failed: $(tail -n 3 "$W/flakey_io.err")"
declare -A FL_GOT=()
while read -r side c w r m; do FL_GOT[$side$c]="$w $r $m"; done <"$W/flakey_io.out"
for c in "${!FL_WHAT[@]}"; do
  what="flakey down, ${FL_WHAT[c]} (write, read, medium)"
  k=${FL_GOT[kernel$c]:-none} i=${FL_GOT[ice$c]:-none}
  if [ "$k" != "${FL_61[c]}" ]; then
    fail "$what: kernel 6.1 gave '$k', expected '${FL_61[c]}'"
  elif [ "$i" != "${FL_MAIN[c]}" ]; then
    fail "$what: ice gave '$i', mainline gives '${FL_MAIN[c]}' (kernel 6.1: '$k')"
  elif [ "$k" = "$i" ]; then
    pass "$what: '$k' on both"
  else
    pass "$what: differs by design: kernel 6.1 '$k', ice '$i' as mainline: 6.1 returns the read intact, mainline's flakey_end_io corrupts byte N of a successful matching read in the down interval (spec T2)"
  fi
done

mark "flakey down"
# --- info and ls (rule T7: dmsetup's layouts) --------------------------------------------------------
# Same names on both sides: a live device, one with only an inactive table, a suspended one. ice's
# info is dmsetup's block plus its own "Size:" and "Crypto capabilities:" lines (DESIGN.md); the
# device numbers differ.
INFO_NAMES=(info-live info-inactive info-suspended)
dmsetup create --concise "info-live,,,,$(kernel_table "0 $S linear @0 0");info-suspended,,,,$(kernel_table "0 $H zero")" &&
  dmsetup create info-inactive --notable && dmsetup load info-inactive --table "0 100 zero" &&
  dmsetup suspend info-suspended || fail "info: kernel set-up failed"
"${ICECTL[@]}" create info-live --table "$(ice_table "0 $S linear @0 0")" &&
  "${ICECTL[@]}" create info-suspended --table "0 $H zero" &&
  "${ICECTL[@]}" create info-inactive && "${ICECTL[@]}" load info-inactive --table "0 100 zero" &&
  "${ICECTL[@]}" suspend info-suspended || fail "info: ice set-up failed"
kinfo=$(dmsetup info "${INFO_NAMES[@]}")
iinfo=""
for name in "${INFO_NAMES[@]}"; do iinfo+=$("${ICECTL[@]}" info "$name")$'\n\n'; done
# Drop ice's own lines and both sides' device numbers.
strip_info() {
  local out="" l
  while IFS= read -r l; do
    case $l in "Size: "* | "Crypto capabilities: "*) continue ;; "Major, minor: "*) l="Major, minor:      N, N" ;; esac
    out+="$l"$'\n'
  done <<<"$1"
  printf '%s' "$out"
}
ks=$(strip_info "$kinfo")
is=$(strip_info "$iinfo")
extra=$(grep -c '^Size: \|^Crypto capabilities: ' <<<"$iinfo")
if [ "$ks" != "$is" ]; then
  fail "info: kernel $(show "$ks") ice $(show "$is")"
elif [ "$extra" -ne 6 ]; then
  fail "info: ice's Size/Crypto capabilities lines: $extra, expected 2 a device"
else
  pass "info: dmsetup's layout line for line (LIVE, INACTIVE, SUSPENDED), device numbers aside, plus ice's Size and Crypto capabilities lines"
fi
kls=$(dmsetup ls | grep '^info-')
ils=$("${ICECTL[@]}" ls | grep '^info-')
re=$'^info-[a-z]+\t\\([0-9]+:[0-9]+\\)$'
bad=0
while IFS= read -r l; do [[ $l =~ $re ]] || bad=1; done <<<"$kls"$'\n'"$ils"
if [ $bad -ne 0 ] || [ "$(cut -f1 <<<"$kls")" != "$(cut -f1 <<<"$ils")" ]; then
  fail "ls: kernel $(show "$kls") ice $(show "$ils")"
else
  pass "ls: 'name<TAB>(major:minor)' a device on both, same names in the same order"
fi

echo "dmsetup group: $(($(date +%s) - start)) s in the guest" >&2
exit $failed
