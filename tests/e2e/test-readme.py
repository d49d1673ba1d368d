"""Issue 19: README's quick path, run exactly as README prints it (nbdfuse, a buffered write to
the export's file at an odd offset, a default losetup with 512-byte sectors, mkfs, mount, fsck),
against the demo configuration that `./dev run` serves. Only the two folders it names change:
/run/ice becomes this test's daemon folder and /mnt/ice a mount point of its own. The kernel
says nothing about the device meanwhile (keyed exports used to refuse the loop device's
WRITE_ZEROES)."""
import os
import re
import subprocess
import tempfile

from e2e import ROOT, Checks, Daemon

C = Checks("e2e readme")


def quick_path():
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    block = re.search(r"<!-- quick-path[^>]*-->\n(.*?)<!-- /quick-path -->", text, re.S)
    if not block:
        raise SystemExit("README.md has no quick-path block")
    return [line[4:] for line in block.group(1).splitlines() if line.startswith("    ")]


def demo_config():
    """The demo configuration with its folder, /run/ice, as the test daemon's."""
    with open(os.path.join(ROOT, "config", "examples", "demo.toml")) as f:
        return f.read().replace("/run/ice", "{dir}")


def kernel_lines():
    return subprocess.run(["dmesg"], capture_output=True, text=True).stdout.splitlines()


lines = quick_path()
C.check("README has a quick path of %d lines" % len(lines), len(lines) >= 6)
d = Daemon(demo_config())
mnt = tempfile.mkdtemp(prefix="ice-readme-mnt-")
try:
    d.start()
    script = "\n".join(lines).replace("/run/ice", d.dir).replace("/mnt/ice", mnt)
    before = len(kernel_lines())
    r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], capture_output=True,
                       text=True, timeout=240)
    out = r.stdout + r.stderr
    C.check("README's quick path runs as printed (exit %d)" % r.returncode, r.returncode == 0,
            out[-2000:])
    C.check("e2fsck -fn checked the whole filesystem and found nothing (exit 0 under -e)",
            r.returncode == 0 and re.search(r"/dev/loop\d+: \d+/\d+ files", out) is not None,
            out[-1000:])
    new = kernel_lines()[before:]
    bad = [line for line in new if "error" in line.lower() and "loop" in line]
    C.check("the kernel logs no error for the loop device (%d new lines)" % len(new), not bad,
            "\n".join(bad[:5]))
    C.check("the daemon logged no error", "[error]" not in d.log() and " error:" not in d.log(),
            d.log()[-1500:])
finally:  # whatever a failed line left behind
    subprocess.run(["umount", mnt], capture_output=True)
    backing = os.path.join(d.dir, "fuse", "nbd")
    for line in subprocess.run(["losetup", "-j", backing], capture_output=True,
                               text=True).stdout.splitlines():
        subprocess.run(["losetup", "-d", line.split(":")[0]], capture_output=True)
    subprocess.run(["fusermount3", "-u", os.path.join(d.dir, "fuse")], capture_output=True)
    d.cleanup()
    os.rmdir(mnt)
C.exit()
