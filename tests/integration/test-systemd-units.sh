#!/usr/bin/env bash
# systemd/ice.service and ice.socket pass systemd's own checks (unknown keys, a missing ExecStart
# binary, bad values), and the service runs nbdkit in the foreground on the plugin and config
# that systemd/README.md installs.
set -uo pipefail
cd "$(dirname "$0")/../.."
pass=0 fail=0
check() {
  if [ "$2" = 0 ]; then pass=$((pass + 1)); echo "PASS systemd-units: $1"
  else fail=$((fail + 1)); echo "FAIL systemd-units: $1${3:+ — $3}"; fi
}
# Documentation= names man pages: the build's (docs/man, built with pandoc) stand for the installed.
out=$(MANPATH=${ICE_BUILD:-build}/man systemd-analyze verify systemd/ice.service systemd/ice.socket 2>&1)
rc=$?
[ $rc = 0 ] && [ -z "$out" ]; check "systemd-analyze verify is clean (its man: pages exist)" $? "$out"
exec_line=$(sed -n 's/^ExecStart=//p' systemd/ice.service)
set -- $exec_line
[ "$1" = "$(command -v nbdkit)" ]; check "ExecStart runs this system's nbdkit ($1)" $?
[[ " $exec_line " == *" -f "* ]]; check "nbdkit stays in the foreground (-f) for Type=notify" $?
grep -q "^Type=notify" systemd/ice.service; check "readiness by sd_notify (Type=notify)" $?
grep -q "^ListenStream=" systemd/ice.socket; check "ice.socket listens on a stream socket" $?
grep -q "^LimitCORE=0$" systemd/ice.service; check "hardening 7: no core files (LimitCORE=0)" $?
for f in $exec_line; do
  case $f in
    config=*) grep -q "${f#config=}" systemd/README.md; check "README installs the config at ${f#config=}" $? ;;
    # nbdkit finds `ice` as <plugindir>/nbdkit-ice-plugin.so, where the install rules put it
    # (tests/integration/test-install.sh, test-deb.sh).
    ice) grep -q "ICE_NBDKIT_PLUGINDIR nbdkit plugindir" packaging/CMakeLists.txt
      check "the plugin is named 'ice': installed in nbdkit's plugindir" $? ;;
    *.so) check "ExecStart names the plugin 'ice', as installed, not a path" 1 "$f" ;;
  esac
done
echo "systemd-units: $pass passed, $fail failed"
[ $fail = 0 ]
