"""The user-facing examples run against a test daemon, so they cannot rot (item 6):
examples/crash-consistency.sh (ext4 and xfs), examples/keyslot-thrash.sh (3 keys, 2 slots per
controller) and examples/hw-reset-under-fio.sh. Each must exit 0 with its PASS line, and the
numbers it prints must show what it claims (crash points passed, slots that changed hands, reads
verified). examples/daemon-crash.py starts its own daemon: test-daemon-crash.py runs it, and
test-attach.py runs examples/ice-attach."""
import os
import re

from e2e import ROOT, SOAK, Report, daemon, guarded, run_script, write_key
import ice_harness
from ice_harness import device_toml, hardware_toml, key_toml, toml

EX = os.path.join(ROOT, "examples")


def mib(n):
    return n * 2048  # sectors


CONFIG = toml(
    hardware_toml("hw0", "1G"),
    hardware_toml("hw1", "1G"),
    *(key_toml(k) for k in ("k1", "k2", "k3")),
    device_toml("fl0", "0 %d flakey hw0 0 3600 0" % mib(384)),
    device_toml("lin1", "0 %d linear hw0 %d" % (mib(64), mib(384)),
                "%d %d linear hw1 0" % (mib(64), mib(64))),
    device_toml("lin2", "0 %d linear hw1 %d" % (mib(64), mib(64)),
                "%d %d linear hw0 %d" % (mib(64), mib(64), mib(448))),
    device_toml("lin3", "0 %d linear hw0 %d" % (mib(64), mib(512)),
                "%d %d linear hw1 %d" % (mib(64), mib(64), mib(128))))

r = Report("examples")
r.what = "examples/crash-consistency.sh (ext4, xfs), keyslot-thrash.sh, hw-reset-under-fio.sh"


def run_example(d, what, args, timeout):
    env = dict(os.environ, ICE_NBD_SOCKET=d.sock, ICE_SOCKET=d.ctl, ICECTL=ice_harness.ICECTL)
    rc, out = run_script(args, env, timeout)
    last = out.strip().splitlines()[-1] if out.strip() else ""
    r.check("%s: exit 0, last line PASS" % what, rc == 0 and "PASS" in last,
            "exit %s: %s" % (rc, last))
    return out


def body():
    d = daemon(CONFIG)
    for k in ("k1", "k2", "k3"):
        write_key(os.path.join(d.dir, k + ".key"), os.urandom(64))
    with d:
        points = "3" if SOAK else "2"
        out = run_example(d, "crash-consistency.sh ext4 on fl0@k1",
                          [os.path.join(EX, "crash-consistency.sh"), "-f", "ext4", "-n", points,
                           "-y", "fl0", "k1"], 240)
        r.count("crash_points", out.count("fsynced files intact"))
        out = run_example(d, "crash-consistency.sh xfs on fl0@k2",
                          [os.path.join(EX, "crash-consistency.sh"), "-f", "xfs", "-n", points,
                           "-y", "fl0", "k2"], 240)
        r.count("crash_points", out.count("fsynced files intact"))
        table = d.icectl("table", "fl0").stdout
        r.check("crash-consistency.sh left fl0's table as it found it",
                "drop_writes" not in table and "3600" in table, table)

        out = run_example(d, "keyslot-thrash.sh lin1@k1 lin2@k2 lin3@k3",
                    [os.path.join(EX, "keyslot-thrash.sh"), "-m", "48" if SOAK else "16", "-y",
                     "lin1@k1", "lin2@k2", "lin3@k3"], 240)
        # 3 keys on each 2-slot controller: more programs than keys means slots changed hands.
        progs = {m.group(1): int(m.group(2)) for m in re.finditer(
            r"^keyslot-thrash: (hw\d): 2 slots, \+(\d+) programs", out, re.M)}
        r.check("keyslot-thrash.sh: both controllers programmed more than 3 times (%s)" % progs,
                len(progs) == 2 and all(p > 3 for p in progs.values()), out[-500:])
        r.count("files_verified", sum(int(n) for n in re.findall(r"(\d+) files verified\n", out)))
        out = run_example(d, "hw-reset-under-fio.sh on lin1@k1 resetting hw0 hw1",
                    [os.path.join(EX, "hw-reset-under-fio.sh"), "-t", "30" if SOAK else "8",
                     "-y", "lin1@k1", "hw0", "hw1"], 120)
        m = re.search(r"(\d+) resets; fio: (\d+) writes, (\d+) reads verified, 0 errors", out)
        if m:
            r.count("resets", int(m.group(1)))
            r.count("fio_reads_verified", int(m.group(3)))
        r.check("hw-reset-under-fio.sh: resets done and fio reads verified with 0 errors",
                m is not None and int(m.group(1)) > 0 and int(m.group(3)) > 0, out[-500:])


guarded(r, body)
r.exit()
