# shellcheck shell=bash
# Sourced by tests/vm/group-*.sh inside the guest: the ice daemon (nbdkit + plugin) on a Unix
# socket in a private folder, the kernel NBD client, and the PASS/FAIL lines of the tier.
#
#   vm_start CONFIG_TEXT      '{dir}' in the text becomes the daemon's folder ($VM_DIR); a [daemon]
#                             section with the control socket there is added. Exits the group on
#                             failure (FAIL line with the log's tail).
#   ice ARGS...               build/icectl on that daemon
#   attach DEV EXPORT [ARGS]  nbd-client -unix … DEV -N EXPORT ARGS (e.g. -b 4096, -C 2)
#   detach DEV                nbd-client -d DEV, then waits until the kernel has let go
#   pass WHAT / fail WHAT WHY one line each; `vm_finish` exits non-zero if any check failed
#   check WHAT CMD...         pass when CMD succeeds, else fail with its last output line
# Everything started here is stopped by PID on exit (vm_cleanup, run from the EXIT trap).

VM_FAILS=0
VM_PASSES=0
VM_DIR=""
VM_PID=""
ICECTL=$ICE_BUILD/icectl
# shellcheck source=tests/vm/daemon.sh
. "$(dirname "${BASH_SOURCE[0]}")/daemon.sh"

pass() {
  VM_PASSES=$((VM_PASSES + 1))
  echo "PASS $*"
}
fail() {
  VM_FAILS=$((VM_FAILS + 1))
  local what=$1
  shift
  echo "FAIL $what: $*"
}
check() {
  local what=$1 out
  shift
  if out=$("$@" 2>&1); then pass "$what"; else fail "$what" "$(printf '%s\n' "$out" | tail -n 3 | tr '\n' ' ')"; fi
}
log() { echo "[$(date +%T)] $*" >&2; }

ice() { "$ICECTL" --socket "$VM_DIR/control.sock" "$@"; }

vm_start() {
  VM_DIR=$(mktemp -d /run/ice-vm.XXXXXX)
  chmod 700 "$VM_DIR"
  {
    printf '[daemon]\ncontrol_socket = "%s"\nlog_level = "info"\n' "$VM_DIR/control.sock"
    printf '%s\n' "${1//\{dir\}/$VM_DIR}"
  } >"$VM_DIR/ice.toml"
  start_ice "$VM_DIR" "$VM_DIR/control.sock" 16
  local started=$?
  VM_PID=$ICE_PID
  [ $started = 0 ] && return 0
  if kill -0 "$VM_PID" 2>/dev/null; then
    fail "daemon starts" "no sockets after 60 s: $(tail -n 5 "$VM_DIR/nbdkit.log" | tr '\n' ' ')"
  else
    fail "daemon starts" "nbdkit exited: $(tail -n 5 "$VM_DIR/nbdkit.log" | tr '\n' ' ')"
  fi
  vm_finish
}

# Config sections for vm_start's text, each after a blank line:
#   hw_toml NAME SIZE KEYSLOTS   memory-backed controller: aes-256-xts, 4096-byte data units
#   key_toml NAME                aes-256-xts key, 4096-byte data units, generated as {dir}/NAME.key
hw_toml() {
  printf '\n[[hardware]]\nname = "%s"\nbacking = "memory"\nsize = "%s"\nkeyslots = %d\n' "$1" "$2" "$3"
  printf '  [[hardware.capability]]\n  mode = "aes-256-xts"\n  data_unit_sizes = [4096]\n'
  printf '  max_dun_bytes = 8\n'
}
key_toml() {
  printf '\n[[key]]\nname = "%s"\nmode = "aes-256-xts"\ndata_unit_size = 4096\n' "$1"
  printf 'key_file = "{dir}/%s.key"\ngenerate = true\n' "$1"
}

# key_file PATH: 64 random bytes, mode 0600 (an aes-256-xts key).
key_file() {
  (umask 077 && head -c 64 /dev/urandom >"$1")
}

attach() {
  local dev=$1 export=$2
  shift 2
  nbd-client -unix "$VM_DIR/nbd.sock" "$dev" -N "$export" "$@" >/dev/null
}

detach() {
  local dev=$1 _
  nbd-client -d "$dev" >/dev/null 2>&1
  # The kernel clears the device's size once the last connection is gone.
  for _ in $(seq 200); do
    [ "$(cat "/sys/block/${dev#/dev/}/size" 2>/dev/null)" = 0 ] && return 0
    sleep 0.05
  done
  echo "detach $dev: still connected" >&2
  return 1
}

vm_cleanup() {
  local d m
  for m in $(awk '$1 ~ /^\/dev\/nbd/ {print $2}' /proc/mounts); do umount -l "$m" 2>/dev/null; done
  for d in /sys/block/nbd*; do
    [ "$(cat "$d/size" 2>/dev/null)" != 0 ] && nbd-client -d "/dev/${d##*/}" >/dev/null 2>&1
  done
  if [ -n "$VM_PID" ]; then
    kill "$VM_PID" 2>/dev/null
    wait "$VM_PID" 2>/dev/null
    VM_PID=""
  fi
}

# Prints the daemon's log tail on stderr (the runner shows stderr when a group fails).
vm_finish() {
  trap - EXIT
  if [ "$VM_FAILS" -ne 0 ] && [ -n "$VM_DIR" ] && [ -f "$VM_DIR/nbdkit.log" ]; then
    echo "--- nbdkit log (last 30 lines)" >&2
    tail -n 30 "$VM_DIR/nbdkit.log" >&2
  fi
  vm_cleanup
  [ "$VM_FAILS" -eq 0 ] && [ "$VM_PASSES" -gt 0 ]
  exit $?
}
trap vm_finish EXIT
