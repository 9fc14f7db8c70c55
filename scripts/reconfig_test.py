#!/usr/bin/env python3
"""Dynamic reconfiguration end to end, on Apache ZooKeeper 3.8 and on MiniZK alike.

For each server kind the same scenario runs against an ensemble of separate processes
(ZooKeeper's QuorumPeerMain, or `minizk server --config zoo.cfg --id N --data-dir DIR`) on
free loopback ports, through kazoo:

  1. start servers 1-3 (tickTime 200 ms, reconfigEnabled=true, super user super:test)
  2. all three serve; /rc is created; /zookeeper/config lists the three and a version= line
  3. reconfig refusals: no auth -> NoAuth, garbage -> BadArguments, wrong from_config -> BadVersion
  4. server 4 starts and joins as a participant; a write through server 1 is read on server 4
  5. server 5 starts and joins as an observer; a write through server 2 is read on server 5
  6. a participant that is not the leader leaves; writes go on through every remaining server
  7. the leader leaves; writes resume within ~10 s and a remaining voter leads
  8. every remaining server shows the same /zookeeper/config and the same children of /rc
  9. every remaining server is stopped and started again on its data directory and its own
     zoo.cfg (as the server left it): they serve the final configuration and data, and a
     write goes through; the removed servers stay down
 10. everything stops and the temporary directories go away

Each step prints `ok` or `FAILED: reason`; a table of step x kind ends the run, and the exit
status is 0 only when every step passed for every kind. After a failure the tails of the server
logs are printed.

Usage: scripts/reconfig_test.py [--servers zk,minizk] [--minizk PATH] [--keep]

The minizk binary is --minizk, else $MINIZK_BIN, else `swift build --show-bin-path`/minizk
(this script never builds). Work directories live under compat/work/ while a kind runs.
"""
import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time

from kazoo.client import KazooClient
from kazoo.exceptions import (BadArgumentsError, BadVersionError, ConnectionLoss, KazooException,
                              NodeExistsError, NoAuthError, ReconfigInProcessError, SessionExpiredError)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.retry import KazooRetry

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)
from compat import zk  # noqa: E402
from compat.zk import (KAZOO_SUPER_DIGEST, WORK_DIR, four_letter_word_or_empty, free_ports,  # noqa: E402
                       server_mode)

TICK_MS = 200
SESSION_TIMEOUT_S = 4.0  # the most ZooKeeper grants at tickTime 200 (20 ticks)
SUPER_AUTH = [("digest", "super:test")]
VOTING_MODES = ("leader", "follower")

STEPS = [
    (1, "start servers 1-3"),
    (2, "serving, /rc, /zookeeper/config"),
    (3, "refusals: NoAuth, BadArguments, BadVersion"),
    (4, "server 4 joins as participant"),
    (5, "server 5 joins as observer"),
    (6, "a follower leaves"),
    (7, "the leader leaves"),
    (8, "remaining servers agree"),
    (9, "restart the remaining servers"),
    (10, "stop and clean up"),
]


class StepFailed(Exception):
    pass


def note(text):
    """Something worth seeing in the output that is neither a pass nor a failure."""
    for line in str(text).splitlines() or [""]:
        print("      | " + line, flush=True)


# -- the two kinds of ensemble member -----------------------------------------------------------

def zoo_cfg_text(data_dir, server_lines):
    """One member's zoo.cfg. Both kinds read the same keys; MiniZK ignores those it has no use for."""
    return (
        "tickTime=%d\n"
        "initLimit=10\n"
        "syncLimit=5\n"
        "dataDir=%s\n"
        "reconfigEnabled=true\n"
        "standaloneEnabled=false\n"
        "4lw.commands.whitelist=*\n"
        "admin.enableServer=false\n"
        "forceSync=no\n"
        "%s\n" % (TICK_MS, data_dir, "\n".join(server_lines))
    )


class Relaunch:
    """Starts the process again on what it left on disk (no fresh zoo.cfg, no fresh data)."""

    def relaunch(self):
        self._log_file = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self._command(), stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT,
            cwd=self.work_dir, start_new_session=True)


class ZooKeeperMember(Relaunch, zk.ZooKeeperMember):
    """A QuorumPeerMain reading its own zoo.cfg and myid."""

    def __init__(self, sid, server_lines, **kwargs):
        super().__init__(sid, server_lines, zoo_cfg_text, **kwargs)


class MiniZKMember(Relaunch, zk.MiniZKMember):
    """`minizk server --config zoo.cfg --id N --data-dir DIR`."""

    def __init__(self, sid, server_lines, **kwargs):
        super().__init__(sid, server_lines, zoo_cfg_text, arguments=["--log-level", "info"], **kwargs)


# -- an ensemble of up to five members -----------------------------------------------------------

class Ensemble:
    MAX_SERVERS = 5

    def __init__(self, kind, binary=None):
        self.kind, self.binary = kind, binary
        os.makedirs(WORK_DIR, exist_ok=True)
        self.root = tempfile.mkdtemp(prefix="reconfig-%s-" % kind, dir=WORK_DIR)
        ports = free_ports(3 * self.MAX_SERVERS)
        self.client_port, self.peer_port, self.election_port = {}, {}, {}
        for sid in range(1, self.MAX_SERVERS + 1):
            base = 3 * (sid - 1)
            self.client_port[sid], self.peer_port[sid], self.election_port[sid] = ports[base:base + 3]
        self.servers = {}
        # The membership the script expects, changed only by reconfigs that succeeded.
        self.voters, self.observers = set(), set()

    def line(self, sid, role="participant"):
        return "server.%d=127.0.0.1:%d:%d:%s;127.0.0.1:%d" % (
            sid, self.peer_port[sid], self.election_port[sid], role, self.client_port[sid])

    def spawn(self, sid, server_lines):
        work_dir = os.path.join(self.root, "server%d" % sid)
        os.makedirs(work_dir)
        common = dict(port=self.client_port[sid], super_digest=KAZOO_SUPER_DIGEST, extended_types=False,
                      work_dir=work_dir, log_name="server%d.log" % sid)
        if self.kind == "zk":
            server = ZooKeeperMember(sid, server_lines, **common)
        else:
            server = MiniZKMember(sid, server_lines, binary=self.binary, **common)
        self.servers[sid] = server
        server.spawn()
        return server

    def members(self):
        return sorted(self.voters | self.observers)

    def hosts(self, sids):
        return ",".join("127.0.0.1:%d" % self.client_port[sid] for sid in sids)

    def mode(self, sid):
        return server_mode(self.client_port[sid])

    def srvr_text(self, sid):
        return four_letter_word_or_empty(self.client_port[sid], "srvr").strip()

    def leaders(self, sids):
        return [sid for sid in sids if self.mode(sid) == "leader"]

    def wait_modes(self, wanted, timeout):
        """Waits until every sid in `wanted` reports a mode in wanted[sid]; returns the modes seen last."""
        deadline = time.monotonic() + timeout
        while True:
            modes = {sid: self.mode(sid) for sid in wanted}
            if all(modes[sid] in accepted for sid, accepted in wanted.items()):
                return modes
            if time.monotonic() > deadline:
                return modes
            for sid in wanted:
                server = self.servers.get(sid)
                if server is not None and server.process is not None and server.process.poll() is not None:
                    return modes  # a process ended: waiting longer cannot help
            time.sleep(0.1)

    def dead(self):
        return {sid: s.process.returncode for sid, s in self.servers.items()
                if s.process is not None and s.process.poll() is not None}

    def stop_all(self):
        for server in self.servers.values():
            if server.running:
                server.process.terminate()
        for server in self.servers.values():
            server.stop()  # waits, then kills what did not end

    def log_tails(self, lines=25):
        for sid, server in sorted(self.servers.items()):
            print("---- %s server %d log tail (%s) ----" % (self.kind, sid, server.log_path), flush=True)
            print(server.log_tail(lines), flush=True)


# -- clients ---------------------------------------------------------------------------------------

class Client:
    """A started KazooClient on `sids` only, stopped and closed on leaving the with block."""

    def __init__(self, ensemble, sids, auth=False, start_timeout=10.0):
        self.zk = KazooClient(hosts=ensemble.hosts(sids), timeout=SESSION_TIMEOUT_S,
                              auth_data=SUPER_AUTH if auth else None,
                              connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.5))
        self.sids, self.start_timeout = sids, start_timeout

    def __enter__(self):
        try:
            self.zk.start(timeout=self.start_timeout)
        except KazooTimeoutError:
            self.zk.stop()
            self.zk.close()
            raise StepFailed("no session through server(s) %s within %.0f s"
                             % (",".join(map(str, self.sids)), self.start_timeout))
        return self.zk

    def __exit__(self, *exc):
        try:
            self.zk.stop()
            self.zk.close()
        except Exception:
            pass
        return False


def describe(error):
    return "%s%s" % (type(error).__name__, (": %s" % error) if str(error) else "")


def expect_error(expected, call, what):
    try:
        result = call()
    except expected:
        return
    except KazooException as error:
        raise StepFailed("%s: expected %s, got %s" % (what, expected.__name__, describe(error)))
    raise StepFailed("%s: expected %s, the call succeeded (%r)" % (what, expected.__name__, result))


def config_lines(text):
    return [line for line in text.strip().splitlines() if line.strip()]


def server_lines_of(text):
    return sorted(line for line in config_lines(text) if line.startswith("server."))


def config_version(text):
    """The version= of a /zookeeper/config text, as written and as a number (hex as ZooKeeper writes it)."""
    lines = config_lines(text)
    if not lines or not lines[-1].startswith("version="):
        raise StepFailed("/zookeeper/config does not end with a version= line: %r" % text)
    raw = lines[-1].split("=", 1)[1].strip()
    try:
        return raw, int(raw, 16)
    except ValueError:
        raise StepFailed("version=%s is not a hexadecimal number" % raw)


def read_config(zk):
    zk.sync("/zookeeper/config")
    data, _ = zk.get("/zookeeper/config")
    return data.decode("utf-8", "replace")


def write_via(ensemble, sid, name, data=b"x", timeout=10.0):
    """Creates /rc/NAME through server `sid` alone, retrying until `timeout`; returns the path."""
    path = "/rc/" + name
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with Client(ensemble, [sid], start_timeout=max(1.0, min(5.0, deadline - time.monotonic()))) as zk:
                try:
                    zk.create(path, data)
                except NodeExistsError:
                    pass  # an earlier try was applied but its answer lost
                return path
        except (StepFailed, KazooException, KazooTimeoutError) as error:
            last = error
        time.sleep(0.2)
    raise StepFailed("write of %s through server %d did not succeed within %.0f s (%s)"
                     % (path, sid, timeout, describe(last) if last else "no attempt"))


def read_via(ensemble, sid, path, expected):
    with Client(ensemble, [sid]) as zk:
        zk.sync(path)
        data, _ = zk.get(path)
    if data != expected:
        raise StepFailed("server %d reads %r at %s, expected %r" % (sid, data, path, expected))


def reconfig(ensemble, through, **arguments):
    """A super user's reconfig through servers `through`; returns the new config text."""
    with Client(ensemble, through, auth=True) as zk:
        data, _ = zk.reconfig(arguments.get("joining"), arguments.get("leaving"),
                              arguments.get("new_members"), arguments.get("from_config", -1))
    return data.decode("utf-8", "replace")


# -- the scenario ------------------------------------------------------------------------------

class Scenario:
    def __init__(self, ensemble):
        self.e = ensemble
        self.version = None  # the config version last read, as an int
        self.observed = {}  # behaviour worth comparing between kinds, not graded

    def step1(self):
        e = self.e
        lines = [e.line(sid) for sid in (1, 2, 3)]
        for sid in (1, 2, 3):
            e.spawn(sid, lines)
        e.voters = {1, 2, 3}
        time.sleep(0.3)
        if e.dead():
            raise StepFailed("process(es) exited at once: %s" % e.dead())

    def step2(self):
        e = self.e
        modes = e.wait_modes({sid: VOTING_MODES for sid in (1, 2, 3)}, timeout=30.0)
        if sorted(modes.values(), key=str) != ["follower", "follower", "leader"]:
            raise StepFailed("modes after 30 s: %s" % modes)
        note("modes: %s" % modes)
        with Client(e, [1, 2, 3]) as zk:
            zk.create("/rc", b"reconfig test")
            text = read_config(zk)
        note("/zookeeper/config:\n" + text)
        wanted = sorted(e.line(sid) for sid in (1, 2, 3))
        if server_lines_of(text) != wanted:
            raise StepFailed("/zookeeper/config lists %s, expected %s" % (server_lines_of(text), wanted))
        raw, self.version = config_version(text)
        note("version=%s (%d)" % (raw, self.version))
        self.observed["initial config version"] = raw

    def step3(self):
        e = self.e
        observer = e.line(5, "observer")
        with Client(e, [1, 2, 3]) as zk:
            expect_error(NoAuthError, lambda: zk.reconfig(observer, None, None),
                         "reconfig without super auth")
        with Client(e, [1, 2, 3], auth=True) as zk:
            expect_error(BadArgumentsError, lambda: zk.reconfig("garbage", None, None),
                         "reconfig joining=garbage")
            _, version = config_version(read_config(zk))
            expect_error(BadVersionError, lambda: zk.reconfig(observer, None, None, version + 1),
                         "reconfig from_config=%x (current %x)" % (version + 1, version))
            after = read_config(zk)
        if server_lines_of(after) != sorted(e.line(sid) for sid in (1, 2, 3)):
            raise StepFailed("the refused reconfigs changed /zookeeper/config:\n%s" % after)

    def _join(self, sid, role, through_write, expected_modes):
        e = self.e
        line = e.line(sid, role)
        existing = [e.line(s, "observer" if s in e.observers else "participant") for s in e.members()]
        e.spawn(sid, existing + [line])
        # A joiner may connect to the leader (and report a mode) before it is in the configuration.
        before = e.wait_modes({sid: VOTING_MODES + ("observer",)}, timeout=10.0)
        note("server %d before its reconfig: Mode %s" % (sid, before[sid]))
        self.observed["joiner %d (%s) Mode before its reconfig" % (sid, role)] = str(before[sid])
        if e.dead():
            raise StepFailed("process(es) exited: %s" % e.dead())
        text = reconfig(e, e.members(), joining=line)
        note("reconfig joining server.%d returned:\n%s" % (sid, text))
        self.observed["version after server %d joined" % sid] = config_version(text)[0]
        if line not in config_lines(text):
            raise StepFailed("the returned config lacks %r:\n%s" % (line, text))
        _, version = config_version(text)
        if self.version is not None and version <= self.version:
            raise StepFailed("config version did not grow: %x then %x" % (self.version, version))
        self.version = version
        if role == "observer":
            e.observers.add(sid)
        else:
            e.voters.add(sid)
        modes = e.wait_modes({sid: expected_modes}, timeout=10.0)
        if modes[sid] not in expected_modes:
            raise StepFailed("srvr on server %d says Mode %s, expected %s\n%s"
                             % (sid, modes[sid], "/".join(expected_modes), e.srvr_text(sid)))
        note("server %d after its reconfig: Mode %s" % (sid, modes[sid]))
        payload = ("written through %d for %d" % (through_write, sid)).encode()
        path = write_via(e, through_write, "join%d-via%d" % (sid, through_write), payload)
        read_via(e, sid, path, payload)

    def step4(self):
        self._join(4, "participant", 1, VOTING_MODES)

    def step5(self):
        self._join(5, "observer", 2, ("observer",))

    def _leave(self, sid, through):
        e = self.e
        gone = "server.%d=" % sid
        text = None
        self.observed["reconfig answer lost when %d left" % sid] = "no"
        for attempt in range(3):
            try:
                text = reconfig(e, through, leaving=str(sid))
                break
            except (ConnectionLoss, SessionExpiredError) as error:
                # The answer can be lost while the servers move to the new configuration (ZooKeeper's
                # learners all resynchronise when the leader leaves); what counts is the configuration
                # they then agree on. A request lost before it was applied is sent again.
                note("reconfig leaving=%d: %s; reading the configuration instead" % (sid, describe(error)))
                self.observed["reconfig answer lost when %d left" % sid] = type(error).__name__
            except ReconfigInProcessError:
                note("reconfig leaving=%d: ReconfigInProcessError; trying again" % sid)
                time.sleep(0.5)
                continue
            with Client(e, through) as zk:
                text = read_config(zk)
            if not any(line.startswith(gone) for line in config_lines(text)):
                break
        if text is None:
            raise StepFailed("reconfig leaving=%d never answered" % sid)
        note("configuration after server %d left:\n%s" % (sid, text))
        if any(line.startswith(gone) for line in config_lines(text)):
            raise StepFailed("server %d is still in the configuration:\n%s" % (sid, text))
        _, version = config_version(text)
        if self.version is not None and version <= self.version:
            raise StepFailed("config version did not grow: %x then %x" % (self.version, version))
        self.version = version
        self.observed["version after server %d left" % sid] = config_version(text)[0]
        e.voters.discard(sid)

    def _the_leader(self):
        """The one voter that says it leads."""
        e = self.e
        voters = sorted(e.voters)
        leaders = e.leaders(voters)
        if len(leaders) != 1:
            raise StepFailed("expected one leader among voters %s, srvr says %s"
                             % (voters, {sid: e.mode(sid) for sid in voters}))
        return leaders[0]

    def step6(self):
        e = self.e
        leader = self._the_leader()
        leaving = min(sid for sid in e.voters if sid != leader)
        note("leader is %d; removing follower %d" % (leader, leaving))
        self._leave(leaving, [sid for sid in e.members() if sid != leaving])
        time.sleep(0.5)
        note("srvr on removed server %d: %s" % (leaving, e.srvr_text(leaving) or "(no answer)"))
        self.observed["removed follower's Mode"] = str(e.mode(leaving))
        for sid in e.members():
            write_via(e, sid, "after-leave%d-via%d" % (leaving, sid), b"after a follower left")

    def step7(self):
        e = self.e
        old = self._the_leader()
        remaining = [sid for sid in e.members() if sid != old]
        note("removing leader %d; remaining %s" % (old, remaining))
        started = time.monotonic()
        self._leave(old, remaining)
        write_via(e, remaining[0], "after-leader%d-left" % old, b"after the leader left",
                  timeout=max(1.0, 10.0 - (time.monotonic() - started)))
        elapsed = time.monotonic() - started
        new_leaders = e.leaders(sorted(e.voters))
        note("write after leader removal succeeded %.1f s after the reconfig call; leader now %s"
             % (elapsed, new_leaders or "none"))
        for _ in range(50):
            if len(new_leaders) == 1:
                break
            time.sleep(0.2)
            new_leaders = e.leaders(sorted(e.voters))
        if len(new_leaders) != 1:
            raise StepFailed("no single leader among remaining voters %s: %s"
                             % (sorted(e.voters), {sid: e.mode(sid) for sid in sorted(e.voters)}))
        time.sleep(0.5)
        note("srvr on removed leader %d: %s" % (old, e.srvr_text(old) or "(no answer)"))
        self.observed["removed leader's Mode"] = str(e.mode(old))
        self.observed["leader after the leader left"] = "server %s" % new_leaders[0]
        self.observed["first write after the leader left"] = "%.1f s" % elapsed
        note("modes of remaining servers: %s" % {sid: e.mode(sid) for sid in remaining})

    def step8(self):
        e = self.e
        configs, children = {}, {}
        for sid in e.members():
            with Client(e, [sid]) as zk:
                configs[sid] = read_config(zk)
                zk.sync("/rc")
                children[sid] = sorted(zk.get_children("/rc"))
        if len(set(configs.values())) != 1:
            raise StepFailed("servers disagree on /zookeeper/config: %s" % configs)
        if len(set(map(tuple, children.values()))) != 1:
            raise StepFailed("servers disagree on the children of /rc: %s" % children)
        text = next(iter(configs.values()))
        note("final /zookeeper/config on %s:\n%s" % (e.members(), text))
        note("children of /rc: %s" % next(iter(children.values())))
        wanted = sorted(e.line(sid, "observer" if sid in e.observers else "participant") for sid in e.members())
        if server_lines_of(text) != wanted:
            raise StepFailed("final configuration lists %s, expected %s" % (server_lines_of(text), wanted))


    def step9(self):
        e = self.e
        before = None
        with Client(e, [e.members()[0]]) as zk:
            before = read_config(zk)
        for sid in list(e.servers):
            e.servers[sid].stop()
        for sid in e.members():
            e.servers[sid].relaunch()
        wanted = {sid: ("observer",) if sid in e.observers else VOTING_MODES for sid in e.members()}
        modes = e.wait_modes(wanted, timeout=30.0)
        if any(modes[sid] not in wanted[sid] for sid in wanted):
            raise StepFailed("after the restart the servers report %s" % modes)
        for sid in e.members():
            with Client(e, [sid]) as zk:
                zk.sync("/rc")
                if read_config(zk) != before:
                    raise StepFailed("server %d came back with another configuration:\n%s" % (sid, read_config(zk)))
        write_via(e, e.members()[-1], "after-restart")
        self.observed["leader after the restart"] = "server %s" % (e.leaders(e.members()) or ["?"])[0]


def run_kind(kind, binary, keep):
    """Runs the scenario on one kind of server; returns ({step: None | reason}, {observation: text})."""
    results = {}
    print("== %s ==" % ("Apache ZooKeeper" if kind == "zk" else "MiniZK (%s)" % binary), flush=True)
    started = time.monotonic()
    ensemble = Ensemble(kind, binary)
    scenario = Scenario(ensemble)
    prerequisite_failed = None
    try:
        for number, title in STEPS[:-1]:
            print("  step %d %s ... " % (number, title), flush=True)
            if prerequisite_failed is not None:
                results[number] = "skipped: step %d failed" % prerequisite_failed
            else:
                step_started = time.monotonic()
                try:
                    getattr(scenario, "step%d" % number)()
                    results[number] = None
                except StepFailed as error:
                    results[number] = str(error)
                except Exception as error:
                    results[number] = describe(error)
                if results[number] is not None and number in (1, 2):
                    prerequisite_failed = number
                elapsed = time.monotonic() - step_started
                print("  step %d %s" % (number, ("ok (%.1f s)" % elapsed) if results[number] is None
                                        else "FAILED: %s" % results[number]), flush=True)
    finally:
        if any(results.values()):
            ensemble.log_tails()
        last = STEPS[-1][0]
        print("  step %d %s ... " % (last, STEPS[-1][1]), flush=True)
        results[last] = stop_and_clean(ensemble, keep)
        print("  step %d %s" % (last, "ok" if results[last] is None else "FAILED: %s" % results[last]), flush=True)
    print("  %s took %.1f s" % (kind, time.monotonic() - started), flush=True)
    return results, scenario.observed


def stop_and_clean(ensemble, keep):
    try:
        ensemble.stop_all()
        alive = [sid for sid, s in ensemble.servers.items() if s.process is not None and s.process.poll() is None]
        if alive:
            return "server(s) %s still running" % alive
        if keep:
            note("kept %s" % ensemble.root)
            return None
        shutil.rmtree(ensemble.root, ignore_errors=True)
        if os.path.exists(ensemble.root):
            return "could not remove %s" % ensemble.root
        return None
    except Exception as error:
        return describe(error)


def locate_minizk(explicit):
    if explicit:
        return os.path.abspath(explicit)
    if os.environ.get("MINIZK_BIN"):
        return os.environ["MINIZK_BIN"]
    try:
        bin_path = subprocess.run(["swift", "build", "--show-bin-path"], cwd=REPO_ROOT, check=True,
                                  capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as error:
        raise SystemExit("cannot locate minizk (pass --minizk or set MINIZK_BIN): %s" % error)
    return os.path.join(bin_path, "minizk")


def print_table(kinds, table):
    width = max(len("%d %s" % step) for step in STEPS)
    print("\n%-*s  %s" % (width, "step", "  ".join("%-8s" % kind for kind in kinds)))
    for number, title in STEPS:
        cells = []
        for kind in kinds:
            reason = table[kind].get(number, "not run")
            cells.append("%-8s" % ("ok" if reason is None else
                                   "skipped" if reason.startswith("skipped") else "FAILED"))
        print("%-*s  %s" % (width, "%d %s" % (number, title), "  ".join(cells)))


def print_observed(kinds, observed):
    keys = []
    for kind in kinds:
        keys += [key for key in observed[kind] if key not in keys]
    if not keys:
        return
    width = max(len(key) for key in keys)
    print("\n%-*s  %s" % (width, "observed (not graded)", "  ".join("%-16s" % kind for kind in kinds)))
    for key in keys:
        print("%-*s  %s" % (width, key, "  ".join("%-16s" % observed[kind].get(key, "-") for kind in kinds)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default="zk,minizk", help="comma-separated kinds: zk, minizk")
    parser.add_argument("--minizk", help="the minizk binary")
    parser.add_argument("--keep", action="store_true", help="keep the work directories (logs, data)")
    args = parser.parse_args()
    # kazoo warns on stderr about every dropped connection, which the scenario causes on purpose.
    logging.getLogger("kazoo").setLevel(logging.ERROR)
    kinds = [kind.strip() for kind in args.servers.split(",") if kind.strip()]
    for kind in kinds:
        if kind not in ("zk", "minizk"):
            parser.error("unknown server kind %r (zk or minizk)" % kind)
    binary = locate_minizk(args.minizk) if "minizk" in kinds else None
    if binary is not None and not os.access(binary, os.X_OK):
        raise SystemExit("minizk binary not found or not executable: %s" % binary)
    table, observed = {}, {}
    for kind in kinds:
        table[kind], observed[kind] = run_kind(kind, binary, args.keep)
    print_table(kinds, table)
    print_observed(kinds, observed)
    passed = all(reason is None for results in table.values() for reason in results.values())
    print("\n%s" % ("all steps passed" if passed else "some steps FAILED"))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
