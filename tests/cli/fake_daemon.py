#!/usr/bin/python3
"""A fake ice control daemon for testing icectl (tests/cli/test_icectl.sh).

Usage: fake_daemon.py SOCKET LOG [--empty]

Listens on the Unix socket SOCKET, prints READY on stdout once it accepts connections, and
answers control-protocol requests (docs/control-protocol.md) with canned results or errors.
Every request line is appended to LOG as received (one line each). Each request is checked
against the protocol's shapes; a request that breaks them is answered with the error the real
daemon gives, and a line "VIOLATION <reason>" is appended to LOG, so the test can assert that
icectl never sent one. --empty: no devices, keys or hardware.

Names that make it misbehave (any verb whose name/export argument is one of them):
  x-garbage    reply with a line that is not JSON
  x-close      close the connection without replying
  x-huge       reply with more than 16 MiB before any newline
  x-hang       never reply (until the client closes)
  x-badshape   reply ok with a result that lacks required fields
  x-badid      reply with another request's id
  x-multiline  refuse with an error message that spans lines
  x-badwarn    reply ok with "warnings" that is not a list of strings
A create or load whose table has a flakey line corrupting writes (corrupt_bio_byte … w …,
random_write_corrupt) is answered with a "warnings" list, as the daemon does (hardening 10).
Stops on SIGTERM or SIGINT, removing SOCKET.
"""
import json
import os
import re
import signal
import socketserver
import sys
import threading

EINVAL, ENOENT, EBUSY, EEXIST, ENXIO, EPROTO, EOPNOTSUPP, E2BIG = 22, 2, 16, 17, 6, 71, 95, 7
CODES = {EINVAL: "EINVAL", ENOENT: "ENOENT", EBUSY: "EBUSY", EEXIST: "EEXIST", ENXIO: "ENXIO",
         EPROTO: "EPROTO", EOPNOTSUPP: "EOPNOTSUPP", E2BIG: "E2BIG"}
MAX_REQUEST = 1 << 20


def is_int(v):
    return type(v) is int


def is_str(v):
    return type(v) is str


def is_bool(v):
    return type(v) is bool


def is_str_list(v):
    return type(v) is list and all(is_str(e) for e in v)


def is_hex(v):
    return is_str(v) and re.fullmatch(r"[0-9a-fA-F]*", v) is not None and len(v) % 2 == 0


NAME = {"name": is_str}
# verb -> (required args, optional args), from the protocol's verb table.
VERBS = {
    "version": ({}, {}),
    "ls": ({}, {}),
    "create": (NAME, {"table": is_str_list}),
    "load": ({"name": is_str, "table": is_str_list}, {}),
    "clear": (NAME, {}),
    "suspend": (NAME, {}),
    "resume": (NAME, {}),
    "remove": (NAME, {}),
    "table": (NAME, {"inactive": is_bool}),
    "status": (NAME, {}),
    "info": (NAME, {}),
    "message": ({"name": is_str, "sector": lambda v: is_int(v) and v >= 0,
                 "words": lambda v: is_str_list(v) and len(v) > 0}, {}),
    "key.add": ({"name": is_str, "mode": is_str, "data_unit_size": is_int, "key_hex": is_hex},
                {"dun_bytes": is_int}),
    "key.rm": (NAME, {}),
    "key.ls": ({}, {}),
    "hw.ls": ({}, {}),
    "hw.info": (NAME, {}),
    "hw.reset": (NAME, {}),
    "hw.fault": (NAME, {"fail_programs": is_int, "program_latency_ms": is_int,
                        "fail_evictions": is_int}),
    "export.check": ({"export": is_str}, {}),
    "metrics": ({}, {}),
}

KEY_BYTES = {"aes-256-xts": 64, "aes-128-cbc-essiv": 16}


class Refused(Exception):
    def __init__(self, errno_value, message):
        super().__init__(message)
        self.errno_value = errno_value
        self.message = message


def info(name, minor, kind="mapped", caps="aes-256-xts:512,4096 dun_bytes=8 keys=raw"):
    return {"name": name, "kind": kind, "major": 253, "minor": minor,
            "size_bytes": 1073741824, "state": "ACTIVE", "live_table": True,
            "inactive_table": False, "open_count": 0, "holders": 0, "num_targets": 1,
            "event_nr": 0, "capabilities": caps}


HW0 = {
    "name": "hw0", "size_bytes": 1073741824, "backing": "memory", "keyslots": 4,
    "capabilities": "aes-256-xts:512,4096 aes-128-cbc-essiv:4096 dun_bytes=8 keys=raw",
    "slots": [{"slot": 0, "key": "demo", "refs": 1}, {"slot": 1, "key": None, "refs": 0},
              {"slot": 2, "key": None, "refs": 0}, {"slot": 3, "key": None, "refs": 0}],
    "counters": {"slot_programs": 1, "slot_program_failures": 0, "slot_evictions": 0,
                 "slot_hits": 41, "slot_waits": 0, "resets": 0, "fallback_ios": 0,
                 "reads": 30, "writes": 12, "flushes": 2, "zeroes": 0, "discards": 0,
                 "read_bytes": 122880, "write_bytes": 49152, "errors": 0},
}
# The daemon process, as hw.ls describes it.
DAEMON = {"core_dumps": "off", "dumpable": False, "key_memory": "locked", "memory_locked": True,
          "version": "0.1.0"}
# Sorted by name, as the real daemon's JSON library sends objects.
HW0["counters"] = dict(sorted(HW0["counters"].items()))

METRICS = ("# HELP ice_slot_programs_total Keyslot programs.\n"
           "# TYPE ice_slot_programs_total counter\n"
           "ice_slot_programs_total{hardware=\"hw0\"} 1\n")


class State:
    def __init__(self, empty):
        self.empty = empty
        self.devices = {} if empty else {"crypt0": info("crypt0", 1), "lin0": info("lin0", 0)}
        self.all_devices = dict(self.devices)
        if not empty:
            self.all_devices["hw0"] = info("hw0", 2, "hardware", HW0["capabilities"])
            self.all_devices["dust0"] = info("dust0", 3, caps="none")
            self.all_devices["busy0"] = info("busy0", 4)
        self.keys = [] if empty else [
            {"name": "demo", "mode": "aes-256-xts", "data_unit_size": 4096, "dun_bytes": 8,
             "users": 1},
            {"name": "inuse", "mode": "aes-128-cbc-essiv", "data_unit_size": 4096,
             "dun_bytes": 8, "users": 2}]
        self.hardware = [] if empty else [HW0]

    def device(self, name):
        if name not in self.all_devices:
            raise Refused(ENOENT, "no device named '%s'" % name)
        return self.all_devices[name]

    def key(self, name):
        for k in self.keys:
            if k["name"] == name:
                return k
        raise Refused(ENOENT, "no key named '%s'" % name)

    def hw(self, name):
        for h in self.hardware:
            if h["name"] == name:
                return h
        raise Refused(ENOENT, "no hardware device named '%s'" % name)

    @staticmethod
    def warnings(table):
        """The daemon's reply to create/load: flakey write corruption is warned of."""
        found = ["flakey at sector %s: corrupted writes go out from a copy without the crypto "
                 "context, as in the kernel" % line.split()[0] for line in table
                 if " flakey " in line and re.search(r"corrupt_bio_byte \S+ w |random_write_corrupt [1-9]",
                                                     line, re.I)]
        return {"warnings": found} if found else {}

    def answer(self, verb, a):
        name = a.get("name")
        if verb == "version":
            return {"protocol": 1, "version": "0.1.0"}
        if verb == "ls":
            return {"devices": [self.devices[n] for n in sorted(self.devices)]}
        if verb == "create":
            if name in self.all_devices:
                raise Refused(EEXIST, "device '%s' already exists" % name)
            return self.warnings(a.get("table", []))
        if verb == "load":
            self.device(name)
            return self.warnings(a.get("table", []))
        if verb in ("clear", "suspend", "resume"):
            self.device(name)
            return {}
        if verb == "remove":
            self.device(name)
            if name == "busy0":
                raise Refused(EBUSY, "device '%s' is open by 2 connection(s)" % name)
            return {}
        if verb == "table":
            self.device(name)
            if a.get("inactive", False):
                return {"lines": []}
            if name == "crypt0":
                return {"lines": ["0 2097152 default-key aes-xts-plain64 :64:logon:demo 0 hw0 0 "
                                  "2 sector_size:4096 iv_large_sectors"]}
            return {"lines": ["0 1048576 linear hw0 0", "1048576 1048576 zero"]}
        if verb == "status":
            self.device(name)
            return {"lines": ["0 1048576 linear ", "1048576 1048576 zero "]}
        if verb == "info":
            return self.device(name)
        if verb == "message":
            self.device(name)
            if a["words"] == ["countbadblocks"]:
                return {"reply": "countbadblocks: 0 badblock(s) found"}
            if a["words"][0] == "listbadblocks":
                return {"reply": "1\n5\n"}
            return {"reply": ""}
        if verb == "key.add":
            if any(k["name"] == name for k in self.keys):
                raise Refused(EEXIST, "key '%s' already exists" % name)
            mode = a["mode"]
            if mode not in KEY_BYTES:
                raise Refused(EINVAL, "key.add: unknown crypto mode '%s'" % mode)
            got = len(a["key_hex"]) // 2
            if got != KEY_BYTES[mode]:
                raise Refused(EINVAL, "key '%s': %s takes a %d-byte key, not %d bytes"
                              % (name, mode, KEY_BYTES[mode], got))
            return {}
        if verb == "key.rm":
            k = self.key(name)
            if k["users"] > 1:
                raise Refused(EBUSY, "key '%s' is used by %d table(s) or connection(s)"
                              % (name, k["users"]))
            return {}
        if verb == "key.ls":
            return {"keys": self.keys}
        if verb == "hw.ls":
            return {"hardware": self.hardware, "daemon": DAEMON}
        if verb == "hw.info":
            return self.hw(name)
        if verb in ("hw.reset", "hw.fault"):
            self.hw(name)
            if verb == "hw.fault" and len(a) == 1:
                raise Refused(EINVAL, "hw.fault: name at least one of fail_programs, "
                              "program_latency_ms, fail_evictions")
            return {}
        if verb == "export.check":
            dev, _, key = a["export"].partition("@")
            self.device(dev)
            if key:
                k = self.key(key)
                return {"export": a["export"], "size": 1073741824,
                        "block_size": k["data_unit_size"]}
            return {"export": a["export"], "size": 1073741824, "block_size": 512}
        if verb == "metrics":
            return {"text": METRICS}
        raise Refused(EOPNOTSUPP, "unknown verb '%s'" % verb)


def check_shape(req):
    """Returns (errno, reason) for a request that breaks the protocol, else None."""
    if type(req) is not dict:
        return EINVAL, "request is not a JSON object"
    if req.get("v") != 1 or not is_int(req.get("v")):
        return EPROTO, "protocol version must be 1"
    extra = set(req) - {"v", "id", "verb", "args", "timeout_ms"}
    if extra:
        return EINVAL, "unknown request members %s" % sorted(extra)
    if "timeout_ms" in req and not (is_int(req["timeout_ms"]) and req["timeout_ms"] > 0):
        return EINVAL, "timeout_ms must be a positive integer"
    if "id" not in req:
        return EINVAL, "icectl always sends an id"
    verb = req.get("verb")
    if not is_str(verb):
        return EINVAL, "request has no verb"
    if verb not in VERBS:
        return EOPNOTSUPP, "unknown verb '%s'" % verb
    args = req.get("args", {})
    if type(args) is not dict:
        return EINVAL, "args must be an object"
    required, optional = VERBS[verb]
    for k, ok in required.items():
        if k not in args:
            return EINVAL, "%s: argument '%s' is required" % (verb, k)
        if not ok(args[k]):
            return EINVAL, "%s: argument '%s' is mistyped" % (verb, k)
    for k, v in args.items():
        if k in required:
            continue
        if k not in optional:
            return EINVAL, "%s: unknown argument '%s'" % (verb, k)
        if not optional[k](v):
            return EINVAL, "%s: argument '%s' is mistyped" % (verb, k)
    return None


class Handler(socketserver.StreamRequestHandler):
    def send(self, obj):
        self.wfile.write((json.dumps(obj) + "\n").encode())
        self.wfile.flush()

    def error(self, rid, errno_value, message):
        self.send({"v": 1, "id": rid, "ok": False,
                   "error": {"errno": errno_value, "code": CODES.get(errno_value, str(errno_value)),
                             "message": message}})

    def handle(self):
        server = self.server
        while True:
            line = self.rfile.readline(MAX_REQUEST + 1)
            if not line:
                return
            if len(line) > MAX_REQUEST:
                server.log("VIOLATION request line over 1 MiB")
                self.error(None, E2BIG, "request line exceeds 1 MiB")
                return
            text = line.decode("utf-8", "replace").rstrip("\n")
            server.log(text)
            try:
                req = json.loads(text)
            except ValueError:
                server.log("VIOLATION request is not JSON")
                self.error(None, EINVAL, "request is not valid JSON")
                continue
            rid = req.get("id") if type(req) is dict else None
            bad = check_shape(req)
            if bad:
                server.log("VIOLATION " + bad[1])
                self.error(rid, bad[0], bad[1])
                continue
            args = req.get("args", {})
            trigger = args.get("name", args.get("export"))
            if trigger == "x-garbage":
                self.wfile.write(b"this is not json\n")
                continue
            if trigger == "x-close":
                return
            if trigger == "x-huge":
                try:
                    self.wfile.write(b"x" * (17 << 20) + b"\n")
                except OSError:
                    pass
                return
            if trigger == "x-hang":
                while self.rfile.read(1):
                    pass
                return
            if trigger == "x-badshape":
                self.send({"v": 1, "id": rid, "ok": True, "result": {"name": trigger}})
                continue
            if trigger == "x-badid":
                self.send({"v": 1, "id": 999, "ok": True, "result": {}})
                continue
            if trigger == "x-badwarn":
                self.send({"v": 1, "id": rid, "ok": True, "result": {"warnings": "flakey"}})
                continue
            if trigger == "x-multiline":
                self.error(rid, EINVAL, "first line\nsecond line")
                continue
            try:
                result = server.state.answer(req["verb"], args)
            except Refused as r:
                self.error(rid, r.errno_value, r.message)
                continue
            self.send({"v": 1, "id": rid, "ok": True, "result": result})


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path, log_path, empty):
        self.state = State(empty)
        self.log_file = open(log_path, "a", encoding="utf-8")
        self.log_lock = threading.Lock()
        super().__init__(path, Handler)
        os.chmod(path, 0o600)

    def log(self, text):
        with self.log_lock:
            self.log_file.write(text + "\n")
            self.log_file.flush()


def main():
    if len(sys.argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    path, log_path = sys.argv[1], sys.argv[2]
    server = Server(path, log_path, "--empty" in sys.argv[3:])

    def stop(_signo, _frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("READY", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        os.unlink(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
