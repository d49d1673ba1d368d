"""Daemon crash (item 4): examples/daemon-crash.py against file-backed hardware.

lin0@k1 is a linear device over two file-backed controllers (2 and 1 keyslots). The example kills
nbdkit with SIGKILL at a random moment under two connections of batched writes (whole data units
and 512-byte pieces) with FLUSHes, restarts it on the same config, and checks every sector: the
data of the last acknowledged flush point or of a later write, nothing else. Several rounds; each
round is one check here. The example is the test, so what users run is what is tested.
"""
import os
import re
import subprocess
import sys

from e2e import ROOT, SEED, SOAK, Daemon, Report, guarded, write_key
from ice_harness import device_toml, hardware_toml, key_toml, toml

ROUNDS = 30 if SOAK else 6
EXAMPLE = os.path.join(ROOT, "examples", "daemon-crash.py")

CONFIG = toml(
    hardware_toml("hw0", "32M", backing="file:{dir}/hw0.img"),
    hardware_toml("hw1", "32M", keyslots=1, backing="file:{dir}/hw1.img"),
    key_toml("k1"),
    device_toml("lin0", "0 65536 linear hw0 0", "65536 65536 linear hw1 0"))

r = Report("daemon-crash")
r.what = "examples/daemon-crash.py: kill -9 under 2-connection write+flush load on lin0@k1, " \
         "%d rounds" % ROUNDS


def body():
    # The harness only makes the folder and the config; the example runs nbdkit itself.
    d = Daemon('[daemon]\ncontrol_socket = "{dir}/control.sock"\nlog_level = "info"\n' + CONFIG)
    try:
        write_key(os.path.join(d.dir, "k1.key"), os.urandom(64))
        p = subprocess.Popen([sys.executable, EXAMPLE, "--config", d.config_path, "--export",
                              "lin0@k1", "--rounds", str(ROUNDS), "--seed", str(SEED), "-y"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = p.communicate(timeout=180 if not SOAK else 1100)
        except subprocess.TimeoutExpired:
            p.terminate()  # the example stops its nbdkit on SIGTERM
            out, err = p.communicate(timeout=60)
            r.check("example finished within its time", False)
        sys.stdout.write(out)
        sys.stdout.write(err[-3000:])
        rounds = re.findall(r"^daemon-crash: (round \d+: .*)$", out, re.M)
        fails = re.findall(r"^daemon-crash: FAIL (.*)$", out, re.M)
        for line in rounds:
            r.check(line, True)
        for line in fails:
            r.check(line, False)
        m = re.search(r"PASS \((\d+) rounds, (\d+) acked writes, (\d+) acked flushes, "
                      r"(\d+) sectors", out)
        r.check("example exits 0 with PASS after %d rounds" % ROUNDS,
                p.returncode == 0 and m is not None and len(rounds) == ROUNDS,
                "exit %d" % p.returncode)
        if m:
            r.count("rounds", int(m.group(1)))
            r.count("acked_writes", int(m.group(2)))
            r.count("acked_flushes", int(m.group(3)))
            r.count("sectors_verified", int(m.group(4)))
    finally:
        d.cleanup()


guarded(r, body)
r.exit()
