"""Crash consistency the xfstests way (dm-flakey drop_writes), on an encrypted export (item 3).

fl0 is `flakey hw0 0 3600 0` (always up) exported with a key (fl0@k1). For ext4 and for xfs, at
several crash points: write files, fsync some of them; switch fl0 to `0 1 1 drop_writes` with
`icectl load` + `icectl resume` (from now on writes and flushes succeed but reach nothing, as after
a power cut); keep writing, fsyncing, overwriting and deleting; unmount; switch back to the up
table; mount (journal/log recovery), then check:
- every file fsynced before the crash point is there with its content, even those overwritten
  or deleted after it;
- nothing written after the crash point survived (the drop really dropped);
- after unmount, e2fsck -fn / xfs_repair -n find the filesystem clean.
The filesystem carries on into the next crash point.
"""
import os
import random

from e2e import SEED, SOAK, Attachment, FileSet, Mount, Report, close_all, daemon, file_content, \
    flush_bdev, fsck, fsync_dir, guarded, hw_counters, mkfs, private_dir, sh, write_file, \
    write_key
from ice_harness import device_toml, hardware_toml, key_toml, toml


SIZE = 768 << 20
N = SIZE // 512
UP = "0 %d flakey hw0 0 3600 0" % N
DROP = "0 %d flakey hw0 0 0 1 1 drop_writes" % N
CRASH_POINTS = 10 if SOAK else 3

CONFIG = toml(hardware_toml("hw0", SIZE), key_toml("k1"), device_toml("fl0", UP))

r = Report("crash-flakey")
r.what = "ext4+xfs on flakey under fl0@k1, %d drop_writes crash points each" % CRASH_POINTS
rng = random.Random(SEED)
work = private_dir()


def switch(d, table):
    d.icectl("load", "fl0", "--table", table)
    d.icectl("resume", "fl0")
    live = d.icectl("table", "fl0").stdout.strip()
    if ("drop_writes" in live) != ("drop_writes" in table):
        raise RuntimeError("fl0's live table is %r after resume of %r" % (live, table))


def crash_round(d, att, fstype, where, fs, point):
    """One crash point on a mounted filesystem; returns with it mounted again."""
    synced = []
    for _ in range(rng.randint(8, 20)):
        name, = fs.write(1, fsync=False, subdir="pre%d" % point)
        if rng.random() < 0.5:
            with open(os.path.join(where, name), "rb+") as f:
                os.fsync(f.fileno())
            fsync_dir(os.path.dirname(os.path.join(where, name)))
            synced.append(name)
        else:
            del fs.files[name]  # not fsynced: anything may be left of it
    fs.synced.extend(synced)

    switch(d, DROP)  # the power cut

    post = os.path.join(where, "post%d" % point)
    os.makedirs(post)
    post_files = 0
    for i in range(rng.randint(5, 15)):
        write_file(os.path.join(post, "g%d" % i), file_content(rng.getrandbits(32), 70000),
                   fsync=rng.random() < 0.5)
        post_files += 1
    fsync_dir(post)
    victims = rng.sample(fs.synced, min(4, len(fs.synced)))
    for v in victims[:2]:  # overwritten after the crash point: must come back as fsynced
        write_file(os.path.join(where, v), b"overwritten after the crash point", fsync=True)
    for v in victims[2:]:  # deleted after the crash point: must come back
        os.unlink(os.path.join(where, v))
        fsync_dir(os.path.dirname(os.path.join(where, v)))
    sh("sync", "-f", where, timeout=120)  # syncfs: this filesystem only

    sh("umount", where, timeout=180)
    fs.mount.mounted = False
    flush_bdev(att.dev)
    switch(d, UP)

    fs.mount = Mount(att.dev, where)  # recovery runs here
    good, bad = fs.verify(fs.synced)
    r.count("fsynced_files_verified", good)
    r.check("%s crash point %d: all %d fsynced files intact (%d new, %d overwritten or deleted "
            "after the crash)" % (fstype, point, len(fs.synced), len(synced), len(victims)),
            not bad and good == len(fs.synced), str(bad[:5]))
    r.check("%s crash point %d: none of the %d files written after it survived"
            % (fstype, point, post_files), not os.path.exists(post),
            str(os.listdir(post)) if os.path.exists(post) else "")
    fs.mount.close()
    ok, out = fsck(att.dev, fstype)
    r.check("%s crash point %d: %s clean" % (fstype, point,
            "e2fsck -fn" if fstype == "ext4" else "xfs_repair -n"), ok, out)
    r.count("crash_points")
    fs.mount = Mount(att.dev, where)


def run(d):
    for i, fstype in enumerate(("ext4", "xfs")):
        with Attachment(d.uri("fl0@k1"), work, "fl%d" % i) as att:
            mkfs(att.dev, fstype)
            where = os.path.join(work, "m%d" % i)
            fs = FileSet(where, random.Random(rng.getrandbits(32)))
            fs.synced = []
            fs.mount = Mount(att.dev, where)
            try:
                for point in range(CRASH_POINTS):
                    crash_round(d, att, fstype, where, fs, point)
            finally:
                fs.mount.close()
    c = hw_counters(d, "hw0")["counters"]
    r.check("hw0 counted no errors", c.get("errors", 0) == 0, str(c))


def body():
    d = daemon(CONFIG)
    write_key(os.path.join(d.dir, "k1.key"), rng.randbytes(64))
    with d:
        try:
            run(d)
        finally:
            close_all()


try:
    guarded(r, body)
finally:
    sh("rm", "-rf", "--one-file-system", work, check=False)
r.exit()
