"""End-to-end helpers: block devices from ice exports, filesystems, file sets with checksums.

Built on the lead's tests/lib/ice_harness.py (Daemon, Checks, xts_encrypt). Block devices come from
examples/ice-attach (nbdfuse + losetup), the same script users run, so the tests exercise it.

Every resource made here (attachment, mount) is undone in `finally`/`__exit__`, and also from an
atexit hook and on SIGTERM/SIGINT/SIGHUP (turned into SystemExit so that `with` blocks unwind), so a
test that fails or is timed out by run.sh leaves no mount, loop device or process behind.
"""

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))


from ice_harness import Checks, Daemon, DaemonError, connect, write_key, xts_decrypt, xts_encrypt  # noqa: E402,F401

ATTACH = os.path.join(ROOT, "examples", "ice-attach")
SOAK = os.environ.get("ICE_E2E_SOAK", "0") not in ("", "0")
SEED = int(os.environ.get("ICE_E2E_SEED", str(int(time.time()) % 100000)))

MiB = 1 << 20
SECTOR = 512


class StepError(Exception):
    pass


def _exit_on_signal(signum, _frame):
    raise SystemExit(128 + signum)


for _s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_s, _exit_on_signal)


def sh(*cmd, timeout=120, check=True, input=None):
    """Runs a command with a time limit; returns CompletedProcess (text). Raises StepError with
    its output when it fails and check is set."""
    try:
        r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, input=input)
    except subprocess.TimeoutExpired as e:
        raise StepError("%s: timed out after %ss" % (" ".join(cmd), timeout)) from e
    if check and r.returncode != 0:
        raise StepError("%s: exit %d: %s %s" % (" ".join(cmd), r.returncode, r.stdout[-2000:],
                                                r.stderr[-2000:]))
    return r


def run_script(args, env, timeout):
    """Runs a user-facing script (an example) in its own session with `env`; its output (stdout
    and stderr together) is echoed and returned with its exit code. After `timeout` it gets
    SIGTERM (the examples clean up on it) and two more minutes."""
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=env, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.terminate()
        out, _ = p.communicate(timeout=120)
    sys.stdout.write(out)
    return p.returncode, out


def private_dir(prefix="ice-e2e-"):
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o700)
    return d


# --- daemon -------------------------------------------------------------------------------------

DAEMON_SECTION = """[daemon]
control_socket = "{dir}/control.sock"
log_level = "info"
"""


def daemon(config, **kw):
    """A Daemon whose [daemon] section logs at info (debug logs every I/O of a filesystem run)."""
    return Daemon(DAEMON_SECTION + config, **kw)


def hw_counters(d, name):
    return json.loads(d.icectl("--json", "hw", "info", name).stdout)


# --- attachments and mounts ---------------------------------------------------------------------

_live = []  # objects with .close(), undone at exit in reverse order


def close_all():
    """Undoes every live mount and attachment, newest first."""
    while _live:
        obj = _live.pop()
        with contextlib.suppress(Exception):
            obj.close()


import atexit  # noqa: E402

atexit.register(close_all)


class Attachment:
    """export URI -> /dev/loopN through examples/ice-attach. Use as a context manager."""

    def __init__(self, uri, workdir, name, sector_size=None, direct_io=True, connections=None,
                 timeout=30):
        self.uri = uri
        self.dir = os.path.join(workdir, "att-" + name)
        self.dev = None
        args = [ATTACH, "attach", "--dir", self.dir, "--timeout", str(timeout)]
        if connections:
            args += ["--connections", str(connections)]
        if sector_size:
            args += ["--sector-size", str(sector_size)]
        if not direct_io:
            args += ["--buffered"]
        _live.append(self)
        r = sh(*(args + [uri]), timeout=timeout * 3 + 10, check=False)
        if r.returncode != 0:
            self.close()
            raise StepError("ice-attach attach %s failed (%d): %s" % (uri, r.returncode, r.stderr))
        self.dev = r.stdout.strip()

    def close(self):
        if self in _live:
            _live.remove(self)
        if os.path.isdir(self.dir):
            r = sh(ATTACH, "detach", self.dir, timeout=200, check=False)
            if r.returncode != 0:
                raise StepError("ice-attach detach %s failed: %s" % (self.dir, r.stderr))
        self.dev = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Mount:
    def __init__(self, dev, where, fstype=None, options=None):
        self.dev = dev
        self.where = where
        os.makedirs(where, exist_ok=True)
        cmd = ["mount"]
        if fstype:
            cmd += ["-t", fstype]
        if options:
            cmd += ["-o", options]
        sh(*(cmd + [dev, where]), timeout=120)
        self.mounted = True
        _live.append(self)

    def close(self):
        if self in _live:
            _live.remove(self)
        if self.mounted:
            self.mounted = False
            sh("umount", self.where, timeout=180)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def mkfs(dev, fstype):
    if fstype == "ext4":
        sh("mkfs.ext4", "-q", "-F", dev, timeout=180)
    elif fstype == "xfs":
        sh("mkfs.xfs", "-q", "-f", dev, timeout=180)
    else:
        raise ValueError(fstype)


def fsck(dev, fstype):
    """Read-only consistency check; returns (clean, output)."""
    if fstype == "ext4":
        r = sh("e2fsck", "-f", "-n", dev, timeout=300, check=False)
    else:
        r = sh("xfs_repair", "-n", dev, timeout=300, check=False)
    return r.returncode == 0, (r.stdout + r.stderr)[-3000:]


def flush_bdev(dev):
    """Drops the block device's cached pages so the next reader sees the medium, not memory."""
    sh("blockdev", "--flushbufs", dev, timeout=60, check=False)


# --- file sets ----------------------------------------------------------------------------------

def file_content(seed, size):
    """Deterministic, incompressible content: a file can be regenerated instead of stored."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(b"%d:%d" % (seed, counter)).digest() * 8
        counter += 1
    return bytes(out[:size])


class FileSet:
    """Files written under a folder with their SHA-256 kept: path (relative) -> (digest, size)."""

    SIZES = (1, 511, 4096, 4097, 65536, 100000, 262144, 1048576 + 513)

    def __init__(self, root, rng):
        self.root = root
        self.rng = rng
        self.files = {}
        self.n = 0

    def write(self, count, fsync=True, subdir="d", max_size=None):
        """Writes `count` new files; returns their names."""
        names = []
        os.makedirs(os.path.join(self.root, subdir), exist_ok=True)
        for _ in range(count):
            size = self.rng.choice([s for s in self.SIZES if max_size is None or s <= max_size])
            seed = self.rng.getrandbits(48)
            name = os.path.join(subdir, "f%05d" % self.n)
            self.n += 1
            data = file_content(seed, size)
            write_file(os.path.join(self.root, name), data, fsync)
            self.files[name] = (hashlib.sha256(data).hexdigest(), size)
            names.append(name)
        if fsync:
            fsync_dir(os.path.join(self.root, subdir))
        return names

    def verify(self, names=None, root=None):
        """Returns (number verified good, list of (name, problem))."""
        root = root or self.root
        good, bad = 0, []
        for name in (names if names is not None else sorted(self.files)):
            digest, size = self.files[name]
            try:
                with open(os.path.join(root, name), "rb") as f:
                    data = f.read()
            except OSError as e:
                bad.append((name, "unreadable: %s" % e))
                continue
            if len(data) != size:
                bad.append((name, "size %d, expected %d" % (len(data), size)))
            elif hashlib.sha256(data).hexdigest() != digest:
                bad.append((name, "content differs"))
            else:
                good += 1
        return good, bad


def write_file(path, data, fsync=True):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
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


def extents(path):
    """[(logical_byte, physical_byte, length_bytes)] of a file, from FIEMAP (filefrag -v)."""
    r = sh("filefrag", "-v", "-b4096", path, timeout=60)
    out = []
    for line in r.stdout.splitlines():
        parts = line.replace(":", " ").replace("..", " ").split()
        # "   0:        0..       3:      34816..     34819:      4:             last,eof"
        if len(parts) >= 5 and parts[0].isdigit() and parts[1].isdigit():
            logical, phys, length = int(parts[1]), int(parts[3]), int(parts[5])
            out.append((logical * 4096, phys * 4096, length * 4096))
    return out


# --- reporting ----------------------------------------------------------------------------------

class Report(Checks):
    """Checks plus the one summary line an e2e test prints last:
    `e2e <name>: <what ran>; <counts>: PASS|FAIL (<seconds>s)`."""

    def __init__(self, name):
        super().__init__(name)
        self.t0 = time.time()
        self.counts = {}
        self.what = ""
        print("%s: seed %d%s" % (name, SEED, " (soak)" if SOAK else ""), flush=True)

    def count(self, key, n=1):
        self.counts[key] = self.counts.get(key, 0) + n

    def exit(self):
        ok = self.failed == 0 and self.passed > 0
        counts = ", ".join("%s=%s" % kv for kv in self.counts.items())
        print("e2e %s: %s; %s; %d checks passed, %d failed: %s (%.0fs)"
              % (self.name, self.what, counts, self.passed, self.failed, "PASS" if ok else "FAIL",
                 time.time() - self.t0), flush=True)
        raise SystemExit(0 if ok else 1)


def guarded(report, fn):
    """Runs the test body; an exception fails the test (with its reason) instead of a traceback
    alone, and the clean-up still runs."""
    try:
        fn()
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001 - every failure is reported
        import traceback
        traceback.print_exc()
        report.check("test body ran to the end", False, "%s: %s" % (type(e).__name__, e))
    finally:
        close_all()
