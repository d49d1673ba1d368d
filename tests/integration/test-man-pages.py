"""Issue 18: the man pages icectl(1), nbdkit-ice-plugin(1) and ice.toml(5) are built (pandoc, from
docs/man/*.md), render without warnings, and say what the code does: every icectl verb and
option (from `icectl … --help`), its exit codes and defaults (cli/icectl.h); the plugin's
parameter (its config_help); every config key of config/config.cc with its defaults and whether
it is required, every crypto mode and every target type."""
import glob
import os
import re
import subprocess

from ice_harness import BUILD, ICECTL, PLUGIN, ROOT, Checks

MAN = os.path.join(ROOT, "docs", "man")
c = Checks("man-pages")


def read(*path):
    with open(os.path.join(ROOT, *path)) as f:
        return f.read()


def entries(md, section=None):
    """The definition-list entries of a page (of one `# SECTION` or `## SECTION` of it): the bold
    words of each term line (`**key** = …`, `**hw fault** *NAME* [**\\--fail-programs** …]`),
    mapped to the term and its text, backticks and line breaks taken out."""
    if section is not None:
        parts = re.split(r"^#+ (.*)\n", md, flags=re.M)
        md = dict(zip(parts[1::2], parts[2::2])).get(section, "")
    out = {}
    for m in re.finditer(r"^(\*\*.+)\n((?::   .*\n)(?:    .*\n|\n(?=    ))*)", md, re.M):
        term, body = m.group(1), m.group(2)
        text = " ".join((term + " " + body).replace("`", "").replace(":   ", " ").split())
        out.setdefault(re.match(r"\*\*(.+?)\*\*", term).group(1).replace("\\", ""), text)
    return out


# --- built and rendered --------------------------------------------------------------------------
pages = {"icectl.1": None, "nbdkit-ice-plugin.1": None, "ice.toml.5": None}
for page in pages:
    built = os.path.join(BUILD, "man", "man" + page[-1], page + ".gz")
    ok = os.path.exists(built)
    c.check("%s is built from docs/man/%s.md" % (page, page), ok, built)
    if not ok:
        continue
    r = subprocess.run(["man", "--warnings", "-l", built], capture_output=True, text=True,
                       env=dict(os.environ, MANWIDTH="100"), timeout=60)
    c.check("%s renders without warnings" % page, r.returncode == 0 and not r.stderr.strip(),
            r.stderr[:500])
    pages[page] = r.stdout
    c.check("%s has NAME, SYNOPSIS, DESCRIPTION and SEE ALSO" % page,
            all(re.search(r"^%s$" % s, r.stdout, re.M)
                for s in ("NAME", "SYNOPSIS", "DESCRIPTION", "SEE ALSO")))
    version = re.search(r"project\(ice .*VERSION ([0-9.]+)\)", read("CMakeLists.txt")).group(1)
    c.check("%s's footer says ice %s" % (page, version), "ice " + version in r.stdout)

# --- icectl(1) -----------------------------------------------------------------------------------
icectl_md = read("docs", "man", "icectl.1.md")
icectl = entries(icectl_md)


def help_of(*args):
    return subprocess.run([ICECTL, *args, "--help"], capture_output=True, text=True,
                          timeout=30).stdout


def subcommands(*args):
    text = help_of(*args)
    return re.findall(r"^  ([a-z][a-z.-]*) ", text.split("Subcommands:")[1], re.M) \
        if "Subcommands:" in text else []


leaves = []
for verb in subcommands():
    subs = subcommands(verb)
    leaves += [(verb, s) for s in subs] if subs else [(verb,)]
c.check("icectl has the verbs its help lists (%d)" % len(leaves), len(leaves) > 15, str(leaves))
undocumented = [" ".join(l) for l in leaves if " ".join(l) not in icectl]
c.check("every verb has an entry in icectl(1)", not undocumented, str(undocumented))
missing = []
for leaf in leaves + [()]:
    for opt in set(re.findall(r"--[a-z][a-z-]*", help_of(*leaf))) - {"--help"}:
        if "**\\%s**" % opt not in icectl_md:
            missing.append("%s %s" % (" ".join(leaf), opt))
c.check("every option of every verb is in icectl(1)", not missing, str(missing))
modes = re.search(r"crypto mode \((.*)\)", help_of("key", "add")).group(1).split(", ")
c.check("key add's modes (%s) are in icectl(1)" % ", ".join(modes),
        all("**%s**" % m in icectl["key add"] for m in modes), icectl.get("key add", ""))
header = read("cli", "icectl.h")
codes = dict(re.findall(r"kExit(\w+) = (\d)", header))
c.check("the exit codes are icectl.h's: 0 ok, 1 refused, 2 usage, 3 unreachable",
        codes == {"Ok": "0", "Failed": "1", "Usage": "2", "Unreachable": "3"}
        and all(n in icectl for n in "0123")
        and "refused" in icectl["1"] and "usage" in icectl["2"].lower()
        and "cannot be reached" in icectl["3"], str(codes))
socket_default = re.search(r'kDefaultSocket = "(.*)"', header).group(1)
timeout_default = re.search(r"kDefaultTimeout\{(\d+)\}", header).group(1)
c.check("--socket's default (%s, $ICE_SOCKET first) and --timeout's (%s)"
        % (socket_default, timeout_default),
        socket_default in icectl["--socket"] and "$ICE_SOCKET" in icectl["--socket"]
        and "default %s" % timeout_default in icectl["--timeout"]
        and "ICE_SOCKET" in icectl)

# --- nbdkit-ice-plugin(1) ------------------------------------------------------------------------
plugin = entries(read("docs", "man", "nbdkit-ice-plugin.1.md"))
r = subprocess.run(["nbdkit", PLUGIN, "--help"], capture_output=True, text=True, timeout=30)
params = re.findall(r"^(\w+)=", r.stdout, re.M)
c.check("the plugin's parameters (%s) have entries" % params,
        params == ["config"] and "config=" in plugin, r.stdout)
exports = read("docs", "man", "nbdkit-ice-plugin.1.md").split("# EXPORTS")[-1]
c.check("the export names NAME and NAME@KEY are described",
        "\n*NAME*\n" in exports and "\n*NAME*`@`*KEY*\n" in exports)

# --- ice.toml(5) ---------------------------------------------------------------------------------
toml_md = read("docs", "man", "ice.toml.5.md")
toml = entries(toml_md)
config_cc = read("config", "config.cc")
keys = []
for where, listed in re.findall(r"CheckKeys\(\s*err,\s*\w+,\s*([^,]+),\s*\{([^}]*)\}", config_cc):
    keys += re.findall(r'"([a-z_]+)"', listed)
sections = {"daemon": "# [daemon]", "hardware": "# [[hardware]]", "key": "# [[key]]",
            "device": "# [[device]]", "capability": "## [[hardware.capability]]"}
c.check("config.cc's keys are read (%d)" % len(keys), len(keys) > 25, str(keys))
missing = [k for k in keys if k not in sections and k not in toml]
missing += [s for k, s in sections.items() if k in keys and "\n%s\n" % s not in toml_md]
c.check("every key config.cc accepts, and every table, has an entry in ice.toml(5)",
        not missing, str(missing))
wrong = []
for key, required, default in re.findall(
        r'GetInt\(err, t, "([a-z_]+)", \w+, (true|false), (-?\d+|\w+), ', config_cc):
    text = toml.get(key, "")
    if required == "true" and "required" not in text:
        wrong.append(key + " not said required")
    if required == "false" and default.lstrip("-").isdigit() and "default %s" % default not in text:
        wrong.append("%s default %s" % (key, default))
optional = set(re.findall(r'if \(t\.get\("([a-z_]+)"\)\)', config_cc))
for key in re.findall(r'GetString\(err, t, "([a-z_]+)", \w+, true\)', config_cc):
    if key in toml and key not in optional and "required" not in toml[key]:
        wrong.append(key + " not said required")
for key, default in re.findall(r'std::string (\w+) = "(.*)";', read("config", "config.h")):
    if key in toml and 'default "%s"' % default not in toml[key] \
            and "%s (default" % ('"%s"' % default) not in toml[key]:
        wrong.append('%s default "%s"' % (key, default))
c.check("defaults and required keys are config.cc's and config.h's", not wrong, str(wrong))
modes = re.findall(r'\{CryptoMode::\w+, "([a-z0-9-]+)"', read("keyslot", "crypto_mode.cc"))
capability = entries(toml_md, "[[hardware.capability]]").get("mode", "")
c.check("every crypto mode (%s) is in [[hardware.capability]] mode" % ", ".join(modes),
        modes and all('"%s"' % m in capability for m in modes), capability)
implemented = re.findall(r'\{CryptoMode::\w+, "([a-z0-9-]+)", \d+, \d+, true\}',
                         read("keyslot", "crypto_mode.cc"))
key_mode = entries(toml_md, "[[key]]").get("mode", "")
c.check("the modes ice computes (%s) are [[key]] mode's" % ", ".join(implemented),
        implemented and all('"%s"' % m in key_mode for m in implemented)
        and not any('"%s"' % m in key_mode for m in set(modes) - set(implemented)), key_mode)
targets = []
for f in glob.glob(os.path.join(ROOT, "dm", "targets", "*.cc")):
    targets += re.findall(r'TargetType k\w+(?: = )?\{"([a-z-]+)"', open(f).read())
c.check("every target type (%d) is in [[device]] table" % len(targets),
        len(targets) >= 10 and all(t + " " in toml.get("table", "") or t + "," in
                                   toml.get("table", "") for t in targets),
        str([t for t in targets if t not in toml.get("table", "")]))
c.exit()
