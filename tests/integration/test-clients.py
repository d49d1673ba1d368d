"""Issue 19: real NBD clients on ice's exports out of the box. Block status on unkeyed exports
reports holes (nbdinfo --map, and nbdcopy and qemu-img convert keep the copy sparse); keyed
exports report data (N6); libnbd in strict mode writes at any alignment; TRIM zeroes on keyed
paths."""
import json
import os
import subprocess

import nbd
from ice_harness import Checks, Daemon, connect, device_toml, hardware_toml, key_toml, toml

MiB = 1 << 20
C = Checks("clients")
CONFIG = toml(
    hardware_toml("hwf", "64M", backing="file:{dir}/hwf.img"),
    hardware_toml("hwm", "64M"),
    key_toml("k1", generate=True),
    device_toml("lin", "0 65536 linear hwf 32768", "65536 65536 linear hwm 0"),
    device_toml("fl", "0 65536 flakey hwf 0 60 0"))


def nbd_map(d, export):
    r = subprocess.run(["nbdinfo", "--map", "--json", d.uri(export)], capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    return [(e["offset"], e["length"], e["type"]) for e in json.loads(r.stdout)]


def holes(extents):
    return sum(length for _, length, t in extents if t & 1)


def block_status(d):
    for export in ("hwf", "hwm", "lin"):
        h = connect(d, export)
        h.pwrite(b"\x01" * MiB, 3 * MiB)
        h.shutdown()
    for export, size in (("hwf", 64 * MiB), ("hwm", 64 * MiB), ("lin", 64 * MiB)):
        m = nbd_map(d, export)
        C.check("nbdinfo --map %s: never-written bytes are holes (%d of %d MiB)" %
                (export, holes(m) // MiB, size // MiB), holes(m) >= size - 4 * MiB, str(m[:6]))
        data = [(o, n) for o, n, t in m if not t & 1]
        C.check("%s: the written MiB is data" % export,
                any(o <= 3 * MiB and o + n >= 4 * MiB for o, n in data), str(data))
    for export in ("hwf@k1", "lin@k1", "fl"):
        m = nbd_map(d, export)
        C.check("%s reports data everywhere (a hole under a key or flakey need not read as "
                "zeros, N6)" % export, holes(m) == 0, str(m[:4]))


def sparse_copies(d):
    out = os.path.join(d.dir, "copy.img")
    r = subprocess.run(["nbdcopy", d.uri("hwf"), out], capture_output=True, text=True, timeout=120)
    st = os.stat(out)
    C.check("nbdcopy of hwf keeps the copy sparse (%d KiB allocated of %d MiB)" %
            (st.st_blocks // 2, st.st_size // MiB),
            r.returncode == 0 and st.st_blocks * 512 < 8 * MiB, r.stderr)
    os.unlink(out)
    r = subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "raw", d.uri("lin"), out],
                       capture_output=True, text=True, timeout=120)
    st = os.stat(out)
    C.check("qemu-img convert of lin keeps the copy sparse (%d KiB allocated)" %
            (st.st_blocks // 2), r.returncode == 0 and st.st_blocks * 512 < 8 * MiB, r.stderr)
    os.unlink(out)


def strict_clients(d):
    h = nbd.NBD()
    h.set_export_name("lin@k1")
    h.set_request_block_size(True)
    h.connect_unix(d.sock)  # libnbd's default strict mode checks alignment against the minimum
    data = bytes(range(256)) * 4
    h.pwrite(data[:1000], 4096 * 5 + 48)
    C.check("libnbd in strict mode writes 1000 bytes at an odd offset of a keyed export",
            h.pread(1000, 4096 * 5 + 48) == data[:1000])
    h.pwrite(b"\x77" * 8192, 8 * 4096)
    h.trim(4096 + 100, 8 * 4096 + 10)
    got = h.pread(8192, 8 * 4096)
    C.check("TRIM on a keyed export reads back as zeros over exactly its range",
            got == b"\x77" * 10 + bytes(4096 + 100) + b"\x77" * (8192 - 4206))
    h.shutdown()


with Daemon(CONFIG) as d:
    for fn in (block_status, sparse_copies, strict_clients):
        C.run(fn.__name__, lambda: fn(d))
C.exit()
