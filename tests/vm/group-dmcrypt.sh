#!/usr/bin/env bash
# Real-kernel group "dmcrypt": ice's on-disk format is dm-crypt's (DESIGN.md; rules C5, T6).
#
# Forward: after data is written through ice, the backing files of ice's file-backed hardware,
# opened by the kernel's dm-crypt (`cryptsetup open --type plain --cipher aes-xts-plain64
# --key-size 512` on a loop device, with the matching --sector-size, --iv-large-sectors, --skip =
# dm-crypt's IV offset and --offset), show exactly the plaintext:
#   - a keyed export, lin@K, of a linear device over two hardware devices: each half on its own
#     file, the second half's DUNs starting where the first's end (--skip = the first half's
#     sectors); with a 4096-byte key (--sector-size 4096 --iv-large-sectors) and a 512-byte one;
#   - default-key devices with a non-zero iv_offset, one in 512-byte sectors (created with icectl,
#     hex key on the table line, from a file), one with sector_size:4096 iv_large_sectors (from
#     the config, ice's keyring form of the key).
# Reverse: what dm-crypt writes in those places reads back as plaintext through the same ice export.
#
# Runs inside the VM (tests/vm/run.sh): cwd = repository root, ICE_BUILD and ICE_SEED set. The
# plaintext is derived from ICE_SEED (AES-CTR keystream), so a failing seed can be replayed.
set -u
: "${ICE_BUILD:?ICE_BUILD is set by tests/vm/run.sh}"
SEED=${ICE_SEED:-1}

W=$(mktemp -d /tmp/ice-vm-dmcrypt.XXXXXX)
chmod 700 "$W"
ICECTL=("$ICE_BUILD/icectl" --socket "$W/ctl.sock")
failed=0
pass() { echo "PASS dmcrypt: $*"; }
fail() {
  echo "FAIL dmcrypt: $*"
  failed=1
}
start=$(date +%s)
mark() { echo "dmcrypt group: $(($(date +%s) - start)) s: $*" >&2; }

nbdkit_pid=
MAPS=() LOOPS=()
cleanup() {
  for m in "${MAPS[@]}"; do [ -e "/dev/mapper/$m" ] && cryptsetup close "$m" 2>/dev/null; done
  for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null; done
  [ -n "$nbdkit_pid" ] && kill "$nbdkit_pid" 2>/dev/null && wait "$nbdkit_pid" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
# shellcheck source=tests/vm/daemon.sh
. "$(dirname "$0")/daemon.sh"

# BYTES of reproducible pseudo-random data for NAME under this seed.
gen() {
  openssl enc -aes-128-ctr -nosalt -pass "pass:ice-vm-dmcrypt-$SEED-$1" -pbkdf2 -iter 1 \
    -in /dev/zero 2>/dev/null | head -c "$2"
}
umask 077
gen key4k 64 >"$W/k4k.key"
gen key512 64 >"$W/k512.key"
gen keydk512 64 >"$W/dk512.key"
gen keydk4k 64 >"$W/dk4k.key"
HEX_DK512=$(od -An -tx1 -v "$W/dk512.key" | tr -d ' \n')

# Layout, in 512-byte sectors. hw0 and hw1 hold the two halves of lin; hw2 holds both default-key
# devices, each at its own offset with its own iv_offset.
HALF=8192                    # 4 MiB a half
DK=4096                      # 2 MiB a default-key device
DK512_START=2048 DK512_IV=1001 # an odd IV offset: legal in 512-byte sectors
DK4K_START=16384 DK4K_IV=80000 # a multiple of 8: DUNs start at 10000
HW2=32768

# hardware NAME SECTORS: a file-backed controller, 2 keyslots, 512- and 4096-byte data units.
hardware() {
  cat <<EOF

[[hardware]]
name = "$1"
backing = "file:$W/$1.img"
size = "$(($2 * 512))"
keyslots = 2
  [[hardware.capability]]
  mode = "aes-256-xts"
  data_unit_sizes = [512, 4096]
  max_dun_bytes = 8
EOF
}
# key NAME DATA_UNIT_SIZE FILE: an aes-256-xts key read from $W/FILE.key.
key() {
  cat <<EOF

[[key]]
name = "$1"
mode = "aes-256-xts"
data_unit_size = $2
dun_bytes = 8
key_file = "$W/$3.key"
EOF
}
{
  printf '[daemon]\ncontrol_socket = "%s"\nlog_level = "warn"\n' "$W/ctl.sock"
  hardware hw0 $HALF
  hardware hw1 $HALF
  hardware hw2 $HW2
  key k4k 4096 k4k
  key k512 512 k512
  key kdk4k 4096 dk4k
  cat <<EOF

[[device]]
name = "lin"
table = [
  "0 $HALF linear hw0 0",
  "$HALF $HALF linear hw1 0",
]

[[device]]
name = "dk4k"
table = ["0 $DK default-key aes-xts-plain64 :64:logon:kdk4k $DK4K_IV hw2 $DK4K_START 2 sector_size:4096 iv_large_sectors"]
EOF
} >"$W/ice.toml"

start_ice "$W" "$W/ctl.sock" 8
nbdkit_pid=$ICE_PID
if ! [ -S "$W/ctl.sock" ]; then
  fail "daemon start: $(tail -n 5 "$W/nbdkit.log")"
  exit 1
fi
uri() { echo "nbd+unix:///$1?socket=$W/nbd.sock"; }
mark "daemon up"
# dk512 comes from icectl, its hex key in a table file (never on a command line, P4).
echo "0 $DK default-key aes-xts-plain64 $HEX_DK512 $DK512_IV hw2 $DK512_START" >"$W/dk512.table"
if ! "${ICECTL[@]}" create dk512 --table-file "$W/dk512.table" 2>"$W/err"; then
  fail "icectl create dk512: $(<"$W/err")"
elif [ "$("${ICECTL[@]}" table dk512)" != "0 $DK default-key aes-xts-plain64 - $DK512_IV hw2 $DK512_START" ]; then
  fail "icectl table dk512 (the key must print as -): $("${ICECTL[@]}" table dk512)"
else
  pass "icectl create dk512 from a table file with a hex key; its table prints the key as '-'"
fi

# cryptsetup's plain mapping NAME of FILE with the given options (a loop device under it).
crypt_open() {
  local name=$1 file=$2 key=$3 loop
  shift 3
  if ! loop=$(losetup -f --show "$file" 2>"$W/err"); then
    fail "losetup $file: $(<"$W/err")"
    return 1
  fi
  LOOPS+=("$loop")
  if ! cryptsetup open --type plain --cipher aes-xts-plain64 --key-size 512 --key-file "$key" \
    "$@" "$loop" "$name" 2>"$W/err"; then
    fail "cryptsetup open $name ($*): $(<"$W/err")"
    return 1
  fi
  MAPS+=("$name")
}
# Closes mapping NAME and the loop device under it (the last one opened).
crypt_close() {
  cryptsetup close "$1" || fail "cryptsetup close $1"
  losetup -d "${LOOPS[-1]}" && unset 'LOOPS[-1]'
}
# The bytes [SKIP, SKIP+COUNT) of FILE, in 512-byte sectors.
slice() { dd if="$1" bs=512 skip="$2" count="$3" status=none; }

# One mapping of the forward check: the plaintext FILE's sectors [FROM, FROM+COUNT) must be what
# dm-crypt reads, and must not be what lies on the medium.
forward() {
  local what=$1 map=$2 plain=$3 from=$4 count=$5 backing=$6 boff=$7
  if ! cmp -s <(slice "/dev/mapper/$map" 0 "$count") <(slice "$plain" "$from" "$count"); then
    fail "$what: dm-crypt reads other data than was written through ice ($(cmp <(slice "/dev/mapper/$map" 0 "$count") <(slice "$plain" "$from" "$count") 2>&1 | head -n 1))"
  elif cmp -s <(slice "$backing" "$boff" "$count") <(slice "$plain" "$from" "$count"); then
    fail "$what: the medium holds the plaintext"
  else
    pass "$what: dm-crypt reads the plaintext written through ice"
  fi
}

# --- forward: write through ice, read with dm-crypt ---------------------------------------------------
gen lin4k $((2 * HALF * 512)) >"$W/lin4k.bin"
gen lin512 $((2 * HALF * 512)) >"$W/lin512.bin"
gen dk512 $((DK * 512)) >"$W/dk512.bin"
gen dk4k $((DK * 512)) >"$W/dk4k.bin"

# lin with the 4096-byte key
if ! nbdcopy "$W/lin4k.bin" "$(uri lin@k4k)" 2>"$W/err"; then
  fail "write lin@k4k: $(cat "$W/err")"
fi
crypt_open c0 "$W/hw0.img" "$W/k4k.key" --sector-size 4096 --iv-large-sectors &&
  forward "lin@k4k, first half (hw0, --sector-size 4096 --iv-large-sectors)" c0 "$W/lin4k.bin" 0 $HALF "$W/hw0.img" 0
crypt_open c1 "$W/hw1.img" "$W/k4k.key" --sector-size 4096 --iv-large-sectors --skip $HALF &&
  forward "lin@k4k, second half (hw1, --skip $HALF: DUNs from $((HALF / 8)))" c1 "$W/lin4k.bin" $HALF $HALF "$W/hw1.img" 0
# Control: the IV offset matters. The second half opened as if its DUNs started at 0 is not the
# plaintext (else the checks above could not tell a wrong DUN from a right one).
if crypt_open cx "$W/hw1.img" "$W/k4k.key" --sector-size 4096 --iv-large-sectors; then
  if cmp -s <(slice /dev/mapper/cx 0 $HALF) <(slice "$W/lin4k.bin" $HALF $HALF); then
    fail "control: lin@k4k's second half reads as plaintext with DUNs from 0"
  else
    pass "control: lin@k4k's second half with DUNs from 0 (no --skip) is not the plaintext"
  fi
  crypt_close cx
fi
mark "lin@k4k forward"

# reverse KEY: through the dm-crypt mappings c0 and c1 (then closed), fresh data into both halves
# of lin; ice must read it through lin@KEY.
reverse() {
  local k=$1 name=rlin${1#k}
  local data=$W/$name.bin
  gen "$name" $((2 * HALF * 512)) >"$data"
  slice "$data" 0 $HALF | dd of=/dev/mapper/c0 bs=1M oflag=direct conv=fsync status=none
  slice "$data" $HALF $HALF | dd of=/dev/mapper/c1 bs=1M oflag=direct conv=fsync status=none
  crypt_close c1
  crypt_close c0
  if ! nbdcopy "$(uri "lin@$k")" "$W/out.bin" 2>"$W/err"; then
    fail "read lin@$k: $(cat "$W/err")"
  elif ! cmp -s "$W/out.bin" "$data"; then
    fail "lin@$k: ice reads other data than dm-crypt wrote ($(cmp "$W/out.bin" "$data" 2>&1))"
  else
    pass "lin@$k: ice reads across both halves what dm-crypt wrote to each"
  fi
}

# Reverse: dm-crypt writes both halves; ice reads lin@k4k.
reverse k4k
mark "lin@k4k reverse"

# lin with the 512-byte key: dm-crypt's default layout (512-byte sectors, IV = sector).
if ! nbdcopy "$W/lin512.bin" "$(uri lin@k512)" 2>"$W/err"; then
  fail "write lin@k512: $(cat "$W/err")"
fi
crypt_open c0 "$W/hw0.img" "$W/k512.key" --sector-size 512 &&
  forward "lin@k512, first half (hw0, --sector-size 512)" c0 "$W/lin512.bin" 0 $HALF "$W/hw0.img" 0
crypt_open c1 "$W/hw1.img" "$W/k512.key" --sector-size 512 --skip $HALF &&
  forward "lin@k512, second half (hw1, --skip $HALF)" c1 "$W/lin512.bin" $HALF $HALF "$W/hw1.img" 0
reverse k512
mark "lin@k512"

# default-key, 512-byte sectors, iv_offset $DK512_IV: --skip is dm-crypt's iv_offset, --offset
# where the target starts on hw2.
defaultkey() {
  local dev=$1 key=$2 iv=$3 from=$4
  shift 4
  if ! nbdcopy "$W/$dev.bin" "$(uri "$dev")" 2>"$W/err"; then
    fail "write $dev: $(cat "$W/err")"
  fi
  crypt_open c2 "$W/hw2.img" "$key" --skip "$iv" --offset "$from" --size $DK "$@" &&
    forward "$dev (default-key, iv_offset $iv, start $from; $*)" c2 "$W/$dev.bin" 0 $DK "$W/hw2.img" "$from"
  gen "r$dev" $((DK * 512)) >"$W/r$dev.bin"
  dd if="$W/r$dev.bin" of=/dev/mapper/c2 bs=1M oflag=direct conv=fsync status=none
  crypt_close c2
  if ! nbdcopy "$(uri "$dev")" "$W/out.bin" 2>"$W/err"; then
    fail "read $dev: $(cat "$W/err")"
  elif ! cmp -s "$W/out.bin" "$W/r$dev.bin"; then
    fail "$dev: ice reads other data than dm-crypt wrote ($(cmp "$W/out.bin" "$W/r$dev.bin" 2>&1))"
  else
    pass "$dev: ice's default-key reads what dm-crypt wrote ($*)"
  fi
  mark "$dev"
}
defaultkey dk512 "$W/dk512.key" $DK512_IV $DK512_START --sector-size 512
defaultkey dk4k "$W/dk4k.key" $DK4K_IV $DK4K_START --sector-size 4096 --iv-large-sectors

echo "dmcrypt group: $(($(date +%s) - start)) s in the guest" >&2
exit $failed
