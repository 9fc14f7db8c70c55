"""Quotas with ZooKeeper's own zkCli (and `minizk shell`) against MiniZK and ZooKeeper 3.8.

Both servers run with quota enforcement on (ZooKeeper: ``-Dzookeeper.enforceQuota=true``;
MiniZK: ``minizk server --enforce-quota``), each with a data directory of its own. One command
script goes through zkCli (``/usr/share/zookeeper/bin/zkCli.sh``, commands on stdin) against
each server; then each server is restarted on its data and a second script checks that the
limits and stats survived and are still enforced. The outputs of MiniZK and ZooKeeper must be
equal line for line (only the JVM's and the prompt's chatter is dropped), and must show what
quotas do: hard limits answered QUOTAEXCEEDED, stats counted by the server. The same scripts
then run through ``minizk shell`` against both servers, compared the same way.

usage: python3 scripts/quota_check.py [--keep-output DIR]
Prints "quota-check: N passed, N failed" last; exit status 1 on any failure.
"""

import argparse
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from compat import zk  # noqa: E402

ZKCLI = os.environ.get("ZKCLI", "/usr/share/zookeeper/bin/zkCli.sh")

FIRST = """\
create /q
create /q/a 12345
setquota -N 4 /q
listquota /q
create /q/b
create /q/c xyz
create /q/d
create /q/b/deep
listquota /q
setquota -B 12 /q
listquota /q
set /q/a 1234567890
set /q/a 12
listquota /q
delquota -N /q
create /q/d
listquota /q
setquota -n 2 /q
create /q/e
listquota /q
create /other 0123456789012345
setquota -N 1 /other
listquota /other
set /other x
create /other/child
ls /zookeeper/quota
"""

AFTER_RESTART = """\
listquota /q
listquota /other
create /other/child
set /q/a 1234567890
create /q/f
listquota /q
delquota /q
listquota /q
ls /zookeeper/quota
create /q/g
"""

NOISE = re.compile(
    r"^(SLF4J|Connecting to |Welcome to ZooKeeper!|JLine support is|log4j:|WATCHER::$|"
    r"WatchedEvent state:SyncConnected type:None path:null)"
)
PROMPT = re.compile(r"^\[zk: [^\]]*\] ?")


class EnforcingZooKeeper(zk.ZooKeeperServer):
    def _command(self):
        command = super()._command()
        return command[:1] + ["-Dzookeeper.enforceQuota=true"] + command[1:]


class EnforcingMiniZK(zk.MiniZKServer):
    def _command(self):
        return super()._command() + ["--enforce-quota"]


def clean(text):
    lines = []
    for line in text.splitlines():
        line = PROMPT.sub("", line).rstrip()
        if not line or NOISE.match(line):
            continue
        lines.append(line)
    return lines


def run_zkcli(address, script):
    result = subprocess.run(
        [ZKCLI, "-server", address], input=script + "quit\n", capture_output=True, text=True, timeout=120
    )
    return clean(result.stdout + result.stderr)


def run_shell(address, script):
    result = subprocess.run(
        [zk.minizk_binary(), "shell", address], input=script, capture_output=True, text=True, timeout=120
    )
    return clean(result.stdout + result.stderr)


def session(server, runner):
    """Both scripts through one runner, with a restart of the server between them."""
    first = runner(server.address, FIRST)
    server.stop()
    server.start()
    second = runner(server.address, AFTER_RESTART)
    return first, second


# What the reference output must show, so that two servers cannot agree on doing nothing.
EXPECTED = [
    "Output stat for /q count=2,bytes=5",          # counted when the quota was set
    "Output stat for /q count=4,bytes=8",          # after /q/b and /q/c; /q/d refused
    "Output stat for /other count=1,bytes=16",
]


def compare(name, reference, other, results):
    ok = reference == other
    results.append(ok)
    print("  %s %s (%d lines)" % ("ok  " if ok else "FAIL", name, len(reference)))
    if not ok:
        import difflib
        for line in difflib.unified_diff(reference, other, "zookeeper", "minizk", lineterm="", n=2):
            print("       | " + line)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep-output", default=None)
    arguments = parser.parse_args()
    results = []
    outputs = {}
    for kind, server_class in (("zookeeper", EnforcingZooKeeper), ("minizk", EnforcingMiniZK)):
        for tool, runner in (("zkcli", run_zkcli), ("shell", run_shell)):
            server = server_class()
            try:
                server.start()
                outputs[(kind, tool)] = session(server, runner)
            finally:
                server.destroy()
    for tool in ("zkcli", "shell"):
        reference = outputs[("zookeeper", tool)]
        other = outputs[("minizk", tool)]
        compare("%s, first script (MiniZK vs ZooKeeper)" % tool, reference[0], other[0], results)
        compare("%s, after a restart (MiniZK vs ZooKeeper)" % tool, reference[1], other[1], results)
    reference = outputs[("zookeeper", "zkcli")][0]
    for line in EXPECTED:
        found = line in reference
        results.append(found)
        print("  %s zkCli on ZooKeeper prints %r" % ("ok  " if found else "FAIL", line))
    refused = [line for line in reference if line.startswith("Quota has exceeded : ")]
    results.append(len(refused) >= 3)
    print("  %s zkCli on ZooKeeper shows writes refused by hard limits (%d)" % ("ok  " if len(refused) >= 3 else "FAIL", len(refused)))
    # minizk shell words a refusal as zkCli does.
    for index in (0, 1):
        zkcli = [line for line in outputs[("zookeeper", "zkcli")][index] if line.startswith("Quota has exceeded")]
        shell = [line for line in outputs[("minizk", "shell")][index] if line.startswith("Quota has exceeded")]
        same = zkcli == shell and len(zkcli) > 0
        results.append(same)
        print("  %s minizk shell prints zkCli's refusals (script %d: %d lines)" % ("ok  " if same else "FAIL", index + 1, len(zkcli)))
    if arguments.keep_output:
        os.makedirs(arguments.keep_output, exist_ok=True)
        for (kind, tool), (first, second) in outputs.items():
            with open(os.path.join(arguments.keep_output, "%s-%s.txt" % (kind, tool)), "w") as handle:
                handle.write("\n".join(first) + "\n--- restart ---\n" + "\n".join(second) + "\n")
    passed = sum(results)
    print("quota-check: %d passed, %d failed" % (passed, len(results) - passed))
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
