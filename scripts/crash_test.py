#!/usr/bin/env python3
"""Crash test of MiniZK's durable storage with real processes.

Each round starts `minizk server --data-dir D` (the same D every round, so each round also
recovers from what the previous crashes left), writes through kazoo with about 100 requests
outstanding, kills the server with SIGKILL at a random moment, restarts it and checks what
survived against the client's record of acknowledged results:

- every acknowledged create, set and multi of every round so far is present;
- the creates that exist form a prefix of the order they were sent in (one session's requests are
  applied in order, so a gap would mean a lost write that a later one survived);
- the counter node holds a value at least as new as the newest acknowledged set, and one that was
  actually sent (the sets are a prefix too);
- every multi is all or nothing: its two nodes exist together or not at all.

Prints one line per round and a summary `N passed, N failed`; exits 1 if any round failed.

Usage: scripts/crash_test.py --minizk .build/debug/minizk [--rounds 5] [--seed N]
"""
import argparse
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError
from kazoo.retry import KazooRetry

OUTSTANDING_MAX = 100


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(binary, data_dir, port, log, extra):
    process = subprocess.Popen(
        [binary, "server", "--port", str(port), "--data-dir", data_dir, "--tick-ms", "200",
         "--snapshot-every", "1000"] + extra,
        stdout=subprocess.PIPE, stderr=log, text=True)
    deadline = time.time() + 20
    while time.time() < deadline:
        line = process.stdout.readline()
        if line.startswith("MiniZK serving"):
            return process
        if not line and process.poll() is not None:
            raise RuntimeError("minizk exited with %s before serving (see %s)" % (process.returncode, log.name))
    process.kill()
    raise RuntimeError("minizk did not start serving within 20 s")


def connect(port):
    client = KazooClient(
        hosts="127.0.0.1:%d" % port, timeout=4.0,
        connection_retry=KazooRetry(max_tries=0), command_retry=KazooRetry(max_tries=0))
    client.start(timeout=10)
    return client


class Workload:
    """Sends creates, sets and multis in one interleaved order on one session and records which
    ones were acknowledged. Everything a round sends lives under /r<round>."""

    def __init__(self, client, round_number, rng):
        self.client = client
        self.base = "/r%d" % round_number
        self.rng = rng
        self.lock = threading.Lock()
        self.in_flight = threading.Semaphore(OUTSTANDING_MAX)
        self.sent_creates = 0
        self.acked_creates = set()
        self.sent_sets = 0
        self.acked_sets = set()
        self.sent_multis = 0
        self.acked_multis = set()
        self.stopped = False

    def _done(self, kind, index):
        def callback(result):
            try:
                result.get()
                with self.lock:
                    getattr(self, "acked_" + kind).add(index)
            except Exception:
                pass  # not acknowledged: it may or may not have happened
            finally:
                self.in_flight.release()
        return callback

    def run(self):
        self.client.create(self.base, b"")
        self.client.create(self.base + "/value", b"0")
        while not self.stopped:
            if not self.in_flight.acquire(timeout=0.5):
                continue
            if self.stopped:
                self.in_flight.release()
                break
            choice = self.rng.random()
            try:
                if choice < 0.6:
                    index = self.sent_creates
                    self.sent_creates += 1
                    result = self.client.create_async("%s/c%06d" % (self.base, index), b"v%d" % index)
                    result.rawlink(self._done("creates", index))
                elif choice < 0.85:
                    self.sent_sets += 1
                    value = self.sent_sets
                    result = self.client.set_async(self.base + "/value", b"%d" % value)
                    result.rawlink(self._done("sets", value))
                else:
                    index = self.sent_multis
                    self.sent_multis += 1
                    transaction = self.client.transaction()
                    transaction.create("%s/m%06da" % (self.base, index), b"a")
                    transaction.create("%s/m%06db" % (self.base, index), b"b")
                    result = transaction.commit_async()
                    result.rawlink(self._multi_done(index))
            except Exception:
                self.in_flight.release()
                break

    def _multi_done(self, index):
        def callback(result):
            try:
                outcomes = result.get()
                if all(not isinstance(outcome, Exception) for outcome in outcomes):
                    with self.lock:
                        self.acked_multis.add(index)
            except Exception:
                pass
            finally:
                self.in_flight.release()
        return callback


def check_round(client, workload):
    """Returns a list of problems (empty when the round's history survived correctly)."""
    problems = []
    base = workload.base
    try:
        children = set(client.get_children(base))
    except NoNodeError:
        return ["%s is missing" % base]
    creates = sorted(int(name[1:]) for name in children if name.startswith("c"))
    missing = sorted(workload.acked_creates - set(creates))
    if missing:
        problems.append("%d acknowledged creates lost, first %s/c%06d" % (len(missing), base, missing[0]))
    if creates and creates != list(range(len(creates))):
        gap = next(i for i, value in enumerate(creates) if value != i)
        problems.append("creates are not a prefix: c%06d is missing but c%06d exists" % (gap, creates[-1]))
    if creates and creates[-1] >= workload.sent_creates:
        problems.append("create c%06d exists but was never sent" % creates[-1])
    value = int(client.get(base + "/value")[0] or b"0")
    newest_acked = max(workload.acked_sets, default=0)
    if value < newest_acked:
        problems.append("value is %d, older than the acknowledged set to %d" % (value, newest_acked))
    if value > workload.sent_sets:
        problems.append("value is %d, but only %d sets were sent" % (value, workload.sent_sets))
    halves = {}
    for name in children:
        if name.startswith("m"):
            halves.setdefault(int(name[1:-1]), set()).add(name[-1])
    for index, present in sorted(halves.items()):
        if present != {"a", "b"}:
            problems.append("multi %d is half applied: only %s exists" % (index, sorted(present)))
            break
    lost_multis = sorted(index for index in workload.acked_multis if halves.get(index) != {"a", "b"})
    if lost_multis:
        problems.append("%d acknowledged multis lost, first %d" % (len(lost_multis), lost_multis[0]))
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minizk", default=".build/debug/minizk")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the data directory and logs")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="extra argument for minizk server (e.g. --server-arg=--in-memory to see the checks fail)")
    args = parser.parse_args()
    logging.getLogger("kazoo").setLevel(logging.CRITICAL)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    print("crash test: %d rounds, seed %d (replay with --seed %d)" % (args.rounds, seed, seed), flush=True)
    work = tempfile.mkdtemp(prefix="minizk-crash-")
    data_dir = os.path.join(work, "data")
    log = open(os.path.join(work, "server.log"), "a")
    started_at = time.time()
    workloads = []
    passed = failed = 0
    process = None
    try:
        for round_number in range(1, args.rounds + 1):
            port = free_port()
            process = start_server(args.minizk, data_dir, port, log, args.server_arg)
            client = connect(port)
            workload = Workload(client, round_number, random.Random(rng.random()))
            writer = threading.Thread(target=workload.run, daemon=True)
            writer.start()
            time.sleep(rng.uniform(0.3, 1.5))
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            workload.stopped = True
            writer.join(timeout=10)
            try:
                client.stop()
                client.close()
            except Exception:
                pass
            workloads.append(workload)

            process = start_server(args.minizk, data_dir, port, log, args.server_arg)
            checker = connect(port)
            problems = []
            for earlier in workloads:
                problems += ["round %d: %s" % (int(earlier.base[2:]), p) for p in check_round(checker, earlier)]
            checker.stop()
            checker.close()
            os.kill(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
            process = None
            summary = "sent %d creates / %d sets / %d multis, acknowledged %d / %d / %d" % (
                workload.sent_creates, workload.sent_sets, workload.sent_multis,
                len(workload.acked_creates), len(workload.acked_sets), len(workload.acked_multis))
            if problems:
                failed += 1
                print("round %d FAILED (%s)" % (round_number, summary), flush=True)
                for problem in problems:
                    print("  " + problem, flush=True)
            else:
                passed += 1
                print("round %d passed (%s; every round so far checked)" % (round_number, summary), flush=True)
    finally:
        if process is not None and process.poll() is None:
            process.kill()
        log.close()
        if args.keep or failed:
            print("data and server log kept in %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("%d passed, %d failed (%.1f s)" % (passed, failed, time.time() - started_at))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
