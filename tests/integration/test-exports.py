"""N1, N2: the export list, default export, keyed exports and refusals at negotiation."""
import subprocess

import nbd
from ice_harness import Checks, Daemon, connect, device_toml, hardware_toml, key_toml, toml

CONFIG = toml(
    hardware_toml("hw0", "16M"),
    hardware_toml("plain", "8M", keyslots=None),
    key_toml("k1", generate=True),
    key_toml("essiv", mode="aes-128-cbc-essiv", generate=True),
    device_toml("lin0", "0 16384 linear hw0 0", "16384 16384 linear plain 0"))

c = Checks("exports")
with Daemon(CONFIG) as d:
    listing = subprocess.run(["nbdinfo", "--list", "--json", d.uri()], capture_output=True,
                             text=True, timeout=60)
    import json
    exports = {e["export-name"]: e for e in json.loads(listing.stdout)["exports"]} \
        if listing.returncode == 0 else {}
    c.check("nbdinfo --list shows every hardware and mapped device",
            set(exports) >= {"hw0", "plain", "lin0"}, listing.stderr + str(list(exports)))
    c.check("descriptions name size, kind and crypto capabilities",
            "aes-256-xts" in exports.get("hw0", {}).get("description", "")
            and "hardware" in exports.get("hw0", {}).get("description", "")
            and "MiB" in exports.get("lin0", {}).get("description", ""),
            str({k: v.get("description") for k, v in exports.items()}))

    def refused(name):
        try:
            connect(d, name).shutdown()
        except nbd.Error:
            return True
        return False

    c.check("empty export name refused without a default export", refused(""))
    c.check("unknown device refused at negotiation", refused("nosuch"))
    c.check("unknown key refused at negotiation", refused("hw0@nosuch"))
    log = d.log()
    c.check("refusal reason is logged, naming the export", "nosuch" in log, log[-2000:])

    h = connect(d, "hw0@k1")
    c.check("keyed export opens and has the device's size", h.get_size() == 16 << 20)
    c.check("keyed export advertises minimum 1 (any I/O is served) and preferred = data unit "
            "size (N3, issue 19)",
            h.get_block_size(nbd.SIZE_MINIMUM) == 1 and
            h.get_block_size(nbd.SIZE_PREFERRED) == 4096)
    c.check("keyed export advertises multi-conn", h.can_multi_conn())
    c.check("keyed export advertises trim (served as encrypted zeros, issue 19)", h.can_trim())
    h.shutdown()

    h = connect(d, "plain@essiv")  # plain has no inline crypto: the fallback serves it
    h.pwrite(b"\x5a" * 4096, 0)
    c.check("fallback export round-trips", h.pread(4096, 0) == b"\x5a" * 4096)
    h.shutdown()

    h = connect(d, "plain")
    c.check("raw device export advertises trim", h.can_trim())
    h.shutdown()
c.exit()
