"""P1-P6 and N2, N7, N8 through the control socket and icectl, against the real daemon: table
swaps under verified I/O, refusals that change nothing, malformed requests while NBD I/O runs,
socket mode and peer credentials, key hygiene, metrics, every icectl verb with --json."""
import errno as E
import json
import os
import random
import socket
import subprocess
import threading
import time

import nbd
from ice_harness import ICECTL, Checks, Daemon, connect, device_toml, hardware_toml, key_toml, \
    recv_line, toml, write_key

MiB = 1 << 20
DU = 4096
NOBODY = 65534
ALLOWED = 65533
CONFIG = """
[daemon]
control_socket = "{dir}/control.sock"
log_level = "debug"
allowed_uids = [%d]
control_max_clients = 128
""" % ALLOWED + toml(
    hardware_toml("hw0", "16M"),
    hardware_toml("hw1", "16M"),
    key_toml("k1", generate=True),
    key_toml("k64k", data_unit_size=65536, generate=True),
    device_toml("mp", "0 16384 linear hw0 0"),
    device_toml("dk", "0 8192 default-key aes-xts-plain64 :64:logon:k1 0 hw0 16384 2 "
                "sector_size:4096 iv_large_sectors"),
    device_toml("err", "0 2048 linear hw1 0", "2048 2048 error"),
    device_toml("tiny", "0 8 zero"))


class Worker(threading.Thread):
    """Verified I/O on one export until stopped: unaligned writes, each read back and compared;
    at the end the whole region is compared with the model."""

    def __init__(self, d, export, base, size, seed):
        super().__init__(daemon=True)
        self.h = connect(d, export)
        self.base, self.size = base, size
        self.rng = random.Random(seed)
        self.model = bytearray(size)
        self.h.pwrite(bytes(size), base)
        self.ops = 0
        self.errors = []
        self.stopping = threading.Event()

    def run(self):
        try:
            while not self.stopping.is_set():
                a = self.rng.randrange(0, self.size - 1)
                n = self.rng.randrange(1, min(3 * DU, self.size - a) + 1)
                data = self.rng.randbytes(n)
                self.h.pwrite(data, self.base + a)
                self.model[a:a + n] = data
                got = self.h.pread(n, self.base + a)
                if got != data:
                    self.errors.append("read-back mismatch at %d+%d" % (a, n))
                self.ops += 1
        except Exception as e:  # noqa: BLE001
            self.errors.append("%s: %s" % (type(e).__name__, e))

    def finish(self):
        self.stopping.set()
        self.join(60)
        if self.is_alive():
            self.errors.append("worker did not stop")
            return self.errors
        if self.h.pread(self.size, self.base) != bytes(self.model):
            self.errors.append("final content differs from the model")
        self.h.shutdown()
        return self.errors

    def wait_ops(self, n, timeout=30):
        deadline = time.time() + timeout
        target = self.ops + n
        while self.ops < target and time.time() < deadline and self.is_alive():
            time.sleep(0.01)
        return self.ops >= target


def ctl(d, *args, input=None):
    return d.icectl(*args, input=input, check=False)


def ctl_json(d, *args):
    r = ctl(d, "--json", *args)
    if r.returncode != 0:
        raise AssertionError("icectl --json %s: %d %s" % (" ".join(args), r.returncode, r.stderr))
    return json.loads(r.stdout)


def one_error_line(r):
    return r.returncode == 1 and r.stdout == "" and r.stderr.startswith("icectl: error: ") \
        and r.stderr.count("\n") == 1


def raw_exchange(path, payload, timeout=30):
    """Sends raw bytes on a new control connection; returns (reply lines, closed by the daemon)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        sender_error = []

        def send():
            try:
                s.sendall(payload)
            except OSError as e:  # the daemon may close before reading everything (oversize)
                sender_error.append(e)

        t = threading.Thread(target=send)
        t.start()
        buf = b""
        closed = False
        want = payload.count(b"\n")
        while buf.count(b"\n") < want:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                closed = True
                break
            except socket.timeout:
                break
            if not chunk:
                closed = True
                break
            buf += chunk
        t.join(timeout)
        if not closed:
            s.settimeout(0.5)
            try:
                closed = s.recv(1) == b""
            except socket.timeout:
                closed = False
            except ConnectionResetError:
                closed = True
        return [json.loads(l) for l in buf.decode().splitlines() if l], closed


def eventually(fn, timeout=20):
    """fn() until it returns true (a connection's close runs a moment after the client leaves)."""
    deadline = time.time() + timeout
    while True:
        r = fn()
        if r or time.time() > deadline:
            return r
        time.sleep(0.05)


c = Checks("control")
d = Daemon(CONFIG)
with d:
    # --- P1: socket mode, owner, peer credentials --------------------------------------------
    st = os.stat(d.ctl)
    c.check("control socket has mode 0600", st.st_mode & 0o777 == 0o600, oct(st.st_mode))
    c.check("control socket is owned by the daemon's user", st.st_uid == os.getuid())

    def as_uid(uid, chmod_socket):
        """Connects as `uid` and sends `version`; returns the child's verdict line."""
        os.chmod(d.dir, 0o711)
        if chmod_socket:
            os.chmod(d.ctl, 0o666)  # let the connect through: the daemon's uid check must refuse
        try:
            code = ("import socket,sys\n"
                    "s=socket.socket(socket.AF_UNIX)\n"
                    "s.settimeout(20)\n"
                    "try:\n s.connect(sys.argv[1])\n"
                    "except OSError as e:\n print('CONNECT-REFUSED', e.errno); sys.exit()\n"
                    "try:\n s.sendall(b'{\"v\":1,\"id\":1,\"verb\":\"version\"}\\n'); r=s.recv(4096)\n"
                    "except OSError as e:\n r=b''\n"
                    "print('REPLY' if r else 'CLOSED', r.decode().strip())\n")
            r = subprocess.run(["/usr/bin/python3", "-c", code, d.ctl], user=uid, group=uid,
                               extra_groups=[], capture_output=True, text=True, timeout=60)
            return r.stdout.strip() + r.stderr.strip()
        finally:
            os.chmod(d.ctl, 0o600)
            os.chmod(d.dir, 0o700)

    if os.getuid() != 0:  # connecting as other uids takes root
        print("SKIP control: peer uid checks (P1) need root", flush=True)
    else:
        out = as_uid(NOBODY, False)
        c.check("mode 0600 keeps another user from connecting at all",
                out.startswith("CONNECT-REFUSED"), out)
        out = as_uid(NOBODY, True)
        c.check("a peer uid neither root nor allowed is closed without a reply (SO_PEERCRED)",
                out.startswith("CLOSED"), out)
        c.check("the refusal is logged with the uid", "uid %d" % NOBODY in d.log(), d.log()[-500:])
        out = as_uid(ALLOWED, True)
        c.check("a uid listed in allowed_uids is served", out.startswith("REPLY") and '"ok":true' in
                out.replace(" ", ""), out)

    # --- P2: malformed requests while NBD I/O runs on another connection --------------------
    w = Worker(d, "hw1@k1", 8 * MiB, 256 * 1024, 1)
    w.start()
    c.check("background NBD I/O is running", w.wait_ops(20))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as keep:
        keep.settimeout(30)
        keep.connect(d.ctl)
        replies, closed = raw_exchange(
            d.ctl, b"this is not json\n{\"v\":1,\"id\":9,\"verb\":\"version\"}\n", timeout=10)
        c.check("garbage gets an EINVAL error reply and the connection stays open",
                len(replies) == 2 and replies[0]["ok"] is False
                and replies[0]["error"]["code"] == "EINVAL" and replies[1]["ok"] is True
                and replies[1]["id"] == 9 and not closed, str(replies))
        cases = [
            (b"[1, 2, 3]\n", "EINVAL", "a JSON array (not an object)"),
            (b"\"verb\"\n", "EINVAL", "a JSON string"),
            (b"{\"v\":1,\"id\":2}\n", "EINVAL", "a request without a verb"),
            (b"{\"v\":1,\"id\":3,\"verb\":\"frobnicate\"}\n", "EOPNOTSUPP", "an unknown verb"),
            (b"{\"v\":2,\"id\":4,\"verb\":\"version\"}\n", "EPROTO", "a wrong protocol version"),
            (b"{\"id\":4,\"verb\":\"version\"}\n", "EPROTO", "a request without a version"),
            (b"{\"v\":1,\"id\":5,\"verb\":\"info\"}\n", "EINVAL", "info without its name"),
            (b"{\"v\":1,\"id\":6,\"verb\":\"info\",\"args\":{\"name\":7}}\n", "EINVAL",
             "a mistyped argument"),
            (b"{\"v\":1,\"id\":7,\"verb\":\"info\",\"args\":{\"name\":\"mp\",\"x\":1}}\n", "EINVAL",
             "an unknown argument"),
            (b"{\"v\":1,\"id\":8,\"verb\":\"ls\",\"args\":[]}\n", "EINVAL", "args not an object"),
            (b"{\"v\":1,\"id\":8,\"verb\":\"key.add\",\"args\":{\"name\":\"kk\",\"mode\":"
             b"\"aes-256-xts\",\"data_unit_size\":4096}}\n", "EINVAL", "key.add without key_hex"),
            (b"{\"v\":1,\"id\":8,\"verb\":\"message\",\"args\":{\"name\":\"mp\",\"sector\":-1,"
             b"\"words\":[\"x\"]}}\n", "EINVAL", "a negative sector"),
        ]
        for payload, code, what in cases:
            replies, closed = raw_exchange(d.ctl, payload)
            c.check("%s gets a %s error reply" % (what, code),
                    len(replies) == 1 and replies[0]["ok"] is False
                    and replies[0]["error"]["code"] == code and replies[0]["error"]["message"]
                    and not closed, str(replies))
        replies, closed = raw_exchange(d.ctl, b"{\"v\":1,\"id\":\"abc\",\"verb\":\"version\"}\n")
        c.check("the request id is echoed", replies and replies[0]["id"] == "abc", str(replies))
        big = (b"{\"v\":1,\"id\":1,\"verb\":\"version\",\"args\":{\"pad\":\""
               + b"x" * (1536 * 1024) + b"\"}}\n")
        replies, closed = raw_exchange(d.ctl, big)
        c.check("an oversized (> 1 MiB) request gets an E2BIG reply and the connection is closed",
                len(replies) == 1 and replies[0]["error"]["code"] == "E2BIG" and closed,
                "%s closed=%s" % (str(replies)[:200], closed))
        keep.sendall(b"{\"v\":1,\"id\":42,\"verb\":\"version\"}\n")
        r = json.loads(recv_line(keep))
        c.check("another control connection opened before all that still answers",
                r["ok"] and r["id"] == 42, str(r))
    c.check("NBD I/O on another connection carried on during the malformed requests",
            w.wait_ops(20))
    c.check("the background I/O saw no error", not w.finish(), "; ".join(w.errors))

    # --- P5: load/suspend/resume under verified I/O -----------------------------------------
    w = Worker(d, "mp@k1", 0, 512 * 1024, 2)
    w.start()
    other = Worker(d, "hw1", 12 * MiB, 64 * 1024, 3)
    other.start()
    c.check("verified I/O runs on mp@k1", w.wait_ops(20))
    probe = connect(d, "mp")
    r = ctl(d, "suspend", "mp")
    c.check("icectl suspend exits 0 with the device in use", r.returncode == 0 and r.stdout == "",
            r.stderr)
    c.check("info shows SUSPENDED", ctl_json(d, "info", "mp")["state"] == "SUSPENDED")
    n = w.ops
    probe_done = threading.Event()
    probe_err = []

    def probe_write():
        try:
            probe.pwrite(b"\x77" * DU, 4 * MiB)
        except Exception as e:  # noqa: BLE001
            probe_err.append(e)
        probe_done.set()

    pt = threading.Thread(target=probe_write, daemon=True)
    pt.start()
    c.check("another device's I/O goes on while mp is suspended (P5)", other.wait_ops(10))
    # The blocked side cannot be proven by a bounded wait alone, but nothing may complete in it.
    # (The worker may still count the one operation that completed while suspend drained it.)
    c.check("I/O to the suspended device blocks", not probe_done.wait(1.0) and w.ops <= n + 1,
            "ops %d -> %d" % (n, w.ops))
    new_table = ["0 8192 linear hw0 0", "8192 8192 linear hw0 8192"]
    r = ctl(d, "load", "mp", "--table", new_table[0], "--table", new_table[1])
    c.check("icectl load while suspended and in use exits 0", r.returncode == 0, r.stderr)
    c.check("the new table is the inactive one",
            ctl_json(d, "table", "mp", "--inactive")["lines"] == new_table)
    c.check("status/info still work while suspended",
            ctl(d, "status", "mp").returncode == 0 and ctl_json(d, "info", "mp")["inactive_table"])
    r = ctl(d, "resume", "mp")
    c.check("icectl resume exits 0", r.returncode == 0, r.stderr)
    c.check("the blocked I/O completes after resume, without error",
            probe_done.wait(30) and not probe_err, str(probe_err))
    c.check("verified I/O continues after resume", w.wait_ops(20))
    c.check("the loaded table is live", ctl_json(d, "table", "mp")["lines"] == new_table)
    errs = w.finish() + other.finish()
    c.check("verified I/O saw no error across suspend, load, resume", not errs, "; ".join(errs))
    c.check("the data written through the old table reads back through the new one",
            probe.pread(DU, 4 * MiB) == b"\x77" * DU)

    # --- N8: busy devices and keys ----------------------------------------------------------
    r = ctl(d, "remove", "mp")
    c.check("remove of a device with an open connection is refused (EBUSY)",
            one_error_line(r) and ("open" in r.stderr or "busy" in r.stderr.lower()), r.stderr)
    c.check("the refused remove changed nothing",
            "mp" in [x["name"] for x in ctl_json(d, "ls")["devices"]])
    c.check("info shows the open count", ctl_json(d, "info", "mp")["open_count"] >= 1)
    probe.shutdown()
    c.check("remove succeeds once the connection is closed",
            eventually(lambda: ctl(d, "remove", "mp").returncode == 0))
    c.check("a removed device is gone from ls",
            "mp" not in [x["name"] for x in ctl_json(d, "ls")["devices"]])

    key2 = bytes(range(64, 128))
    kpath = write_key(os.path.join(d.dir, "k2.key"), key2)
    r = ctl(d, "key", "add", "k2", "--mode", "aes-256-xts", "--data-unit-size", "4096",
            "--key-file", kpath)
    c.check("key add from a 0600 file", r.returncode == 0 and r.stdout == "", r.stderr)
    h = connect(d, "hw1@k2")
    h.pwrite(b"k" * DU, 0)
    r = ctl(d, "key", "rm", "k2")
    c.check("key rm is refused while an export uses the key (EBUSY)", one_error_line(r), r.stderr)
    c.check("the key is still there and usable",
            "k2" in [k["name"] for k in ctl_json(d, "key", "ls")["keys"]]
            and h.pread(DU, 0) == b"k" * DU)
    c.check("key ls counts the key's users",
            [k["users"] for k in ctl_json(d, "key", "ls")["keys"] if k["name"] == "k2"][0] >= 1)
    h.shutdown()
    c.check("key rm succeeds after the connection is closed",
            eventually(lambda: ctl(d, "key", "rm", "k2").returncode == 0))
    c.check("the removed key is evicted from every keyslot",
            all(s["key"] != "k2" for s in ctl_json(d, "hw", "info", "hw1")["slots"]))
    r = ctl(d, "key", "rm", "k1")
    c.check("key rm is refused while a table (default-key) uses the key", one_error_line(r),
            r.stderr)

    # --- P3: failed commands change nothing -----------------------------------------------------
    keys_before = ctl_json(d, "key", "ls")
    short = write_key(os.path.join(d.dir, "short.key"), bytes(range(32)))
    r = ctl(d, "key", "add", "bad", "--mode", "aes-256-xts", "--data-unit-size", "4096",
            "--key-file", short)
    c.check("key add with a 32-byte key for aes-256-xts is refused with a clear error",
            one_error_line(r) and "64" in r.stderr and "32" in r.stderr, r.stderr)
    r = ctl(d, "key", "add", "bad", "--mode", "aes-128-cbc-essiv", "--data-unit-size", "4096",
            "--key-file", kpath)
    c.check("key add with a 64-byte key for aes-128-cbc-essiv is refused with a clear error",
            one_error_line(r) and "16" in r.stderr, r.stderr)
    r = ctl(d, "key", "add", "bad", "--mode", "aes-256-xts", "--data-unit-size", "1000",
            "--key-file", kpath)
    c.check("key add with a data unit size that is not a power of two is refused",
            one_error_line(r) and "1000" in r.stderr, r.stderr)
    r = ctl(d, "key", "add", "bad", "--mode", "aes-256-xts", "--data-unit-size", "4096",
            "--dun-bytes", "32", "--key-file", kpath)
    c.check("key add with too many DUN bytes is refused", one_error_line(r), r.stderr)
    r = ctl(d, "key", "add", "bad", "--mode", "rot13", "--data-unit-size", "4096",
            "--key-file", kpath)
    c.check("key add with an unknown mode is refused", one_error_line(r) and "rot13" in r.stderr,
            r.stderr)
    os.chmod(kpath, 0o644)
    r = ctl(d, "key", "add", "bad", "--mode", "aes-256-xts", "--data-unit-size", "4096",
            "--key-file", kpath)
    os.chmod(kpath, 0o600)
    c.check("key add from a world-readable key file is refused", one_error_line(r), r.stderr)
    r = ctl(d, "key", "add", "k1", "--mode", "aes-256-xts", "--data-unit-size", "4096",
            "--key-file", kpath)
    c.check("key add of an existing name is refused", one_error_line(r), r.stderr)
    c.check("failed key adds changed nothing", ctl_json(d, "key", "ls") == keys_before)
    ls_before = ctl_json(d, "ls")
    r = ctl(d, "create", "bad", "--table", "0 2048 linear hw0 0",
            "--table", "2048 8 linear nosuch 0")
    c.check("create with a bad table line is refused, naming it",
            one_error_line(r) and "nosuch" in r.stderr, r.stderr)
    r = ctl(d, "load", "err", "--table", "0 8 frobnicate")
    c.check("load of an unknown target is refused", one_error_line(r), r.stderr)
    c.check("failed create/load changed nothing",
            ctl_json(d, "ls") == ls_before and not ctl_json(d, "info", "err")["inactive_table"])

    # --- N2: refusals at negotiation, and icectl says the same ------------------------------
    for name, why in [("nosuch-dev-17", "an unknown device"),
                      ("hw1@nosuch-key-17", "an unknown key"),
                      ("hw1@", "an empty key name"),
                      ("tiny@k64k", "a key the device cannot serve")]:
        try:
            connect(d, name).shutdown()
            refused = False
        except nbd.Error:
            refused = True
        r = ctl(d, "export", "check", name)
        msg = r.stderr[len("icectl: error: "):].strip()
        log = d.log()
        c.check("%s (%s) is refused at negotiation with a log line naming it" % (why, name),
                refused and any("'%s'" % name in line for line in log.splitlines()),
                log[-600:])
        c.check("icectl export check %s gives the same reason as the log" % name,
                one_error_line(r) and msg and msg in log, "%r not in log" % msg)
    r = ctl(d, "--json", "export", "check", "hw1@k1")
    c.check("icectl export check of a good export prints size and block size",
            r.returncode == 0 and json.loads(r.stdout)["block_size"] == DU
            and json.loads(r.stdout)["size"] == 16 * MiB, r.stdout + r.stderr)

    # --- N7: errors the client gets, each with a log line ------------------------------------
    h = connect(d, "err")
    try:
        h.pread(DU, 1 * MiB + DU)
        got = None
    except nbd.Error as e:
        got = e.errno  # libnbd 1.14 gives the errno's name

    c.check("a read from an error target fails with EIO on the wire", got in (E.EIO, "EIO"),
            str(got))
    try:
        h.pwrite(b"x" * DU, 1 * MiB + DU)
        got = None
    except nbd.Error as e:
        got = e.errno  # libnbd 1.14 gives the errno's name
    c.check("a write to an error target fails with EIO on the wire", got in (E.EIO, "EIO"),
            str(got))
    failed = 0
    lines_before = d.log().count("failed")
    for _ in range(300):
        try:
            h.pread(512, 1 * MiB + DU)
        except nbd.Error:
            failed += 1
    logged = d.log().count("failed") - lines_before
    c.check("300 failing reads each fail, and their log lines are rate-limited",
            failed == 300 and logged < 50, "%d failed, %d log lines" % (failed, logged))
    c.check("the good part of the device still works",
            h.pwrite(b"g" * DU, 0) is None and h.pread(DU, 0) == b"g" * DU)
    h.shutdown()
    log = d.log()
    # (The write's line may fall in the same rate-limit window as the read's.)
    c.check("a failure has a log line naming the operation, the export and the reason",
            any("read on export 'err'" in l and "EIO" in l and "error target" in l
                for l in log.splitlines()), log[-800:])
    c.check("the daemon survives failing I/O", d.proc.poll() is None
            and ctl(d, "version").returncode == 0)

    # --- P4: key bytes never leave the socket ---------------------------------------------
    key3 = bytes(range(128, 192))
    r = ctl(d, "key", "add", "k3", "--mode", "aes-256-xts", "--data-unit-size", "4096",
            "--key-file", "-", input=key3)
    c.check("key add reads the key from stdin", r.returncode == 0, r.stderr)
    h = connect(d, "hw0@k3")
    h.pwrite(b"3" * DU, 10 * MiB)
    h.shutdown()
    everything = d.log() + ctl(d, "--json", "key", "ls").stdout + \
        ctl(d, "--json", "hw", "ls").stdout + ctl(d, "metrics").stdout + \
        ctl(d, "--json", "hw", "info", "hw0").stdout
    leaks = [k.hex() for k in (key2, key3) if k.hex() in everything.lower()
             or k.hex()[:32] in everything.lower()]
    c.check("no key bytes in the log, replies or metrics (P4)", not leaks, str(leaks))

    # Hardening 9: a default-key line whose fields are shifted may hold the key in any field; no
    # error reply and no log line may echo it, whichever field it landed in.
    key9 = bytes((i * 37 + 11) & 0xff for i in range(64)).hex()
    dk = "0 2048 default-key "
    shifted = [dk + key9 + " aes-xts-plain64 0 hw1 0",            # cipher and key swapped
               dk + "aes-xts-plain64 " + key9 + " 0 " + key9 + " 0",  # the key for the device
               dk + "aes-xts-plain64 :64:logon:k1 " + key9 + " hw1 0",  # an extra word
               dk + "aes-xts-plain64 " + key9 + " 0 hw1 " + key9,
               dk + "aes-xts-plain64 " + key9 + " 0 hw1 0 1 " + key9,
               dk + "aes-xts-plain64 " + key9 + "zz 0 hw1 0",
               "0 " + key9 + " default-key aes-xts-plain64 " + key9 + " 0 hw1 0",
               "0 2048 linear " + key9 + " 0"]
    replies = []
    for line in shifted:
        replies.append(d.control("create", name="h9", table=[line]))
        replies.append(d.control("load", name="mp", table=[line]))
    texts = [json.dumps(r) for r in replies]
    c.check("hardening 9: every shifted default-key line is refused",
            all(not r["ok"] for r in replies), "\n".join(t for t in texts if '"ok": true' in t))
    c.check("hardening 9: no error reply echoes the key, whichever field it is in",
            not any(key9[i:i + 32] in t.lower() for t in texts for i in range(0, 97, 16)),
            "\n".join(t for t in texts if key9[:32] in t.lower()))
    table9 = os.path.join(d.dir, "h9.table")
    with open(table9, "w") as f:
        f.write(shifted[0] + "\n")
    os.chmod(table9, 0o600)
    r = ctl(d, "create", "h9", "--table-file", table9)
    c.check("hardening 9: icectl prints the refusal of a private table file without the key",
            one_error_line(r) and key9[:32] not in r.stderr.lower(), r.stderr)
    r = ctl(d, "create", "h9", "--table", shifted[1])
    c.check("hardening 9: icectl refuses a key in hex on its command line before sending it",
            one_error_line(r) and "--table-file" in r.stderr and key9[:32] not in r.stderr.lower()
            and "h9" not in [x["name"] for x in ctl_json(d, "ls")["devices"]], r.stderr)
    log = d.log().lower()
    c.check("hardening 9: the daemon's log holds no part of the key",
            not any(key9[i:i + 32] in log for i in range(0, 97, 16)),
            "\n".join(l for l in log.splitlines() if key9[:32] in l))

    # Hardening 10: flakey's corrupted writes lose their key, as in the kernel: create and load of
    # such a table succeed with a warning, which icectl prints (exit 0) and the daemon logs.
    corrupting = "0 2048 flakey hw1 0 0 1 5 corrupt_bio_byte 1 w 0 0"
    r = ctl(d, "create", "fl10", "--table", corrupting)
    c.check("hardening 10: create of a flakey table corrupting writes exits 0 with one warning",
            r.returncode == 0 and r.stdout == "" and r.stderr.count("\n") == 1
            and r.stderr.startswith("icectl: warning: flakey at sector 0: ")
            and "plaintext" in r.stderr, r.stderr)
    r = ctl(d, "--json", "load", "fl10", "--table", "0 2048 flakey hw1 0 0 1 2 random_write_corrupt 9")
    c.check("hardening 10: load --json carries the warning in its JSON",
            r.returncode == 0 and json.loads(r.stdout)["warnings"][0].startswith("flakey at sector 0"),
            r.stdout + r.stderr)
    r = ctl(d, "load", "fl10", "--table", "0 2048 flakey hw1 0 0 1 1 drop_writes")
    c.check("hardening 10: no warning for a flakey table that does not corrupt writes",
            r.returncode == 0 and r.stderr == "", r.stderr)
    c.check("hardening 10: the daemon logs the warning with the device's name",
            "device 'fl10': flakey at sector 0: corrupted writes" in d.log(), d.log()[-800:])
    ctl(d, "remove", "fl10")

    r = ctl(d, "key", "add", "k5", "--mode", "aes-256-xts", "--data-unit-size", "4096",
            "--key", key3.hex())
    c.check("icectl has no way to take key bytes on its command line", r.returncode == 2
            and "k5" not in [k["name"] for k in ctl_json(d, "key", "ls")["keys"]])

    # --- P5: state-changing commands are serialised -------------------------------------------
    results = []

    def create_same(i):
        results.append(d.control("create", name="race", table=["0 2048 linear hw1 0"]))

    ts = [threading.Thread(target=create_same, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    oks = [r for r in results if r["ok"]]
    c.check("8 concurrent creates of one name: exactly one succeeds, the others get EEXIST",
            len(results) == 8 and len(oks) == 1
            and all(r["error"]["code"] == "EEXIST" for r in results if not r["ok"]),
            str([r.get("error", {}).get("code") for r in results]))
    c.check("the raced device works", ctl_json(d, "remove", "race") == {})

    # --- P6: metrics ----------------------------------------------------------------------
    m = ctl(d, "metrics").stdout
    c.check("metrics has every H4 counter per hardware device",
            all('%s{hw="hw%d"}' % (n, i) in m for i in (0, 1) for n in (
                "ice_hw_slot_programs_total", "ice_hw_slot_evictions_total",
                "ice_hw_slot_hits_total", "ice_hw_slot_waits_total", "ice_hw_resets_total",
                "ice_hw_fallback_ios_total")))
    c.check("metrics has slot occupancy", 'ice_hw_keyslots_programmed{hw="hw0"}' in m
            and 'ice_hw_keyslots{hw="hw0"} 2' in m)

    def metric(text, name):
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return None

    c.check("metrics counts a device's I/Os and bytes",
            (metric(m, 'ice_device_ios_total{device="err",op="write"}') or 0) >= 2
            and (metric(m, 'ice_device_bytes_total{device="err",op="write"}') or 0) >= 2 * DU)
    c.check("metrics counts a device's errors",
            (metric(m, 'ice_device_errors_total{device="err",op="read"}') or 0) >= 1)
    c.check("metrics has latency histograms",
            'ice_device_latency_seconds_bucket{device="err",op="write",le="+Inf"}' in m
            and "# TYPE ice_device_latency_seconds histogram" in m)

    # --- N8: cheap open/close, nothing leaks -------------------------------------------------
    t0 = time.time()
    for i in range(60):
        hh = connect(d, "err@k1" if i % 2 else "err")
        hh.pread(512, 0)
        hh.shutdown()
    took = time.time() - t0
    c.check("60 connections open, read and close in bounded time (%.1fs)" % took, took < 30)
    c.check("every closed connection gives back its open count and key use",
            eventually(lambda: ctl_json(d, "info", "err")["open_count"] == 0
                       and [k["users"] for k in ctl_json(d, "key", "ls")["keys"]
                            if k["name"] == "k1"][0] == 1))  # the dk table's use remains

    # --- every icectl verb, --json, exit codes --------------------------------------------
    def verb(what, fn):
        c.run("icectl " + what, fn)

    verb("version --json", lambda: ctl_json(d, "version")["protocol"] == 1)
    verb("ls --json lists mapped devices by name",
         lambda: [x["name"] for x in ctl_json(d, "ls")["devices"]] == ["dk", "err", "tiny"])
    verb("ls (human) prints dmsetup's 'name\\t(253:minor)'",
         lambda: all("\t(253:" in l for l in ctl(d, "ls").stdout.splitlines()))
    verb("create --json prints {}", lambda: ctl_json(d, "create", "v1", "--table",
                                                     "0 2048 zero") == {})
    verb("create with --table-file -", lambda: ctl(d, "create", "v2", "--table-file", "-",
                                                   input="0 2048 linear hw1 0\n").returncode == 0)
    verb("info --json of a mapped device", lambda: (lambda i: i["name"] == "v1"
                                                    and i["kind"] == "mapped"
                                                    and i["major"] == 253
                                                    and i["size_bytes"] == MiB
                                                    and i["state"] == "ACTIVE")(
        ctl_json(d, "info", "v1")))
    verb("info --json of a hardware device",
         lambda: ctl_json(d, "info", "hw0")["kind"] == "hardware")
    verb("info (human) shows dmsetup's layout",
         lambda: "State:             ACTIVE" in ctl(d, "info", "v1").stdout)
    verb("load --json", lambda: ctl_json(d, "load", "v1", "--table", "0 4096 zero") == {})
    verb("table --inactive --json",
         lambda: [l.rstrip() for l in ctl_json(d, "table", "v1", "--inactive")["lines"]]
         == ["0 4096 zero"])
    verb("clear --json drops the inactive table",
         lambda: ctl_json(d, "clear", "v1") == {}
         and ctl_json(d, "table", "v1", "--inactive")["lines"] == [])
    verb("suspend --json", lambda: ctl_json(d, "suspend", "v1") == {})
    verb("resume --json", lambda: ctl_json(d, "resume", "v1") == {}
         and ctl_json(d, "info", "v1")["state"] == "ACTIVE")
    verb("table (human) prints the live table",
         lambda: ctl(d, "table", "v2").stdout == "0 2048 linear hw1 0\n")
    verb("status --json", lambda: isinstance(ctl_json(d, "status", "v2")["lines"], list))
    verb("message --json (dust bad blocks)",
         lambda: ctl_json(d, "create", "dust0", "--table", "0 2048 dust hw1 4096 512") == {}
         and ctl_json(d, "message", "dust0", "0", "addbadblock", "3") is not None
         and "1 badblock" in ctl_json(d, "message", "dust0", "0", "countbadblocks")["reply"])
    verb("remove --json", lambda: ctl_json(d, "remove", "v1") == {}
         and ctl_json(d, "remove", "v2") == {} and ctl_json(d, "remove", "dust0") == {})
    verb("key ls --json never shows key bytes",
         lambda: all(set(k) == {"name", "mode", "data_unit_size", "dun_bytes", "users"}
                     for k in ctl_json(d, "key", "ls")["keys"]))
    verb("key add --json prints {}", lambda: ctl_json(
        d, "key", "add", "k4", "--mode", "aes-256-xts", "--data-unit-size", "512",
        "--dun-bytes", "8", "--key-file", kpath) == {})
    verb("key rm --json", lambda: ctl_json(d, "key", "rm", "k4") == {})
    verb("hw ls --json", lambda: [x["name"] for x in ctl_json(d, "hw", "ls")["hardware"]]
         == ["hw0", "hw1"])
    verb("hw info --json has slots and counters",
         lambda: (lambda hw: len(hw["slots"]) == 2 and hw["counters"]["writes"] > 0)(
             ctl_json(d, "hw", "info", "hw0")))
    verb("hw info (human)", lambda: ctl(d, "hw", "info", "hw0").returncode == 0)
    def fault_then_io():
        before = ctl_json(d, "hw", "info", "hw1")["counters"]["slot_program_failures"]
        assert ctl_json(d, "hw", "fault", "hw1", "--fail-programs", "1") == {}
        hh = connect(d, "hw1@k3")  # k3 was never programmed into hw1
        try:
            hh.pwrite(b"f" * DU, 0)
            first = "ok"
        except nbd.Error:
            first = "failed"
        hh.pwrite(b"f" * DU, 0)  # only the next program was to fail
        ok = hh.pread(DU, 0) == b"f" * DU
        hh.shutdown()
        after = ctl_json(d, "hw", "info", "hw1")["counters"]["slot_program_failures"]
        return first == "failed" and ok and after == before + 1

    verb("hw fault --fail-programs 1 fails exactly the next keyslot program", fault_then_io)
    verb("hw fault --program-latency-ms and --fail-evictions are accepted and undone with 0",
         lambda: ctl_json(d, "hw", "fault", "hw1", "--program-latency-ms", "5",
                          "--fail-evictions", "1") == {}
         and ctl_json(d, "hw", "fault", "hw1", "--program-latency-ms", "0",
                      "--fail-evictions", "0") == {})
    verb("hw reset --json empties the keyslots and counts the reset",
         lambda: ctl_json(d, "hw", "reset", "hw0") == {}
         and ctl_json(d, "hw", "info", "hw0")["counters"]["resets"] >= 1)
    verb("metrics --json", lambda: "ice_hw_resets_total" in ctl_json(d, "metrics")["text"])
    verb("export check --json", lambda: ctl_json(d, "export", "check", "hw0@k1")["keyed"])
    verb("an unknown device exits 1 with one 'icectl: error:' line",
         lambda: one_error_line(ctl(d, "info", "nosuch")))
    verb("an error in --json mode prints nothing on stdout",
         lambda: one_error_line(ctl(d, "--json", "table", "nosuch")))
    verb("a bad command line exits 2", lambda: ctl(d, "frobnicate").returncode == 2
         and ctl(d, "key", "add", "x").returncode == 2)
    verb("an unreachable daemon exits 3",
         lambda: subprocess.run([ICECTL, "--socket", os.path.join(d.dir, "none.sock"), "ls"],
                                capture_output=True, timeout=60).returncode == 3)
    verb("ICE_SOCKET selects the socket",
         lambda: subprocess.run([ICECTL, "version"], capture_output=True, timeout=60,
                                env=dict(os.environ, ICE_SOCKET=d.ctl)).returncode == 0)
    # --- P2: many control clients at once; none leaks a descriptor ------------------------
    fd_dir = "/proc/%d/fd" % d.proc.pid
    fds_before = len(os.listdir(fd_dir))
    errs = []

    def client(i):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(30)
                s.connect(d.ctl)
                for j in range(10):
                    s.sendall(b'{"v":1,"id":%d,"verb":"hw.info","args":{"name":"hw0"}}\n' % j)
                    r = json.loads(recv_line(s))
                    if not r["ok"] or r["id"] != j:
                        errs.append(str(r)[:100])
        except Exception as e:  # noqa: BLE001
            errs.append(repr(e))

    ts = [threading.Thread(target=client, args=(i,)) for i in range(100)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    c.check("100 control clients at once, 10 requests each, all answered in order", not errs,
            "; ".join(errs[:3]))
    for _ in range(30):  # clients that leave in the middle of a line
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(d.ctl)
        s.sendall(b'{"v":1,"verb":"key.add","args":{"key_hex":"00')
        s.close()
    c.check("no descriptor leaks from control clients",
            eventually(lambda: len(os.listdir(fd_dir)) <= fds_before),
            "%d -> %d" % (fds_before, len(os.listdir(fd_dir))))

    c.check("the daemon is still alive after everything", d.proc.poll() is None)

# --- P2: idle control connections time out (a daemon of its own: a short timeout) -----------
with Daemon('[daemon]\ncontrol_socket = "{dir}/control.sock"\ncontrol_idle_timeout_s = 1\n'
            'default_export = "hw0"\n'
            '[[hardware]]\nname = "hw0"\nbacking = "memory"\nsize = "1M"\n') as d2:
    h = connect(d2, "")
    c.check("N1: the empty export name maps to the configured default export",
            h.get_size() == MiB)
    h.shutdown()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(d2.ctl)
        s.sendall(b'{"v":1,"id":1,"verb":"version"}\n')
        first = json.loads(recv_line(s))
        t0 = time.time()
        try:
            closed = s.recv(1) == b""
        except ConnectionResetError:
            closed = True
        except socket.timeout:
            closed = False
        took = time.time() - t0
        c.check("an idle control connection is closed after control_idle_timeout_s (1 s)",
                first["ok"] and closed and 0.5 <= took < 20,
                "closed=%s after %.1fs" % (closed, took))
c.exit()
