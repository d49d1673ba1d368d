"""examples/ice-attach against plain nbdkit (memory and file plugins; no ice needed): attach,
filesystem round trip, and clean detach in every exit path — failing attach, failing command,
SIGTERM while the device is busy, detach while mounted, server killed under a mounted filesystem.
After each case: no loop device, no mount, no nbdfuse process and no folder left behind."""
import os
import random
import signal
import subprocess
import time

from e2e import ATTACH, SEED, Attachment, FileSet, Mount, Report, fsck, guarded, mkfs, \
    private_dir, sh

r = Report("attach")
r.what = "ice-attach over nbdkit memory/file: ext4+xfs round trips, 6 failure paths"
rng = random.Random(SEED)
work = private_dir()
servers = []


class Nbdkit:
    """A plain nbdkit on a private Unix socket, stopped by PID."""

    def __init__(self, *plugin_args):
        self.sock = os.path.join(work, "nbdkit-%d.sock" % len(servers))
        self.proc = subprocess.Popen(["nbdkit", "-f", "-U", self.sock] + list(plugin_args),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        servers.append(self)
        deadline = time.time() + 20
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("nbdkit %s did not start" % (plugin_args,))
            time.sleep(0.05)

    def uri(self):
        return "nbd+unix:///?socket=%s" % self.sock

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if os.path.exists(self.sock):
            os.unlink(self.sock)


def leftovers():
    """What of ours is still there: loop devices on our files, mounts, nbdfuse processes."""
    found = []
    loops = sh("losetup", "-n", "-O", "NAME,BACK-FILE", "-l", check=False).stdout
    found += ["loop " + l.strip() for l in loops.splitlines() if work in l]
    with open("/proc/self/mountinfo") as f:
        found += ["mount " + l.split()[4] for l in f if work in l.split()[4]]
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if cmd.startswith("nbdfuse") and work in cmd:
                found.append("process %s %s" % (pid, cmd))
    return found


def clean(what):
    left = leftovers()
    r.check("%s: nothing left behind" % what, not left, "; ".join(left))


def body():
    mem = Nbdkit("memory", "1G")

    # Round trip on ext4, data survives detach and re-attach.
    fs = None
    with Attachment(mem.uri(), work, "mem") as a:
        r.check("attach prints a loop device", a.dev.startswith("/dev/loop"), a.dev)
        dio = sh("losetup", "-n", "-O", "DIO", a.dev).stdout.strip()
        r.check("loop device uses direct I/O", dio == "1", dio)
        mkfs(a.dev, "ext4")
        with Mount(a.dev, os.path.join(work, "m")):
            fs = FileSet(os.path.join(work, "m"), rng)
            fs.write(20)
    clean("detach after a clean unmount")
    with Attachment(mem.uri(), work, "mem2") as a, Mount(a.dev, os.path.join(work, "m")):
        good, bad = fs.verify()
        r.count("files_verified", good)
        r.check("ext4 files intact after detach and re-attach (%d files)" % good, not bad, str(bad))
    clean("second round trip")

    # xfs over nbdkit's file plugin advertising a 4096-byte minimum block size, as a keyed ice
    # export does: the loop device must take it over, or nbdfuse refuses xfs's 512-byte log writes.
    img = os.path.join(work, "disk.img")
    with open(img, "wb") as f:
        f.truncate(512 << 20)
    filesrv = Nbdkit("--filter=blocksize-policy", "file", img, "blocksize-minimum=4096",
                     "blocksize-preferred=4096", "blocksize-error-policy=error")
    with Attachment(filesrv.uri(), work, "file") as a:
        bs = sh("blockdev", "--getss", a.dev).stdout.strip()
        r.check("loop block size follows the export's minimum (4096)", bs == "4096", bs)
        mkfs(a.dev, "xfs")
        with Mount(a.dev, os.path.join(work, "m")):
            fs2 = FileSet(os.path.join(work, "m"), rng)
            fs2.write(20)
        ok, out = fsck(a.dev, "xfs")
        r.check("xfs_repair -n clean after unmount", ok, out)
        with Mount(a.dev, os.path.join(work, "m")):
            good, bad = fs2.verify()
            r.count("files_verified", good)
            r.check("xfs files intact after remount (%d files)" % good, not bad, str(bad))
    clean("xfs on nbdkit file")

    # 1. attach to a socket nobody listens on.
    t = time.time()
    res = sh(ATTACH, "attach", "--timeout", "10", "nbd+unix:///?socket=%s/none.sock" % work,
             check=False, timeout=60)
    r.check("attach to a dead socket fails with a message", res.returncode != 0 and
            "ice-attach:" in res.stderr, res.stderr)
    r.check("... within its bound", time.time() - t < 15, "%.1fs" % (time.time() - t))
    clean("failed attach")

    # 2. run: the command fails and leaves its filesystem mounted.
    res = sh(ATTACH, "run", "--dir", os.path.join(work, "run1"), mem.uri(), "--", "sh", "-c",
             'mkdir -p "$ICE_ATTACH_DIR/m" && mount "$ICE_DEV" "$ICE_ATTACH_DIR/m" && exit 7',
             check=False, timeout=120)
    r.check("run passes the command's exit status on", res.returncode == 7, res.stderr)
    clean("run with a failing command that left a mount")

    # 3. run gets SIGTERM while a grandchild sits in the mounted filesystem.
    p = subprocess.Popen([ATTACH, "run", "--dir", os.path.join(work, "run2"), mem.uri(), "--",
                          "sh", "-c", 'mkdir -p "$ICE_ATTACH_DIR/m" && mount "$ICE_DEV" '
                          '"$ICE_ATTACH_DIR/m" && cd "$ICE_ATTACH_DIR/m" && touch ready && '
                          'sleep 300'], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    ready = os.path.join(work, "run2", "m", "ready")
    deadline = time.time() + 60
    while not os.path.exists(ready) and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    t = time.time()
    p.send_signal(signal.SIGTERM)
    try:
        _, err = p.communicate(timeout=90)
        r.check("run exits 143 on SIGTERM", p.returncode == 143, "%s %s" % (p.returncode, err))
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        r.check("run exits on SIGTERM within 90s", False)
    r.count("sigterm_cleanup_s", round(time.time() - t, 1))
    clean("run stopped by SIGTERM with a busy mount")

    # 4. detach while the filesystem is still mounted.
    a = Attachment(mem.uri(), work, "busy")
    os.makedirs(os.path.join(work, "m3"), exist_ok=True)
    sh("mount", a.dev, os.path.join(work, "m3"))
    a.close()
    clean("detach of a mounted device")

    # 5. the server dies (kill -9) under a mounted filesystem.
    crash = Nbdkit("memory", "1G")
    a = Attachment(crash.uri(), work, "crash")
    mkfs(a.dev, "ext4")
    sh("mount", a.dev, os.path.join(work, "m3"))
    crash.stop(signal.SIGKILL)
    t = time.time()
    try:
        a.close()
        r.check("detach succeeds after the server died", True)
    except Exception as e:  # noqa: BLE001
        r.check("detach succeeds after the server died", False, str(e))
    r.check("... within 60s", time.time() - t < 60, "%.1fs" % (time.time() - t))
    clean("detach after a server crash")

    # 6. detach twice (a --dir folder stays, so the second is a no-op).
    d = os.path.join(work, "twice")
    dev = sh(ATTACH, "attach", "--dir", d, mem.uri()).stdout.strip()
    first = sh(ATTACH, "detach", dev, check=False)
    second = sh(ATTACH, "detach", d, check=False)
    r.check("detach by device name, then again by folder: both succeed",
            first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr)
    clean("double detach")


try:
    guarded(r, body)
finally:
    for s in servers:
        s.stop()
    sh("rm", "-rf", "--one-file-system", work, check=False)
r.exit()
