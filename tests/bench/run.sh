#!/usr/bin/env bash
# ice's encrypted NBD export against the peers, in one run of /work/shared/bench/peer-bench.sh:
#   luks  : nbdkit's luks filter (LUKS1 aes-xts-plain64, 512-byte sectors)
#   qluks : qemu-nbd serving the same LUKS image
#   file  : nbdkit's file plugin, no encryption (the transport ceiling)
#   ice   : nbdkit + the ice plugin, export hw0@bench: one file-backed emulated hardware device in
#           /tmp (where peer-bench keeps the peers' images), an aes-256-xts key, 4096-byte data units
# and OpenSSL's single-thread AES-256-XTS speed (the crypto ceiling of one core). Prints peer-bench's
# lines, then one ratio line per workload. Every server it starts is stopped by its PID.
#
# Environment: ICE_BUILD (default: build/), RT (seconds per workload, default 6), SIZE (default 1G),
# ICE_DATA_UNIT (default 4096), ICE_THREADS (nbdkit --threads for ice, default 16 like the peers),
# ROUNDS (peer-bench runs, default 1; more: medians), PEER_BENCH (default
# /work/shared/bench/peer-bench.sh). One round takes about 2.5 minutes.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ICE_BUILD=${ICE_BUILD:-$ROOT/build}
PLUGIN=$ICE_BUILD/nbdkit-ice-plugin.so
PEER_BENCH=${PEER_BENCH:-/work/shared/bench/peer-bench.sh}
export RT=${RT:-6} SIZE=${SIZE:-1G}
UNIT=${ICE_DATA_UNIT:-4096}
THREADS=${ICE_THREADS:-16}
ROUNDS=${ROUNDS:-1}
[ -f "$PLUGIN" ] || { echo "bench: no plugin at $PLUGIN (build first, or set ICE_BUILD)" >&2; exit 1; }
[ -x "$PEER_BENCH" ] || [ -f "$PEER_BENCH" ] || { echo "bench: no $PEER_BENCH" >&2; exit 1; }

W=$(mktemp -d /tmp/icebench.XXXX)
chmod 0700 "$W"
ice_pid=""
cleanup() {
  if [ -n "$ice_pid" ]; then
    kill "$ice_pid" 2>/dev/null || true
    wait "$ice_pid" 2>/dev/null || true
  fi
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat >"$W/ice.toml" <<EOF
[daemon]
control_socket = "$W/control.sock"
log_level = "warn"
log_target = "stderr"

[[hardware]]
name = "hw0"
backing = "file:$W/ice.img"
size = "$SIZE"
keyslots = 4
  [[hardware.capability]]
  mode = "aes-256-xts"
  data_unit_sizes = [$UNIT]
  max_dun_bytes = 8

[[key]]
name = "bench"
mode = "aes-256-xts"
data_unit_size = $UNIT
dun_bytes = 8
key_file = "$W/bench.key"
generate = true
EOF

nbdkit -f -U "$W/ice.sock" --threads "$THREADS" "$PLUGIN" config="$W/ice.toml" &
ice_pid=$!
for _ in $(seq 100); do
  [ -S "$W/ice.sock" ] && break
  kill -0 "$ice_pid" 2>/dev/null || { echo "bench: the ice server exited at start" >&2; exit 1; }
  sleep 0.1
done
[ -S "$W/ice.sock" ] || { echo "bench: the ice server did not start" >&2; exit 1; }
export ICE_URI="nbd+unix:///hw0@bench?socket=$W/ice.sock"

# The crypto ceiling: one core of OpenSSL AES-256-XTS on 4 KiB and 1 MiB buffers, in MiB/s.
# Measured in CPU time (no -elapsed), so other load on the machine does not lower it.
ossl_mibps() { # bytes
  openssl speed -seconds 2 -bytes "$1" -evp aes-256-xts 2>/dev/null |
    awk 'tolower($1) == "aes-256-xts" { v = $NF; sub(/k$/, "", v); printf "%d\n", v * 1000 / 1048576 }'
}
ossl4k=$(ossl_mibps 4096)
ossl1m=$(ossl_mibps 1048576)

# One peer-bench run by default; with ROUNDS=N, N runs and the median of each line (on a shared
# machine the targets run minutes apart, so one run's ratios carry the load changes in between).
runs=()
for r in $(seq "$ROUNDS"); do
  runs+=("$(timeout -k 10 600 bash "$PEER_BENCH")")
  [ "$ROUNDS" -gt 1 ] && printf '%s\n' "${runs[-1]}" | sed "s/^/round $r: /"
done
out=$(printf '%s\n' "${runs[@]}" | awk '
  { k = $1 " " $2; if (!(k in n)) order[++m] = k; vals[k, ++n[k]] = $3 }
  END {
    for (i = 1; i <= m; i++) {
      k = order[i]; c = n[k]
      for (a = 1; a <= c; a++) for (b = a + 1; b <= c; b++)
        if (vals[k, b] < vals[k, a]) { t = vals[k, a]; vals[k, a] = vals[k, b]; vals[k, b] = t }
      print k, vals[k, int((c + 1) / 2)]
    }
  }')
echo "$out"
echo "openssl aes-256-xts_4k_1core_MiBps $ossl4k"
echo "openssl aes-256-xts_1m_1core_MiBps $ossl1m"

# Ratios from this one run: ice's number divided by each reference's (> 1.00: ice is faster).
echo "$out" | awk -v o4k="$ossl4k" -v o1m="$ossl1m" '
  { v[$1, $2] = $3; if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 } }
  function r(a, b) { return b > 0 ? sprintf("%.2f", a / b) : "n/a" }
  END {
    print "ratios (ice / other; randrw in IOPS, seq in MiB/s):"
    printf "%-22s %8s %8s %8s %12s\n", "workload", "vs luks", "vs qluks", "vs file", "vs openssl"
    for (i = 1; i <= n; i++) {
      w = order[i]; ice = v["ice", w]
      if (ice == "") continue
      # openssl: the IOPS one core could encrypt at 4 KiB, or its MiB/s at 1 MiB
      ref = (w ~ /^randrw4k/) ? o4k * 256 : o1m
      printf "%-22s %8s %8s %8s %12s\n", w, r(ice, v["luks", w]), r(ice, v["qluks", w]),
        r(ice, v["file", w]), r(ice, ref)
    }
  }'
