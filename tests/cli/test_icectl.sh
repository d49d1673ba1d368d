#!/usr/bin/env bash
# Drives a built icectl against tests/cli/fake_daemon.py: every verb, human and --json output,
# exit codes 0/1/2/3, --socket and ICE_SOCKET, key files (P4) and malformed replies.
# Usage: tests/cli/test_icectl.sh [ICECTL]   (default: $ICECTL, else build/icectl)
# Prints one PASS/FAIL line a check and "N passed, N failed"; exits non-zero on any failure.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ICECTL=${1:-${ICECTL:-$ROOT/build/icectl}}
PY=/usr/bin/python3
FAKE=$ROOT/tests/cli/fake_daemon.py
if [ ! -x "$ICECTL" ]; then
  echo "FAIL icectl not found at $ICECTL (build it, or pass its path)"
  echo "0 passed, 1 failed"
  exit 1
fi

TMP=$(mktemp -d /tmp/ice-cli-test.XXXXXX)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
unset ICE_SOCKET

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "PASS $1"; }
fail() {
  FAILED=$((FAILED + 1))
  echo "FAIL $1"
  shift
  local line
  for line in "$@"; do echo "     $line"; done
}

# check NAME TEST…: PASS when the test command succeeds.
check() {
  local name=$1
  shift
  if "$@"; then pass "$name"; else fail "$name"; fi
}
starts_with() { [[ "$1" == "$2"* ]]; }
contains() { [[ "$1" == *"$2"* ]]; }

# start_fake NAME [--empty]: a fake daemon on $TMP/NAME.sock logging to $TMP/NAME.log.
start_fake() {
  local name=$1
  shift
  mkfifo "$TMP/$name.ready"
  "$PY" "$FAKE" "$TMP/$name.sock" "$TMP/$name.log" "$@" >"$TMP/$name.ready" 2>"$TMP/$name.err" &
  PIDS+=($!)
  local ready=""
  read -r -t 20 ready <"$TMP/$name.ready"
  if [ "$ready" != READY ]; then
    echo "FAIL fake daemon $name did not start: $(cat "$TMP/$name.err")"
    echo "$PASSED passed, $((FAILED + 1)) failed"
    exit 1
  fi
}

# run ARGS…: runs icectl on the main fake (stdin from $STDIN, default /dev/null); sets RC, OUT, ERR.
STDIN=/dev/null
run() {
  "$ICECTL" "$@" <"$STDIN" >"$TMP/out" 2>"$TMP/err"
  RC=$?
  OUT=$(cat "$TMP/out"; echo x)
  OUT=${OUT%x}
  ERR=$(cat "$TMP/err"; echo x)
  ERR=${ERR%x}
}
ice() { run --socket "$SOCK" "$@"; }

# expect NAME RC [STDOUT]: the last run exited RC (and printed exactly STDOUT, when given);
# RC 0 also needs an empty stderr; RC != 0 needs exactly one "icectl: error:" line (for 1 and 3).
expect() {
  local name=$1 rc=$2
  local why=()
  [ "$RC" = "$rc" ] || why+=("exit code $RC, expected $rc")
  if [ $# -ge 3 ] && [ "$OUT" != "$3" ]; then
    why+=("stdout: $(printf '%q' "$OUT")" "expected: $(printf '%q' "$3")")
  fi
  if [ "$rc" = 0 ] && [ -n "$ERR" ]; then why+=("stderr: $ERR"); fi
  if [ "$rc" = 1 ] || [ "$rc" = 3 ]; then
    if [ "$(printf '%s' "$ERR" | grep -c '')" != 1 ] || [[ "$ERR" != "icectl: error: "* ]]; then
      why+=("stderr is not one 'icectl: error:' line: $(printf '%q' "$ERR")")
    fi
  fi
  if [ ${#why[@]} -eq 0 ]; then pass "$name"; else fail "$name" "${why[@]}"; fi
}

# expect_err NAME TEXT: the last run's stderr is exactly TEXT (plus newline).
expect_err() {
  if [ "$ERR" = "$2"$'\n' ]; then pass "$1"; else fail "$1" "stderr: $(printf '%q' "$ERR")"; fi
}

# expect_json NAME PYEXPR: stdout is exactly one JSON document d for which PYEXPR holds.
expect_json() {
  if printf '%s' "$OUT" | "$PY" -c '
import json, sys
d = json.loads(sys.stdin.read())
sys.exit(0 if eval(sys.argv[1]) else 1)' "$2" 2>/dev/null; then
    pass "$1"
  else
    fail "$1" "stdout: $OUT"
  fi
}

# last_request PYEXPR: the fake's last logged request r satisfies PYEXPR.
last_request() {
  local name=$1 expr=$2
  if grep -v '^VIOLATION ' "$LOG" | tail -n 1 | "$PY" -c '
import json, sys
r = json.loads(sys.stdin.read())
a = r.get("args", {})
sys.exit(0 if eval(sys.argv[1]) else 1)' "$expr" 2>/dev/null; then
    pass "$name"
  else
    fail "$name" "last request: $(grep -v '^VIOLATION ' "$LOG" | tail -n 1 | cut -c1-300)"
  fi
}

requests() { grep -vc '^VIOLATION ' "$LOG"; }

start_fake main
start_fake empty --empty
SOCK=$TMP/main.sock
LOG=$TMP/main.log

# --- mapped devices -------------------------------------------------------------------------
ice ls
expect "ls prints dmsetup's layout" 0 $'crypt0\t(253:1)\nlin0\t(253:0)\n'
last_request "ls sends the ls verb with no args" 'r["verb"] == "ls" and a == {} and r["v"] == 1'
last_request "the daemon may wait 29 s of the default 30 (hardening 3)" 'r["timeout_ms"] == 29000'
ice --timeout 2 ls
last_request "--timeout 2 lets the daemon wait 1.8 s (hardening 3)" 'r["timeout_ms"] == 1800'
ice --json ls
expect "ls --json exits 0" 0
expect_json "ls --json prints the result" '[x["name"] for x in d["devices"]] == ["crypt0", "lin0"]'
run --socket "$TMP/empty.sock" ls
expect "ls with no devices" 0 $'No devices found\n'

INFO_LIN0=$'Name:              lin0
State:             ACTIVE
Read Ahead:        256
Tables present:    LIVE
Open count:        0
Event number:      0
Major, minor:      253, 0
Number of targets: 1
Size:              1073741824 bytes (2097152 sectors)
Crypto capabilities: aes-256-xts:512,4096 dun_bytes=8 keys=raw

'
ice info lin0
expect "info prints dmsetup's layout and ice's lines" 0 "$INFO_LIN0"
ice info lin0 --json
expect "info --json (option after the verb) exits 0" 0
expect_json "info --json prints the Info object" 'd["major"] == 253 and d["minor"] == 0 and d["name"] == "lin0"'
ice info hw0
expect "info of a hardware device" 0
ice info missing
expect "info of an unknown device exits 1" 1 ""
expect_err "info of an unknown device prints the daemon's message" "icectl: error: no device named 'missing'"
ice --json info missing
expect "--json error prints nothing on stdout" 1 ""

ice create new0 --table "0 2048 zero"
expect "create with --table" 0 ""
last_request "create sends the table line" 'r["verb"] == "create" and a == {"name": "new0", "table": ["0 2048 zero"]}'
ice create new1
expect "create without a table" 0 ""
last_request "create without a table sends an empty table" 'a == {"name": "new1", "table": []}'
ice --json create new1b
expect "create --json prints {}" 0 $'{}\n'
printf '# two targets\n0 2048 linear hw0 0\n\n  2048 2048 zero  # tail\n' >"$TMP/table"
ice create new2 --table-file "$TMP/table"
expect "create with --table-file" 0 ""
last_request "--table-file skips comments and blank lines" 'a["table"] == ["0 2048 linear hw0 0", "2048 2048 zero"]'
STDIN=$TMP/table ice create new3 --table-file -
expect "create with --table-file - (stdin)" 0 ""
last_request "the table from stdin is sent" 'a == {"name": "new3", "table": ["0 2048 linear hw0 0", "2048 2048 zero"]}'
ice create lin0 --table "0 8 zero"
expect "create of an existing device exits 1" 1 ""
expect_err "create refusal message" "icectl: error: device 'lin0' already exists"
ice load lin0 --table "0 2048 zero" --table "2048 8 error"
expect "load with two --table lines" 0 ""
last_request "load sends both lines" 'r["verb"] == "load" and a == {"name": "lin0", "table": ["0 2048 zero", "2048 8 error"]}'
before=$(requests)
ice load lin0
expect "load without a table is a usage error" 2 ""
check "a usage error sends nothing" [ "$(requests)" = "$before" ]
ice create new4 --table "0 8 zero" --table-file "$TMP/table"
expect "--table with --table-file is a usage error" 2 ""
# Hardening 9: a key in hex on the command line is refused (it is in every user's ps), and a table
# file holding one must be private, as a key file.
TABLE_KEY=$(printf 'ab%.0s' {1..64})
before=$(requests)
ice create dk0 --table "0 8 default-key aes-xts-plain64 $TABLE_KEY 0 hw0 0"
expect "hardening 9: --table with a hex key is refused" 1 ""
check "hardening 9: the refusal points to --table-file and the keyring form" \
  contains "$ERR" "--table-file (mode 0600, or - for stdin), or name a key of the daemon's registry as :<size>:logon:<name>"
check "hardening 9: the refusal does not echo the key" [ "${ERR/$TABLE_KEY/}" = "$ERR" ]
ice load lin0 --table "0 8 zero" --table "8 8 default-key $TABLE_KEY aes-xts-plain64 0 hw0 0"
expect "hardening 9: a hex key shifted into another field is refused too" 1 ""
check "hardening 9: a refused --table is never sent" [ "$(requests)" = "$before" ]
ice create dk1 --table "0 8 default-key aes-xts-plain64 :64:logon:k 0 hw0 0"
expect "hardening 9: a keyring-form key on the command line is fine" 0 ""
echo "0 8 default-key aes-xts-plain64 $TABLE_KEY 0 hw0 0" >"$TMP/dk.table"
chmod 644 "$TMP/dk.table"
before=$(requests)
ice create dk2 --table-file "$TMP/dk.table"
expect "hardening 9: a table file with a key, mode 0644, is refused" 1 ""
expect_err "hardening 9: the table file refusal says why and how to fix it" "icectl: error: table file $TMP/dk.table has mode 0644 and holds a key in hex: it must not be accessible by group or others (chmod 600 $TMP/dk.table), or name a key of the daemon's registry as :<size>:logon:<name>"
check "hardening 9: a refused table file is never sent" [ "$(requests)" = "$before" ]
chmod 600 "$TMP/dk.table"
ice create dk2 --table-file "$TMP/dk.table"
expect "hardening 9: a private table file with a key is sent" 0 ""
last_request "hardening 9: the private table file's line is sent" "a == {'name': 'dk2', 'table': ['0 8 default-key aes-xts-plain64 $TABLE_KEY 0 hw0 0']}"
# Hardening 10: a table whose flakey corrupts writes succeeds with a warning on stderr, exit 0.
ice create fl9 --table "0 2048 flakey hw0 0 0 1 5 corrupt_bio_byte 1 w 0 0"
if [ "$RC" = 0 ] && [ -z "$OUT" ] && [[ $ERR == "icectl: warning: flakey at sector 0: corrupted writes go out from a copy without the crypto context"*$'\n' ]] &&
  [ "$(printf '%s' "$ERR" | grep -c '')" = 1 ]; then
  pass "hardening 10: create prints the daemon's warning on stderr and exits 0"
else
  fail "hardening 10: create prints the daemon's warning on stderr and exits 0" "rc $RC" "stdout: $OUT" "stderr: $ERR"
fi
ice --json load lin0 --table "0 2048 flakey hw0 0 0 1 2 random_write_corrupt 5"
expect_json "hardening 10: load --json holds the warnings" 'd["warnings"][0].startswith("flakey at sector 0: ")'
check "hardening 10: load --json also says it on stderr" starts_with "$ERR" "icectl: warning: flakey at sector 0:"
ice load lin0 --table "0 2048 flakey hw0 0 0 1 5 corrupt_bio_byte 1 r 0 0"
expect "hardening 10: no warning without write corruption" 0 ""
ice create x-badwarn --table "0 8 zero"
expect "hardening 10: warnings that are not a list of strings are a malformed reply" 3 ""
for verb in clear suspend resume remove; do
  ice "$verb" lin0
  expect "$verb exits 0 silently" 0 ""
  last_request "$verb sends its verb and name" "r['verb'] == '$verb' and a == {'name': 'lin0'}"
done
ice remove busy0
expect "remove of an open device exits 1" 1 ""
expect_err "remove refusal message" "icectl: error: device 'busy0' is open by 2 connection(s)"

ice table lin0
expect "table prints the lines" 0 $'0 1048576 linear hw0 0\n1048576 1048576 zero\n'
last_request "table sends no inactive flag by default" 'a == {"name": "lin0"}'
ice table lin0 --inactive
expect "table --inactive of an empty slot prints nothing" 0 ""
last_request "table --inactive sends inactive: true" 'a == {"name": "lin0", "inactive": True}'
ice --json table crypt0
expect_json "table --json" 'd["lines"][0].startswith("0 2097152 default-key")'
ice status lin0
expect "status prints the lines" 0 $'0 1048576 linear \n1048576 1048576 zero \n'

ice message dust0 0 countbadblocks
expect "message prints the reply" 0 $'countbadblocks: 0 badblock(s) found\n'
last_request "message sends sector and words" 'r["verb"] == "message" and a == {"name": "dust0", "sector": 0, "words": ["countbadblocks"]}'
ice message dust0 8 addbadblock 5 wr_fail_cnt 3
expect "message with an empty reply prints nothing" 0 ""
last_request "message words in order" 'a["sector"] == 8 and a["words"] == ["addbadblock", "5", "wr_fail_cnt", "3"]'
ice message dust0 0 listbadblocks
expect "message reply with its own newline" 0 $'1\n5\n'
ice message dust0 0
expect "message without words is a usage error" 2 ""

# --- keys (P4) ------------------------------------------------------------------------------
KEY_HEX=$("$PY" -c 'import os; print(os.urandom(64).hex())')
"$PY" -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.argv[1]))' "$KEY_HEX" >"$TMP/key"
chmod 600 "$TMP/key"
key_secret_absent() {
  # Neither the hex form, nor a long run of it, nor the raw bytes appear in icectl's output.
  if grep -qiF "${KEY_HEX:0:32}" "$TMP/out" "$TMP/err" || grep -qF -f <(printf '%s' "${KEY_HEX:40:24}") "$TMP/out" "$TMP/err" ||
    "$PY" -c 'import sys; k = open(sys.argv[1], "rb").read(); sys.exit(0 if any(k[i:i+16] in open(f, "rb").read() for f in sys.argv[2:] for i in range(0, 48, 16)) else 1)' "$TMP/key" "$TMP/out" "$TMP/err"; then
    fail "$1"
  else
    pass "$1"
  fi
}
ice key add k1 --mode aes-256-xts --data-unit-size 4096 --key-file "$TMP/key"
expect "key add from a file" 0 ""
last_request "key add sends the raw key as key_hex" "r['verb'] == 'key.add' and a == {'name': 'k1', 'mode': 'aes-256-xts', 'data_unit_size': 4096, 'key_hex': '$KEY_HEX'}"
key_secret_absent "key add from a file prints no key bytes"
STDIN=$TMP/key ice key add k2 --mode aes-256-xts --data-unit-size 512 --dun-bytes 4 --key-file -
expect "key add from stdin" 0 ""
last_request "key add from stdin sends the key and dun_bytes" "a == {'name': 'k2', 'mode': 'aes-256-xts', 'data_unit_size': 512, 'dun_bytes': 4, 'key_hex': '$KEY_HEX'}"
key_secret_absent "key add from stdin prints no key bytes"
STDIN=$TMP/key ice --json key add k3 --mode aes-256-xts --data-unit-size 4096 --key-file -
expect "key add --json prints {}" 0 $'{}\n'
key_secret_absent "key add --json prints no key bytes"
cp "$TMP/key" "$TMP/key644"
chmod 644 "$TMP/key644"
before=$(requests)
ice key add k4 --mode aes-256-xts --data-unit-size 4096 --key-file "$TMP/key644"
expect "key file with mode 0644 is refused" 1 ""
expect_err "the refusal says why and how to fix it" "icectl: error: key file $TMP/key644 has mode 0644: it must not be accessible by group or others (chmod 600 $TMP/key644)"
check "a refused key file is never sent" [ "$(requests)" = "$before" ]
key_secret_absent "a refused key file prints no key bytes"
head -c 16 "$TMP/key" >"$TMP/key16"
chmod 600 "$TMP/key16"
ice key add k5 --mode aes-256-xts --data-unit-size 4096 --key-file "$TMP/key16"
expect "a key of the wrong length is refused by the daemon" 1 ""
expect_err "wrong-length refusal message" "icectl: error: key 'k5': aes-256-xts takes a 64-byte key, not 16 bytes"
ice key add k6 --mode aes-256-xts --data-unit-size 4096 --key-file "$TMP/nokey"
expect "a missing key file is refused" 1 ""
ice key add k7 --mode aes-256-xts --data-unit-size 4096
expect "key add without --key-file is a usage error" 2 ""
ice key rm demo
expect "key rm" 0 ""
last_request "key rm sends key.rm" 'r["verb"] == "key.rm" and a == {"name": "demo"}'
ice key rm inuse
expect "key rm of a used key exits 1" 1 ""
ice key ls
expect "key ls prints an aligned table" 0 'NAME   MODE               DATA_UNIT_SIZE  DUN_BYTES  USERS
demo   aes-256-xts        4096            8          1
inuse  aes-128-cbc-essiv  4096            8          2
'
ice --json key ls
expect_json "key ls --json" '[k["name"] for k in d["keys"]] == ["demo", "inuse"] and "key_hex" not in json.dumps(d)'
run --socket "$TMP/empty.sock" key ls
expect "key ls with no keys" 0 $'No keys found\n'

# --- hardware -------------------------------------------------------------------------------
ice hw ls
expect "hw ls prints an aligned table" 0 'NAME  SIZE        KEYSLOTS  IN_USE  BACKING  CAPABILITIES
hw0   1073741824  4         1       memory   aes-256-xts:512,4096 aes-128-cbc-essiv:4096 dun_bytes=8 keys=raw
'
ice hw info hw0
expect "hw info prints slots, then counters in the protocol's order" 0 'Name:              hw0
Size:              1073741824 bytes (2097152 sectors)
Backing:           memory
Keyslots:          4
Crypto capabilities: aes-256-xts:512,4096 aes-128-cbc-essiv:4096 dun_bytes=8 keys=raw

SLOT  KEY   REFS
0     demo  1
1     -     0
2     -     0
3     -     0

COUNTER                VALUE
slot_programs          1
slot_program_failures  0
slot_evictions         0
slot_hits              41
slot_waits             0
resets                 0
fallback_ios           0
reads                  30
writes                 12
flushes                2
zeroes                 0
discards               0
read_bytes             122880
write_bytes            49152
errors                 0
'
ice --json hw info hw0
expect_json "hw info --json keeps the counters as sent" 'd["counters"]["slot_hits"] == 41 and list(d["counters"]) == sorted(d["counters"])'
ice hw info nohw
expect "hw info of an unknown device exits 1" 1 ""
ice hw reset hw0
expect "hw reset" 0 ""
last_request "hw reset sends hw.reset" 'r["verb"] == "hw.reset" and a == {"name": "hw0"}'
ice hw fault hw0 --fail-programs 2 --program-latency-ms 30
expect "hw fault" 0 ""
last_request "hw fault sends only the faults given" 'r["verb"] == "hw.fault" and a == {"name": "hw0", "fail_programs": 2, "program_latency_ms": 30}'
ice hw fault hw0 --fail-evictions 1
last_request "hw fault --fail-evictions" 'a == {"name": "hw0", "fail_evictions": 1}'
ice hw fault hw0
expect "hw fault without a fault is a usage error" 2 ""
run --socket "$TMP/empty.sock" hw ls
expect "hw ls with no hardware" 0 $'No hardware found\n'

# --- metrics, exports, version --------------------------------------------------------------
ice metrics
expect "metrics prints the text as is" 0 '# HELP ice_slot_programs_total Keyslot programs.
# TYPE ice_slot_programs_total counter
ice_slot_programs_total{hardware="hw0"} 1
'
ice --json metrics
expect_json "metrics --json" 'd["text"].startswith("# HELP")'
ice export check lin0@demo
expect "export check of a good export" 0 'Export:            lin0@demo
Size:              1073741824 bytes (2097152 sectors)
Block size:        4096
'
last_request "export check sends export.check" 'r["verb"] == "export.check" and a == {"export": "lin0@demo"}'
ice export check lin0@nokey
expect "export check of an unknown key exits 1" 1 ""
expect_err "export check says why" "icectl: error: no key named 'nokey'"
ice version
expect "version" 0 $'ice daemon 0.1.0 (control protocol 1)\n'
# Issue 18: one version, CMake's project(VERSION), in icectl, the daemon and the plugin.
VERSION=$(sed -n 's/^project(ice .*VERSION \([0-9][0-9.]*\)).*/\1/p' "$ROOT/CMakeLists.txt")
run --version
expect "--version prints icectl and CMake's project version" 0 "icectl $VERSION"$'\n'
literals=$(grep -rnE --include='*.cc' --include='*.h' '"[0-9]+\.[0-9]+\.[0-9]+"' \
  "$ROOT/cli" "$ROOT/daemon" "$ROOT/plugins" "$ROOT/config" 2>/dev/null)
check "no C++ source spells a version (it comes from ice_version.h)" [ -z "$literals" ]
[ -z "$literals" ] || echo "     $literals"

# --- socket selection and connection failures -----------------------------------------------
ICE_SOCKET=$SOCK run ls
expect "ICE_SOCKET is used without --socket" 0
ICE_SOCKET=$TMP/none.sock run --socket "$SOCK" ls
expect "--socket wins over ICE_SOCKET" 0
ICE_SOCKET=$SOCK run --socket "$TMP/none.sock" ls
expect "--socket to nowhere exits 3" 3 ""
expect_err "cannot connect names the socket and the reason" "icectl: error: cannot connect to $TMP/none.sock: No such file or directory"
ICE_SOCKET=$TMP/none.sock run --json ls
expect "ICE_SOCKET to nowhere exits 3, nothing on stdout" 3 ""
if [ -e /run/ice/control.sock ]; then
  echo "SKIP default socket /run/ice/control.sock exists on this machine"
else
  run ls
  expect "the default socket is /run/ice/control.sock" 3 ""
  expect_err "default socket message" "icectl: error: cannot connect to /run/ice/control.sock: No such file or directory"
fi

# --- usage errors ---------------------------------------------------------------------------
for args in "" "frobnicate" "info" "info a b" "key" "hw fault" "--timeout 0 ls" "ls --bogus"; do
  # shellcheck disable=SC2086 # word splitting is the point
  ice $args
  expect "usage error exits 2: icectl ${args:-(nothing)}" 2 ""
done
ice --help
expect "--help exits 0" 0
check "--help prints usage on stdout" contains "$OUT" "Usage: icectl"

# --- malformed replies: exit 3 --------------------------------------------------------------
for name in x-garbage x-close x-huge x-badshape x-badid; do
  ice info "$name"
  expect "reply $name exits 3" 3 ""
  ice --json info "$name"
  expect "reply $name with --json exits 3, nothing on stdout" 3 ""
done
ice info x-garbage
expect_err "a non-JSON reply is named as such" "icectl: error: malformed reply from $SOCK: the reply is not JSON"
ice info x-badshape
check "a reply without required fields names the field" \
  starts_with "$ERR" "icectl: error: malformed reply from $SOCK to info: field \"state\" is missing"
ice --timeout 0.3 info x-hang
expect "a daemon that never replies times out with exit 3" 3 ""
expect_err "the timeout names the socket" "icectl: error: no reply from $SOCK within 300 ms"
ice info x-multiline
expect "a multi-line error message is printed as one line" 1 ""
expect_err "the lines are joined" "icectl: error: first line second line"

# --- the fake saw nothing outside the protocol ----------------------------------------------
violations=$(grep -c '^VIOLATION ' "$LOG" "$TMP/empty.log" | awk -F: '{s += $2} END {print s}')
if [ "$violations" = 0 ]; then
  pass "every request icectl sent has the protocol's shape"
else
  fail "every request icectl sent has the protocol's shape" "$(grep -h '^VIOLATION ' "$LOG" "$TMP/empty.log")"
fi

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
