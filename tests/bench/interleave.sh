#!/usr/bin/env bash
# ice against nbdkit's unencrypted file plugin with the runs interleaved (file, ice, file, ice …),
# so that load from other processes on a shared machine hits both alike; peer-bench runs each
# target minutes apart. Also prints the server's CPU time per request (utime + stime of the nbdkit
# process over the run / requests), which load changes far less than throughput.
# Usage: interleave.sh [WORKLOAD BS QD [ROUNDS]]   (default: randrw 4k 32 4; e.g. read 1m 8)
# Environment: ICE_BUILD (default build/), RT (seconds per run, default 3), ICE_THREADS (16),
# SIZE (the region the runs use, written once first; default 256m).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ICE_BUILD=${ICE_BUILD:-$ROOT/build}
RW=${1:-randrw} BS=${2:-4k} QD=${3:-32} ROUNDS=${4:-4}
RT=${RT:-3}
W=$(mktemp -d /tmp/iceinter.XXXX)
chmod 0700 "$W"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

truncate -s 1G "$W/plain.img"
nbdkit -f -U "$W/file.sock" --threads 16 file "$W/plain.img" &
pids+=($!)
cat >"$W/ice.toml" <<EOF
[daemon]
control_socket = "$W/control.sock"
log_level = "warn"
log_target = "stderr"
[[hardware]]
name = "hw0"
backing = "file:$W/ice.img"
size = "1G"
keyslots = 4
  [[hardware.capability]]
  mode = "aes-256-xts"
  data_unit_sizes = [4096]
  max_dun_bytes = 8
[[key]]
name = "bench"
mode = "aes-256-xts"
data_unit_size = 4096
dun_bytes = 8
key_file = "$W/bench.key"
generate = true
EOF
nbdkit -f -U "$W/ice.sock" --threads "${ICE_THREADS:-16}" "$ICE_BUILD/nbdkit-ice-plugin.so" \
  config="$W/ice.toml" &
pids+=($!)
names=(file ice)
uris=("nbd+unix:///?socket=$W/file.sock" "nbd+unix:///hw0@bench?socket=$W/ice.sock")
for s in file ice; do
  for _ in $(seq 100); do [ -S "$W/$s.sock" ] && break; sleep 0.1; done
  [ -S "$W/$s.sock" ] || { echo "interleave: the $s server did not start" >&2; exit 1; }
done
for u in "${uris[@]}"; do
  fio --name=fill --ioengine=nbd --uri="$u" --rw=write --bs=1m --iodepth=8 --size="${SIZE:-256m}" >/dev/null 2>&1
done

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
unit=iops
[ "$BS" = 4k ] || unit=MiBps
declare -A sum cpu
for r in $(seq "$ROUNDS"); do
  line="round $r:"
  for k in 0 1; do
    c0=$(cpu_ticks "${pids[$k]}")
    t=$(fio --name=x --ioengine=nbd --uri="${uris[$k]}" --rw="$RW" --bs="$BS" --iodepth="$QD" \
      --runtime="$RT" --time_based --size="${SIZE:-256m}" --output-format=terse --terse-version=3 2>/dev/null |
      tail -1)
    c1=$(cpu_ticks "${pids[$k]}")
    # terse v3: 6/47 = read/write KiB, 7/48 = read/write KiB/s, 8/49 = read/write IOPS
    kib=$(($(echo "$t" | cut -d';' -f6) + $(echo "$t" | cut -d';' -f47)))
    reqs=$((kib / $(numfmt --from=iec "${BS^^}" | awk '{ print $1 / 1024 }')))
    if [ "$unit" = iops ]; then
      v=$(($(echo "$t" | cut -d';' -f8) + $(echo "$t" | cut -d';' -f49)))
    else
      v=$((($(echo "$t" | cut -d';' -f7) + $(echo "$t" | cut -d';' -f48)) / 1024))
    fi
    us=$(((c1 - c0) * 1000000 / hz / (reqs > 0 ? reqs : 1)))
    sum[$k]=$((${sum[$k]:-0} + v))
    cpu[$k]=$((${cpu[$k]:-0} + us))
    line+=" ${names[$k]}=$v $unit (${us} us CPU/request)"
  done
  echo "$line"
done
f=$((sum[0] / ROUNDS)) i=$((sum[1] / ROUNDS))
echo "mean: file=$f ice=$i $unit; CPU/request file=$((cpu[0] / ROUNDS)) us ice=$((cpu[1] / ROUNDS)) us"
# The parentheses matter: awk reads `printf …, f > 0 ? …` as output redirected to a file "0".
awk -v f="$f" -v i="$i" 'BEGIN { printf "ice / file: %.2f\n", (f > 0 ? i / f : 0) }'
