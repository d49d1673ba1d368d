#!/usr/bin/env bash
# crash-points.sh: every crash point of a workload checked, the xfstests way (dm-log-writes +
# replay-log, as generic/482 does), on an encrypted ice device.
#
# What it shows: a filesystem on inline encryption is consistent at *every* moment a crash could
# leave it in, and keeps every file it acknowledged with fsync. The filesystem is made and used on
# DEVICE@KEY, where DEVICE is a `log-writes` device: every write that reaches the device is logged
# (ciphertext, as the kernel's dm-log-writes logs below keyed I/O) with its flush and FUA flags.
# After the workload, the device is rebuilt from the log at each flush or FUA entry (or every Nth
# of them) with replay-log, copied raw onto SCRATCH, mounted through SCRATCH@KEY (the journal or
# log is recovered), every file fsynced before that point is checked with sha256sum, and the
# filesystem with e2fsck -f -n / xfs_repair -n. The first bad point stops the run and is kept.
#
# Usage (as root):
#   crash-points.sh [OPTIONS] --self-contained [-f ext4|xfs]
#       starts its own daemon on a temporary config (memory-backed controllers, a generated key,
#       a log-writes device) and stops it at the end: needs nothing set up.
#   crash-points.sh [OPTIONS] -y DEVICE KEY SCRATCH
#       uses a running daemon: DEVICE is a mapped device whose table is one `log-writes <dev>
#       <logdev>` target, KEY a key DEVICE@KEY and SCRATCH@KEY can carry, SCRATCH a device at
#       least as large as DEVICE. -y: agree that <dev>, <logdev> and SCRATCH are overwritten
#       (DEVICE's table is loaded again, which starts a new log).
# Options:
#   -f ext4|xfs        the filesystem (default ext4; xfs needs 300 MB or more)
#   --every N          check every Nth crash point, and the last (default 1: all of them)
#   --sample N         check N crash points spread evenly from the first to the last (all of
#                      them when there are fewer)
#   --points all|flush|fua
#                      which entries are crash points (default all: flush or FUA)
#   --ops N            operations of the built-in workload (default 300)
#   --workload CMD     run `sh -c CMD` in the mounted filesystem instead of the built-in one;
#                      CMD runs "$CP_FSYNCED" FILE... to fsync files (and their folders) and
#                      have them checked at every later crash point (CP_MNT: the mount point)
#   --seed N           the built-in workload's seed (default: from the clock; printed)
#   --size SIZE        --self-contained: the device's size (default 320M)
#   --keep DIR         where the first bad crash point is kept (default: a new folder under
#                      ${TMPDIR:-/tmp})
#   --no-progress      no progress bar
# The built-in workload is fsstress-like churn: files created, appended to, overwritten in place,
# truncated, renamed and deleted in a few folders, folders made, syncfs now and then; about a
# third of the new files are fsynced (file and folder) and are never touched again.
# Environment: ICE_NBD_SOCKET (default /run/ice/nbd.sock), ICE_SOCKET (the control socket, as for
# icectl), ICECTL, REPLAY_LOG (default: replay-log on PATH, else ../build/replay-log next to this
# script; xfstests' replay-log works too), ICE_BUILD (--self-contained: where
# nbdkit-ice-plugin.so is, default ../build).
#
# Expected output (numbers vary):
#   crash-points: xfs on lw@k (log on hwlog), seed 4242: 310 operations, 62 files fsynced
#   crash-points: 3114 log entries, 201 crash points after mkfs, checking 51 (every 4th)
#   crash-points: crash_points=51 fsck_clean=51 fsynced_files_verified=1622
#   crash-points: PASS
# and exit 0. A failed mount, a lost or damaged fsynced file or an unclean check prints
#   crash-points: FAIL at entry 1234 (crash point 17): ...
#   crash-points: kept in DIR: replay.img (the device at that point, as ciphertext), log.img, ...
# the summary line, and exits 1. Usage and set-up errors exit 2.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ICECTL=${ICECTL:-$(command -v icectl || echo "$HERE/../build/icectl")}
REPLAY_LOG=${REPLAY_LOG:-$(command -v replay-log || echo "$HERE/../build/replay-log")}
NBD_SOCKET=${ICE_NBD_SOCKET:-/run/ice/nbd.sock}

say() { printf 'crash-points: %s\n' "$*"; }
die() { printf 'crash-points: %s\n' "$*" >&2; exit 2; }
usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

# ---- "$CP_FSYNCED" FILE...: fsync and register files (for the built-in and user workloads) ----
# A file is registered with the log position right after its fsync returned: a mark entry
# "cp-fsync-N" (marks are logged at once), so every crash point after that mark must have it.
fsynced() {
  local f rel sum n
  for f in "$@"; do
    case $f in /*) ;; *) f=$PWD/$f ;; esac
    rel=${f#"$CP_MNT"/}
    [ "$rel" != "$f" ] && [ -f "$f" ] || { echo "crash-points: $f: not a file under $CP_MNT" >&2; return 1; }
    sync "$f" "$(dirname "$f")" || return 1
    sum=$(sha256sum <"$f" | awk '{print $1}') || return 1
    (
      flock 9
      n=$(($(wc -l <"$CP_MANIFEST") + 1))
      "$ICECTL" message "$CP_DEVICE" 0 mark "cp-fsync-$n" || exit 1
      printf '%s %s %s\n' "$n" "$sum" "$rel" >>"$CP_MANIFEST"
    ) 9>>"$CP_MANIFEST.lock" || return 1
  done
}
if [ "${1:-}" = __fsynced ]; then
  shift
  fsynced "$@"
  exit $?
fi

FS=ext4 EVERY=1 SAMPLE="" POINTS=all OPS=300 WORKLOAD="" SEED="" SIZE=320M KEEP="" PROGRESS=1 SELF="" YES=""
ARGS=()
while [ $# -gt 0 ]; do
  case $1 in
    -f) FS=$2; shift ;;
    --every) EVERY=$2; shift ;;
    --sample) SAMPLE=$2; shift ;;
    --points) POINTS=$2; shift ;;
    --ops) OPS=$2; shift ;;
    --workload) WORKLOAD=$2; shift ;;
    --seed) SEED=$2; shift ;;
    --size) SIZE=$2; shift ;;
    --keep) KEEP=$2; shift ;;
    --no-progress) PROGRESS="" ;;
    --self-contained) SELF=1 ;;
    -y) YES=1 ;;
    -h | --help) usage ;;
    -*) echo "crash-points: unknown option $1" >&2; usage ;;
    *) ARGS+=("$1") ;;
  esac
  shift
done
case $FS in
  ext4) MKFS=(mkfs.ext4 -q -F) CHECK=(e2fsck -f -n) ;;
  xfs) MKFS=(mkfs.xfs -q -f) CHECK=(xfs_repair -n) ;;
  *) die "-f: ext4 or xfs" ;;
esac
case $POINTS in all | flush | fua) ;; *) die "--points: all, flush or fua" ;; esac
[[ $EVERY =~ ^[1-9][0-9]*$ ]] || die "--every: a positive number"
[ -z "$SAMPLE" ] || [[ $SAMPLE =~ ^[1-9][0-9]*$ ]] || die "--sample: a positive number"
[[ $OPS =~ ^[0-9]+$ ]] || die "--ops: a number"
[ -n "$SEED" ] || SEED=$(($(date +%s%N) / 1000 % 100000))
[ "$(id -u)" = 0 ] || die "needs root (loop devices, mounts)"
for tool in "$ICECTL" "$REPLAY_LOG"; do [ -x "$tool" ] || die "$tool: not found (build first)"; done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/crash-points.XXXXXX") || die "mktemp failed"
chmod 700 "$WORK"
MNT=$WORK/mnt CMNT=$WORK/check
mkdir -p "$MNT" "$CMNT"
DAEMON_PID=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for m in "$CMNT" "$MNT"; do mountpoint -q "$m" && { umount "$m" 2>/dev/null || umount -l "$m"; }; done
  for a in "$WORK/att" "$WORK/satt"; do [ -d "$a" ] && "$HERE/ice-attach" detach "$a" >/dev/null; done
  if [ -n "$DAEMON_PID" ]; then
    kill "$DAEMON_PID" 2>/dev/null
    wait "$DAEMON_PID" 2>/dev/null
  fi
  rm -rf --one-file-system "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- the devices -------------------------------------------------------------------------------
if [ -n "$SELF" ]; then
  [ ${#ARGS[@]} -eq 0 ] || die "--self-contained takes no DEVICE KEY SCRATCH"
  BUILD=${ICE_BUILD:-$HERE/../build}
  [ -f "$BUILD/nbdkit-ice-plugin.so" ] || die "$BUILD/nbdkit-ice-plugin.so: not found (build first)"
  command -v nbdkit >/dev/null || die "nbdkit: not installed"
  bytes=$(numfmt --from=iec "$SIZE") || die "--size: a size such as 320M"
  bytes=$((bytes / 4096 * 4096))
  DEVICE=lw KEY=k SCRATCH=scratch
  NBD_SOCKET=$WORK/nbd.sock
  export ICE_SOCKET=$WORK/control.sock
  (umask 077 && head -c 64 /dev/urandom >"$WORK/k.key")
  hw() { # NAME SIZE [crypto]
    printf '\n[[hardware]]\nname = "%s"\nbacking = "memory"\nsize = "%s"\n' "$1" "$2"
    if [ -n "${3:-}" ]; then
      printf 'keyslots = 4\n  [[hardware.capability]]\n  mode = "aes-256-xts"\n'
      printf '  data_unit_sizes = [4096]\n  max_dun_bytes = 8\n'
    else
      printf 'keyslots = 0\n'
    fi
  }
  {
    printf '[daemon]\ncontrol_socket = "%s"\nlog_level = "warn"\n' "$ICE_SOCKET"
    hw hw0 "$bytes" crypto
    hw hwlog $((bytes * 3)) # the log: mkfs, the workload and a header per entry
    hw scratch "$bytes" crypto
    printf '\n[[key]]\nname = "k"\nmode = "aes-256-xts"\ndata_unit_size = 4096\n'
    printf 'key_file = "%s"\n' "$WORK/k.key"
    printf '\n[[device]]\nname = "lw"\ntable = ["0 %d log-writes hw0 hwlog"]\n' $((bytes / 512))
  } >"$WORK/ice.toml"
  nbdkit -f -U "$NBD_SOCKET" --threads 16 "$BUILD/nbdkit-ice-plugin.so" \
    config="$WORK/ice.toml" >"$WORK/nbdkit.log" 2>&1 &
  DAEMON_PID=$!
  for _ in $(seq 400); do
    [ -S "$NBD_SOCKET" ] && [ -S "$ICE_SOCKET" ] && break
    kill -0 "$DAEMON_PID" 2>/dev/null || die "the daemon did not start: $(tail -n 3 "$WORK/nbdkit.log")"
    sleep 0.05
  done
  [ -S "$ICE_SOCKET" ] || die "the daemon did not start within 20 s"
else
  [ ${#ARGS[@]} -eq 3 ] || usage
  DEVICE=${ARGS[0]} KEY=${ARGS[1]} SCRATCH=${ARGS[2]}
  [ -n "$YES" ] || die "this overwrites $DEVICE's devices and $SCRATCH; add -y to go on"
fi
TABLE=$("$ICECTL" table "$DEVICE" | sed 's/[[:space:]]*$//') || die "no device $DEVICE"
[ "$(printf '%s\n' "$TABLE" | wc -l)" = 1 ] && [ "$(awk '{print $3}' <<<"$TABLE")" = log-writes ] ||
  die "$DEVICE's table must be one log-writes target (it is: $TABLE)"
LOGDEV=$(awk '{print $5}' <<<"$TABLE")
DEV_BYTES=$(($(awk '{print $2}' <<<"$TABLE") * 512))
uri() { printf 'nbd+unix:///%s?socket=%s' "$1" "$NBD_SOCKET"; }
if [ -z "$SELF" ]; then
  # A new target starts a new log (the old one ends with its dm-log-writes-end mark).
  "$ICECTL" load "$DEVICE" --table "$TABLE" && "$ICECTL" resume "$DEVICE" || die "cannot reload $DEVICE"
fi
mark() { "$ICECTL" message "$DEVICE" 0 mark "$1" || die "cannot mark $DEVICE"; }
mark cp-start # rewrites the super block: the log now holds this run only

# ---- the workload ------------------------------------------------------------------------------
export CP_MNT=$MNT CP_MANIFEST=$WORK/manifest CP_DEVICE=$DEVICE CP_FSYNCED=$WORK/fsynced ICECTL
printf '#!/bin/sh\nexec "%s" __fsynced "$@"\n' "$HERE/crash-points.sh" >"$CP_FSYNCED"
chmod 755 "$CP_FSYNCED"
: >"$CP_MANIFEST"
BLK=$("$HERE/ice-attach" attach --dir "$WORK/att" "$(uri "$DEVICE@$KEY")") || die "cannot attach $DEVICE@$KEY"
"${MKFS[@]}" "$BLK" >/dev/null || die "mkfs.$FS failed"
mark mkfs
mount "$BLK" "$MNT" || die "mount failed"

churn() {
  local i r f d live=() frozen=0 dirs=(d0 d1 d2 d3)
  RANDOM=$SEED
  mkdir -p "${dirs[@]/#/$MNT/}"
  local k
  pick() {
    k=$((RANDOM % ${#live[@]}))
    f=${live[k]}
  }
  for ((i = 0; i < OPS; i++)); do
    r=$((RANDOM % 100))
    if [ ${#live[@]} -eq 0 ] || [ $r -lt 40 ]; then
      d=${dirs[RANDOM % ${#dirs[@]}]}
      f=$MNT/$d/f$i
      head -c $((RANDOM % 64 * 1024 + RANDOM % 4096 + 1)) /dev/urandom >"$f"
      if [ $((RANDOM % 3)) = 0 ]; then
        fsynced "$f" || return 1 # frozen from now on: never touched again
        frozen=$((frozen + 1))
      else
        live+=("$f")
      fi
    elif [ $r -lt 55 ]; then
      pick && head -c $((RANDOM % 16384 + 1)) /dev/urandom >>"$f"
    elif [ $r -lt 65 ]; then
      pick && dd if=/dev/urandom of="$f" bs=512 seek=$((RANDOM % 64)) count=$((RANDOM % 16 + 1)) \
        conv=notrunc status=none
    elif [ $r -lt 72 ]; then
      pick && truncate -s $((RANDOM % 32768)) "$f"
    elif [ $r -lt 80 ]; then
      pick
      d=${dirs[RANDOM % ${#dirs[@]}]}
      mv "$f" "$MNT/$d/r$i" && live[k]=$MNT/$d/r$i
    elif [ $r -lt 90 ]; then
      pick && rm -f "$f" && unset 'live[k]' && live=(${live[@]+"${live[@]}"})
    elif [ $r -lt 95 ]; then
      d=$MNT/${dirs[RANDOM % ${#dirs[@]}]}/sub$i
      mkdir "$d" && dirs+=("${d#"$MNT"/}")
    else
      sync -f "$MNT"
    fi
  done
  say "$FS on $DEVICE@$KEY (log on $LOGDEV), seed $SEED: $OPS operations, $frozen files fsynced"
}
if [ -n "$WORKLOAD" ]; then
  (cd "$MNT" && sh -c "$WORKLOAD") || { say "FAIL: the workload failed"; exit 1; }
  say "$FS on $DEVICE@$KEY (log on $LOGDEV): workload done, $(wc -l <"$CP_MANIFEST") files fsynced"
else
  churn || { say "FAIL: the workload failed"; exit 1; }
fi
umount "$MNT" || die "umount failed"
"$HERE/ice-attach" detach "$WORK/att" || die "detach failed"
mark cp-end

# ---- the crash points --------------------------------------------------------------------------
nbdcopy "$(uri "$LOGDEV")" "$WORK/log.img" || die "cannot copy the log from $LOGDEV"
"$REPLAY_LOG" --log "$WORK/log.img" --list >"$WORK/entries" || die "cannot read the log"
# Entries after the mkfs mark whose flags make them crash points; the index of each fsync mark.
# Lines are "N@P: sector S, size B, flags 0xF(NAMES)[, mark NAME]".
awk -v want="$POINTS" -v marks="$WORK/marks" '
  {
    split($1, a, "@")
    names = $7
    sub(/^[^(]*\(/, "", names)
    sub(/\).*$/, "", names)
    n = split(names, f, "|")
    hit = 0
    for (i = 1; i <= n; i++)
      if ((f[i] == "FLUSH" && want != "fua") || (f[i] == "FUA" && want != "flush")) hit = 1
  }
  / mark mkfs$/ { go = 1 }
  / mark cp-fsync-[0-9]+$/ { m = $NF; sub("cp-fsync-", "", m); print "fsync", m, a[1] > marks }
  go && hit { print a[1] }
' "$WORK/entries" >"$WORK/points"
NENTRIES=$(wc -l <"$WORK/entries")
NPOINTS=$(wc -l <"$WORK/points")
[ "$NPOINTS" -gt 0 ] || { say "FAIL: no crash points in the log"; exit 1; }
if [ -n "$SAMPLE" ] && [ "$SAMPLE" -lt "$NPOINTS" ]; then
  # Point i of N is the round(i * (P - 1) / (N - 1))th: the first, the last, evenly between.
  awk -v n="$SAMPLE" -v p="$NPOINTS" '
    BEGIN { for (i = 0; i < n; i++) want[n == 1 ? p - 1 : int(i * (p - 1) / (n - 1) + 0.5)] = 1 }
    (NR - 1) in want' "$WORK/points" >"$WORK/sample"
  how="$SAMPLE spread evenly"
else
  awk -v every="$EVERY" -v last="$NPOINTS" '(NR - 1) % every == 0 || NR == last' "$WORK/points" >"$WORK/sample"
  case $EVERY in 1) how="all" ;; 2) how="every 2nd" ;; 3) how="every 3rd" ;; *) how="every ${EVERY}th" ;; esac
fi
NCHECK=$(wc -l <"$WORK/sample")
say "$NENTRIES log entries, $NPOINTS crash points after mkfs, checking $NCHECK ($how)"
touch "$WORK/marks"
# The fsynced files by the position of their mark: "MARK_ENTRY SHA256 PATH" (PATH may hold blanks).
awk -v marks="$WORK/marks" '
  BEGIN { while ((getline l < marks) > 0) { split(l, w, " "); at[w[2]] = w[3] } }
  $1 in at { print at[$1], $2, substr($0, length($1) + length($2) + 3) }
' "$CP_MANIFEST" | sort -n >"$WORK/registered"

SBLK=$("$HERE/ice-attach" attach --dir "$WORK/satt" "$(uri "$SCRATCH@$KEY")") || die "cannot attach $SCRATCH@$KEY"
truncate -s "$DEV_BYTES" "$WORK/replay.img"

progress() { # DONE TOTAL ENTRY
  [ -n "$PROGRESS" ] || return 0
  local width=40 fill
  fill=$(($1 * width / $2))
  if [ -t 2 ]; then
    printf '\r[%-*s] %d/%d (entry %d)' "$width" "$(printf '%*s' "$fill" '' | tr ' ' '#')" "$1" "$2" "$3" >&2
    [ "$1" = "$2" ] && echo >&2
  elif [ $(($1 * 10 / $2)) != $((($1 - 1) * 10 / $2)) ]; then
    printf 'crash-points: [%-10s] %d/%d checked\n' "$(printf '%*s' $(($1 * 10 / $2)) '' | tr ' ' '#')" "$1" "$2" >&2
  fi
}

checked=0 clean=0 verified=0 replayed=-1 bad=""
finding() { # WHAT: keep the point and stop
  [ -t 2 ] && [ -n "$PROGRESS" ] && echo >&2
  say "FAIL at entry $point (crash point $((checked + 1)) of $NCHECK): $*"
  if [ -z "$KEEP" ]; then KEEP=$(mktemp -d "${TMPDIR:-/tmp}/crash-points-bad.XXXXXX"); fi
  mkdir -p "$KEEP"
  # replay.img is the device at this point: the mount and the check changed only SCRATCH.
  cp --sparse=always "$WORK/replay.img" "$WORK/log.img" "$WORK/entries" "$WORK/registered" "$KEEP/"
  [ -n "$SELF" ] && cp -p "$WORK/k.key" "$KEEP/k.key" # the key of --self-contained's daemon
  say "kept in $KEEP: replay.img (the device at entry $point, as ciphertext), log.img, entries" \
    "(the log's entries), registered (fsynced files: mark entry, sha256, path); again with:" \
    "replay-log --log $KEEP/log.img --replay DEV --limit $((point + 1)); to look inside, serve" \
    "replay.img as file-backed hardware and attach it with the key${SELF:+ (k.key)}"
  bad=$point
}
while read -r point; do
  # Replay up to and including entry $point, from where the last point ended.
  "$REPLAY_LOG" --log "$WORK/log.img" --replay "$WORK/replay.img" --start-entry $((replayed + 1)) \
    --limit $((point - replayed)) || die "replay to entry $point failed"
  replayed=$point
  nbdcopy "$WORK/replay.img" "$(uri "$SCRATCH")" || die "cannot copy the replay to $SCRATCH"
  blockdev --flushbufs "$SBLK"
  if ! out=$(timeout 120 mount "$SBLK" "$CMNT" 2>&1); then finding "mount failed: $out"; break; fi
  # Every file whose fsync mark lies before this point.
  awk -v p="$point" '$1 < p {print $2 "  " substr($0, length($1) + length($2) + 3)}' \
    "$WORK/registered" >"$WORK/expect"
  if [ -s "$WORK/expect" ] && ! out=$(cd "$CMNT" && sha256sum --quiet --strict -c "$WORK/expect" 2>&1); then
    umount "$CMNT"
    finding "fsynced files lost or damaged: $(head -n 5 <<<"$out" | tr '\n' ' ')"
    break
  fi
  verified=$((verified + $(wc -l <"$WORK/expect")))
  umount "$CMNT" || { finding "umount failed"; break; }
  blockdev --flushbufs "$SBLK"
  if ! out=$(timeout 300 "${CHECK[@]}" "$SBLK" 2>&1); then
    finding "${CHECK[*]} found problems: $(tail -n 5 <<<"$out" | tr '\n' ' ')"
    break
  fi
  clean=$((clean + 1))
  checked=$((checked + 1))
  progress "$checked" "$NCHECK" "$point"
done <"$WORK/sample"
[ -n "$bad" ] && checked=$((checked + 1))
say "crash_points=$checked fsck_clean=$clean fsynced_files_verified=$verified"
if [ -n "$bad" ]; then
  say "FAIL"
  exit 1
fi
say "PASS"
