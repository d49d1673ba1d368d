#!/usr/bin/env bash
# Issue 18: the Debian package `./dev deb` builds (CPack) installs into a clean root and works from
# there: its dependencies are what its binaries link (and nbdkit), its files are where nbdkit,
# systemd, man and bash-completion look, `nbdkit ice` finds the plugin by name, serves the
# packaged example configuration, and icectl, the man pages and the completion work.
#
# No container: `dpkg --root` into a temporary folder; nbdkit finds the packaged plugin by name in
# a private mount namespace where the package's plugin folder is bound over nbdkit's (unshare -m).
# Everything it starts is stopped by PID; the folder is removed.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${ICE_BUILD:?ICE_BUILD is set by run.sh}
VERSION=$(sed -n 's/^project(ice .*VERSION \([0-9][0-9.]*\)).*/\1/p' CMakeLists.txt)
PLUGINDIR=$(pkg-config --variable=plugindir nbdkit)
TMP=$(mktemp -d /tmp/ice-deb-test.XXXXXX)
R=$TMP/root
PIDS=()
# stop PID: SIGTERM, SIGKILL after 20 s, then reaped (an exited child stays a zombie till then).
stop() {
  kill "$1" 2>/dev/null || return 0
  local i
  for i in $(seq 200); do
    case $(ps -o stat= -p "$1") in Z* | "") break ;; esac
    sleep 0.1
  done
  kill -9 "$1" 2>/dev/null
  wait "$1" 2>/dev/null
}
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do stop "$pid"; done
  rm -rf "$TMP"
}
trap cleanup EXIT

pass=0 fail=0
check() {
  if [ "$2" = 0 ]; then pass=$((pass + 1)); echo "PASS deb: $1"
  else fail=$((fail + 1)); echo "FAIL deb: $1${3:+ — $3}"; fi
}
finish() { echo "deb: $pass passed, $fail failed"; [ $fail = 0 ]; exit; }

# --- the package ---------------------------------------------------------------------------------
out=$(cpack --config "$BUILD/CPackConfig.cmake" -G DEB -B "$TMP/pkg" 2>&1)
debs=("$TMP"/pkg/*.deb)
[ ${#debs[@]} = 1 ] && [ -f "${debs[0]}" ]
check "cpack (./dev deb) builds one package" $? "$out"
[ -f "${debs[0]}" ] || finish
DEB=${debs[0]}
[ "$(basename "$DEB")" = "ice_${VERSION}_amd64.deb" ]
check "it is ice_${VERSION}_amd64.deb (CMake's project version)" $? "$(basename "$DEB")"

field() { dpkg-deb -f "$DEB" "$1"; }
[ "$(field Package)" = ice ] && [ "$(field Version)" = "$VERSION" ] && [ "$(field Architecture)" = amd64 ]
check "control: Package ice, Version $VERSION, Architecture amd64" $?
DEPENDS=$(field Depends)
depends_on() { [[ ", $DEPENDS," == *", $1 "* || ", $DEPENDS," == *", $1,"* ]]; }
depends_on nbdkit
check "Depends names nbdkit, which loads the plugin (dpkg-shlibdeps cannot see it)" $? "$DEPENDS"

# --- its files -----------------------------------------------------------------------------------
files=$(dpkg-deb -c "$DEB" | awk '$1 !~ /^d/ {print $6}' | sed 's|^\./|/|' | sort)
want=(
  "$PLUGINDIR/nbdkit-ice-plugin.so" /usr/bin/icectl
  /usr/lib/systemd/system/ice.service /usr/lib/systemd/system/ice.socket /usr/lib/tmpfiles.d/ice.conf
  /usr/share/man/man1/icectl.1.gz /usr/share/man/man1/nbdkit-ice-plugin.1.gz
  /usr/share/man/man5/ice.toml.5.gz /usr/share/bash-completion/completions/icectl
  /usr/share/doc/ice/README.md /usr/share/doc/ice/examples/demo.toml
)
missing=()
for f in "${want[@]}"; do grep -qxF "$f" <<<"$files" || missing+=("$f"); done
[ ${#missing[@]} = 0 ]
check "the file list has the plugin in nbdkit's plugindir, icectl, units, tmpfiles, man pages, completion, docs" $? "missing: ${missing[*]}"
stray=$(grep -vE "^($PLUGINDIR/nbdkit-ice-plugin\.so|/usr/bin/icectl|/usr/lib/systemd/system/ice\.(service|socket)|/usr/lib/tmpfiles\.d/ice\.conf|/usr/share/man/man[15]/[^/]+\.gz|/usr/share/bash-completion/completions/icectl|/usr/share/doc/ice/.+)$" <<<"$files")
[ -z "$stray" ]
check "and nothing else (no test binaries, headers or static libraries)" $? "$stray"
modes=$(dpkg-deb -c "$DEB" | awk '$1 !~ /^d/ && $2 != "root/root" {print "owner " $2 " " $6}
  $6 ~ /nbdkit-ice-plugin.so$/ && $1 != "-rw-r--r--" {print $1 " " $6}
  $6 ~ /bin\/icectl$/ && $1 != "-rwxr-xr-x" {print $1 " " $6}')
[ -z "$modes" ]
check "files are root's; the plugin 0644 (as nbdkit's own), icectl 0755" $? "$modes"

# --- installed into a clean root ------------------------------------------------------------------
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/var/lib/dpkg/triggers"
touch "$R/var/lib/dpkg/status" "$R/var/lib/dpkg/available"
out=$(dpkg --root="$R" --force-depends -i "$DEB" 2>&1)
[ "$(dpkg-query --admindir="$R/var/lib/dpkg" -W -f='${Status}' ice 2>/dev/null)" = "install ok installed" ]
check "dpkg --root installs it into an empty root" $? "$out"
out=$(dpkg --root="$R" --verify ice 2>&1)
[ -z "$out" ]
check "dpkg --verify: every installed file matches the package's md5sums" $? "$out"

# Every library the binaries link is a package they depend on, and each is installed here.
libs_ok=0 why=""
for bin in "$R$PLUGINDIR/nbdkit-ice-plugin.so" "$R/usr/bin/icectl"; do
  missing_libs=$(ldd "$bin" | grep "not found")
  [ -z "$missing_libs" ] || { libs_ok=1; why+="$missing_libs "; }
  for lib in $(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    # "libx.so.1 => /path (0x…)", or "/lib64/ld-linux-x86-64.so.2 (0x…)" for the loader.
    path=$(ldd "$bin" | awk -v l="$lib" '$1 == l {print $3} $1 ~ "/" l "$" {print $1}' | head -1)
    pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -1 | cut -d: -f1)
    [ -z "$pkg" ] && pkg=$(dpkg -S "$path" 2>/dev/null | head -1 | cut -d: -f1)
    provided=$(dpkg-query -W -f='${Provides}' "$pkg" 2>/dev/null | tr ',' '\n' | sed 's/(.*)//' | tr -d ' ')
    found=1
    for p in "$pkg" $provided; do depends_on "$p" && found=0; done
    if [ -z "$pkg" ] || [ $found != 0 ]; then libs_ok=1; why+="$lib ($pkg) "; fi
  done
done
check "every library the binaries link (readelf NEEDED) is in Depends, and ldd finds all" $libs_ok "$why; Depends: $DEPENDS"
not_installed=""
provides=$(dpkg-query -W -f='${db:Status-Status} ${Provides}\n' 2>/dev/null)
for dep in $(tr ',' '\n' <<<"$DEPENDS" | sed 's/(.*)//; s/|.*//' | tr -d ' '); do
  [ "$(dpkg-query -W -f='${Status}' "$dep" 2>/dev/null)" = "install ok installed" ] && continue
  # A virtual package (libspdlog1.10-fmt9) is provided by an installed one.
  grep -qE "^installed (.*[ ,])?$dep( |,|$)" <<<"$provides" || not_installed+="$dep "
done
[ -z "$not_installed" ]
check "every dependency is a Debian 12 package installed (or provided) on this machine" $? "$not_installed"

# systemd's own checks, with the package's man pages for Documentation=.
out=$(cd "$R/usr/lib/systemd/system" && MANPATH=$R/usr/share/man systemd-analyze verify ice.service ice.socket 2>&1)
[ $? = 0 ] && [ -z "$out" ]
check "systemd-analyze verify of the installed units is clean (their man: pages are packaged)" $? "$out"
grep -qx "ExecStart=/usr/bin/nbdkit -f ice config=/etc/ice/ice.toml" "$R/usr/lib/systemd/system/ice.service"
check "ice.service runs 'nbdkit -f ice config=/etc/ice/ice.toml'" $? "$(grep ExecStart "$R/usr/lib/systemd/system/ice.service")"

man_ok=0 why=""
for page in "$R"/usr/share/man/man*/*.gz; do
  warnings=$(MANWIDTH=100 man --warnings -l "$page" 2>&1 >/dev/null)
  text=$(MANWIDTH=100 man -l "$page" 2>/dev/null)
  grep -q "^NAME" <<<"$text" || { man_ok=1; why+="$page has no NAME "; }
  [ -z "$warnings" ] || { man_ok=1; why+="$page: $warnings "; }
done
check "the man pages render without warnings" $man_ok "$why"

# --- nbdkit ice, from the package ----------------------------------------------------------------
# The package's plugin folder bound over nbdkit's, in a private mount namespace: `nbdkit ice`
# resolves the name as it would on a machine with the package installed.
by_name=0
unshare --mount --propagation private true 2>/dev/null || by_name=1
in_package() {
  if [ $by_name = 0 ]; then
    unshare --mount --propagation private sh -c 'mount --bind "$1" "$2" && shift 2 && exec "$@"' \
      sh "$R$PLUGINDIR" "$PLUGINDIR" "$@"
  else
    local args=() a
    for a in "$@"; do [ "$a" = ice ] && a=$R$PLUGINDIR/nbdkit-ice-plugin.so; args+=("$a"); done
    "${args[@]}"
  fi
}
[ $by_name = 0 ] || echo "SKIP deb: no mount namespace (unshare -m): the plugin is named by its path"
dump=$(in_package nbdkit ice --dump-plugin 2>&1)
grep -qx "path=$PLUGINDIR/nbdkit-ice-plugin.so" <<<"$dump" && grep -qx "name=ice" <<<"$dump" &&
  grep -qx "version=$VERSION" <<<"$dump"
check "nbdkit ice --dump-plugin finds the packaged plugin by name: name=ice, version=$VERSION" $? "$dump"

# The packaged example, with its sockets and key in this test's folder, and metrics on a socket.
RUN=$TMP/run
mkdir -m 0700 "$RUN"
sed "s|/run/ice|$RUN|g; s|^default_export = .*|&\nmetrics_listen = \"$RUN/metrics.sock\"|" \
  "$R/usr/share/doc/ice/examples/demo.toml" >"$TMP/ice.toml"
in_package nbdkit -f -U "$RUN/nbd.sock" ice config="$TMP/ice.toml" >"$TMP/nbdkit.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do
  [ -S "$RUN/nbd.sock" ] && [ -S "$RUN/control.sock" ] && [ -S "$RUN/metrics.sock" ] && break
  kill -0 "${PIDS[-1]}" 2>/dev/null || break
  sleep 0.1
done
[ -S "$RUN/nbd.sock" ] && [ -S "$RUN/control.sock" ]
check "nbdkit ice config=FILE serves the packaged demo.toml" $? "$(tail -5 "$TMP/nbdkit.log")"
list=$(nbdinfo --list --json "nbd+unix:///?socket=$RUN/nbd.sock" 2>&1)
/usr/bin/python3 -c 'import json, sys; sys.exit(sorted(e["export-name"] for e in json.loads(sys.argv[1])["exports"]) != ["dk0", "hw0", "hw1", "lin0"])' "$list"
check "nbdinfo --list shows its exports: hw0 hw1 lin0 dk0" $? "$list"
out=$(/usr/bin/python3 - "$RUN/nbd.sock" <<'EOF' 2>&1
import sys, nbd
h = nbd.NBD()
h.set_export_name("lin0@demo")
h.connect_unix(sys.argv[1])
data = bytes(range(256)) * 16
h.pwrite(data, 1 << 20)
h.flush()
assert h.pread(4096, 1 << 20) == data, "read back differs"
raw = nbd.NBD()
raw.set_export_name("lin0")
raw.connect_unix(sys.argv[1])
assert raw.pread(4096, 1 << 20) != data, "stored in plaintext"
print("ok")
EOF
)
[ "$out" = ok ]
check "lin0@demo reads back what it wrote, and lin0 holds it encrypted" $? "$out"

ICECTL=$R/usr/bin/icectl
[ "$("$ICECTL" --version)" = "icectl $VERSION" ]
check "the packaged icectl --version says $VERSION" $?
out=$("$ICECTL" --socket "$RUN/control.sock" --json hw ls 2>&1)
/usr/bin/python3 -c 'import json, sys; d = json.loads(sys.argv[1]); sys.exit(d["daemon"]["version"] != sys.argv[2] or [h["name"] for h in d["hardware"]] != ["hw0", "hw1"])' "$out" "$VERSION"
check "icectl hw ls --json: the daemon's version is $VERSION, hardware hw0 hw1" $? "$out"
code=$(curl -sS --max-time 10 --unix-socket "$RUN/metrics.sock" -o "$TMP/metrics" -w '%{http_code}' http://localhost/metrics 2>&1)
[ "$code" = 200 ] && grep -q '^ice_hw_keyslots{hw="hw0"} 4$' "$TMP/metrics"
check "GET /metrics on metrics_listen answers the metrics" $? "$code"

# The packaged completion, against this daemon.
complete_line() {
  bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _icectl; printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " "' \
    sh "$R/usr/share/bash-completion/completions/icectl" "$@"
}
got=$(complete_line "$ICECTL" --socket "$RUN/control.sock" hw info "")
[ "$got" = "hw0 hw1 " ]
check "completion offers the daemon's hardware for 'icectl hw info'" $? "'$got'"
got=$(complete_line "$ICECTL" --socket "$RUN/control.sock" suspend "")
[ "$got" = "dk0 lin0 " ]
check "completion offers the daemon's mapped devices for 'icectl suspend'" $? "'$got'"

stop "${PIDS[-1]}"
[ ! -e "$RUN/control.sock" ] && [ ! -e "$RUN/metrics.sock" ]
check "SIGTERM stops it, removing its control and metrics sockets" $?

# --- removed -------------------------------------------------------------------------------------
out=$(dpkg --root="$R" -r ice 2>&1)
left=$(find "$R/usr" -type f 2>/dev/null)
[ -z "$left" ]
check "dpkg -r removes every file it installed" $? "$left $out"
finish
