"""Hardware faults under load (item 5).

A. `hw reset` again and again while fio writes and verifies (crc32c, verify_backlog) on encrypted
   exports: lin0@k1 through fio's nbd engine, lin0@k2 through a loop device (ice-attach, libaio,
   O_DIRECT). lin0 spans hw0 (2 slots) and hw1 (1 slot), so resets hit slots in use and keys
   being swapped. Expected: fio reports zero errors and zero verify failures, the controllers
   count every reset. Then one reset at rest: every resident key is programmed again at once
   into the slot it had (reprogram-all, K7), and the data reads back.
B. Keyslot programming failures (`hw fault --fail-programs N`) while the key is not resident:
   evicted by another key on a 1-slot controller, or never used yet. The I/O that needs the
   program fails with EIO at the client; the next I/O succeeds; a failed write changed nothing;
   the other key's data is untouched; failures are counted.
C. Slow programming (`hw fault --program-latency-ms`) while two fio verify jobs with two keys
   share hw1's one slot: I/O waits for the slot (counted), no error, every read verifies.
"""
import errno
import json
import os
import random
import subprocess
import threading
import time

import nbd
from e2e import SEED, SOAK, Attachment, Report, close_all, daemon, guarded, hw_counters, \
    private_dir, sh, write_key
from ice_harness import connect, device_toml, hardware_toml, key_toml, toml

FIO_SECONDS = 90 if SOAK else 20

CONFIG = toml(
    hardware_toml("hw0", "256M"),
    hardware_toml("hw1", "256M", keyslots=1),
    *(key_toml(k) for k in ("k1", "k2", "k3", "k4")),
    device_toml("lin0", "0 262144 linear hw0 0", "262144 262144 linear hw1 0"))

r = Report("hw-faults")
r.what = "hw reset storm under fio verify (nbd engine + loop device) on lin0@k1/k2; " \
         "reprogram-all; programming failures on evicted and unused keys; slow programming " \
         "under fio"
rng = random.Random(SEED)
work = private_dir()


def fio(name, args, out):
    """Starts fio writing and verifying as it goes; returns the Popen."""
    cmd = ["fio", "--name=" + name, "--rw=randwrite", "--bsrange=4k-64k", "--blockalign=4k",
           "--iodepth=8", "--verify=crc32c", "--verify_backlog=64", "--verify_fatal=1",
           "--verify_state_save=0", "--time_based", "--runtime=%d" % FIO_SECONDS,
           "--output-format=json", "--output=" + out] + args
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, cwd=work)


def fio_result(p, out):
    try:
        _, err = p.communicate(timeout=FIO_SECONDS + 120)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return False, 0, 0, "fio did not finish"
    try:
        text = open(out).read()
        job = json.loads(text[text.index("{"):])["jobs"][0]
    except (OSError, ValueError, KeyError, IndexError) as e:
        return False, 0, 0, "no fio result (%s): %s" % (e, err[-1500:])
    ok = p.returncode == 0 and job["error"] == 0
    return ok, job["write"]["total_ios"], job["read"]["total_ios"], \
        "exit %d, error %d: %s" % (p.returncode, job["error"], err[-1500:])


def reset_storm(d):
    base = {hw: hw_counters(d, hw)["counters"] for hw in ("hw0", "hw1")}
    att = Attachment(d.uri("lin0@k2"), work, "k2")
    out1, out2 = os.path.join(work, "fio-nbd.json"), os.path.join(work, "fio-loop.json")
    # Disjoint ranges: lin0@k1 [64M, 192M) crosses from hw0 to hw1; lin0@k2 [192M, 256M) lies on
    # hw1, whose one slot k1 and k2 take from each other.
    p1 = fio("nbd-k1", ["--ioengine=nbd", "--uri=" + d.uri("lin0@k1"), "--offset=64M",
                        "--size=128M"], out1)
    p2 = fio("loop-k2", ["--ioengine=libaio", "--direct=1", "--filename=" + att.dev,
                         "--offset=192M", "--size=64M"], out2)
    resets = 0
    errors = []
    stop = time.time() + FIO_SECONDS - 2
    while time.time() < stop and p1.poll() is None and p2.poll() is None:
        hw = rng.choice(("hw0", "hw1"))
        rep = d.control("hw.reset", name=hw)
        if not rep.get("ok"):
            errors.append(str(rep))
        resets += 1
        time.sleep(rng.uniform(0.005, 0.05))
    # One through icectl too: the CLI verb users run.
    d.icectl("hw", "reset", "hw0")
    resets += 1
    ok1, w1, r1, why1 = fio_result(p1, out1)
    ok2, w2, r2, why2 = fio_result(p2, out2)
    att.close()
    r.check("%d resets accepted" % resets, not errors and resets > 20, "; ".join(errors[:3]))
    r.check("fio nbd engine on lin0@k1: no I/O or verify error (%d writes, %d verified reads)"
            % (w1, r1), ok1 and r1 > 0, why1)
    r.check("fio on the loop device (lin0@k2): no I/O or verify error (%d writes, %d verified "
            "reads)" % (w2, r2), ok2 and r2 > 0, why2)
    r.count("resets", resets)
    r.count("fio_writes", w1 + w2)
    r.count("fio_reads_verified", r1 + r2)
    counted = 0
    for hw in ("hw0", "hw1"):
        c = hw_counters(d, hw)["counters"]
        counted += c["resets"] - base[hw]["resets"]
        r.check("%s: no errors counted during the reset storm" % hw,
                c.get("errors", 0) == base[hw].get("errors", 0), str(c))
        r.count("%s_programs" % hw, c["slot_programs"] - base[hw]["slot_programs"])
    r.check("controllers counted every reset (%d of %d)" % (counted, resets), counted == resets)


def reprogram_all(d):
    h = connect(d, "lin0@k1")
    data = os.urandom(65536)
    h.pwrite(data, 100 << 20)  # hw0
    h.flush()
    before = hw_counters(d, "hw0")
    resident = [x["key"] for x in before["slots"] if x["key"]]
    d.icectl("hw", "reset", "hw0")
    after = hw_counters(d, "hw0")
    programs = after["counters"]["slot_programs"] - before["counters"]["slot_programs"]
    r.check("reset at rest: the %d resident keys (%s) are programmed again into their slots "
            "(K7)" % (len(resident), ",".join(resident)),
            resident and programs == len(resident) and after["slots"] == before["slots"],
            "programs +%d, slots %s -> %s" % (programs, before["slots"], after["slots"]))
    r.check("... and lin0@k1 reads back what it wrote before the reset",
            h.pread(65536, 100 << 20) == data)
    h.shutdown()


def slow_programs(d):
    base = hw_counters(d, "hw1")["counters"]
    d.icectl("hw", "fault", "hw1", "--program-latency-ms", "20")
    secs = 30 if SOAK else 6
    jobs = []
    for key, off in (("k1", "128M"), ("k2", "192M")):
        out = os.path.join(work, "fio-slow-%s.json" % key)
        jobs.append((key, out, fio("slow-" + key, ["--ioengine=nbd", "--uri=" + d.uri(
            "lin0@" + key), "--offset=" + off, "--size=64M", "--runtime=%d" % secs], out)))
    total = 0
    for key, out, p in jobs:
        ok, w, rd, why = fio_result(p, out)
        total += rd
        r.check("slow programming: fio on lin0@%s (hw1) without error (%d writes, %d verified "
                "reads)" % (key, w, rd), ok and rd > 0, why)
    d.icectl("hw", "fault", "hw1", "--program-latency-ms", "0")
    c = hw_counters(d, "hw1")["counters"]
    waits = c["slot_waits"] - base["slot_waits"]
    programs = c["slot_programs"] - base["slot_programs"]
    r.check("slow programming: the two keys took hw1's slot from each other (%d programs) and "
            "I/O waited for it (%d waits), no errors" % (programs, waits),
            programs > 2 and waits > 0 and c.get("errors", 0) == base.get("errors", 0), str(c))
    r.count("fio_reads_verified", total)
    r.count("slow_programs", programs)


def expect_eio(fn):
    try:
        fn()
    except nbd.Error as e:
        return e.errnum == errno.EIO, "errno %s: %s" % (e.errno, e)
    return False, "succeeded"


def program_failures(d):
    a = os.urandom(65536)
    b = os.urandom(65536)
    other = os.urandom(65536)
    base = hw_counters(d, "hw1")["counters"]
    h1 = connect(d, "hw1@k1")
    h2 = connect(d, "hw1@k2")
    h1.pwrite(a, 0)
    h1.flush()
    h2.pwrite(other, 1 << 20)  # k2 takes hw1's only slot: k1 is evicted
    h2.flush()
    slots = hw_counters(d, "hw1")["slots"]
    r.check("hw1's one slot holds k2, not k1", [s["key"] for s in slots] == ["k2"], str(slots))

    d.icectl("hw", "fault", "hw1", "--fail-programs", "1")
    ok, why = expect_eio(lambda: h1.pwrite(b, 0))
    r.check("write with evicted k1 while programming fails: EIO at the client", ok, why)
    got = h1.pread(65536, 0)
    r.check("next I/O with k1 succeeds, and the failed write changed nothing", got == a)
    h1.pwrite(b, 0)
    r.check("a later write with k1 succeeds and reads back", h1.pread(65536, 0) == b)

    d.icectl("hw", "fault", "hw1", "--fail-programs", "2")
    ok, why = expect_eio(lambda: h2.pread(65536, 1 << 20))
    ok2, why2 = expect_eio(lambda: h2.pread(65536, 1 << 20))
    r.check("two programs failing: the next two reads with k2 fail with EIO", ok and ok2,
            why + "; " + why2)
    r.check("third read with k2 succeeds with k2's data", h2.pread(65536, 1 << 20) == other)

    h3 = connect(d, "hw1@k3")  # never used yet: not in any slot
    d.icectl("hw", "fault", "hw1", "--fail-programs", "1")
    ok, why = expect_eio(lambda: h3.pwrite(a, 2 << 20))
    r.check("first use of k3 while programming fails: EIO", ok, why)
    h3.pwrite(a, 2 << 20)
    h3.flush()
    r.check("k3's retry succeeds", h3.pread(65536, 2 << 20) == a)

    # Concurrent: many I/Os queue behind one slot while programs fail. Each region is read first
    # (what a failed write must leave), each write has its own data (what a good one must leave).
    handles = [h1, h2, h3] * 3
    offs = [(4 + i) << 20 for i in range(len(handles))]
    before = [h.pread(65536, off) for h, off in zip(handles, offs)]
    datas = [os.urandom(65536) for _ in handles]
    d.icectl("hw", "fault", "hw1", "--fail-programs", "3")
    results = {}

    def io(i):
        try:
            handles[i].pwrite(datas[i], offs[i])
            results[i] = "ok"
        except nbd.Error as e:
            results[i] = e.errnum

    ths = [threading.Thread(target=io, args=(i,)) for i in range(len(handles))]
    for t in ths:
        t.start()
    for t in ths:
        t.join(60)
    outcomes = [results.get(i) for i in range(len(handles))]
    # Waiters may share a failed program, so not all 3 need be used: clear what is left.
    d.icectl("hw", "fault", "hw1", "--fail-programs", "0")
    r.check("9 concurrent writes with 3 keys and 3 failing programs: each fails with EIO or "
            "succeeds (%d EIO)" % outcomes.count(errno.EIO),
            all(x in ("ok", errno.EIO) for x in outcomes) and outcomes.count(errno.EIO) >= 1,
            str(outcomes))
    wrong = [i for i, (h, off) in enumerate(zip(handles, offs))
             if h.pread(65536, off) != (datas[i] if outcomes[i] == "ok" else before[i])]
    r.check("each acknowledged write reads back, each failed one left its region unchanged",
            not wrong, "regions %s" % wrong)
    r.check("everything reads back after the faults: k1, k2, k3 data intact",
            h1.pread(65536, 0) == b and h2.pread(65536, 1 << 20) == other
            and h3.pread(65536, 2 << 20) == a)
    c = hw_counters(d, "hw1")["counters"]
    fails = c["slot_program_failures"] - base["slot_program_failures"]
    r.check("hw1 counted the program failures (%d: 4 one by one, 1 to 3 concurrent)" % fails,
            5 <= fails <= 7, str(c))
    r.count("program_failures", fails)
    for h in (h1, h2, h3):
        h.shutdown()


def body():
    d = daemon(CONFIG)
    for k in ("k1", "k2", "k3", "k4"):
        write_key(os.path.join(d.dir, k + ".key"), rng.randbytes(64))
    with d:
        try:
            reset_storm(d)
            reprogram_all(d)
            program_failures(d)
            slow_programs(d)
        finally:
            close_all()


try:
    guarded(r, body)
finally:
    sh("rm", "-rf", "--one-file-system", work, check=False)
r.exit()
