# shellcheck shell=bash
# Sourced by the vm groups (lib.sh, group-dmcrypt.sh, group-dmsetup.sh): starts the ice daemon.
#
#   start_ice DIR CTL THREADS   nbdkit with $ICE_BUILD's plugin on DIR/ice.toml, serving
#                               DIR/nbd.sock, its log in DIR/nbdkit.log; sets ICE_PID. Returns 0
#                               once DIR/nbd.sock and the control socket CTL exist, 1 when nbdkit
#                               exits first or they are not there within 60 s (the caller reports
#                               it, from the log; `kill -0 "$ICE_PID"` tells the two apart).
start_ice() {
  local dir=$1 ctl=$2 threads=$3 _
  nbdkit -f -U "$dir/nbd.sock" --threads "$threads" "$ICE_BUILD/nbdkit-ice-plugin.so" \
    config="$dir/ice.toml" >"$dir/nbdkit.log" 2>&1 &
  ICE_PID=$!
  for _ in $(seq 1200); do
    [ -S "$dir/nbd.sock" ] && [ -S "$ctl" ] && return 0
    kill -0 "$ICE_PID" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
