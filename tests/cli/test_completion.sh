#!/usr/bin/env bash
# Issue 18: icectl's bash completion (cli/icectl-completion.bash) offers icectl's own verbs and
# options (checked against `icectl --help` of each verb, so that neither drifts) and the names of
# devices, hardware and keys the daemon lists — here tests/cli/fake_daemon.py — through the
# socket of the command line (--socket P, --socket=P) or $ICE_SOCKET; nothing, and soon, when no
# daemon answers; and it only ever asks (ls, hw.ls, key.ls).
# Usage: tests/cli/test_completion.sh [ICECTL]   (default: $ICECTL, else build/icectl)
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ICECTL=${1:-${ICECTL:-$ROOT/build/icectl}}
COMPLETION=$ROOT/cli/icectl-completion.bash
TMP=$(mktemp -d /tmp/ice-completion-test.XXXXXX)
FAKE_PID=""
trap '[ -n "$FAKE_PID" ] && kill "$FAKE_PID" 2>/dev/null && wait "$FAKE_PID" 2>/dev/null; rm -rf "$TMP"' EXIT
unset ICE_SOCKET

PASSED=0 FAILED=0
expect() {  # expect NAME GOT WANT
  if [ "$2" = "$3" ]; then PASSED=$((PASSED + 1)); echo "PASS $1"
  else FAILED=$((FAILED + 1)); echo "FAIL $1"; echo "     got:  '$2'"; echo "     want: '$3'"; fi
}

mkfifo "$TMP/ready"
/usr/bin/python3 "$ROOT/tests/cli/fake_daemon.py" "$TMP/fake.sock" "$TMP/fake.log" >"$TMP/ready" 2>"$TMP/fake.err" &
FAKE_PID=$!
read -r -t 20 ready <"$TMP/ready"
if [ "${ready:-}" != READY ]; then
  echo "FAIL the fake daemon did not start: $(cat "$TMP/fake.err")"
  echo "0 passed, 1 failed"
  exit 1
fi
S=$TMP/fake.sock

# shellcheck source=/dev/null
source "$COMPLETION"
expect "sourcing it registers _icectl for icectl" "$(complete -p icectl)" "complete -F _icectl icectl"

# comp WORD…: the completions (sorted, one space after each) of the last word, which is being typed.
comp() {
  COMP_WORDS=("$ICECTL" "$@")
  COMP_CWORD=$#
  COMPREPLY=()
  _icectl
  printf '%s\n' "${COMPREPLY[@]}" | sed '/^$/d' | sort | tr '\n' ' '
}
# help_words ARGS…: what `icectl ARGS… --help` lists under Subcommands, or its options.
subcommands() { "$ICECTL" "$@" --help | sed -n '/^Subcommands:/,$s/^  \([a-z][a-z.-]*\) .*/\1/p' | sort | tr '\n' ' '; }
options() { "$ICECTL" "$@" --help | grep -oE -- '--[a-z][a-z-]*' | grep -vx -- '--help' | sort -u; }

# --- verbs and options, as icectl has them -------------------------------------------------------
expect "the verbs are icectl's" "$(comp "")" "$(subcommands)"
expect "a verb's prefix" "$(comp h)" "hw "
for group in key hw export; do
  expect "'$group' sub-verbs are icectl's" "$(comp "$group" "")" "$(subcommands "$group")"
done
expect "global options" "$(comp --)" "--help --json --socket --timeout --version "
leaves="ls create load clear suspend resume remove table status info message metrics version
        key:add key:rm key:ls hw:ls hw:info hw:reset hw:fault export:check"
for leaf in $leaves; do
  words=(${leaf/:/ })
  offered=$(comp "${words[@]}" -- | tr ' ' '\n' | sed '/^$/d' | sort)
  missing=$(comm -23 <(options "${words[@]}") <(printf '%s\n' "$offered"))
  expect "'${words[*]}': every option icectl takes is offered" "$missing" ""
done
expect "create offers --table and --table-file" "$(comp create new0 --t)" "--table --table-file --timeout "
modes=$("$ICECTL" key add --help | sed -n 's/.*crypto mode (\(.*\)).*/\1/p' | tr -d ',' | tr ' ' '\n' | sort | tr '\n' ' ')
expect "--mode offers icectl's crypto modes" "$(comp key add k1 --mode "")" "$modes"
touch "$TMP/table.txt"
expect "--table-file completes file names" "$(comp create new0 --table-file "$TMP/tab")" "$TMP/table.txt "
expect "--timeout takes a number: nothing offered" "$(comp --timeout "")" ""
expect "no name is offered for a new device" "$(comp --socket "$S" create "")" ""

# --- names, from the daemon ----------------------------------------------------------------------
expect "mapped devices for suspend (icectl ls)" "$(comp --socket "$S" suspend "")" "crypt0 lin0 "
expect "a prefix of a device" "$(comp --socket "$S" table l)" "lin0 "
expect "the option after the verb takes no name" "$(comp --socket "$S" table lin0 "")" ""
expect "info: mapped devices and hardware" "$(comp --socket "$S" info "")" "crypt0 hw0 lin0 "
expect "hw info: hardware (icectl hw ls)" "$(comp --socket "$S" hw info "")" "hw0 "
expect "hw fault: hardware" "$(comp --socket "$S" hw fault "")" "hw0 "
expect "key rm: keys (icectl key ls)" "$(comp --socket "$S" key rm "")" "demo inuse "
expect "no name for a new key" "$(comp --socket "$S" key add "")" ""
expect "export check: devices and hardware" "$(comp --socket "$S" export check "")" "crypt0 hw0 lin0 "
# '@' breaks words in bash: "lin0@" reaches the function as "lin0" "@".
expect "export check NAME@: keys" "$(comp --socket "$S" export check lin0 @)" "demo inuse "
expect "export check NAME@d: keys" "$(comp --socket "$S" export check lin0 @ d)" "demo "
expect "export check with '@' kept in the word" "$(comp --socket "$S" export check lin0@i)" "lin0@inuse "
expect "--socket=PATH (split at '=')" "$(comp --socket = "$S" hw info "")" "hw0 "
expect "options before the verb are skipped" "$(comp --json --timeout 5 --socket "$S" remove "")" "crypt0 lin0 "
export ICE_SOCKET=$S
expect "\$ICE_SOCKET when no --socket" "$(comp key rm "")" "demo inuse "
unset ICE_SOCKET
start=$(date +%s%N)
got=$(comp --socket "$TMP/nobody.sock" suspend "")
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
expect "no daemon: nothing offered" "$got" ""
expect "no daemon: answered within 2 s" "$([ $elapsed_ms -lt 2000 ] && echo yes || echo "$elapsed_ms ms")" yes
asked=$(sed -n 's/.*"verb": *"\([a-z.]*\)".*/\1/p' "$TMP/fake.log" | sort -u | tr '\n' ' ')
expect "completion only lists (ls, hw.ls, key.ls), never changes anything" "$asked" "hw.ls key.ls ls "

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
