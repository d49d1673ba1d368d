#!/usr/bin/env bash
# Issue 18: `cmake --install` (what `./dev install [PREFIX]` runs) puts every file where its
# reader looks: the plugin in nbdkit's plugindir taken relative to the prefix, icectl in bin/,
# the units and tmpfiles, man pages, completion, docs and examples. Under nbdkit's prefix
# (staged with DESTDIR) ice.service runs `nbdkit ice`; under another prefix it names the
# plugin's path, and that plugin loads. (tests/integration/test-deb.sh starts it from the package.)
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${ICE_BUILD:?ICE_BUILD is set by run.sh}
VERSION=$(sed -n 's/^project(ice .*VERSION \([0-9][0-9.]*\)).*/\1/p' CMakeLists.txt)
NBDKIT_PREFIX=$(pkg-config --variable=prefix nbdkit)
PLUGINDIR=$(pkg-config --variable=plugindir nbdkit)
RELDIR=${PLUGINDIR#"$NBDKIT_PREFIX"/}
TMP=$(mktemp -d /tmp/ice-install-test.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

pass=0 fail=0
check() {
  if [ "$2" = 0 ]; then pass=$((pass + 1)); echo "PASS install: $1"
  else fail=$((fail + 1)); echo "FAIL install: $1${3:+ — $3}"; fi
}

# Every file, relative to the prefix.
expected() {
  printf '%s\n' "$RELDIR/nbdkit-ice-plugin.so" bin/icectl lib/systemd/system/ice.service \
    lib/systemd/system/ice.socket lib/tmpfiles.d/ice.conf share/man/man1/icectl.1.gz \
    share/man/man1/nbdkit-ice-plugin.1.gz share/man/man5/ice.toml.5.gz \
    share/bash-completion/completions/icectl share/doc/ice/README.md \
    share/doc/ice/examples/demo.toml
}
have_all() {
  local missing="" f
  for f in $(expected); do [ -f "$1/$f" ] || missing+="$f "; done
  [ -z "$missing" ] || echo "missing: $missing"
  [ -z "$missing" ]
}

# --- another prefix ----------------------------------------------------------------------------
P=$TMP/prefix
out=$(cmake --install "$BUILD" --prefix "$P" 2>&1)
check "cmake --install --prefix PREFIX succeeds" $? "$out"
why=$(have_all "$P")
check "plugin in PREFIX/$RELDIR, icectl, units, tmpfiles, man pages, completion, docs" $? "$why"
exec_line=$(sed -n 's/^ExecStart=//p' "$P/lib/systemd/system/ice.service")
[ "$exec_line" = "/usr/bin/nbdkit -f $P/$RELDIR/nbdkit-ice-plugin.so config=/etc/ice/ice.toml" ]
check "there ice.service names the plugin's path (nbdkit finds names only in $PLUGINDIR)" $? "$exec_line"
out=$(cd "$P/lib/systemd/system" && MANPATH=$P/share/man systemd-analyze verify ice.service ice.socket 2>&1)
[ $? = 0 ] && [ -z "$out" ]
check "systemd-analyze verify of the installed units is clean" $? "$out"
dump=$(nbdkit "$P/$RELDIR/nbdkit-ice-plugin.so" --dump-plugin 2>&1)
grep -qx "name=ice" <<<"$dump" && grep -qx "version=$VERSION" <<<"$dump"
check "nbdkit PREFIX/…/nbdkit-ice-plugin.so --dump-plugin: name=ice, version=$VERSION" $? "$dump"
[ "$("$P/bin/icectl" --version)" = "icectl $VERSION" ]
check "the installed icectl runs" $?

# --- nbdkit's prefix, staged -------------------------------------------------------------------
S=$TMP/stage
out=$(DESTDIR=$S cmake --install "$BUILD" --prefix "$NBDKIT_PREFIX" 2>&1)
check "DESTDIR=… cmake --install --prefix $NBDKIT_PREFIX succeeds" $? "$out"
why=$(have_all "$S$NBDKIT_PREFIX")
check "the plugin lands at DESTDIR$PLUGINDIR, where nbdkit looks for 'ice'" $? "$why"
grep -qx "ExecStart=/usr/bin/nbdkit -f ice config=/etc/ice/ice.toml" "$S$NBDKIT_PREFIX/lib/systemd/system/ice.service"
check "there ice.service runs 'nbdkit -f ice'" $?
cmp -s systemd/ice.service "$S$NBDKIT_PREFIX/lib/systemd/system/ice.service"
check "and is systemd/ice.service as it is in the source" $?

# The default prefix of a fresh build tree is nbdkit's, so that plain `cmake --install` is right.
out=$(cmake -S . -B "$TMP/fresh" -G Ninja -DICE_TESTS=OFF 2>&1)
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$TMP/fresh/CMakeCache.txt" 2>/dev/null)
[ "$prefix" = "$NBDKIT_PREFIX" ]
check "a fresh build tree installs under nbdkit's prefix ($NBDKIT_PREFIX) by default" $? "$prefix $out"

echo "install: $pass passed, $fail failed"
[ $fail = 0 ]
