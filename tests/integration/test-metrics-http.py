"""Issue 18: [daemon] metrics_listen serves the `metrics` text over HTTP (GET /metrics), scraped
with curl and parsed by Prometheus' own text parser (python3-prometheus-client). Off by default;
loopback or a Unix socket unless metrics_listen_any; other paths 404, other methods 405; a
stalled scraper, or more of them than are served, holds up neither I/O nor control verbs."""
import os
import socket
import stat
import subprocess
import time

from ice_harness import (Checks, Daemon, DaemonError, connect, device_toml, hardware_toml,
                         key_toml, toml)
from prometheus_client.parser import text_string_to_metric_families

DEVICES = toml(hardware_toml("hw0", "16M"), key_toml("k1", generate=True),
               device_toml("lin0", "0 32768 linear hw0 0"))
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def config(listen=None, extra=""):
    text = '[daemon]\ncontrol_socket = "{dir}/control.sock"\nlog_level = "debug"\n'
    if listen is not None:
        text += 'metrics_listen = "%s"\n' % listen
    return text + extra + DEVICES


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def curl(*args):
    """curl's body on stdout, then a last line 'CODE CONTENT_TYPE'."""
    r = subprocess.run(["curl", "-sS", "--max-time", "10", "-w", "\n%{http_code} %{content_type}",
                        *args], capture_output=True, text=True, timeout=30)
    body, _, status = r.stdout.rpartition("\n")
    code, _, ctype = status.partition(" ")
    return code, ctype, body


def wait_listening(connect_fn, timeout=10):
    """The metrics socket binds just after the control socket the harness waits for."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            connect_fn().close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def start_refused(text):
    """The log of a daemon that failed to start on `text`, or None when it started."""
    d = Daemon(text)
    try:
        d.start()
        return None
    except DaemonError:
        return d.log()
    finally:
        d.cleanup()


def unix_connect(path):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
    except OSError:
        s.close()
        raise
    return s


def families_of(text):
    """Prometheus' parser's families, and every sample line the text has."""
    fams = list(text_string_to_metric_families(text))
    lines = [l for l in text.splitlines() if l and not l.startswith("#")]
    return fams, lines


def sample(fams, name, **labels):
    for f in fams:
        for s in f.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


c = Checks("metrics-http")
port = free_port()
url = "http://127.0.0.1:%d/metrics" % port
with Daemon(config("127.0.0.1:%d" % port)) as d:
    c.check("the daemon listens for scrapes on the configured address",
            wait_listening(lambda: socket.create_connection(("127.0.0.1", port), timeout=5)),
            d.log()[-2000:])
    c.check("the log says where metrics are served",
            "GET /metrics served on 127.0.0.1:%d" % port in d.log(), d.log()[-2000:])
    h = connect(d, "lin0@k1")
    h.pwrite(b"\x42" * 8192, 0)
    h.pread(4096, 4096)
    h.flush()
    h.shutdown()

    code, ctype, text = curl(url)
    c.check("GET /metrics answers 200 with Prometheus' text content type",
            code == "200" and ctype == CONTENT_TYPE, "%s %s" % (code, ctype))
    fams, lines = [], []
    c.run("Prometheus' text parser reads it", lambda: fams.extend(families_of(text)[0]))
    lines = families_of(text)[1] if fams else []
    names = [f.name for f in fams]
    c.check("each family appears once, its samples together after its HELP and TYPE",
            len(names) == len(set(names)), str(sorted(n for n in names if names.count(n) > 1)))
    c.check("every sample line is in a family the parser typed (none left untyped)",
            sum(len(f.samples) for f in fams) == len(lines)
            and all(f.type != "unknown" for f in fams),
            str([(f.name, f.type) for f in fams if f.type == "unknown"]))
    c.check("the hardware's counters count the I/O (ice_hw_writes_total, read_bytes)",
            (sample(fams, "ice_hw_writes_total", hw="hw0") or 0) >= 1
            and (sample(fams, "ice_hw_read_bytes_total", hw="hw0") or 0) >= 4096,
            text[:1500])
    c.check("the device's counters count the export's I/O",
            (sample(fams, "ice_device_ios_total", device="lin0", op="write") or 0) >= 1
            and (sample(fams, "ice_device_bytes_total", device="lin0", op="write") or 0) == 8192)
    hist = [f for f in fams if f.name == "ice_device_latency_seconds"]
    c.check("latency is a histogram whose +Inf bucket is its count",
            len(hist) == 1 and hist[0].type == "histogram"
            and sample(fams, "ice_device_latency_seconds_bucket", device="lin0", op="write",
                       le="+Inf")
            == sample(fams, "ice_device_latency_seconds_count", device="lin0", op="write"))
    c.check("the scrape is the text of `icectl metrics`", text == d.icectl("metrics").stdout)

    code, _, _ = curl(url.replace("/metrics", "/"))
    c.check("another path is 404", code == "404", code)
    code, _, _ = curl(url + "x")
    c.check("/metricsx is 404", code == "404", code)
    r = subprocess.run(["curl", "-sS", "--max-time", "10", "-X", "POST", "-D", "-", "-o",
                        "/dev/null", url], capture_output=True, text=True, timeout=30)
    c.check("POST /metrics is 405 and says Allow: GET, HEAD",
            r.stdout.startswith("HTTP/1.1 405") and "Allow: GET, HEAD" in r.stdout, r.stdout)
    r = subprocess.run(["curl", "-sS", "--max-time", "10", "-I", url], capture_output=True,
                       text=True, timeout=30)
    c.check("HEAD /metrics is 200", r.stdout.startswith("HTTP/1.1 200"), r.stdout)

    # Stalled scrapers fill every place (16); one more is told 503. Meanwhile I/O and control
    # verbs go on: the metrics have a thread of their own.
    stalled = []
    for _ in range(16):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /metrics HTTP/1.1\r\n")  # and never the rest
        stalled.append(s)
    time.sleep(0.2)
    code, _, _ = curl(url)
    c.check("beyond 16 connections a scrape is answered 503", code == "503", code)
    start = time.time()
    h = connect(d, "lin0@k1")
    h.pwrite(b"\x17" * 4096, 0)
    ok = h.pread(4096, 0) == b"\x17" * 4096
    h.shutdown()
    c.check("I/O is served while scrapers stall", ok and time.time() - start < 5)
    c.check("control verbs are served while scrapers stall",
            d.icectl("--timeout", "5", "hw", "ls").returncode == 0)
    for s in stalled:
        s.close()
    deadline = time.time() + 10
    while time.time() < deadline and curl(url)[0] != "200":
        time.sleep(0.1)
    c.check("once they leave, scrapes are served again", curl(url)[0] == "200")

    log = start_refused(config("127.0.0.1:%d" % port))
    c.check("a second daemon on a taken port does not start, naming metrics_listen",
            log is not None and "metrics_listen" in log, log)

# A Unix socket: private to the daemon's user, read with curl --unix-socket.
with Daemon(config("{dir}/m/metrics.sock")) as d:
    path = os.path.join(d.dir, "m", "metrics.sock")
    c.check("a Unix socket path is listened on", wait_listening(lambda: unix_connect(path)))
    c.check("the metrics socket is mode 0600",
            os.path.exists(path) and stat.S_IMODE(os.stat(path).st_mode) == 0o600)
    code, ctype, text = curl("--unix-socket", path, "http://localhost/metrics")
    c.check("GET /metrics over the Unix socket is the Prometheus text",
            code == "200" and ctype == CONTENT_TYPE
            and any(f.name == "ice_hw_keyslots" for f in families_of(text)[0]), code)
c.check("the metrics socket is removed when the daemon stops", not os.path.exists(path))

# Off by default; wide addresses only when the config says so.
with Daemon(config()) as d:
    c.check("without metrics_listen nothing is served", "metrics:" not in d.log(),
            d.log()[-1000:])
log = start_refused(config("0.0.0.0:%d" % port))
c.check("0.0.0.0 without metrics_listen_any is refused, naming the line and the fix",
        log is not None and "ice.toml:4: [daemon].metrics_listen '0.0.0.0:%d' is reachable from "
        "other machines" % port in log and "metrics_listen_any = true" in log, log)
with Daemon(config("0.0.0.0:%d" % port, "metrics_listen_any = true\n")) as d:
    wait_listening(lambda: socket.create_connection(("127.0.0.1", port), timeout=5))
    c.check("with metrics_listen_any = true, 0.0.0.0 is served", curl(url)[0] == "200")
c.exit()
