"""Files with kept checksums, for the real-kernel groups (one process per call: every exec is
slow under TCG).

  files.py fill DIR TAG N SUMS [--fsync]   N files of 1-256 KiB plus one of 4 MiB in DIR/TAG,
                                           "sha256  TAG/NAME" lines appended to SUMS (after each
                                           file's fsync with --fsync)
  files.py verify DIR SUMS                 every file listed in SUMS has its checksum
  files.py write-fsync PATH                writes 256 KiB to PATH and fsyncs it; prints "ok" or
                                           the errno name of the first failure (exit 0 either way)

Contents come from random.Random seeded with ICE_SEED, TAG and the file's number, so a failing
run can be repeated.
"""

import errno
import hashlib
import os
import random
import sys


def content(tag, i, size):
    rng = random.Random("%s/%s/%d" % (os.environ.get("ICE_SEED", "0"), tag, i))
    return ("%s/%d\n" % (tag, i)).encode() + rng.randbytes(size)


def write(path, data, fsync):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fill(root, tag, n, sums, fsync):
    os.makedirs(os.path.join(root, tag), exist_ok=True)
    if fsync:
        fsync_dir(root)
    lines = []
    rng = random.Random("%s/%s" % (os.environ.get("ICE_SEED", "0"), tag))
    for i in range(n + 1):
        size = 4 << 20 if i == n else rng.randrange(1024, 256 << 10)
        name = "%s/f%d" % (tag, i)
        data = content(tag, i, size)
        write(os.path.join(root, name), data, fsync)
        lines.append("%s  %s\n" % (hashlib.sha256(data).hexdigest(), name))
    if fsync:
        fsync_dir(os.path.join(root, tag))
    with open(sums, "a") as f:
        f.writelines(lines)


def verify(root, sums):
    bad = []
    total = 0
    with open(sums) as f:
        for line in f:
            want, name = line.rstrip("\n").split("  ", 1)
            total += 1
            try:
                with open(os.path.join(root, name), "rb") as g:
                    got = hashlib.sha256(g.read()).hexdigest()
            except OSError as e:
                got = errno.errorcode.get(e.errno, str(e.errno))
            if got != want:
                bad.append("%s (%s)" % (name, got[:12]))
    if bad:
        print("%d of %d files wrong: %s" % (len(bad), total, " ".join(bad[:5])))
        return 1
    print("%d files verified" % total)
    return 0


def write_fsync(path):
    try:
        write(path, os.urandom(256 << 10), True)
        print("ok")
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)))
    return 0


def main(argv):
    if len(argv) >= 5 and argv[0] == "fill":
        fill(argv[1], argv[2], int(argv[3]), argv[4], "--fsync" in argv[5:])
        return 0
    if len(argv) == 3 and argv[0] == "verify":
        return verify(argv[1], argv[2])
    if len(argv) == 2 and argv[0] == "write-fsync":
        return write_fsync(argv[1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
