"""N7, D2: stopping the daemon while a request is held by a suspended device.

The held request fails with ESHUTDOWN and nbdkit exits by itself (exit status 0) instead of
waiting forever for a resume; a device that is not suspended serves its requests to the end.
"""
import contextlib
import errno
import signal
import subprocess
import threading

import nbd
from ice_harness import Checks, Daemon, connect, device_toml, hardware_toml, toml

CONFIG = toml(
    hardware_toml("hw0", "4M", keyslots=None),
    device_toml("held", "0 4096 linear hw0 0"),
    device_toml("free", "0 4096 linear hw0 4096"))

c = Checks("shutdown")
d = Daemon(CONFIG)
try:
    d.start()
    free = connect(d, "free")
    free.pwrite(b"\x11" * 4096, 0)
    held = connect(d, "held")
    held.pwrite(b"\x22" * 4096, 0)
    c.check("suspend of the device", d.control("suspend", name="held").get("ok") is True)

    outcome = {}

    def held_read():
        try:
            held.pread(4096, 0)
            outcome["result"] = "ok"
        except nbd.Error as e:
            outcome["result"] = e.errnum

    reader = threading.Thread(target=held_read)
    reader.start()
    reader.join(1.0)  # a read that is served returns in well under a second
    c.check("the read waits while the device is suspended", reader.is_alive())
    c.check("the other device still serves", free.pread(4096, 0) == b"\x11" * 4096)

    # nbdkit stops once every request has returned and its clients have gone: send SIGTERM, let
    # the held read come back, then close both connections as a client would.
    d.proc.send_signal(signal.SIGTERM)
    reader.join(20)
    for h in (free, held):
        with contextlib.suppress(nbd.Error):
            h.shutdown()
    try:
        rc = d.proc.wait(20)
    except subprocess.TimeoutExpired:
        rc = "still running after 20 s"
    c.check("SIGTERM stops nbdkit by itself with status 0", rc == 0, "exit %s" % rc)
    c.check("the held read failed with ESHUTDOWN", outcome.get("result") == errno.ESHUTDOWN,
            "got %r" % outcome.get("result"))
    c.check("the log says why", "ESHUTDOWN" in d.log(), d.log()[-1500:])
    errors = [line for line in d.log().splitlines() if "error:" in line]
    c.check("a clean stop logs no error", not errors, "\n".join(errors))
finally:
    d.cleanup()
c.exit()
