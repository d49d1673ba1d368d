"""systemd/ice.socket + ice.service without systemd: socket activation and sd_notify readiness.

systemd-socket-activate holds the listening socket (as ice.socket does) and starts nbdkit with
LISTEN_FDS on the first connection; nbdkit serves that socket, and the plugin sends READY=1 to
NOTIFY_SOCKET once its exports and control socket are up (Type=notify in ice.service).
"""
import contextlib
import os
import signal
import socket
import subprocess
import time

from ice_harness import PLUGIN, Checks, Daemon

CONFIG = """
[[hardware]]
name = "hw0"
backing = "memory"
size = "4M"
"""

c = Checks("socket-activation")
d = Daemon(CONFIG)  # used for its private folder and config file only; started by hand below
notify_path = os.path.join(d.dir, "notify.sock")
notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
notify.bind(notify_path)
notify.settimeout(30)
proc = None
try:
    log = open(d.log_path, "ab")
    proc = subprocess.Popen(
        ["systemd-socket-activate", "-l", d.sock, "-E", "NOTIFY_SOCKET=" + notify_path,
         "nbdkit", "-f", PLUGIN, "config=" + d.config_path],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 20
    while not os.path.exists(d.sock) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    c.check("the activation socket exists before nbdkit runs", os.path.exists(d.sock))

    # The first connection starts nbdkit on the inherited socket and is served by it.
    listing = subprocess.run(["nbdinfo", "--list", "nbd+unix:///?socket=" + d.sock],
                             capture_output=True, text=True, timeout=60)
    c.check("the first connection is served (nbdinfo --list)",
            listing.returncode == 0 and 'export="hw0"' in listing.stdout,
            listing.stderr[-500:])

    messages = []
    with contextlib.suppress(socket.timeout):
        while not any("READY=1" in m for m in messages):
            messages.append(notify.recv(4096).decode(errors="replace"))
    c.check("READY=1 reaches NOTIFY_SOCKET", any("READY=1" in m for m in messages),
            repr(messages))
    c.check("the control socket is up when READY=1 is sent", os.path.exists(d.ctl))
    c.check("the process that serves is nbdkit with the plugin (exec'd in place)",
            proc.poll() is None and "nbdkit" in open("/proc/%d/comm" % proc.pid).read())

    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(20)
    except subprocess.TimeoutExpired:
        rc = "still running after 20 s"
    c.check("SIGTERM stops it with status 0", rc == 0, "exit %s\n%s" % (rc, d.log()[-1500:]))
finally:
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    notify.close()
    d.cleanup()
c.exit()
