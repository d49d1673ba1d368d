"""Test harness: the real nbdkit with the ice plugin on a temporary Unix socket.

Used by the integration and e2e tiers (run with Debian's /usr/bin/python3, which has
python3-libnbd and python3-cryptography). Every daemon a test starts listens on a Unix socket in a
private temporary folder, is stopped by PID, and its folder is removed afterwards.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("ICE_BUILD", os.path.join(ROOT, "build"))
PLUGIN = os.path.join(BUILD, "nbdkit-ice-plugin.so")
ICECTL = os.path.join(BUILD, "icectl")


class DaemonError(Exception):
    pass


def write_key(path, data):
    """Writes a raw key file with mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)
    return path


class Daemon:
    """nbdkit + ice plugin. `config` is TOML text; '{dir}' in it becomes the daemon's folder.

    The [daemon] section is provided (control socket in the folder) unless the text has one.
    `prefix` runs nbdkit under a wrapper (prlimit, setpriv, …); `cwd` is nbdkit's working folder;
    `config_mode` the config file's mode.
    """

    def __init__(self, config, threads=16, extra_args=(), start_timeout=20, prefix=(), cwd=None,
                 config_mode=0o644):
        self.dir = tempfile.mkdtemp(prefix="ice-test-")
        os.chmod(self.dir, 0o700)
        self.sock = os.path.join(self.dir, "nbd.sock")
        self.ctl = os.path.join(self.dir, "control.sock")
        self.log_path = os.path.join(self.dir, "nbdkit.log")
        text = config.replace("{dir}", self.dir)
        if "[daemon]" not in text:
            text = '[daemon]\ncontrol_socket = "%s"\nlog_level = "debug"\n' % self.ctl + text
        self.config_path = os.path.join(self.dir, "ice.toml")
        with open(self.config_path, "w") as f:
            f.write(text)
        os.chmod(self.config_path, config_mode)
        self.threads = threads
        self.extra_args = list(extra_args)
        self.prefix = list(prefix)
        self.cwd = cwd
        self.start_timeout = start_timeout
        self.proc = None

    def uri(self, export=""):
        return "nbd+unix:///%s?socket=%s" % (export, self.sock)

    def start(self):
        self._log = open(self.log_path, "ab")
        cmd = self.prefix + ["nbdkit", "-f", "-U", self.sock, "--threads", str(self.threads)]
        cmd += self.extra_args + [PLUGIN, "config=" + self.config_path]
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd=self.cwd)
        deadline = time.time() + self.start_timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise DaemonError("nbdkit exited with %d:\n%s" % (self.proc.returncode, self.log()))
            if os.path.exists(self.sock) and os.path.exists(self.ctl):
                return self
            time.sleep(0.05)
        self.stop()
        raise DaemonError("nbdkit did not come up within %ds:\n%s" % (self.start_timeout, self.log()))

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Stops nbdkit by PID (SIGKILL after `timeout`); returns its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        self._log.close()
        # nbdkit never removes its socket: a restart on the same folder needs it gone.
        for p in (self.sock,):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)
        return rc

    def kill(self):
        """kill -9, as a crash."""
        return self.stop(signal.SIGKILL)

    def log(self):
        with contextlib.suppress(FileNotFoundError):
            with open(self.log_path, errors="replace") as f:
                return f.read()
        return ""

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    # --- control plane -------------------------------------------------------------------------

    def control(self, verb, **args):
        """One raw protocol request; returns the reply dict."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(self.ctl)
            s.sendall((json.dumps({"v": 1, "id": 1, "verb": verb, "args": args}) + "\n").encode())
            return json.loads(recv_line(s))

    def icectl(self, *args, input=None, check=True):
        """Runs build/icectl against this daemon; returns CompletedProcess (text)."""
        r = subprocess.run([ICECTL, "--socket", self.ctl] + list(args), input=input,
                           capture_output=True, timeout=60,
                           text=not isinstance(input, bytes))
        if check and r.returncode != 0:
            raise DaemonError("icectl %s failed (%d): %s" % (" ".join(args), r.returncode, r.stderr))
        return r


def recv_line(s, limit=64 << 20):
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
        if len(buf) > limit:
            raise DaemonError("reply too long")
    return buf.decode()


def connect(daemon, export="", **opts):
    """A libnbd handle connected to `export` (strict mode off: tests send unaligned I/O)."""
    import nbd
    h = nbd.NBD()
    h.set_export_name(export)
    h.set_strict_mode(0)
    if opts.get("request_block_size", True):
        h.set_request_block_size(True)
    h.connect_unix(daemon.sock)
    return h


def _xts(key, data_unit_size, first_dun, data, decrypt):
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    out = bytearray()
    for i in range(0, len(data), data_unit_size):
        tweak = (first_dun + i // data_unit_size).to_bytes(16, "little")
        cipher = Cipher(algorithms.AES(key), modes.XTS(tweak))
        ctx = cipher.decryptor() if decrypt else cipher.encryptor()
        out += ctx.update(data[i:i + data_unit_size]) + ctx.finalize()
    return bytes(out)


def xts_encrypt(key, data_unit_size, first_dun, plaintext):
    """Independent AES-256-XTS reference (python3-cryptography): IV = DUN little-endian, one data
    unit at a time: the dm-crypt aes-xts-plain64 --iv-large-sectors layout."""
    return _xts(key, data_unit_size, first_dun, plaintext, decrypt=False)


def xts_decrypt(key, data_unit_size, first_dun, ciphertext):
    return _xts(key, data_unit_size, first_dun, ciphertext, decrypt=True)


class Checks:
    """One PASS/FAIL line per check and a summary, as every tier prints them."""

    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0

    def check(self, what, ok, detail=""):
        if ok:
            self.passed += 1
            print("PASS %s: %s" % (self.name, what), flush=True)
        else:
            self.failed += 1
            print("FAIL %s: %s%s" % (self.name, what, (" — " + detail) if detail else ""), flush=True)
        return ok

    def run(self, what, fn):
        """Runs fn(); an exception is a failure of that check."""
        try:
            r = fn()
            return self.check(what, r is not False, "" if r is not False else "returned False")
        except Exception as e:  # noqa: BLE001 - a test harness reports every failure
            return self.check(what, False, "%s: %s" % (type(e).__name__, e))

    def exit(self):
        print("%s: %d passed, %d failed" % (self.name, self.passed, self.failed), flush=True)
        raise SystemExit(0 if self.failed == 0 and self.passed > 0 else 1)


# --- config text -------------------------------------------------------------------------------
# The sections tests write again and again, as they would be written by hand. Each builder returns
# one section ending in a newline; toml() joins sections with blank lines.


def hardware_toml(name, size, keyslots=2, backing="memory", data_unit_sizes=(4096,),
                  modes=("aes-256-xts",), max_dun_bytes=8):
    """A [[hardware]] section with one capability per mode; keyslots=None: no inline encryption."""
    text = '[[hardware]]\nname = "%s"\nbacking = "%s"\nsize = "%s"\n' % (name, backing, size)
    if keyslots is None:
        return text
    text += "keyslots = %d\n" % keyslots
    for mode in modes:
        text += ('  [[hardware.capability]]\n  mode = "%s"\n  data_unit_sizes = [%s]\n'
                 '  max_dun_bytes = %d\n' % (mode, ", ".join(str(n) for n in data_unit_sizes),
                                              max_dun_bytes))
    return text


def key_toml(name, mode="aes-256-xts", data_unit_size=4096, generate=False, key_file=None):
    """A [[key]] section; the key file is {dir}/NAME.key unless given."""
    text = '[[key]]\nname = "%s"\nmode = "%s"\ndata_unit_size = %d\nkey_file = "%s"\n' % (
        name, mode, data_unit_size, key_file or "{dir}/%s.key" % name)
    return text + ("generate = true\n" if generate else "")


def device_toml(name, *table):
    """A [[device]] section whose table has the given lines."""
    return '[[device]]\nname = "%s"\ntable = [%s]\n' % (name, ", ".join('"%s"' % t for t in table))


def toml(*sections):
    """Config text: the sections, a blank line between them."""
    return "\n" + "\n".join(sections)
