"""Issue 15: the `log-writes` target in the kernel's format, and build/replay-log on it.

Item 1: table, status and message as the kernel's dm-log-writes prints and takes them; the target
does not pass crypto (D7), so keyed I/O on it is encrypted by the fallback above the mapped device
and the log holds ciphertext, which python3-cryptography decrypts (AES-256-XTS, IV = DUN
little-endian, DUN = byte offset / 4096) to what was written; unaligned writes are logged as the
read-modify-write of whole sectors; removing the device ends the log with dm-log-writes-end.
Item 2: build/replay-log reads the log from the ice device (NBD URI) and from a file, and replays
onto a file and onto an ice device, to the bytes the logged device holds, at the end and at a mark.
"""
import os
import random
import struct
import subprocess

import nbd
from ice_harness import BUILD, Checks, Daemon, connect, device_toml, hardware_toml, key_toml, \
    toml, write_key, xts_decrypt

MiB = 1 << 20
DU = 4096
SECTORS = 16 * MiB // 512
REPLAY = os.path.join(BUILD, "replay-log")
CONFIG = toml(
    hardware_toml("hw0", "16M"),
    hardware_toml("hwlog", "64M", keyslots=None),
    hardware_toml("hwrep", "16M", keyslots=None),
    key_toml("k1"),
    device_toml("lw", "0 %d log-writes hw0 hwlog" % SECTORS))

rng = random.Random(1515)
K1 = bytes(rng.randrange(256) for _ in range(64))
c = Checks("log-writes")


def read_export(d, name, offset=0, length=None):
    h = connect(d, name)
    try:
        if length is None:
            length = h.get_size() - offset
        out = bytearray()
        while len(out) < length:
            n = min(length - len(out), 8 * MiB)
            out += h.pread(n, offset + len(out))
        return bytes(out)
    finally:
        h.shutdown()


def parse_log(log):
    """The kernel's format, read independently of ice's code: (super, [entries])."""
    magic, version, nr, sectorsize = struct.unpack_from("<QQQI", log, 0)
    entries, pos = [], sectorsize
    for _ in range(nr):
        sector, nr_sectors, flags, data_len = struct.unpack_from("<QQQQ", log, pos)
        e = {"sector": sector, "nr": nr_sectors, "flags": flags, "at": pos // sectorsize}
        if flags & 8:
            e["mark"] = log[pos + 32:pos + 32 + data_len].decode()
        pos += sectorsize
        if not flags & 4 and nr_sectors:
            e["data"] = log[pos:pos + nr_sectors * sectorsize]
            pos += nr_sectors * sectorsize
        entries.append(e)
    return (magic, version, nr, sectorsize), entries


def replay_log(*args):
    return subprocess.run([REPLAY] + list(args), capture_output=True, text=True, timeout=60)


d = Daemon(CONFIG)
write_key(os.path.join(d.dir, "k1.key"), K1)
with d:
    out = d.icectl("table", "lw").stdout
    c.check("issue 15 item 1: table prints '<dev> <logdev>'",
            out == "0 %d log-writes hw0 hwlog\n" % SECTORS, repr(out))
    out = d.icectl("status", "lw").stdout
    c.check("issue 15 item 1: status of a new log is '0 0'",
            out == "0 %d log-writes 0 0\n" % SECTORS, repr(out))
    info = d.icectl("info", "lw").stdout
    c.check("issue 15 item 1: log-writes does not pass crypto (D7): no capabilities",
            "Crypto capabilities: none" in info, info)

    # Keyed writes: 3 data units, a flush, a FUA data unit, a mark, one more unit, a flush.
    h = connect(d, "lw@k1")
    plain = {0: rng.randbytes(2 * DU), 5 * DU: rng.randbytes(DU)}
    h.pwrite(plain[0], 0)
    h.pwrite(plain[5 * DU], 5 * DU)
    h.flush()
    fua = rng.randbytes(DU)
    h.pwrite(fua, 9 * DU, nbd.CMD_FLAG_FUA)
    d.icectl("message", "lw", "0", "mark", "after-fua")
    at_mark = read_export(d, "hw0")
    late = rng.randbytes(DU)
    h.pwrite(late, 12 * DU)
    h.flush()
    h.shutdown()
    r = d.icectl("message", "lw", "0", "mark", "end")
    c.check("issue 15 item 1: `message lw 0 mark NAME` replies nothing", r.stdout == "", r.stdout)
    r = d.icectl("message", "lw", "0", "mark", check=False)
    c.check("issue 15 item 1: a mark without a name is refused",
            r.returncode != 0 and "expect 2 arguments, got 1" in r.stderr, r.stderr)
    r = d.icectl("message", "lw", "0", "bogus", "x", check=False)
    c.check("issue 15 item 1: an unknown message is refused",
            r.returncode != 0 and "Unrecognised log writes target message" in r.stderr, r.stderr)

    log = read_export(d, "hwlog")
    (magic, version, nr, ss), entries = parse_log(log)
    c.check("issue 15 item 1: super block: magic, version 1, sectorsize 512, 8 entries",
            (magic, version, ss, nr) == (0x6a736677736872, 1, 512, 8), (magic, version, ss, nr))
    kinds = [(e["flags"], e["sector"], e["nr"]) for e in entries]
    want = [(0, 0, 16), (0, 40, 8), (1, 0, 0), (2, 72, 8), (8, 0, 0), (0, 96, 8), (1, 0, 0),
            (8, 0, 0)]
    c.check("issue 15 item 1: entries in the kernel's order (writes at their flush, FUA at once)",
            kinds == want, kinds)
    c.check("issue 15 item 1: marks carry their names",
            [e.get("mark") for e in entries if e["flags"] & 8] == ["after-fua", "end"])
    status = d.icectl("status", "lw").stdout.split()
    last = entries[-1]["at"]
    c.check("issue 15 item 1: status counts the entries and the last sector used",
            status[3:] == ["8", str(last)], (status, last))

    ciphertext = {e["sector"] * 512: e["data"] for e in entries if "data" in e}
    ok = all(xts_decrypt(K1, DU, off // DU, ciphertext[off]) == p
             for off, p in list(plain.items()) + [(9 * DU, fua), (12 * DU, late)])
    c.check("issue 15 item 1: the log holds ciphertext that decrypts (AES-XTS, IV = DUN) to what "
            "was written", ok)
    c.check("issue 15 item 1: logged ciphertext is what reached hw0",
            all(read_export(d, "hw0", off, len(ct)) == ct for off, ct in ciphertext.items()))
    c.check("issue 15 item 1: ciphertext differs from the plaintext", ciphertext[0] != plain[0])

    # Item 2: the tool on the ice devices and on files.
    rep = os.path.join(d.dir, "replay.img")
    logf = os.path.join(d.dir, "log.img")
    with open(logf, "wb") as f:
        f.write(log)
    device = read_export(d, "hw0")
    for src in (d.uri("hwlog"), logf):
        with open(rep, "wb") as f:
            f.truncate(16 * MiB)
        r = replay_log("--log", src, "--replay", rep)
        with open(rep, "rb") as f:
            got = f.read()
        c.check("issue 15 item 2: replay-log --log %s onto a file gives hw0's bytes"
                % ("NBD" if src.startswith("nbd") else "file"),
                r.returncode == 0 and got == device, r.stderr)
    r = replay_log("--log", logf, "--replay", d.uri("hwrep"), "--end-mark", "after-fua")
    c.check("issue 15 item 2: replay onto an ice device up to a mark gives hw0 as it was then",
            r.returncode == 0 and read_export(d, "hwrep") == at_mark, r.stderr)
    r = replay_log("--log", d.uri("hwlog"), "--find", "--end-mark", "after-fua")
    c.check("issue 15 item 2: --find --end-mark prints ENTRY@SECTOR",
            r.stdout == "4@%d\n" % (entries[4]["at"] + 1), r.stdout + r.stderr)
    r = replay_log("--log", d.uri("hwlog"))
    c.check("issue 15 item 2: the summary line",
            r.stdout == "Log version=1, sectorsize=512, entries=8\n", r.stdout + r.stderr)

    # Unaligned plain I/O: the export reads and rewrites whole 512-byte sectors (N3).
    h = connect(d, "lw")
    h.pwrite(b"x" * 100, 1000)
    h.flush()
    h.shutdown()
    d.icectl("message", "lw", "0", "mark", "m3")
    (_, _, nr, _), entries = parse_log(read_export(d, "hwlog"))
    rmw = [(e["sector"], e["nr"]) for e in entries[8:10]]
    data = entries[8]["data"] + entries[9]["data"]
    c.check("issue 15 item 1: an unaligned write is logged as the whole sectors written",
            rmw == [(1, 1), (2, 1)] and data[1000 - 512:1100 - 512] == b"x" * 100, rmw)

    d.icectl("remove", "lw")
    (_, _, nr, _), entries = parse_log(read_export(d, "hwlog"))
    c.check("issue 15 item 1: removing the device ends the log with dm-log-writes-end",
            entries[-1].get("mark") == "dm-log-writes-end" and nr == 13, (nr, entries[-1]))
c.exit()
