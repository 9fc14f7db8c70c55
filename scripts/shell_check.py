"""Drive `minizk shell` and ZooKeeper's zkCli through one command script and compare.

Three runs of the same script, each in a fresh chroot (so they share a server without seeing each
other's nodes):

* ``minizk shell`` against MiniZK,
* ``minizk shell`` against ZooKeeper 3.8,
* zkCli (``/usr/share/zookeeper/bin/zkCli.sh``, commands on stdin) against ZooKeeper 3.8.

Outputs (stdout and stderr together) are masked -- zxids, times, session ids -- and the watch
events taken out of the stream and compared as a sorted list (they are printed as they come,
so their place among the command output is not fixed). Then ``minizk shell --json`` is run
against both servers and its objects compared with the same masking.

usage: python3 scripts/shell_check.py [--ci] [--keep-output DIR]
"""

import argparse
import json
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from compat import zk  # noqa: E402

ZKCLI = os.environ.get("ZKCLI", "/usr/share/zookeeper/bin/zkCli.sh")

SCRIPT = """\
create /a hello
create /a again
get /a
get -s /a
create /b
get /b
ls /
ls -s /
create /a/c1 one
create /a/c2 two
ls -R /
getAllChildrenNumber /a
set /a world
set -s -v 1 /a again
set -v 9 /a bad
get /a
stat /a
stat /nope
get /nope
delete /a
delete -v 7 /b
create -s /a/seq- x
create -e /eph e
create -e /eph/child x
getEphemerals /eph
create -t 5000 /ttl t
create -c /cont
create -c -e /bad
create -t 0 /ttl0
getAcl /a
setAcl -s /a/c1 world:anyone:r
getAcl -s /a/c1
set /a/c1 x
setAcl /a/c1 world:anyone:xyz
addauth digest user:pw
create /d data auth::cdrwa
getAcl /d
whoami
sync /
get -w /b
set /b changed
ls -w /a
create /a/c3 x
addWatch -m PERSISTENT /b
set /b again
removewatches /b
stat -w /b
delete /b/nope
deleteall /a
ls /a
ls /
printwatches
printwatches off
printwatches
printwatches on
setquota -n 10 /b
listquota /b
delquota /b
listquota /b
listquota /nope
create noslash
get /b/
bogus
addWatch /b
create /b/x y
set /b/x z
removewatches /b -a
removewatches /b
delete -v 3 /b/x
delete -v 1 /b/x
setquota -b 100 /b
setquota -N 5 /b
listquota /b
delquota -n /b
listquota /b
delquota /b
reconfig -add 5=127.0.0.1:1:2;3
config
close
ls /
connect
ls /b
history
redo 6
"""

NOISE = re.compile(
    r"^(SLF4J|Connecting to |Welcome to ZooKeeper!|JLine support is|log4j:)"
)


# Differences known and explained, applied to the reference output before comparing (each is
# printed): (line zkCli prints, line minizk shell prints, why).
KNOWN = [
    ("[]", "[/eph]", "getEphemerals under a chroot: ZooKeeper 3.8's Java client (zkCli) answers [] "
     "for the chroot's ephemeral node; ZKClient answers it"),
]


def sort_identities(lines):
    """whoami lists identities in the server's order; compare them as a set."""
    out = list(lines)
    for index, line in enumerate(out):
        if line == "Auth scheme: User":
            end = index + 1
            while end < len(out) and re.match(r"^[a-z0-9_-]+: ", out[end]):
                end += 1
            out[index + 1:end] = sorted(out[index + 1:end])
    return out


def apply_known(reference, other):
    reference = list(reference)
    notes = []
    for zkcli_line, shell_line, why in KNOWN:
        for index, line in enumerate(reference):
            if line == zkcli_line and index < len(other) and other[index] == shell_line:
                reference[index] = shell_line
                notes.append(why)
                break
    return reference, notes


def mask(line):
    line = re.sub(r"^(cZxid|mZxid|pZxid) = 0x[0-9a-f]+$", r"\1 = <zxid>", line)
    line = re.sub(r"^(ctime|mtime) = .*$", r"\1 = <time>", line)
    line = re.sub(r"^ephemeralOwner = 0x[0-9a-f]*[1-9a-f][0-9a-f]*$", "ephemeralOwner = <session>", line)
    return line


def split_events(text):
    """(command output lines, watch event lines), with zkCli's chatter dropped."""
    lines = [line for line in text.splitlines() if not NOISE.match(line)]
    output, events = [], []
    for line in lines:
        if line.startswith("WatchedEvent "):
            events.append(line)
        elif line in ("WATCHER::", ""):
            continue
        else:
            output.append(mask(line))
    return output, sorted(events)


def run_minizk_shell(binary, address, json_output=False):
    command = [binary, "shell", address] + (["--json"] if json_output else [])
    # stderr and stdout are written line by line, in order: one pipe keeps that order.
    merged = subprocess.run(command, input=SCRIPT + "quit\n", stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=120)
    return merged.stdout


def run_zkcli(address):
    result = subprocess.run([ZKCLI, "-server", address], input=SCRIPT + "quit\n", stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=180)
    return result.stdout


def make_chroot(binary, address, name):
    subprocess.run([binary, "shell", address, "--", "create", "/" + name], check=True,
                   capture_output=True, timeout=60)
    return "%s/%s" % (address, name)


def diff(name_a, a, name_b, b):
    import difflib
    return list(difflib.unified_diff(a, b, name_a, name_b, lineterm="", n=1))


def mask_json(value):
    if isinstance(value, dict):
        masked = {}
        for key, item in value.items():
            if key in ("czxid", "mzxid", "pzxid", "ctime", "mtime"):
                masked[key] = "<masked>"
            elif key == "ephemeralOwner" and item:
                masked[key] = "<session>"
            else:
                masked[key] = mask_json(item)
        return masked
    if isinstance(value, list):
        return [mask_json(item) for item in value]
    return value


def json_objects(text):
    objects, events = [], []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        value = mask_json(json.loads(line))
        if value.get("command") == "whoami" and "identities" in value:
            value["identities"] = sorted(value["identities"], key=lambda item: (item["scheme"], item["user"]))
        (events if "event" in value else objects).append(json.dumps(value, sort_keys=True))
    return objects, sorted(events)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ci", action="store_true", help="exit status 1 on any difference")
    parser.add_argument("--keep-output", help="write each run's raw output here")
    arguments = parser.parse_args()
    binary = zk.minizk_binary()
    failures = 0
    minizk = zk.MiniZKServer(binary=binary)
    zookeeper = zk.ZooKeeperServer()
    try:
        minizk.spawn()
        zookeeper.spawn()
        minizk.wait_until_serving()
        zookeeper.wait_until_serving()
        runs = {
            "minizk-shell@minizk": run_minizk_shell(binary, make_chroot(binary, minizk.address, "t")),
            "minizk-shell@zookeeper": run_minizk_shell(binary, make_chroot(binary, zookeeper.address, "t")),
            "zkcli@zookeeper": run_zkcli(make_chroot(binary, zookeeper.address, "u")),
        }
        json_runs = {
            "json@minizk": run_minizk_shell(binary, make_chroot(binary, minizk.address, "j"), json_output=True),
            "json@zookeeper": run_minizk_shell(binary, make_chroot(binary, zookeeper.address, "j"), json_output=True),
        }
    finally:
        minizk.destroy() if hasattr(minizk, "destroy") else minizk.stop()
        zookeeper.destroy() if hasattr(zookeeper, "destroy") else zookeeper.stop()
    if arguments.keep_output:
        os.makedirs(arguments.keep_output, exist_ok=True)
        for name, text in list(runs.items()) + list(json_runs.items()):
            with open(os.path.join(arguments.keep_output, name + ".txt"), "w") as out:
                out.write(text)
    parsed = {name: split_events(text) for name, text in runs.items()}
    reference = "zkcli@zookeeper"
    for name in ("minizk-shell@zookeeper", "minizk-shell@minizk"):
        for what, index in (("output", 0), ("watch events", 1)):
            expected, other = parsed[reference][index], parsed[name][index]
            if index == 0:
                if sort_identities(other) != other:
                    print("shell-check: known difference (%s): whoami lists the identities in another order" % name)
                expected, notes = apply_known(sort_identities(expected), sort_identities(other))
                other = sort_identities(other)
                for note in notes:
                    print("shell-check: known difference (%s): %s" % (name, note))
            lines = diff(reference, expected, name, other)
            if lines:
                failures += 1
                print("shell-check: %s differs from %s (%s):" % (name, reference, what))
                print("\n".join("    " + line for line in lines))
            else:
                print("shell-check: %s = %s (%s, %d lines)" % (name, reference, what, len(parsed[name][index])))
    objects = {name: json_objects(text) for name, text in json_runs.items()}
    for what, index in (("objects", 0), ("events", 1)):
        lines = diff("json@zookeeper", objects["json@zookeeper"][index], "json@minizk", objects["json@minizk"][index])
        if lines:
            failures += 1
            print("shell-check: --json %s differ:" % what)
            print("\n".join("    " + line for line in lines))
        else:
            print("shell-check: --json %s equal (%d)" % (what, len(objects["json@minizk"][index])))
    commands = len([line for line in SCRIPT.splitlines() if line.strip()])
    print("shell-check: %d commands, %d differences" % (commands, failures))
    return 1 if failures and arguments.ci else 0


if __name__ == "__main__":
    sys.exit(main())
