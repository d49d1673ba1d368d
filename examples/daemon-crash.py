#!/usr/bin/python3
"""daemon-crash.py: kill -9 the ice daemon under a flushing workload; check what survived.

What it shows: ice's FLUSH contract (rule N4) holds across a crash of the daemon itself: every
write the client saw acknowledged before a FLUSH it saw acknowledged is on the medium, correct,
after nbdkit is killed with SIGKILL and started again; nothing is torn or garbled, even for writes
smaller than a data unit (served by read-modify-write) and with two connections (multi-conn: a
flush on one covers the writes of both).

It starts nbdkit with the ice plugin itself, on a private socket, on YOUR config (use file-backed
hardware: memory backing does not survive a restart by design), and for each round: batches of
concurrent writes of known content on two connections, each batch followed by a FLUSH; a SIGKILL at
a random moment; a restart on the same config; every 512-byte sector of the region read back and
checked against what the client knows: the last flushed batch's data, or the data of a write issued
after it (acknowledged or not, it may or may not have landed), nothing else.

Usage (python3-libnbd needed; root not needed unless your config says so):
  daemon-crash.py --config ice.toml --export lin0@k1 [--rounds 6] [--region-mib 64]
                  [--plugin build/nbdkit-ice-plugin.so] [--seed N] -y
-y: agree that the first --region-mib MiB of the export are overwritten.

Expected output (numbers vary):
  daemon-crash: round 1: killed at 1.37s after 412 writes (31 flushes acked); 131072 sectors verified
  ...
  daemon-crash: PASS (6 rounds, 2391 acked writes, 180 acked flushes, 786432 sectors verified)
Exit 0 on PASS; otherwise FAIL lines naming the first bad sectors, and exit 1.
"""
import argparse
import hashlib
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import nbd

HERE = os.path.dirname(os.path.abspath(__file__))
BATCH = 24


def say(*a):
    print("daemon-crash:", *a, flush=True)


class Server:
    """nbdkit + the ice plugin on a private Unix socket, started and killed by PID."""

    def __init__(self, plugin, config, folder):
        self.plugin, self.config = plugin, config
        self.sock = os.path.join(folder, "nbd.sock")
        self.log = os.path.join(folder, "nbdkit.log")
        self.proc = None

    def start(self, timeout=30):
        if os.path.exists(self.sock):
            os.unlink(self.sock)  # nbdkit never removes its socket
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                ["nbdkit", "-f", "-U", self.sock, self.plugin, "config=" + self.config],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("nbdkit exited (%d): %s" % (self.proc.returncode, self.tail()))
            if os.path.exists(self.sock):
                with socket.socket(socket.AF_UNIX) as s:  # bound is not yet listening
                    if s.connect_ex(self.sock) == 0:
                        return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("nbdkit did not come up in %ds: %s" % (timeout, self.tail()))

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        if self.proc:
            self.proc.wait(30)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-1500:]
        except OSError:
            return ""

    def connect(self, export):
        h = nbd.NBD()
        h.set_export_name(export)
        h.set_strict_mode(0)  # sub-data-unit writes on purpose: the daemon's read-modify-write
        h.connect_unix(self.sock)
        return h


class Model:
    """What the client knows: per sector, the durable write id and the one issued after it."""

    def __init__(self, sectors, salt):
        self.sectors, self.salt = sectors, salt
        self.durable = [1] * sectors
        self.pending = {}
        self.next_wid = 2

    def data(self, wid, first, count):
        return b"".join(hashlib.sha256(self.salt + b":%d:%d" % (wid, s)).digest() * 16
                        for s in range(first, first + count))

    def candidates(self, s):
        p = self.pending.get(s)
        return (self.durable[s],) if p is None else (self.durable[s], p)


def plan_batch(model, rng):
    used, writes = set(), []
    while len(writes) < BATCH:
        if rng.random() < 0.75:  # whole 4 KiB units
            first, count = rng.randrange(model.sectors // 8) * 8, 8 * rng.randint(1, 16)
        else:  # 512-byte pieces: read-modify-write in the daemon
            first, count = rng.randrange(model.sectors), rng.randint(1, 15)
        count = min(count, model.sectors - first)
        span = range(first, first + count)
        if any(s in used for s in span):
            continue
        used.update(span)
        writes.append((model.next_wid, first, count))
        model.next_wid += 1
    return writes


def wait_all(h, cookies, deadline):
    pending = list(cookies)
    try:
        while pending:
            if time.time() > deadline:
                return False
            pending = [c for c in pending if not h.aio_command_completed(c)]
            if pending:
                h.poll(200)
    except nbd.Error:
        return False
    return True


def workload(server, export, model, rng, stats):
    """Write batches + flush on two connections until a command fails (the kill)."""
    try:
        handles = [server.connect(export), server.connect(export)]
    except nbd.Error:
        return
    try:
        while True:
            writes = plan_batch(model, rng)
            for wid, first, count in writes:
                for s in range(first, first + count):
                    model.pending[s] = wid
            cookies = [[], []]
            try:
                for i, (wid, first, count) in enumerate(writes):
                    cookies[i % 2].append(handles[i % 2].aio_pwrite(
                        model.data(wid, first, count), first * 512))
            except nbd.Error:
                return
            deadline = time.time() + 60
            ok = [False, False]

            def drive(i):
                ok[i] = wait_all(handles[i], cookies[i], deadline)

            threads = [threading.Thread(target=drive, args=(i,)) for i in (0, 1)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(90)
            if not all(ok):
                return
            stats["acked_writes"] += len(writes)
            try:
                f = handles[0].aio_flush()
            except nbd.Error:
                return
            if not wait_all(handles[0], [f], time.time() + 60):
                return
            for s, wid in model.pending.items():  # the acknowledged flush point
                model.durable[s] = wid
            model.pending.clear()
            stats["flushes"] += 1
    finally:
        for h in handles:
            try:
                h.shutdown()
            except nbd.Error:
                pass


def verify(server, export, model):
    """Returns the bad sectors; what was read becomes the durable state."""
    h = server.connect(export)
    bad, chunk = [], 4 << 20
    for off in range(0, model.sectors * 512, chunk):
        n = min(chunk, model.sectors * 512 - off)
        data = h.pread(n, off)
        for i in range(0, n, 512):
            s = (off + i) // 512
            got = data[i:i + 512]
            for wid in model.candidates(s):
                if got == model.data(wid, s, 1):
                    model.durable[s] = wid
                    break
            else:
                bad.append(s)
    h.shutdown()
    model.pending.clear()
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--export", required=True)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--region-mib", type=int, default=64)
    ap.add_argument("--plugin", default=os.path.join(
        os.environ.get("ICE_BUILD", os.path.join(HERE, "..", "build")), "nbdkit-ice-plugin.so"))
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    ap.add_argument("-y", action="store_true")
    a = ap.parse_args()
    if not a.y:
        sys.exit("daemon-crash: this overwrites the first %d MiB of %s; add -y to go on"
                 % (a.region_mib, a.export))
    rng = random.Random(a.seed)
    folder = tempfile.mkdtemp(prefix="daemon-crash-")
    os.chmod(folder, 0o700)
    server = Server(a.plugin, os.path.abspath(a.config), folder)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    failures = 0
    totals = {"acked_writes": 0, "flushes": 0, "sectors": 0}
    try:
        say("seed %d, %s, %d MiB, %d rounds" % (a.seed, a.export, a.region_mib, a.rounds))
        server.start()
        model = Model(a.region_mib << 11, b"%d" % a.seed)
        h = server.connect(a.export)
        for off in range(0, a.region_mib << 20, 4 << 20):  # known content first: write id 1
            h.pwrite(model.data(1, off // 512, min(8192, model.sectors - off // 512)), off)
        h.flush()
        h.shutdown()
        for rnd in range(1, a.rounds + 1):
            stats = {"acked_writes": 0, "flushes": 0}
            delay = rng.uniform(0.2, 2.0)
            killed = []
            pid = server.proc.pid

            def kill(pid=pid, killed=killed):
                killed.append(time.time())
                os.kill(pid, signal.SIGKILL)

            timer = threading.Timer(delay, kill)
            timer.start()
            workload(server, a.export, model, rng, stats)
            early = not killed
            timer.cancel()
            log = server.tail()
            server.kill()
            if early:
                failures += 1
                say("FAIL round %d: a command failed before the kill; daemon log: %s" % (rnd, log))
            server.start()
            bad = verify(server, a.export, model)
            totals["sectors"] += model.sectors
            for k in stats:
                totals[k] += stats[k]
            if bad:
                failures += 1
                say("FAIL round %d: %d sectors hold neither the flushed data nor a later write; "
                    "first: %s" % (rnd, len(bad), bad[:8]))
            else:
                say("round %d: killed at %.2fs after %d writes (%d flushes acked); %d sectors "
                    "verified" % (rnd, delay, stats["acked_writes"], stats["flushes"],
                                  model.sectors))
        if totals["flushes"] == 0:
            failures += 1
            say("FAIL: no flush was ever acknowledged")
    finally:
        server.stop()
        subprocess.run(["rm", "-rf", folder], timeout=60)
    if failures:
        say("FAIL (%d of %d rounds)" % (failures, a.rounds))
        sys.exit(1)
    say("PASS (%d rounds, %d acked writes, %d acked flushes, %d sectors verified)"
        % (a.rounds, totals["acked_writes"], totals["flushes"], totals["sectors"]))


if __name__ == "__main__":
    main()
