"""The config contract of DESIGN.md against the real daemon: a bad config stops nbdkit at start
with one line naming the file, line and key; key files must be private; generated keys are; file
paths resolve against the config's folder."""
import os
import stat

from ice_harness import Checks, Daemon, DaemonError, connect, write_key

HW = '[[hardware]]\nname = "hw0"\nbacking = "memory"\nsize = "1M"\n'
XTS_CAP = ('keyslots = 1\n  [[hardware.capability]]\n  mode = "aes-256-xts"\n'
           '  data_unit_sizes = [4096]\n  max_dun_bytes = 8\n')
KEY = '[[key]]\nname = "k"\nmode = "aes-256-xts"\ndata_unit_size = 4096\nkey_file = "%s"\n'


def refusal(config, prepare=None):
    """Starts a daemon on `config`; returns nbdkit's error lines, or None when it started."""
    d = Daemon(config)
    try:
        if prepare:
            prepare(d)
        d.start()
        return None
    except DaemonError as e:
        return "\n".join(l for l in str(e).splitlines() if "error" in l)
    finally:
        d.cleanup()


c = Checks("config")
cases = [
    ("an unknown key", HW + 'colour = "red"\n', ["ice.toml:", "colour"]),
    ("a bad size", HW.replace('"1M"', '"1Q"'), ["ice.toml:", "1Q"]),
    ("an unknown crypto mode", HW + XTS_CAP.replace("aes-256-xts", "rot13"),
     ["ice.toml:", "rot13"]),
    ("a data unit size that is not a power of two", HW + XTS_CAP.replace("4096", "1000"),
     ["ice.toml:11:", "1000", "data_unit_sizes"]),
    ("an unknown backing", HW.replace('"memory"', '"tape:/dev/st0"'), ["ice.toml:", "tape"]),
    ("a TOML syntax error", "[[hardware]\nname = ", ["ice.toml:"]),
    ("a name used twice", HW + HW, ["hw0", "twice"]),
    ("a missing key file", KEY % "{dir}/none.key", ["key 'k'", "none.key"]),
    ("a table naming an unknown device",
     HW + '[[device]]\nname = "d"\ntable = ["0 8 linear nosuch 0"]\n', ["device 'd'", "nosuch"]),
    ("a default export naming no device",
     '[daemon]\ncontrol_socket = "{dir}/control.sock"\ndefault_export = "nosuch"\n' + HW,
     ["default_export", "nosuch"]),
    ("a key the wrong size", KEY % "{dir}/k.key", ["key 'k'", "64"]),
    # Hardening 6: sizes no backend can serve are config errors, not an abort with no message.
    ("a memory backing of 2^63 - 512 bytes (hardening 6)",
     HW.replace('"1M"', "9223372036854775296"),
     ["ice.toml:", "9223372036854775296", "memory backing"]),
    ("a file backing above INT64_MAX bytes (hardening 6)",
     HW.replace('"memory"', '"file:big.img"').replace('"1M"', '"8388608T"'),
     ["ice.toml:", ".size", "INT64_MAX"]),
]
for what, config, words in cases:
    def prepare(d):
        write_key(os.path.join(d.dir, "k.key"), bytes(range(32)))
    err = refusal(config, prepare)
    c.check("%s stops the daemon at start, naming it" % what,
            err is not None and all(w in err for w in words), str(err))

err = refusal(KEY % "{dir}/k.key",
              lambda d: (write_key(os.path.join(d.dir, "k.key"), bytes(range(64))),
                         os.chmod(os.path.join(d.dir, "k.key"), 0o644)))
c.check("a group/world-readable key file is refused (P4)",
        err is not None and "0644" in err and "k.key" in err, str(err))

# generate = true creates a private key file; relative paths resolve against the config's folder.
config = (HW.replace('"memory"', '"file:disk.img"') + XTS_CAP
          + (KEY % "keys/gen.key").replace("[[key]]", "[[key]]\ngenerate = true"))
d = Daemon(config)
os.mkdir(os.path.join(d.dir, "keys"), 0o700)
with d:
    key_path = os.path.join(d.dir, "keys", "gen.key")
    st = os.stat(key_path) if os.path.exists(key_path) else None
    c.check("generate = true creates the key file next to the config, mode 0600, 64 bytes",
            st is not None and stat.S_IMODE(st.st_mode) == 0o600 and st.st_size == 64, str(st))
    c.check("a relative file: backing resolves against the config's folder, at its size",
            os.path.getsize(os.path.join(d.dir, "disk.img")) == 1 << 20)
    h = connect(d, "hw0@k")
    h.pwrite(b"\x42" * 4096, 0)
    h.shutdown()
    first_key = open(key_path, "rb").read()
d = Daemon(config)
os.mkdir(os.path.join(d.dir, "keys"), 0o700)
write_key(os.path.join(d.dir, "keys", "gen.key"), first_key)
with d:
    c.check("an existing key file is used, not regenerated",
            open(os.path.join(d.dir, "keys", "gen.key"), "rb").read() == first_key)

c.exit()
