"""Hardening 3 and 5 against the real daemon: a verb that blocks (a suspend waiting for I/O held
by another suspended device, a hardware reset with slow programming) holds up no other client,
idle timeouts keep firing, --timeout undoes a blocked suspend; control connections are capped, a
flood of them leaves NBD clients and the log alone, and running out of descriptors does not make
the daemon spin."""
import json
import os
import resource
import socket
import subprocess
import threading
import time

import nbd
from ice_harness import ICECTL, Checks, Daemon, connect, device_toml, hardware_toml, key_toml, \
    recv_line, toml

MiB = 1 << 20
C = Checks("control-plane")
CONFIG = """
[daemon]
control_socket = "{dir}/control.sock"
log_level = "info"
control_idle_timeout_s = 2
""" + toml(
    hardware_toml("hw0", "16M"),
    key_toml("k1", generate=True),
    device_toml("lower", "0 16384 linear hw0 0"),
    device_toml("upper", "0 16384 linear lower 0"))


def request(d, verb, timeout=5, **args):
    """One request on a new connection: (reply or None, seconds it took)."""
    start = time.monotonic()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(d.ctl)
        try:
            s.sendall((json.dumps({"v": 1, "id": 1, "verb": verb, "args": args}) + "\n").encode())
        except (BrokenPipeError, ConnectionResetError):
            pass  # a refused connection is answered and closed at once: its reply is still there
        try:
            line = recv_line(s)
        except (socket.timeout, ConnectionResetError):
            return None, time.monotonic() - start
    return (json.loads(line) if line else None), time.monotonic() - start


def ten_verbs_served(d, what):
    """Ten other verbs, each on its own connection, each answered within a second."""
    verbs = [("version", {}), ("ls", {}), ("info", {"name": "upper"}), ("table", {"name": "upper"}),
             ("status", {"name": "lower"}), ("hw.ls", {}), ("hw.info", {"name": "hw0"}),
             ("key.ls", {}), ("metrics", {}), ("export.check", {"export": "lower@k1"})]
    for verb, args in verbs:
        reply, took = request(d, verb, **args)
        C.check("%s: %s is answered within a second (%.3f s)" % (what, verb, took),
                reply is not None and reply.get("ok") is True and took < 1.0,
                json.dumps(reply)[:200])


def state(d, name):
    return d.control("info", name=name)["result"]["state"]


def suspending(d, name):
    return d.control("info", name=name)["result"]["suspending"]


def until(fn, timeout=60):
    """Polls fn() until it holds (bounded: a loaded machine may take seconds)."""
    deadline = time.time() + timeout
    while not fn():
        if time.time() > deadline:
            return False
        time.sleep(0.05)
    return True


def blocked_suspend(d):
    """suspend lower; a write through upper (held by lower); suspend upper, which waits for it.
    Returns (nbd handle, write cookie, the blocked suspend's socket)."""
    C.check("suspend lower", d.control("suspend", name="lower")["ok"])
    h = connect(d, "upper@k1")
    cookie = h.aio_pwrite(b"\x5a" * 4096, 0)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(d.ctl)
    s.sendall(b'{"v":1,"id":7,"verb":"suspend","args":{"name":"upper"}}\n')
    return h, cookie, s


def wait_write(h, cookie, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        h.poll(0)
        if h.aio_command_completed(cookie):
            return True
        time.sleep(0.02)
    return False


def blocking_suspend_serves_everyone():
    with Daemon(CONFIG) as d:
        idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        idle.settimeout(30)
        idle.connect(d.ctl)
        h, cookie, blocked = blocked_suspend(d)
        C.check("the suspend of upper waits for the held write (info: suspending)",
                until(lambda: suspending(d, "upper")))
        ten_verbs_served(d, "while suspend upper waits")
        start = time.monotonic()
        closed = idle.recv(1) == b""
        C.check("an idle connection still times out while a verb blocks (%.1f s)" %
                (time.monotonic() - start), closed)
        idle.close()
        C.check("upper is not suspended while its drain waits", state(d, "upper") == "ACTIVE")
        r = d.icectl("resume", "lower", check=False)
        C.check("resume lower is served on another connection", r.returncode == 0, r.stderr)
        reply = json.loads(recv_line(blocked))
        C.check("the blocked suspend then finishes", reply["ok"] and reply["id"] == 7,
                json.dumps(reply))
        blocked.close()
        C.check("the held write completes", wait_write(h, cookie))
        C.check("upper is suspended", state(d, "upper") == "SUSPENDED")
        C.check("resume upper", d.control("resume", name="upper")["ok"])
        C.check("I/O through upper works again", h.pread(4096, 0) == b"\x5a" * 4096)
        h.shutdown()


def timeout_undoes_suspend():
    with Daemon(CONFIG) as d:
        h = connect(d, "upper@k1")
        C.check("suspend lower", d.control("suspend", name="lower")["ok"])
        cookie = h.aio_pwrite(b"\x33" * 4096, 8192)
        start = time.monotonic()
        r = d.icectl("--timeout", "1.5", "suspend", "upper", check=False)
        took = time.monotonic() - start
        C.check("icectl suspend --timeout 1.5 fails with ETIMEDOUT (exit 1) in %.1f s" % took,
                r.returncode == 1 and "did not finish within the timeout" in r.stderr, r.stderr)
        C.check("the timed-out suspend is undone: upper is ACTIVE", state(d, "upper") == "ACTIVE")
        start = time.monotonic()
        r = d.icectl("--timeout", "1", "info", "upper", check=False)
        C.check("the next verb is served at once", r.returncode == 0, r.stderr)
        # A client killed while its suspend waits cancels it, as killing dmsetup would.
        p = subprocess.Popen([ICECTL, "--socket", d.ctl, "suspend", "upper"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        C.check("icectl's suspend of upper waits (info: suspending)",
                until(lambda: suspending(d, "upper")))
        p.kill()
        p.wait()
        C.check("killing icectl during its suspend undoes it: upper neither suspending nor "
                "suspended", until(lambda: not suspending(d, "upper"))
                and state(d, "upper") == "ACTIVE")
        C.check("resume lower", d.control("resume", name="lower")["ok"])
        C.check("the held write completes", wait_write(h, cookie))
        # Had the suspend gone on, the write's completion would have let it finish.
        C.check("upper stays ACTIVE once the write is done", state(d, "upper") == "ACTIVE")
        if state(d, "upper") == "SUSPENDED":
            d.control("resume", name="upper")  # so that the read below cannot hang
        C.check("and the write reads back", h.pread(4096, 8192) == b"\x33" * 4096)
        h.shutdown()


def slow_reset_serves_everyone():
    with Daemon(CONFIG) as d:
        h = connect(d, "hw0@k1")
        h.pwrite(b"\x11" * 4096, 0)  # programs k1 into a slot: the reset reprograms it
        C.check("hw fault --program-latency-ms 15000",
                d.icectl("hw", "fault", "hw0", "--program-latency-ms", "15000",
                         check=False).returncode == 0)
        resetter = threading.Thread(target=lambda: request(d, "hw.reset", timeout=60, name="hw0"))
        resetter.start()
        C.check("the reset is under way", until(
            lambda: json.loads(d.icectl("--json", "hw", "info", "hw0").stdout)["counters"]
            ["resets"] == 1))
        ten_verbs_served(d, "while hw reset waits 15 s of programming latency")
        C.check("hw fault --program-latency-ms 0 (the reset still takes its time)",
                d.icectl("hw", "fault", "hw0", "--program-latency-ms", "0",
                         check=False).returncode == 0)
        h.shutdown()  # nbdkit waits for idle NBD connections at a stop
        # The daemon stops at once even with the reset waiting.
        start = time.monotonic()
        rc = d.stop()
        C.check("SIGTERM ends a reset that waits on slow hardware (%.1f s, exit %s)" %
                (time.monotonic() - start, rc), rc == 0 and time.monotonic() - start < 10)
        resetter.join(30)
        with_errors = [line for line in d.log().splitlines() if "[error]" in line]
        C.check("no error logged", not with_errors, "\n".join(with_errors[:5]))


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(n, hard)), hard))


def connection_flood_is_capped():
    raise_nofile(8192)
    config = CONFIG.replace("control_idle_timeout_s = 2", "control_idle_timeout_s = 60")
    with Daemon(config) as d:
        flood = []
        for _ in range(3000):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect(d.ctl)
            flood.append(s)
        time.sleep(1)
        refused = 0
        for s in flood[64:]:
            try:
                line = recv_line(s)
                refused += '"EAGAIN"' in line
            except OSError:
                pass
        C.check("3000 idle connections: all but 64 are refused with EAGAIN (%d)" % refused,
                refused == 3000 - 64)
        h = connect(d, "lower@k1")
        h.pwrite(b"\x77" * 4096, 0)
        C.check("an NBD client connects and does I/O meanwhile", h.pread(4096, 0) == b"\x77" * 4096)
        h.shutdown()
        reply, _ = request(d, "version")
        C.check("a 65th control client is refused while 64 are held",
                reply is not None and reply["error"]["code"] == "EAGAIN", json.dumps(reply))
        for s in flood[:64]:
            s.close()
        deadline = time.time() + 10
        while time.time() < deadline:
            reply, _ = request(d, "version")
            if reply and reply.get("ok"):
                break
            time.sleep(0.05)
        C.check("once they close, control clients are served again", reply and reply.get("ok"))
        for s in flood[64:]:
            s.close()
        lines = d.log().count("refused a connection")
        C.check("the refusals are rate-limited in the log (%d lines)" % lines, 0 < lines < 50)


def descriptor_exhaustion_backs_off():
    raise_nofile(8192)
    config = CONFIG.replace("control_idle_timeout_s = 2",
                            "control_idle_timeout_s = 60\ncontrol_max_clients = 4096")
    with Daemon(config, prefix=["prlimit", "--nofile=200"]) as d:
        flood = []
        for _ in range(400):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(d.ctl)
            flood.append(s)
        time.sleep(0.5)
        with open("/proc/%d/stat" % d.proc.pid) as f:
            before = [int(x) for x in f.read().split(")")[1].split()[11:13]]
        time.sleep(2)
        with open("/proc/%d/stat" % d.proc.pid) as f:
            after = [int(x) for x in f.read().split(")")[1].split()[11:13]]
        ticks = sum(after) - sum(before)
        hz = os.sysconf("SC_CLK_TCK")
        C.check("out of descriptors, the control thread backs off instead of spinning "
                "(%.2f s of CPU in 2 s)" % (ticks / hz), ticks / hz < 0.5)
        lines = d.log().count("accepting a connection failed")
        C.check("the accept failure is logged at most once a second (%d lines)" % lines,
                0 < lines <= 10)
        for s in flood:
            s.close()
        deadline = time.time() + 10
        reply = None
        while time.time() < deadline:
            reply, _ = request(d, "version")
            if reply and reply.get("ok"):
                break
            time.sleep(0.1)
        C.check("once descriptors are free, control clients are served",
                reply and reply.get("ok"), json.dumps(reply))
        h = connect(d, "lower@k1")
        C.check("and NBD clients too", len(h.pread(4096, 0)) == 4096)
        h.shutdown()


for fn in (blocking_suspend_serves_everyone, timeout_undoes_suspend, slow_reset_serves_everyone,
           connection_flood_is_capped, descriptor_exhaustion_backs_off):
    C.run(fn.__name__, fn)
C.exit()
