"""Differential tests: the same operations against two servers, transcripts compared.

Each scenario (see ``compat/diff_scenarios.py``) runs on a fresh server of each
kind -- normally Apache ZooKeeper 3.8 and MiniZK -- and records a transcript:
for every step, the result (or the exception class / error code), Stat fields,
child lists and the watch events every client received.  Values that
legitimately differ between two correct servers are normalised before the
transcripts are compared:

* zxids become ``z0`` (zero) or ``z1``, ``z2``, ... in order of first appearance
  within the scenario, so equal zxids stay equal and distinct ones distinct;
* times become ``0`` or ``t1``, ``t2``, ... the same way (steps are spaced a few
  milliseconds apart so two writes never share a millisecond); a time far from
  the wall clock becomes ``t?`` and shows up as a difference;
* session ids become the name of the client that owns the session, or
  ``s1``, ``s2``, ... for sessions no client here owns;
* child lists are sorted (servers may list children in any order).

Comparing ZooKeeper with a second ZooKeeper must show no difference: that is
the check that the normalisation hides nothing real and invents nothing.

    python3 -m compat.differential [--a zk] [--b minizk] [-s SCENARIO ...]
                                   [--list] [--verbose]

The last line printed is ``N passed, N failed`` (scenarios); the exit status
is 1 when any scenario differs.
"""

import argparse
import hashlib
import json
import logging
import os
import sys
import threading
import time
import traceback

from kazoo.client import KazooClient
from kazoo.protocol.states import Callback, WatchedEvent, ZnodeStat
from kazoo.security import ACL, Id

from compat import rawzk
from compat.zk import KAZOO_SUPER_DIGEST, WORK_DIR, ServerError, make_server

STEP_TIMEOUT_SECONDS = 15.0
STEP_SPACING_SECONDS = 0.003
TIME_PLAUSIBLE_MS = 10 * 60 * 1000
ZXID_FIELDS = ("czxid", "mzxid", "pzxid")
TIME_FIELDS = ("ctime", "mtime")
STAT_FIELDS = rawzk.STAT_FIELDS


class Abort(Exception):
    """A step hung; the rest of the scenario is skipped."""


class Normaliser:
    def __init__(self):
        self.zxids = {0: "z0"}
        self.times = {0: "0"}
        self.sessions = {0: "0"}
        self.anonymous_sessions = 0
        self.started_ms = int(time.time() * 1000)

    def name_session(self, session_id, name):
        self.sessions.setdefault(session_id, "session:" + name)

    def zxid(self, value):
        if value not in self.zxids:
            self.zxids[value] = "z%d" % len(self.zxids)
        return self.zxids[value]

    def time(self, value):
        if value in self.times:
            return self.times[value]
        now = int(time.time() * 1000)
        if not (self.started_ms - TIME_PLAUSIBLE_MS <= value <= now + TIME_PLAUSIBLE_MS):
            return "t?"
        self.times[value] = "t%d" % len(self.times)
        return self.times[value]

    def session(self, value):
        if value not in self.sessions:
            self.anonymous_sessions += 1
            self.sessions[value] = "s%d" % self.anonymous_sessions
        return self.sessions[value]

    def stat(self, fields):
        out = {}
        for name in STAT_FIELDS:
            value = fields[name]
            if name in ZXID_FIELDS:
                value = self.zxid(value)
            elif name in TIME_FIELDS:
                value = self.time(value)
            elif name == "ephemeralOwner":
                value = self.session(value)
            out[name] = value
        return out

    def value(self, value):
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, BaseException):
            return "!" + type(value).__name__
        if isinstance(value, ZnodeStat):
            return self.stat(value._asdict())
        if isinstance(value, ACL):
            return "%d:%s:%s" % (value.perms, value.id.scheme, value.id.id)
        if isinstance(value, Id):
            return "%s:%s" % (value.scheme, value.id)
        if isinstance(value, WatchedEvent):
            return [value.type, value.state, value.path]
        if isinstance(value, (bytes, bytearray)):
            if len(value) <= 64:
                return "b:" + repr(bytes(value))[2:-1]
            return "bytes[%d]:%s" % (len(value), hashlib.sha1(value).hexdigest()[:12])
        if isinstance(value, dict):
            if set(value) == set(STAT_FIELDS):
                return self.stat(value)
            return {str(key): self.value(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(item) for item in value]
        return "<%s>" % type(value).__name__


class Recorder:
    """What a scenario sees: clients on one server, and the transcript."""

    def __init__(self, server):
        self.server = server
        self.entries = []
        self.norm = Normaliser()
        self.kazoo_clients = {}
        self.raw_clients = {}
        self.events = {}
        self._lock = threading.Lock()

    # -- clients -------------------------------------------------------------------
    def kazoo(self, name, auth_data=None, **options):
        """A started KazooClient called ``name`` (its session is named after it)."""
        client = KazooClient(
            hosts=self.server.address, timeout=10.0, auth_data=auth_data, **options
        )
        client.start(timeout=15)
        self.norm.name_session(client.client_id[0], name)
        self.kazoo_clients[name] = client
        self.events.setdefault(name, [])
        return client

    def raw(self, name, **options):
        """A connected RawClient called ``name``."""
        client = rawzk.RawClient(self.server.host, self.server.port, **options).connect()
        self.norm.name_session(client.session_id, name)
        self.raw_clients[name] = client
        self.events.setdefault(name, [])
        return client

    def watcher(self, name):
        """A kazoo watch function that files events under client ``name``."""
        def watch(event):
            with self._lock:
                self.events[name].append((event.type, event.state, event.path))
        return watch

    def restart_server(self):
        """Stop the server (SIGTERM) and start it again on the same port and
        data directory.  Raw connections die with it; kazoo clients reconnect
        on their own."""
        self.server.stop()
        for client in self.raw_clients.values():
            client.drop()
        self.server.start()

    def close_all(self):
        for client in self.kazoo_clients.values():
            try:
                client.stop()
                client.close()
            except Exception:
                pass
        for client in self.raw_clients.values():
            try:
                client.drop()
            except Exception:
                pass

    # -- recording -----------------------------------------------------------------
    def record(self, label, value):
        self.entries.append({"step": label, "value": self.norm.value(value)})

    def step(self, label, action):
        """Run ``action()``; record its normalised result or exception class."""
        time.sleep(STEP_SPACING_SECONDS)
        outcome = {}

        def run():
            try:
                outcome["value"] = action()
            except Exception as error:  # the class is the result being compared
                outcome["value"] = error

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(STEP_TIMEOUT_SECONDS)
        if worker.is_alive():
            self.entries.append({"step": label, "value": "!TIMEOUT"})
            raise Abort(label)
        value = outcome["value"]
        self.record(label, value)
        return value

    def events_now(self, label, ordered=True):
        """Wait until every client has received what was sent to it, then
        record each client's events since the last call (and forget them).

        kazoo: a sync's reply comes after every notification sent to that
        connection before it; kazoo queues watch callbacks as it reads those
        frames, so a marker queued after the sync runs after them.  Raw
        clients: a ping does the same.  ``ordered=False`` sorts each client's
        events, for steps where the order is up to the server (several
        ephemerals of one session deleted at close).
        """
        for name, client in self.kazoo_clients.items():
            if not client.connected:
                continue
            done = threading.Event()
            try:
                client.sync_async("/").get(timeout=STEP_TIMEOUT_SECONDS)
                client.handler.dispatch_callback(Callback("marker", done.set, ()))
            except Exception:
                continue
            done.wait(STEP_TIMEOUT_SECONDS)
        for name, client in self.raw_clients.items():
            if client.closed:
                continue
            try:
                pending = client.take_events()
            except (rawzk.Closed, OSError):
                continue
            with self._lock:
                self.events[name].extend(pending)
        with self._lock:
            snapshot = {}
            for name, items in self.events.items():
                if items:
                    snapshot[name] = sorted(items, key=repr) if not ordered else list(items)
                self.events[name] = []
        self.record("events: " + label, snapshot)


# -- running ----------------------------------------------------------------------------
def run_scenario(kind, scenario):
    """Run one scenario on a fresh server of ``kind``; return its transcript."""
    server = make_server(kind, super_digest=KAZOO_SUPER_DIGEST, extended_types=True)
    entries = []
    try:
        server.start()
    except ServerError as error:
        server.destroy()
        return [{"step": "start server", "value": "!ServerError"}], str(error)
    recorder = Recorder(server)
    note = None
    try:
        scenario(recorder)
    except Abort as abort:
        note = "step %r did not finish within %.0f s" % (str(abort), STEP_TIMEOUT_SECONDS)
    except Exception:
        recorder.entries.append({"step": "scenario crashed", "value": "!HarnessError"})
        note = traceback.format_exc()
    finally:
        recorder.close_all()
        alive = server.running
        if not alive:
            recorder.entries.append({"step": "server still running", "value": False})
            note = (note or "") + "\nserver log tail:\n" + server.log_tail()
        server.destroy()
    entries = recorder.entries
    return entries, note


# Steps where MiniZK differs from ZooKeeper 3.8 on purpose, with the reason; they are reported
# but do not fail the comparison. Keep docs/compatibility.md in step with this list.
DOCUMENTED_DEVIATIONS = {
    "unknown opcode 999":
        "MiniZK answers UNIMPLEMENTED and keeps the connection; ZooKeeper answers, then closes it",
    "connection open after unknown opcode": "see 'unknown opcode 999'",
    "opcode 10": "see 'unknown opcode 999'",
    "connection open after opcode 10": "see 'unknown opcode 999'",
    "other exists":
        "exists checks READ on a node that exists, as ZooKeeper 3.8.4 does (ZOOKEEPER-2590): MiniZK "
        "answers NOAUTH; the 3.8.0 reference answers the Stat to anyone",
}


def compare(first, second, deviations=None):
    """Return a list of (index, step label, value in first, value in second); differences at
    steps listed in DOCUMENTED_DEVIATIONS go to `deviations` instead, when given."""
    differences = []
    for index in range(max(len(first), len(second))):
        left = first[index] if index < len(first) else {"step": "(missing)", "value": None}
        right = second[index] if index < len(second) else {"step": "(missing)", "value": None}
        if left != right and deviations is not None and left["step"] == right["step"] \
                and left["step"] in DOCUMENTED_DEVIATIONS:
            deviations.append((index, left["step"], left["value"], right["value"]))
        elif left != right:
            label = left["step"] if left["step"] == right["step"] else (
                "%s | %s" % (left["step"], right["step"]))
            differences.append((index, label, left["value"], right["value"]))
    return differences


def show(value):
    return json.dumps(value, sort_keys=True, ensure_ascii=True)


def main(argv):
    from compat.diff_scenarios import SCENARIOS

    parser = argparse.ArgumentParser(prog="python3 -m compat.differential")
    parser.add_argument("--a", default="zk", help="reference server kind (zk)")
    parser.add_argument("--b", default="minizk", help="server kind under test (minizk)")
    parser.add_argument("-s", "--scenario", action="append", default=[],
                        help="run only this scenario (repeatable; substring match)")
    parser.add_argument("--list", action="store_true", help="list scenarios and exit")
    parser.add_argument("--verbose", action="store_true", help="print every transcript")
    args = parser.parse_args(argv)

    selected = [
        (name, scenario) for name, scenario in SCENARIOS
        if not args.scenario or any(part in name for part in args.scenario)
    ]
    if args.list:
        for name, scenario in SCENARIOS:
            print("%-28s %s" % (name, (scenario.__doc__ or "").strip().splitlines()[0]))
        return 0
    if not selected:
        print("no scenario matches %s" % args.scenario)
        return 2

    out_dir = os.path.join(WORK_DIR, "differential")
    os.makedirs(out_dir, exist_ok=True)
    # kazoo logs every dropped connection; keep that out of the report.
    logging.basicConfig(
        filename=os.path.join(out_dir, "clients.log"), filemode="w", level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    transcripts = {args.a: {}, args.b: {}}
    label_a, label_b = args.a, args.b
    if label_a == label_b:
        label_a, label_b = args.a + "#1", args.b + "#2"
        transcripts = {label_a: {}, label_b: {}}
    passed = failed = 0
    started = time.monotonic()
    for name, scenario in selected:
        results = {}
        for label, kind in ((label_a, args.a), (label_b, args.b)):
            results[label] = run_scenario(kind, scenario)
            transcripts[label][name] = results[label][0]
        (first, note_a), (second, note_b) = results[label_a], results[label_b]
        deviations = []
        differences = compare(first, second, deviations)
        for index, label, left, right in deviations:
            print("  documented deviation in %s, step %d: %s (%s)" % (name, index, label, DOCUMENTED_DEVIATIONS[label]))
        if differences or note_a or note_b:
            failed += 1
            print("FAIL %s (%d step(s), %d difference(s))" % (name, len(first), len(differences)))
            for index, label, left, right in differences:
                print("  step %d: %s" % (index, label))
                print("    %-8s %s" % (label_a + ":", show(left)))
                print("    %-8s %s" % (label_b + ":", show(right)))
            for label, note in ((label_a, note_a), (label_b, note_b)):
                if note:
                    print("  %s: %s" % (label, note.strip().replace("\n", "\n    ")))
        else:
            passed += 1
            print("ok   %s (%d steps)" % (name, len(first)))
        if args.verbose:
            for entry in first:
                print("    %s = %s" % (entry["step"], show(entry["value"])))
        sys.stdout.flush()
    for label in (label_a, label_b):
        path = os.path.join(out_dir, label.replace("#", "-") + ".json")
        with open(path, "w") as handle:
            json.dump(transcripts[label], handle, indent=1, sort_keys=True)
    print("transcripts: %s  (%.0f s)" % (out_dir, time.monotonic() - started))
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
