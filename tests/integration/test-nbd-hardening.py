"""Hardening 1, 11, 12 and 13 against the real daemon over NBD: a FAST_ZERO request is answered
ENOTSUP and the daemon stays up; refused export names are escaped, cut and rate-limited in the
log; sub-unit writes through two exports over the same stored bytes are serialised; keyed
exports advertise minimum = preferred block size = the key's data unit."""
import time

import nbd
from ice_harness import Checks, Daemon, connect, device_toml, hardware_toml, key_toml, toml

C = Checks("nbd-hardening")
CONFIG = toml(
    hardware_toml("hw0", "16M", keyslots=4, data_unit_sizes=(512, 1024, 2048, 4096)),
    hardware_toml("plain", "4M", keyslots=None),
    key_toml("k512", data_unit_size=512, generate=True),
    key_toml("k1k", data_unit_size=1024, generate=True),
    key_toml("k2k", data_unit_size=2048, generate=True),
    key_toml("k4k", data_unit_size=4096, generate=True),
    device_toml("lin0", "0 16384 linear hw0 0"))


def fast_zero(d):
    for export in ("lin0@k4k", "hw0", "plain"):
        h = connect(d, export)
        C.check("%s advertises fast zero" % export, h.can_fast_zero())
        try:
            h.zero(4096, 0, nbd.CMD_FLAG_FAST_ZERO)
            C.check("%s: FAST_ZERO is refused" % export, False, "it succeeded")
        except nbd.Error as e:
            C.check("%s: FAST_ZERO is answered ENOTSUP (hardening 1)" % export,
                    e.errnum == 95,
                    str(e))
        h.pwrite(b"\x55" * 4096, 0)
        h.zero(4096, 0)
        C.check("%s: a plain zero still works and the daemon is up" % export,
                h.pread(4096, 0) == bytes(4096))
        h.shutdown()
    C.check("nbdkit is still running", d.proc.poll() is None)


def block_sizes(d):
    for key, unit in (("k512", 512), ("k1k", 1024), ("k2k", 2048), ("k4k", 4096)):
        h = connect(d, "lin0@" + key)
        got = (h.get_block_size(nbd.SIZE_MINIMUM), h.get_block_size(nbd.SIZE_PREFERRED))
        C.check("lin0@%s: minimum 1 (issue 19), preferred = %d (hardening 13), got %s" %
                (key, unit, got), got == (1, unit))
        h.shutdown()
    strict = CONFIG.replace("[[hardware]]", "[daemon]\nstrict_block_size = true\n"
                            'control_socket = "{dir}/control.sock"\n\n[[hardware]]', 1)
    with Daemon(strict) as s:
        for key, unit in (("k512", 512), ("k1k", 1024), ("k2k", 2048), ("k4k", 4096)):
            h = connect(s, "lin0@" + key)
            got = (h.get_block_size(nbd.SIZE_MINIMUM), h.get_block_size(nbd.SIZE_PREFERRED))
            C.check("strict_block_size: lin0@%s: minimum = preferred = %d (N3), got %s" %
                    (key, unit, got), got == (unit, unit))
            h.shutdown()
    for export, unit in (("hw0", 1), ("plain", 1)):
        h = connect(d, export)
        got = (h.get_block_size(nbd.SIZE_MINIMUM), h.get_block_size(nbd.SIZE_PREFERRED))
        C.check("%s (unkeyed): minimum %d, preferred a page, got %s" % (export, unit, got),
                got == (unit, 4096))
        h.shutdown()


def refused_names(d):
    before = len(d.log())
    forged = "nosuch\nice: 2026-01-01 00:00:00.000 info: ready: forged line"
    try:
        connect(d, forged)
    except nbd.Error:
        pass
    log = d.log()[before:]
    C.check("a newline in a refused name cannot forge a log line (hardening 11)",
            "\nice: 2026-01-01" not in log and "nosuch\\x0aice: 2026-01-01" in log, log[-500:])
    before = len(d.log())
    start = time.monotonic()
    for i in range(2000):
        try:
            connect(d, "x%04d" % i + "n" * 3000)
        except nbd.Error:
            pass
    took = time.monotonic() - start
    grown = len(d.log()) - before
    C.check("2000 refusals of 3 KB names in %.1f s add %d bytes to the log, cut and rate-limited "
            "(hardening 11)" % (took, grown), grown < 40 * 1024 * max(1.0, took + 1))
    C.check("each logged name is cut", "more bytes)" in d.log()[before:])
    h = connect(d, "lin0@k4k")
    C.check("the daemon serves after the refusals", len(h.pread(4096, 0)) == 4096)
    h.shutdown()


def aliased_rmw(d):
    """lin0@k4k and hw0@k4k are the same stored bytes (lin0 is linear hw0 0): sub-unit writes to
    different bytes of the same units through both, all in flight at once, must all survive."""
    handles = [connect(d, "lin0@k4k"), connect(d, "hw0@k4k")]
    units = 32
    model = bytearray(units * 4096)
    handles[0].pwrite(bytes(model), 0)
    lost = 0
    for rnd in range(8):
        cookies = []
        for u in range(units):
            for side, h in enumerate(handles):
                off = u * 4096 + side * 2048 + rnd * 8
                data = bytes([(u * 7 + side * 3 + rnd) % 251 + 1]) * 100
                model[off:off + 100] = data
                cookies.append((h, h.aio_pwrite(data, off)))
        for h, c in cookies:
            while not h.aio_command_completed(c):
                h.poll(-1)
        got = handles[1].pread(units * 4096, 0)
        lost += sum(1 for u in range(units) if got[u * 4096:(u + 1) * 4096] !=
                    model[u * 4096:(u + 1) * 4096])
    C.check("512 sub-unit updates through lin0@k4k and hw0@k4k at once: none lost (hardening 12),"
            " %d units differ" % lost, lost == 0)
    for h in handles:
        h.shutdown()


with Daemon(CONFIG) as d:
    for fn in (fast_zero, block_sizes, refused_names, aliased_rmw):
        C.run(fn.__name__, lambda: fn(d))
C.exit()
