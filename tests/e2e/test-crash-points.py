"""Issue 15 item 3: examples/crash-points.sh checks the crash points of a workload on a keyed
log-writes device, with ext4 and with xfs: --self-contained (its own daemon), at least 50 crash
points each, every one mounting, fsck-clean and holding every file fsynced before it. The same
script against a running daemon's devices named on the command line. And a workload that breaks
its promise (a file changed after it was registered as fsynced) is caught: exit 1, FAIL at the
first bad point, which is kept, and its replay.img is the log replayed up to that entry."""
import os
import re
import shutil
import subprocess

from e2e import ROOT, SEED, SOAK, Report, daemon, guarded, private_dir, run_script, write_key
import ice_harness
from ice_harness import device_toml, hardware_toml, key_toml, toml

SCRIPT = os.path.join(ROOT, "examples", "crash-points.sh")
REPLAY = os.path.join(ice_harness.BUILD, "replay-log")
MIN_POINTS = 50
SAMPLE = 200 if SOAK else 60  # crash points checked per filesystem (300 operations give ~120)

r = Report("crash-points")
r.what = "examples/crash-points.sh: ext4 and xfs --self-contained, a running daemon, a bad workload"


def run(args, timeout, env=None):
    e = dict(os.environ, ICECTL=ice_harness.ICECTL, REPLAY_LOG=REPLAY, ICE_BUILD=ice_harness.BUILD)
    e.update(env or {})
    return run_script([SCRIPT] + args, e, timeout)


def summary(out):
    m = re.search(r"^crash-points: crash_points=(\d+) fsck_clean=(\d+) fsynced_files_verified=(\d+)$",
                  out, re.M)
    return tuple(int(x) for x in m.groups()) if m else None


def body():
    for fs in ("ext4", "xfs"):
        rc, out = run(["--self-contained", "-f", fs, "--seed", str(SEED), "--sample", str(SAMPLE),
                       "--no-progress"], 600 if SOAK else 300)
        s = summary(out)
        r.check("issue 15 item 3: %s --self-contained: exit 0, PASS" % fs,
                rc == 0 and out.rstrip().endswith("crash-points: PASS"), "exit %s" % rc)
        r.check("issue 15 item 3: %s: >= %d crash points, all fsck-clean, fsynced files verified (%s)"
                % (fs, MIN_POINTS, s),
                s is not None and s[0] >= MIN_POINTS and s[1] == s[0] and s[2] > 0, str(s))
        if s:
            r.count(fs + "_crash_points", s[0])
            r.count(fs + "_fsynced_files_verified", s[2])

    # A running daemon, its devices named on the command line.
    cfg = toml(hardware_toml("hwd", "320M", keyslots=4),
               hardware_toml("hwl", "1G", keyslots=None),
               hardware_toml("hws", "320M", keyslots=4),
               key_toml("k1"),
               device_toml("lwd", "0 %d log-writes hwd hwl" % (320 * 2048)))
    d = daemon(cfg)
    write_key(os.path.join(d.dir, "k1.key"), os.urandom(64))
    with d:
        rc, out = run(["-y", "--ops", "60", "--every", "3", "--seed", str(SEED), "--no-progress",
                       "lwd", "k1", "hws"], 240,
                      env={"ICE_NBD_SOCKET": d.sock, "ICE_SOCKET": d.ctl})
        s = summary(out)
        r.check("issue 15 item 3: with a running daemon's lwd@k1 and hws: exit 0, PASS (%s)" % (s,),
                rc == 0 and out.rstrip().endswith("crash-points: PASS") and s and s[0] > 0
                and s[1] == s[0], "exit %s" % rc)
        table = d.icectl("table", "lwd").stdout
        r.check("issue 15 item 3: lwd keeps its table", table.split()[2:] == ["log-writes", "hwd",
                                                                             "hwl"], table)

    # A workload that changes a file after registering it as fsynced must be caught.
    kept_in = private_dir()
    keep = os.path.join(kept_in, "kept")
    bad = ('mkdir a && for i in 1 2 3; do head -c 9000 /dev/urandom > a/f$i; "$CP_FSYNCED" a/f$i; '
           'done; echo changed > a/f2; sync a/f2 a; echo x > a/g; sync a/g')
    rc, out = run(["--self-contained", "-f", "ext4", "--workload", bad, "--keep", keep,
                   "--no-progress"], 240)
    m = re.search(r"^crash-points: FAIL at entry (\d+) .*a/f2: FAILED", out, re.M)
    r.check("issue 15 item 3: a broken fsync promise: exit 1, FAIL naming a/f2",
            rc == 1 and m is not None and out.rstrip().endswith("crash-points: FAIL"),
            "exit %s" % rc)
    if m:
        entry = int(m.group(1))
        img = os.path.join(keep, "again.img")
        with open(img, "wb") as f:
            f.truncate(os.path.getsize(os.path.join(keep, "replay.img")))
        p = subprocess.run([REPLAY, "--log", os.path.join(keep, "log.img"), "--replay", img,
                            "--limit", str(entry + 1)], capture_output=True, text=True)
        same = subprocess.run(["cmp", img, os.path.join(keep, "replay.img")]).returncode == 0
        r.check("issue 15 item 3: the first bad point is kept: replay.img is the log replayed to it",
                p.returncode == 0 and same, p.stderr)
        r.check("issue 15 item 3: the kept point has the key and the fsynced files' list",
                all(os.path.exists(os.path.join(keep, f)) for f in ("k.key", "registered")))
    shutil.rmtree(kept_in, ignore_errors=True)


guarded(r, body)
r.exit()
