"""Run the Java client checks (compat/java) against three-member ensembles.

For each kind of server -- Apache ZooKeeper 3.8 (three ``QuorumPeerMain`` processes) and MiniZK
(three ``minizk server --config zoo.cfg --id N`` processes) -- this starts an ensemble on free
loopback ports, runs ``JavaClientChecks`` against it and answers the program's control lines
(``@ctl kill N``, ``@ctl start N``, ``@ctl all-serving``; see compat/java/Ensemble.java) by
killing and restarting members. It then prints a check x server table and exits 0 only when
every check passed on every server.

    python3 -m compat.java_ensemble --classes DIR [--kinds zk,minizk] [--only NAMES] [--keep]

The classes must be compiled already (scripts/compat-java.sh does that). Work directories
(zoo.cfg, data, server logs, the Java client's log) go under compat/work/ and are removed after a
clean run unless --keep is given.

    python3 -m compat.java_ensemble --classes DIR [--kinds ...] --fault-check

puts the proxies of compat/java_faults.py between the checks and the members, once per fault, and
exits 0 only when the checks meant to catch that fault fail (FAULT_CATCHERS).
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from compat.java_faults import FaultProxy
from compat.zk import (JAVA_DIR, REPO_ROOT, WORK_DIR, MiniZKMember, ServerError, ZooKeeperMember,
                       free_ports, server_mode)

TICK_MS = 200
SESSION_TIMEOUT_MS = 4000  # what the checks ask for; the servers' maxSessionTimeout
MEMBERS = (1, 2, 3)
QUORUM_TIMEOUT_S = 45.0
RUN_TIMEOUT_S = 180.0  # the whole Java program against one ensemble

CLIENT_JARS = ("curator-framework", "curator-client", "curator-recipes", "curator-x-discovery", "zookeeper",
               "zookeeper-jute", "guava", "slf4j-api", "slf4j-simple", "netty-all", "jackson-databind",
               "jackson-core", "jackson-annotations")
CLIENT_CLASSPATH = ":".join(os.path.join(JAVA_DIR, name + ".jar") for name in CLIENT_JARS)

# Which checks must fail when a fault of compat/java_faults.py is injected. (With xid-minus-8,
# curator-cache-failover usually fails too, but not always: after one failed SetWatches the
# client sometimes reconnects without sending another, and Curator sets its watch again itself.)
FAULT_CATCHERS = {
    "xid-minus-8": ("zk-failover-watches",),
    "hold-closed": ("zk-session-closed-elsewhere", "curator-leader-latch"),
}


def zoo_cfg_text(data_dir, server_lines):
    return ("tickTime=%d\n"
            "initLimit=10\n"
            "syncLimit=5\n"
            "dataDir=%s\n"
            "maxSessionTimeout=%d\n"
            "standaloneEnabled=false\n"
            "4lw.commands.whitelist=*\n"
            "admin.enableServer=false\n"
            "forceSync=no\n"
            "%s\n" % (TICK_MS, data_dir, SESSION_TIMEOUT_MS, "\n".join(server_lines)))


class Ensemble:
    def __init__(self, kind, binary, root, fault=None):
        self.fault, self.proxies = fault, {}
        ports = free_ports(3 * len(MEMBERS))
        self.client_port = {sid: ports[3 * i] for i, sid in enumerate(MEMBERS)}
        lines = ["server.%d=127.0.0.1:%d:%d:participant;127.0.0.1:%d" % (sid, ports[3 * i + 1], ports[3 * i + 2],
                                                                          self.client_port[sid])
                 for i, sid in enumerate(MEMBERS)]
        self.servers = {}
        for sid in MEMBERS:
            common = dict(port=self.client_port[sid], extended_types=False,
                          work_dir=os.path.join(root, "server%d" % sid), log_name="server%d.log" % sid)
            os.makedirs(common["work_dir"])
            if kind == "zk":
                self.servers[sid] = ZooKeeperMember(sid, lines, zoo_cfg_text, **common)
            else:
                self.servers[sid] = MiniZKMember(sid, lines, zoo_cfg_text, arguments=["--log-level", "info"], binary=binary, **common)

    def hosts(self):
        """The addresses the checks are given: the members', or their fault proxies'."""
        if self.fault and not self.proxies:
            self.proxies = {sid: FaultProxy(self.fault, self.client_port[sid]) for sid in MEMBERS}
        if self.fault:
            return ["%d=127.0.0.1:%d" % (sid, self.proxies[sid].port) for sid in MEMBERS]
        return ["%d=127.0.0.1:%d" % (sid, self.client_port[sid]) for sid in MEMBERS]

    def start(self, sid):
        server = self.servers[sid]
        if not server.running:
            server.spawn()

    def kill(self, sid):
        self.servers[sid].kill()

    def all_serving(self, timeout=QUORUM_TIMEOUT_S):
        """Starts what is down; waits for every member to serve, exactly one of them leading."""
        for sid in MEMBERS:
            self.start(sid)
        deadline = time.monotonic() + timeout
        while True:
            modes = {sid: server_mode(self.client_port[sid]) for sid in MEMBERS}
            values = list(modes.values())
            if values.count("leader") == 1 and values.count("follower") == len(MEMBERS) - 1:
                return modes
            ended = {sid: s.process.returncode for sid, s in self.servers.items()
                     if s.process is not None and s.process.poll() is not None}
            if ended or time.monotonic() > deadline:
                raise ServerError("ensemble not serving: modes %s, exited %s" % (modes, ended))
            time.sleep(0.05)

    def wait_member(self, sid, timeout=QUORUM_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while server_mode(self.client_port[sid]) not in ("leader", "follower"):
            if self.servers[sid].process.poll() is not None or time.monotonic() > deadline:
                raise ServerError("member %d not serving (mode %s)" % (sid, server_mode(self.client_port[sid])))
            time.sleep(0.05)

    def stop_all(self):
        for proxy in self.proxies.values():
            proxy.close()
        for server in self.servers.values():
            if server.running:
                server.process.terminate()
        for server in self.servers.values():
            server.stop()

    def log_tails(self, lines=15):
        for sid, server in sorted(self.servers.items()):
            print("---- server %d log tail (%s)" % (sid, server.log_path))
            print(server.log_tail(lines))


def answer(ensemble, command):
    """Carries out one control line; returns the reply line."""
    words = command.split()
    try:
        if words[0] == "kill":
            ensemble.kill(int(words[1]))
        elif words[0] == "start":
            ensemble.start(int(words[1]))
            ensemble.wait_member(int(words[1]))
        elif words[0] == "all-serving":
            modes = ensemble.all_serving()
            return "ok " + " ".join("%d=%s" % item for item in sorted(modes.items()))
        else:
            return "error unknown command %r" % command
    except (ServerError, OSError, ValueError, IndexError) as error:
        return "error %s" % error
    return "ok"


def run_kind(kind, binary, classes, only, keep, fault=None):
    """Runs the checks against one ensemble; returns ({check: (passed, detail)}, clean)."""
    os.makedirs(WORK_DIR, exist_ok=True)
    root = tempfile.mkdtemp(prefix="java-%s-" % kind, dir=WORK_DIR)
    print("== %s ensemble%s (work directory %s)" % (kind, " behind %s proxies" % fault if fault else "", root),
          flush=True)
    results, clean = {}, False
    if kind == "minizk" and not os.access(binary, os.X_OK):
        print("FAIL minizk binary not found: %s" % binary, flush=True)
        return {"(ensemble start)": (False, "minizk binary not found: %s" % binary)}, False
    ensemble = Ensemble(kind, binary, root, fault)
    client_log = os.path.join(root, "java-client.log")
    try:
        began = time.monotonic()
        try:
            modes = ensemble.all_serving(timeout=60.0)
        except ServerError as error:
            ensemble.log_tails()
            return {"(ensemble start)": (False, str(error))}, False
        print("  ensemble serving after %.1f s: %s" % (time.monotonic() - began, modes), flush=True)
        command = ["java", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto",
                   "-Dzookeeper.request.timeout=20000",
                   "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
                   "-Dorg.slf4j.simpleLogger.showDateTime=true",
                   "-Dorg.slf4j.simpleLogger.logFile=%s" % client_log,
                   "-cp", "%s:%s" % (classes, CLIENT_CLASSPATH), "JavaClientChecks"]
        if only:
            command += ["--only", only]
        command += ensemble.hosts()
        java = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1, start_new_session=True)
        timer = threading.Timer(RUN_TIMEOUT_S, lambda: java.poll() is None and java.kill())
        timer.start()
        try:
            for line in java.stdout:
                line = line.rstrip("\n")
                if line.startswith("@ctl "):
                    reply = answer(ensemble, line[5:])
                    print("  [runner] %s -> %s" % (line[5:], reply), flush=True)
                    try:
                        java.stdin.write(reply + "\n")
                        java.stdin.flush()
                    except BrokenPipeError:
                        pass
                    continue
                print(line, flush=True)
                if line.startswith("PASS ") or line.startswith("FAIL "):
                    name = line[5:].split(" ", 1)[0]
                    results[name] = (line.startswith("PASS "), line[5:])
            status = java.wait()
        finally:
            timer.cancel()
            if java.poll() is None:
                java.kill()
                java.wait()
        if status != 0 and all(passed for passed, _ in results.values()):
            results["(java program)"] = (False, "exit status %s" % status)
        clean = status == 0 and all(passed for passed, _ in results.values())
        if not clean and not fault:
            print("---- notable lines of the Java client's log (%s)" % client_log)
            notable(client_log)
            ensemble.log_tails()
    finally:
        ensemble.stop_all()
        if (clean or fault) and not keep:
            shutil.rmtree(root, ignore_errors=True)
    return results, clean


def notable(path, limit=12):
    """Prints the distinct WARN/ERROR messages of the client log (first occurrences)."""
    seen = []
    try:
        with open(path, errors="replace") as log:
            for line in log:
                if " WARN " in line or " ERROR " in line or "out of order" in line:
                    message = line.split(" - ", 1)[-1].strip()
                    key = message[:90]
                    if key not in (s[:90] for s in seen):
                        seen.append(message)
    except OSError:
        print("(no client log)")
        return
    for message in seen[:limit]:
        print("  " + message[:300])


def print_table(kinds, results):
    names = []
    for kind in kinds:
        for name in results[kind]:
            if name not in names:
                names.append(name)
    width = max(len(name) for name in names) if names else 10
    print()
    print("%-*s  %s" % (width, "check", "  ".join("%-8s" % kind for kind in kinds)))
    for name in names:
        cells = []
        for kind in kinds:
            outcome = results[kind].get(name)
            cells.append("%-8s" % ("-" if outcome is None else "ok" if outcome[0] else "FAILED"))
        print("%-*s  %s" % (width, name, "  ".join(cells)))


def fault_check(kinds, binary, classes, keep):
    """Every fault must make the checks of FAULT_CATCHERS fail, on every kind of server."""
    rows = []
    for kind in kinds:
        for fault, catchers in FAULT_CATCHERS.items():
            results, _ = run_kind(kind, binary, classes, ",".join(catchers), keep, fault=fault)
            for name in catchers:
                outcome = results.get(name)
                rows.append((kind, fault, name, outcome is not None and not outcome[0]))
    print()
    for kind, fault, name, caught in rows:
        print("%-7s %-12s %-28s %s" % (kind, fault, name, "caught" if caught else "MISSED"))
    missed = sum(1 for row in rows if not row[3])
    print("compat-java fault check: %d caught, %d missed" % (len(rows) - missed, missed))
    return 0 if missed == 0 else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", required=True, help="directory of the compiled checks")
    parser.add_argument("--kinds", default="zk,minizk")
    parser.add_argument("--only", help="comma-separated check names")
    parser.add_argument("--keep", action="store_true", help="keep the work directories")
    parser.add_argument("--fault-check", action="store_true",
                        help="inject each fault of compat/java_faults.py; pass when the checks catch it")
    arguments = parser.parse_args()
    binary = os.environ.get("MINIZK_BIN") or os.path.join(REPO_ROOT, ".build", "debug", "minizk")
    kinds = [kind for kind in arguments.kinds.split(",") if kind]
    if arguments.fault_check:
        return fault_check(kinds, binary, arguments.classes, arguments.keep)
    results, all_clean = {}, True
    for kind in kinds:
        began = time.monotonic()
        results[kind], clean = run_kind(kind, binary, arguments.classes, arguments.only, arguments.keep)
        all_clean = all_clean and clean
        print("== %s: %s in %.0f s" % (kind, "all passed" if clean else "FAILED", time.monotonic() - began), flush=True)
    print_table(kinds, results)
    failed = sum(1 for kind in kinds for passed, _ in results[kind].values() if not passed)
    passed = sum(1 for kind in kinds for ok, _ in results[kind].values() if ok)
    print("compat-java: %d passed, %d failed" % (passed, failed))
    return 0 if all_clean and failed == 0 else 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
