"""N2-N6 on the data path: keyed exports round-trip (hardware and fallback), the on-disk format is
the kernel's (AES-256-XTS, IV = little-endian DUN, DUN = byte offset / data unit size), unaligned
I/O by read-modify-write, write-zeroes, flush/FUA durability, many connections at once, linear
devices passing the DUN through, TRIM only where allowed, block status never lying about zeros."""
import contextlib
import os
import random
import signal
import subprocess
import threading

import nbd
from ice_harness import Checks, Daemon, connect, device_toml, hardware_toml, key_toml, toml, \
    write_key, xts_decrypt, xts_encrypt

MiB = 1 << 20
DU = 4096
CONFIG = toml(
    hardware_toml("hwf", "8M", backing="file:{dir}/hwf.img", data_unit_sizes=(512, 4096)),
    hardware_toml("hwa", "4M", keyslots=1, backing="file:{dir}/hwa.img"),
    hardware_toml("hwb", "4M", keyslots=1, backing="file:{dir}/hwb.img"),
    hardware_toml("plainf", "4M", keyslots=None, backing="file:{dir}/plainf.img"),
    key_toml("k1"),
    key_toml("k512", data_unit_size=512),
    device_toml("lin", "0 8192 linear hwa 0", "8192 8192 linear hwb 0"),
    device_toml("dkd", "0 8192 default-key aes-xts-plain64 :64:logon:k1 0 hwb 0 3 allow_discards "
                "sector_size:4096 iv_large_sectors"),
    device_toml("dkn", "0 8192 default-key aes-xts-plain64 :64:logon:k1 0 hwa 0 2 "
                "sector_size:4096 iv_large_sectors"))

rng = random.Random(20240605)
K1 = bytes(rng.randrange(256) for _ in range(64))
K512 = bytes(rng.randrange(256) for _ in range(64))


def rand(n):
    return rng.randbytes(n)


def file_bytes(d, name, offset, length):
    with open(os.path.join(d.dir, name), "rb") as f:
        f.seek(offset)
        return f.read(length)


def backing_fd(d, name):
    """The daemon's fd number for its backing file `name`."""
    fd_dir = "/proc/%d/fd" % d.proc.pid
    for fd in os.listdir(fd_dir):
        with contextlib.suppress(OSError):
            if os.readlink(os.path.join(fd_dir, fd)) == os.path.join(d.dir, name):
                return int(fd)
    raise AssertionError("the daemon has no fd for " + name)


def syscalls(d, fn):
    """Runs fn() with strace attached to every thread of the daemon; returns the trace lines of
    writes and syncs made meanwhile (fn's reply came after them)."""
    out = os.path.join(d.dir, "strace.out")
    st = subprocess.Popen(["strace", "-f", "-p", str(d.proc.pid), "-o", out,
                           "-e", "trace=pwrite64,pwritev,pwritev2,fdatasync,fsync,sync_file_range"],
                          stderr=subprocess.PIPE, text=True)
    try:
        # strace says "Process N attached [with M threads]" once it traces all of them.
        line = st.stderr.readline()
        if "attached" not in line:
            raise AssertionError("strace could not attach: " + line)
        fn()
    finally:
        st.send_signal(signal.SIGINT)
        st.wait(20)
    with open(out) as f:
        return f.read().splitlines()


def hw_counters(d, name):
    r = d.control("hw.info", name=name)
    return r["result"]["counters"]


c = Checks("data")
d = Daemon(CONFIG)
write_key(os.path.join(d.dir, "k1.key"), K1)
write_key(os.path.join(d.dir, "k512.key"), K512)
with d:
    # --- round trips and the on-disk format ---------------------------------------------------
    h = connect(d, "hwf@k1")
    data = rand(64 * 1024)
    off = 3 * MiB  # DUN 768
    h.pwrite(data, off)
    c.check("hardware keyed export round-trips", h.pread(len(data), off) == data)
    on_disk = file_bytes(d, "hwf.img", off, len(data))
    c.check("file backing holds ciphertext, not plaintext", on_disk != data)
    c.check("ciphertext = AES-256-XTS with IV = little-endian DUN (byte offset / 4096)",
            on_disk == xts_encrypt(K1, DU, off // DU, data))
    c.check("an independent XTS decryption of the backing gives the plaintext",
            xts_decrypt(K1, DU, off // DU, on_disk) == data)
    c.check("hardware did the crypto (no fallback I/O)",
            hw_counters(d, "hwf")["fallback_ios"] == 0, str(hw_counters(d, "hwf")))
    h.shutdown()

    h = connect(d, "hwf@k512")
    data = rand(16 * 1024)
    off = 5 * MiB + 7 * 512
    h.pwrite(data, off)
    c.check("512-byte data unit key round-trips",
            h.pread(len(data), off) == data)
    c.check("512-byte data units: DUN = byte offset / 512",
            file_bytes(d, "hwf.img", off, len(data)) == xts_encrypt(K512, 512, off // 512, data))
    h.shutdown()

    h = connect(d, "plainf@k1")  # no inline crypto: the software fallback encrypts above it
    data = rand(32 * 1024)
    off = 1 * MiB + 8 * DU
    h.pwrite(data, off)
    c.check("fallback keyed export round-trips", h.pread(len(data), off) == data)
    c.check("fallback writes the same format as the hardware",
            file_bytes(d, "plainf.img", off, len(data)) == xts_encrypt(K1, DU, off // DU, data))
    h.shutdown()

    # --- N3: unaligned I/O by read-modify-write -----------------------------------------------
    h = connect(d, "hwf@k1")
    base = 6 * MiB
    model = bytearray(rand(8 * DU))
    h.pwrite(bytes(model), base)
    ok = True
    for off_in, n in [(100, 10), (DU - 3, 7), (DU + 1, 2 * DU + 5), (5 * DU - 1, 1),
                      (6 * DU + 17, DU - 17), (0, 1)]:
        patch = rand(n)
        h.pwrite(patch, base + off_in)
        model[off_in:off_in + n] = patch
        ok = ok and h.pread(len(model), base) == bytes(model)
    c.check("unaligned writes keep every neighbouring byte", ok)
    c.check("unaligned reads return the right bytes",
            all(h.pread(n, base + o) == bytes(model[o:o + n])
                for o, n in [(1, 1), (DU - 1, 2), (333, 3 * DU), (7 * DU + 5, DU - 5)]))
    c.check("after read-modify-write the backing is whole-unit ciphertext of the data",
            file_bytes(d, "hwf.img", base, len(model)) == xts_encrypt(K1, DU, base // DU,
                                                                      bytes(model)))

    # --- N5: write-zeroes --------------------------------------------------------------------
    zoff = 6 * MiB + 16 * DU
    h.pwrite(rand(4 * DU), zoff)
    h.zero(2 * DU, zoff + DU)
    c.check("write-zeroes on a keyed export reads back zeros",
            h.pread(2 * DU, zoff + DU) == bytes(2 * DU))
    disk = file_bytes(d, "hwf.img", zoff + DU, 2 * DU)
    c.check("write-zeroes on a keyed export leaves ciphertext of zeros, not zeros",
            disk == xts_encrypt(K1, DU, (zoff + DU) // DU, bytes(2 * DU)) and disk != bytes(2 * DU))
    before = h.pread(4 * DU, zoff)
    h.zero(100, zoff + 50)
    after = h.pread(4 * DU, zoff)
    c.check("unaligned write-zeroes zeros only its bytes",
            after == before[:50] + bytes(100) + before[150:])
    c.check("write-zeroes with NO_HOLE on a keyed export also leaves ciphertext of zeros",
            (h.zero(DU, zoff, nbd.CMD_FLAG_NO_HOLE) is None
             and h.pread(DU, zoff) == bytes(DU)
             and file_bytes(d, "hwf.img", zoff, DU) == xts_encrypt(K1, DU, zoff // DU, bytes(DU))))
    h.shutdown()

    raw = connect(d, "plainf")
    raw.pwrite(b"\xff" * DU, 2 * MiB)
    raw.zero(DU, 2 * MiB)
    c.check("write-zeroes on a raw export writes zeros to the backing",
            raw.pread(DU, 2 * MiB) == bytes(DU) and file_bytes(d, "plainf.img", 2 * MiB, DU)
            == bytes(DU))
    raw.shutdown()

    # --- N4: flush and FUA -------------------------------------------------------------------
    h = connect(d, "lin@k1")
    c.check("exports advertise flush and FUA", h.can_flush() and h.can_fua())
    half = 4 * MiB
    a_before, b_before = hw_counters(d, "hwa"), hw_counters(d, "hwb")
    data = rand(2 * DU)
    h.pwrite(data, half - DU)  # spans both devices
    h.flush()
    a_after, b_after = hw_counters(d, "hwa"), hw_counters(d, "hwb")
    c.check("FLUSH reaches every backend below a linear device",
            a_after["flushes"] > a_before["flushes"] and b_after["flushes"] > b_before["flushes"],
            "%s %s" % (a_after["flushes"], b_after["flushes"]))
    c.check("after FLUSH the data is in the backing files",
            file_bytes(d, "hwa.img", half - DU, DU)
            == xts_encrypt(K1, DU, half // DU - 1, data[:DU])
            and file_bytes(d, "hwb.img", 0, DU) == xts_encrypt(K1, DU, half // DU, data[DU:]))
    c.check("linear: DUNs of the second device continue where the first ends (DUN 1024 at hwb 0)",
            xts_decrypt(K1, DU, half // DU, file_bytes(d, "hwb.img", 0, DU)) == data[DU:])
    fda, fdb = backing_fd(d, "hwa.img"), backing_fd(d, "hwb.img")

    def synced(lines, fd):
        return [l for l in lines if ("pwritev2(%d," % fd in l and "RWF_DSYNC" in l)
                or "fdatasync(%d)" % fd in l or "fsync(%d)" % fd in l]

    data = rand(DU)
    trace = syscalls(d, lambda: h.pwrite(data, half + 5 * DU, nbd.CMD_FLAG_FUA))
    c.check("a FUA write is synced (RWF_DSYNC or fdatasync) on its backend before the reply",
            synced(trace, fdb) and not synced(trace, fda)
            and file_bytes(d, "hwb.img", 5 * DU, DU) == xts_encrypt(K1, DU, half // DU + 5, data),
            "\n".join(trace[-10:]))
    trace = syscalls(d, lambda: h.pwrite(data, half + 6 * DU))
    c.check("a write without FUA is not synced (the check above discriminates)",
            not synced(trace, fdb), "\n".join(trace[-10:]))
    trace = syscalls(d, h.flush)
    c.check("FLUSH syncs every backing file below the device",
            synced(trace, fda) and synced(trace, fdb), "\n".join(trace[-10:]))
    data = rand(3000)
    h.pwrite(data, half + 9 * DU + 500, nbd.CMD_FLAG_FUA)
    c.check("an unaligned FUA write is in the backing on reply",
            xts_decrypt(K1, DU, half // DU + 9, file_bytes(d, "hwb.img", 9 * DU, DU))[500:3500]
            == data)
    c.check("exports advertise multi-conn", h.can_multi_conn())
    data = rand(DU)
    h.pwrite(data, half + 12 * DU)
    other = connect(d, "lin")
    trace = syscalls(d, other.flush)
    c.check("FLUSH on another connection syncs this connection's writes (multi-conn)",
            synced(trace, fdb) and synced(trace, fda)
            and file_bytes(d, "hwb.img", 12 * DU, DU) == xts_encrypt(K1, DU, half // DU + 12, data),
            "\n".join(trace[-10:]))
    other.shutdown()
    h.shutdown()

    # --- many connections, overlapping unaligned writes ------------------------------------
    # Each writer owns interleaved 300-byte stripes, so every data unit is shared by several
    # writers: a lost read-modify-write update shows as a stripe with someone else's old bytes.
    region, writers, stripe, rounds = 256 * 1024, 8, 300, 60
    cbase = 1 * MiB
    init = connect(d, "hwf@k1")
    init.pwrite(bytes(region), cbase)
    init.shutdown()
    owned = [[(s, min(s + stripe, region)) for s in range(t * stripe, region, writers * stripe)]
             for t in range(writers)]
    final = bytearray(region)
    errors = []
    lock = threading.Lock()

    def writer(t):
        try:
            r = random.Random(t)
            hh = connect(d, "hwf@k1")
            mine = bytearray(region)
            for _ in range(rounds):
                for s, e in r.sample(owned[t], 8):
                    a = r.randrange(s, e)
                    b = r.randrange(a + 1, e + 1)
                    buf = bytes([r.randrange(1, 256)]) * (b - a)
                    hh.pwrite(buf, cbase + a)
                    mine[a:b] = buf
                # overlapping readers of other writers' units must never see torn units
                o = r.randrange(0, region - 3 * DU)
                hh.pread(3 * DU, cbase + o)
            hh.shutdown()
            with lock:
                for s, e in owned[t]:
                    final[s:e] = mine[s:e]
        except Exception as ex:  # noqa: BLE001
            errors.append("writer %d: %s" % (t, ex))

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    c.check("%d connections of overlapping unaligned writes finish without error" % writers,
            not errors and not any(t.is_alive() for t in threads), "; ".join(errors))
    h = connect(d, "hwf@k1")
    got = h.pread(region, cbase)
    bad = [i for i in range(0, region, stripe) if got[i:i + stripe] != final[i:i + stripe]]
    c.check("every writer's last bytes survive (read-modify-write is serialised)", not bad,
            "%d stripes differ, first at %s" % (len(bad), bad[:5]))
    c.check("the backing decrypts to the same bytes (no torn data unit)",
            xts_decrypt(K1, DU, cbase // DU, file_bytes(d, "hwf.img", cbase, region)) == got)
    h.shutdown()

    # --- N5: TRIM only where the path allows discards ---------------------------------------
    h = connect(d, "dkd")
    c.check("default-key with allow_discards advertises trim", h.can_trim())
    data = rand(4 * DU)
    h.pwrite(data, 0)
    c.check("default-key device round-trips (table key, DUN = sector / 8)",
            h.pread(len(data), 0) == data and file_bytes(d, "hwb.img", 0, len(data))
            == xts_encrypt(K1, DU, 0, data))
    dis = hw_counters(d, "hwb")["discards"]
    h.trim(2 * DU, 0)
    c.check("TRIM on default-key allow_discards reaches the hardware",
            hw_counters(d, "hwb")["discards"] > dis)
    h.shutdown()
    h = connect(d, "dkn")
    c.check("default-key without allow_discards advertises trim (issue 19)", h.can_trim())
    h.pwrite(rand(2 * DU), 8 * DU)
    dis = hw_counters(d, "hwa")["discards"]
    h.trim(2 * DU, 8 * DU)
    c.check("TRIM on default-key without allow_discards writes encrypted zeros, discards nothing",
            h.pread(2 * DU, 8 * DU) == bytes(2 * DU)
            and file_bytes(d, "hwa.img", 8 * DU, 2 * DU) == xts_encrypt(K1, DU, 8, bytes(2 * DU))
            and hw_counters(d, "hwa")["discards"] == dis)
    h.pwrite(rand(2 * DU), 8 * DU)
    dis = hw_counters(d, "hwa")["discards"]
    h.zero(2 * DU, 8 * DU)
    c.check("write-zeroes on default-key writes encrypted zeros and discards nothing",
            h.pread(2 * DU, 8 * DU) == bytes(2 * DU)
            and file_bytes(d, "hwa.img", 8 * DU, 2 * DU) == xts_encrypt(K1, DU, 8, bytes(2 * DU))
            and hw_counters(d, "hwa")["discards"] == dis)
    h.shutdown()
    h = connect(d, "hwa@k1")
    c.check("a keyed export advertises trim (issue 19)", h.can_trim())
    h.pwrite(rand(3 * DU), 20 * DU)
    dis = hw_counters(d, "hwa")["discards"]
    h.trim(2 * DU - 100, 20 * DU + 50)  # partial units at both ends
    c.check("TRIM on a keyed export zeroes the range, partial units too, as encrypted zeros",
            h.pread(2 * DU - 100, 20 * DU + 50) == bytes(2 * DU - 100)
            and xts_decrypt(K1, DU, 20, file_bytes(d, "hwa.img", 20 * DU, 2 * DU))[50:-50]
            == bytes(2 * DU - 100)
            and hw_counters(d, "hwa")["discards"] == dis)
    h.shutdown()
    h = connect(d, "plainf")
    dis = hw_counters(d, "plainf")["discards"]
    h.trim(DU, 3 * MiB)
    c.check("TRIM on a raw hardware export reaches the device",
            h.can_trim() and hw_counters(d, "plainf")["discards"] > dis)
    h.shutdown()

    # --- N6: block status never claims zeros it does not read -------------------------------
    def status_ok(export, length):
        hh = nbd.NBD()
        hh.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
        hh.set_export_name(export)
        hh.set_strict_mode(0)
        hh.connect_unix(d.sock)
        if not hh.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION):
            raise AssertionError("base:allocation was not negotiated")
        extents = []

        def cb(metacontext, offset, entries, err):
            if metacontext == nbd.CONTEXT_BASE_ALLOCATION:
                pos = offset
                for i in range(0, len(entries), 2):
                    extents.append((pos, entries[i], entries[i + 1]))
                    pos += entries[i]
            return 0

        pos = 0
        while pos < length:
            before = len(extents)
            hh.block_status(length - pos, pos, cb)
            if len(extents) == before:
                break
            pos = extents[-1][0] + extents[-1][1]
        bad = []
        for start, n, flags in extents:
            if flags & (nbd.STATE_ZERO | nbd.STATE_HOLE):
                n = min(n, length - start)
                if hh.pread(n, start) != bytes(n):
                    bad.append((start, n, flags))
        hh.shutdown()
        if not extents:
            raise AssertionError("no extents came back")
        if bad:
            raise AssertionError("%s: extents claimed zero/hole but read non-zero: %s"
                                 % (export, bad[:3]))
        return True

    c.run("block status on a keyed export over never-written space claims no zeros",
          lambda: status_ok("hwa@k1", 1 * MiB))
    c.run("block status on a fallback keyed export claims no zeros it does not read",
          lambda: status_ok("plainf@k1", 4 * MiB))
    c.run("block status on a mapped keyed export claims no zeros it does not read",
          lambda: status_ok("lin@k1", 8 * MiB))
    c.run("block status on a default-key device claims no zeros it does not read",
          lambda: status_ok("dkn", 4 * MiB))
    c.run("block status on a raw export is truthful",
          lambda: status_ok("plainf", 4 * MiB))
c.exit()
