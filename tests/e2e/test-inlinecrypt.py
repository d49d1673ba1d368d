"""The inlinecrypt target with real filesystems (issue 20, rules I1-I6).

- ic0: inlinecrypt over 2-slot hardware that has AES-256-XTS natively; ext4 on it while two
  keyed exports of the same hardware (lin1@k1, lin2@k2) write at the same time, so three keys
  compete for the two slots. Files verify after a remount, e2fsck is clean, and the medium holds
  AES-256-XTS of ic0's bytes under ic0's key with DUN = offset / 4096 (dm-crypt's layout).
- ic1: inlinecrypt over hardware without inline encryption: the fallback encrypts; same checks.
- stacks: inlinecrypt over a flakey device (which passes crypto to the hardware below), and a
  linear device over ic1 (inlinecrypt passes no crypto: nothing above it is keyed natively).
- `icectl table` prints mainline's layout with the key as its keyring reference.
"""
import os
import random
import threading

from e2e import SEED, Attachment, FileSet, Mount, Report, close_all, connect, daemon, fsck, \
    guarded, mkfs, private_dir, write_key, xts_encrypt
from ice_harness import device_toml, hardware_toml, key_toml, toml

MiB = 1 << 20
SIZE = 192 * MiB
S = SIZE // 512
OPTS = "2 sector_size:4096 iv_large_sectors"
KEYS = ("k1", "k2", "kic", "kfb")

CONFIG = toml(
    hardware_toml("hw0", "1G", keyslots=2),
    hardware_toml("plain", "512M", keyslots=None),
    *(key_toml(k) for k in KEYS),
    device_toml("ic0", "0 %d inlinecrypt aes-xts-plain64 :64:logon:kic 0 hw0 0 %s" % (S, OPTS)),
    device_toml("lin1", "0 %d linear hw0 %d" % (S, S)),
    device_toml("lin2", "0 %d linear hw0 %d" % (S, 2 * S)),
    device_toml("ic1", "0 %d inlinecrypt aes-xts-plain64 :64:logon:kfb 0 plain 0 %s" % (S, OPTS)),
    device_toml("fl", "0 %d flakey hw0 %d 3600 0" % (S, 3 * S)),
    device_toml("icf", "0 %d inlinecrypt aes-xts-plain64 :64:logon:kic 0 fl 0 %s" % (S, OPTS)),
    device_toml("lic", "0 %d linear ic1 0" % S))

r = Report("inlinecrypt")
r.what = "ext4 on inlinecrypt over native and fallback hardware, slots shared with keyed exports"
rng = random.Random(SEED)
work = private_dir()


def writer(d, export, stop, errors):
    """Keyed I/O through another export of the same hardware until stopped."""
    try:
        h = connect(d, export)
        wrng = random.Random(export)
        while not stop.is_set():
            off = wrng.randrange(0, SIZE // 4096) * 4096
            data = wrng.randbytes(4096)
            h.pwrite(data, off)
            if h.pread(4096, off) != data:
                errors.append("%s: read-back differs at %d" % (export, off))
        h.shutdown()
    except Exception as e:  # noqa: BLE001
        errors.append("%s: %s" % (export, e))


def filesystem(d, export, name, check_medium):
    with Attachment(d.uri(export), work, name) as att:
        mkfs(att.dev, "ext4")
        mnt = os.path.join(work, "mnt-" + name)
        files = FileSet(mnt, rng)
        with Mount(att.dev, mnt):
            files.write(30)
        clean, out = fsck(att.dev, "ext4")
        r.check("%s: e2fsck -fn clean" % export, clean, out)
        with Mount(att.dev, mnt):
            good, bad = files.verify()
        r.check("%s: %d files verify after a remount" % (export, good), not bad, str(bad[:3]))
    if check_medium:
        check_medium()


def medium_is_dm_crypt(d, export, key, store, store_offset):
    """The first MiB of `export` read through it, encrypted independently, is on `store`."""
    h = connect(d, export)
    plain = h.pread(MiB, 0)
    h.shutdown()
    h = connect(d, store)
    raw = h.pread(MiB, store_offset)
    h.shutdown()
    r.check("%s: %s holds AES-256-XTS of its bytes, DUN = offset / 4096 (dm-crypt's layout)" %
            (export, store), raw == xts_encrypt(key, 4096, 0, plain) and plain != bytes(MiB))


def run(d, keys):
    stop, errors = threading.Event(), []
    threads = [threading.Thread(target=writer, args=(d, e, stop, errors))
               for e in ("lin1@k1", "lin2@k2")]
    for t in threads:
        t.start()
    try:
        filesystem(d, "ic0", "ic0", lambda: medium_is_dm_crypt(d, "ic0", keys["kic"], "hw0", 0))
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    r.check("the keyed exports sharing the slots read back what they wrote", not errors,
            str(errors[:3]))
    info = d.icectl("--json", "hw", "info", "hw0").stdout
    r.check("hw0's 2 slots were programmed again and again (3 keys)",
            '"slot_programs"' in info and int(info.split('"slot_programs":')[1].split(",")[0]) > 3,
            info[:300])
    filesystem(d, "ic1", "ic1", lambda: medium_is_dm_crypt(d, "ic1", keys["kfb"], "plain", 0))
    filesystem(d, "icf", "icf", None)
    filesystem(d, "lic", "lic", None)
    table = d.icectl("table", "ic0").stdout.strip()
    r.check("icectl table ic0 prints mainline's layout, the key as its reference",
            table == "0 %d inlinecrypt aes-xts-plain64 :64:logon:kic 1 0 hw0 0 %s" % (S, OPTS),
            table)


def body():
    d = daemon(CONFIG)
    keys = {k: write_key(os.path.join(d.dir, k + ".key"), rng.randbytes(64)) for k in KEYS}
    keys = {k: open(p, "rb").read() for k, p in keys.items()}
    with d:
        try:
            run(d, keys)
        finally:
            close_all()


guarded(r, body)
r.exit()
