"""Filesystems on encrypted ice exports while keys thrash the keyslots (issue 6, item 2).

Two emulated controllers with 2 keyslots each (hw0 file-backed, hw1 in memory). Three linear
devices each span both controllers; each is exported with its own key (lin1@k1, lin2@k2,
lin3@k3). Two default-key devices, dk0 on hw1 (key kd) and dk1 on hw0 (key ke), are exported
without a key. All five carry a filesystem (ext4 on lin1 and dk0, xfs on lin2, lin3 and dk1) and
are written at the same time, so 4 keys compete for the 2 slots of each controller. For each: files
with SHA-256 kept, unmount, e2fsck -fn / xfs_repair -n clean, remount, verify. Then:
- `icectl hw info --json`: on both controllers more slot programs than keys using it (the keys
  took the slots from each other and were programmed again), no errors;
- each volume read through a second export with a wrong key (lin1@k2, …, dk0@k1: a keyed
  export's context passes default-key unchanged, T6) shows neither its superblock nor any of the
  file blocks that read back right through the volume's own export;
- those file blocks on the medium (hw0's backing file, hw1's keyless export) equal an independent
  AES-256-XTS computation with DUN = byte offset in the volume / 4096, whatever controller and
  offset the table sends them to (FIEMAP gives their place; rule D8).
"""
import os
import random
import threading

from e2e import SEED, SOAK, Attachment, FileSet, Mount, Report, close_all, connect, daemon, \
    extents, fsck, guarded, hw_counters, mkfs, private_dir, write_key, xts_encrypt
from ice_harness import device_toml, hardware_toml, key_toml, toml

MiB = 1 << 20
PART = 192 * MiB  # each linear device: PART of one controller then PART of the other
PS = PART // 512

KEYS = ("k1", "k2", "k3", "kd", "ke")

CONFIG = toml(
    hardware_toml("hw0", "1G", backing="file:{dir}/hw0.img"),
    hardware_toml("hw1", "1G"),
    *(key_toml(k) for k in KEYS),
    device_toml("lin1", "0 %(ps)d linear hw0 0", "%(ps)d %(ps)d linear hw1 0"),
    device_toml("lin2", "0 %(ps)d linear hw1 %(ps)d", "%(ps)d %(ps)d linear hw0 %(ps)d"),
    device_toml("lin3", "0 %(ps)d linear hw0 %(ps2)d", "%(ps)d %(ps)d linear hw1 %(ps2)d"),
    device_toml("dk0", "0 %(ps2)d default-key aes-xts-plain64 :64:logon:kd 0 hw1 %(ps3)d 2 "
                "sector_size:4096 iv_large_sectors"),
    device_toml("dk1", "0 %(ps2)d default-key aes-xts-plain64 :64:logon:ke 0 hw0 %(ps3)d 2 "
                "sector_size:4096 iv_large_sectors"),
) % {"ps": PS, "ps2": 2 * PS, "ps3": 3 * PS}

# (export, filesystem): ext4 and xfs on keyed linear devices and on the default-key device.
VOLUMES = [("lin1@k1", "ext4"), ("lin2@k2", "xfs"), ("lin3@k3", "xfs"), ("dk0", "ext4"),
           ("dk1", "xfs")]

# Per volume: the export with a wrong key, the key that encrypts it on the medium, and where its
# bytes lie: [(first byte in the volume, bytes, controller, byte offset on the controller)].
LAYOUT = {
    "lin1@k1": ("lin1@k2", "k1", [(0, PART, "hw0", 0), (PART, PART, "hw1", 0)]),
    "lin2@k2": ("lin2@k3", "k2", [(0, PART, "hw1", PART), (PART, PART, "hw0", PART)]),
    "lin3@k3": ("lin3@k1", "k3", [(0, PART, "hw0", 2 * PART), (PART, PART, "hw1", 2 * PART)]),
    # A keyed export's context passes a default-key target unchanged (T6): dk0@k1 reads with k1.
    "dk0": ("dk0@k1", "kd", [(0, 2 * PART, "hw1", 3 * PART)]),
    "dk1": ("dk1@k2", "ke", [(0, 2 * PART, "hw0", 3 * PART)]),
}
FILES = 120 if SOAK else 40

r = Report("fs-keyslots")
r.what = ("ext4+xfs on 3 keyed linear exports over 2 controllers x 2 slots + 2 default-key "
          "devices, 5 mounted at once, wrong-key and ciphertext checks")
rng = random.Random(SEED)
work = private_dir()


def body():
    d = daemon(CONFIG)
    keys = {k: write_key(os.path.join(d.dir, k + ".key"), rng.randbytes(64)) for k in KEYS}
    keys = {k: open(p, "rb").read() for k, p in keys.items()}
    with d:
        try:
            run(d, keys)
        finally:
            close_all()  # unmount and detach before the daemon stops


def file_blocks(fs, where):
    """[(byte offset in the export, plaintext)] of whole 4096-byte blocks of a few files."""
    blocks = []
    for name in sorted(fs.files)[:12]:
        path = os.path.join(where, name)
        with open(path, "rb") as f:
            data = f.read()
        for logical, phys, length in extents(path)[:2]:
            n = min(length, 2 * 4096, (len(data) - logical) // 4096 * 4096)
            if n > 0:
                blocks.append((phys, data[logical:logical + n]))
    return blocks


def run(d, keys):
    atts, mounts, sets = {}, {}, {}
    for i, (export, fstype) in enumerate(VOLUMES):
        atts[export] = Attachment(d.uri(export), work, "v%d" % i)
        mkfs(atts[export].dev, fstype)
    for i, (export, fstype) in enumerate(VOLUMES):
        where = os.path.join(work, "m%d" % i)
        mounts[export] = Mount(atts[export].dev, where)
        sets[export] = FileSet(where, random.Random(rng.getrandbits(32)))

    # All four at once: their keys compete for the controllers' slots.
    errors = []

    def fill(export):
        try:
            s = sets[export]
            for _ in range(4):
                s.write(FILES // 4, fsync=True, subdir="d%d" % (s.n % 3))
        except Exception as e:  # noqa: BLE001
            errors.append("%s: %s" % (export, e))

    threads = [threading.Thread(target=fill, args=(e,)) for e, _ in VOLUMES]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    r.check("files written on 4 filesystems at once", not errors and
            not any(t.is_alive() for t in threads), "; ".join(errors))

    # Where some files of each volume lie, for the wrong-key and ciphertext checks below.
    blocks = {e: file_blocks(sets[e], mounts[e].where) for e, _ in VOLUMES}

    for export, fstype in VOLUMES:
        mounts[export].close()
    for export, fstype in VOLUMES:
        ok, out = fsck(atts[export].dev, fstype)
        r.check("%s %s: %s clean after unmount" % (export, fstype,
                "e2fsck -fn" if fstype == "ext4" else "xfs_repair -n"), ok, out)
    for i, (export, fstype) in enumerate(VOLUMES):
        with Mount(atts[export].dev, os.path.join(work, "m%d" % i)):
            good, bad = sets[export].verify()
            r.count("files_verified", good)
            r.check("%s %s: %d files intact after remount" % (export, fstype, good),
                    not bad and good == len(sets[export].files), str(bad[:5]))
    for a in atts.values():
        a.close()

    for hw in ("hw0", "hw1"):
        info = hw_counters(d, hw)
        c = info["counters"]
        r.count("%s_programs" % hw, c["slot_programs"])
        r.count("%s_waits" % hw, c["slot_waits"])
        # LRU replacement programs over an idle slot (no eviction is counted: that is EvictKey).
        # More programs than keys using the controller: keys lost their slot and came back.
        r.check("%s: slot programs (%d) > keys using it (4) > keyslots (%d): keys were replaced "
                "and programmed again" % (hw, c["slot_programs"], info["keyslots"]),
                c["slot_programs"] > 4 > info["keyslots"], str(c))
        r.check("%s: no I/O errors counted" % hw, c.get("errors", 0) == 0, str(c))

    # The same blocks through the right key, a wrong key, and on the medium (hw0 from its backing
    # file, hw1, in memory, through its keyless export): AES-256-XTS with DUN = byte offset in the
    # volume / 4096, whatever controller and offset the table sends it to (D8, T6).
    raw = {"hw1": connect(d, "hw1")}
    with open(os.path.join(d.dir, "hw0.img"), "rb") as img:
        def medium(hw, off, n):
            if hw == "hw1":
                return raw["hw1"].pread(n, off)
            img.seek(off)
            return img.read(n)

        for export, fstype in VOLUMES:
            wrong_export, key, layout = LAYOUT[export]
            right, wrong = connect(d, export), connect(d, wrong_export)
            magic = (lambda b: b[1080:1082] == b"\x53\xef") if fstype == "ext4" else \
                (lambda b: b[:4] == b"XFSB")
            r.check("%s shows the %s superblock, %s (wrong key) does not" % (
                export, fstype, wrong_export), magic(right.pread(4096, 0))
                and not magic(wrong.pread(4096, 0)))
            bad = checked = medium_ok = 0
            for off, plain in blocks[export]:
                via_right = right.pread(len(plain), off)
                via_wrong = wrong.pread(len(plain), off)
                expect = xts_encrypt(keys[key], 4096, off // 4096, plain)
                for o in range(0, len(plain), 4096):
                    checked += 1
                    bad += via_wrong[o:o + 4096] == plain[o:o + 4096]
                    bad += via_right[o:o + 4096] != plain[o:o + 4096]
                    vo = off + o
                    start, _, hw, hw_off = [p for p in layout if p[0] <= vo < p[0] + p[1]][0]
                    medium_ok += medium(hw, hw_off + vo - start, 4096) == expect[o:o + 4096]
            right.shutdown()
            wrong.shutdown()
            r.count("blocks_compared", checked)
            r.check("%s: %d file blocks match through %s, not through %s" % (
                export, checked, export, wrong_export), checked > 0 and bad == 0,
                "%d wrong" % bad)
            r.check("%s: the medium holds AES-256-XTS(%s, DUN = volume offset / 4096) of those "
                    "%d blocks" % (export, key, checked), checked > 0 and medium_ok == checked,
                    "%d of %d match" % (medium_ok, checked))
    raw["hw1"].shutdown()

    # lin2 starts on hw1 and continues on hw0 at PART: its second half is hw0 [PART, 2*PART)
    # with DUNs counted from lin2's start, not hw0's.
    h = connect(d, "lin2@k2")
    off = PART + 7 * 4096
    plain = bytes(rng.getrandbits(8) for _ in range(8192))
    h.pwrite(plain, off)
    h.flush()
    h.shutdown()
    with open(os.path.join(d.dir, "hw0.img"), "rb") as img:
        img.seek(PART + 7 * 4096)  # lin2 sector PS maps to hw0 sector PS
        got = img.read(8192)
    r.check("lin2's second part: ciphertext on hw0 uses lin2's DUN (D8)",
            got == xts_encrypt(keys["k2"], 4096, off // 4096, plain))


try:
    guarded(r, body)
finally:
    import subprocess
    subprocess.run(["rm", "-rf", "--one-file-system", work], timeout=60)
r.exit()
