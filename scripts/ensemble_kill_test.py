#!/usr/bin/env python3
"""kill -9 the leader of a three-process MiniZK ensemble under write load.

Starts three `minizk server --config zoo.cfg --id N` processes with SQLite storage, writes with
many requests outstanding through kazoo, kills the leader with SIGKILL in the middle, restarts
it, and checks afterwards that every acknowledged write is present on every replica and that all
replicas' tree digests (`hash` four-letter word) are equal. Prints the time from the kill to the
first successful write after it, per round, and `N passed, N failed` at the end.

Usage: scripts/ensemble_kill_test.py [--rounds 3] [--minizk PATH]
"""
import argparse, os, shutil, signal, socket, subprocess, sys, tempfile, threading, time

from kazoo.client import KazooClient
from kazoo.retry import KazooRetry

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from compat.zk import four_letter_word_or_empty as four_letter, free_ports, server_mode as mode  # noqa: E402


class Ensemble:
    def __init__(self, binary, workdir):
        self.binary, self.workdir = binary, workdir
        ports = free_ports(6)
        self.client_ports, self.peer_ports = ports[:3], ports[3:]
        self.cfg = os.path.join(workdir, "zoo.cfg")
        with open(self.cfg, "w") as f:
            # `hash` compares the members' digests: a four-letter word ZooKeeper's default leaves off.
            f.write("tickTime=100\ninitLimit=10\nsyncLimit=5\n4lw.commands.whitelist=*\n")
            for i in range(3):
                f.write(f"server.{i+1}=127.0.0.1:{self.peer_ports[i]}:{self.peer_ports[i]+1};{self.client_ports[i]}\n")
        self.procs = {}

    def start(self, sid):
        log = open(os.path.join(self.workdir, f"replica{sid}.log"), "a")
        self.procs[sid] = subprocess.Popen(
            [self.binary, "server", "--config", self.cfg, "--id", str(sid), "--data-dir",
             os.path.join(self.workdir, f"data{sid}"), "--log-level", "warning"],
            stdout=log, stderr=log)

    def kill9(self, sid):
        self.procs[sid].send_signal(signal.SIGKILL)
        self.procs[sid].wait()

    def stop_all(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()

    def leader(self):
        for i, port in enumerate(self.client_ports):
            if mode(port) == "leader":
                return i + 1
        return None

    def wait_serving(self, deadline_s=20):
        end = time.time() + deadline_s
        while time.time() < end:
            modes = [mode(p) for p in self.client_ports]
            if modes.count("leader") == 1 and modes.count("follower") == 2:
                return True
            time.sleep(0.02)
        return False

    def hosts(self):
        return ",".join(f"127.0.0.1:{p}" for p in self.client_ports)


def run_round(ensemble, round_no, results):
    acked, lock = [], threading.Lock()
    first_after_kill = [None]
    kill_time = [None]
    stop = threading.Event()
    client = KazooClient(hosts=ensemble.hosts(), timeout=4.0,
                         connection_retry=KazooRetry(max_tries=-1, delay=0.02, max_delay=0.1))
    client.start(timeout=15)
    client.add_listener(lambda state: print(f"  {time.time() - (kill_time[0] or time.time()):+.3f}s client {state}", flush=True))
    client.ensure_path(f"/r{round_no}")

    def writer():
        n = 0
        while not stop.is_set():
            batch = []
            issued = time.time()
            for _ in range(50):
                path = f"/r{round_no}/n{n:07d}"
                n += 1
                batch.append((path, client.create_async(path, b"v" * 100)))
            for path, result in batch:
                try:
                    result.get(timeout=10)
                    now = time.time()
                    with lock:
                        acked.append(path)
                        if kill_time[0] is not None and first_after_kill[0] is None and issued > kill_time[0]:
                            first_after_kill[0] = now
                except Exception:
                    pass  # connection loss during the failover: not acknowledged

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(1.0)
    leader = ensemble.leader()
    kill_time[0] = time.time()
    ensemble.kill9(leader)
    # Keep writing through the failover, then bring the old leader back.
    deadline = time.time() + 15
    while first_after_kill[0] is None and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(1.0)
    ensemble.start(leader)
    time.sleep(1.0)
    stop.set()
    thread.join()
    client.stop()
    client.close()

    ok = ensemble.wait_serving()
    # Every acknowledged write on every replica.
    missing = {}
    for i, port in enumerate(ensemble.client_ports):
        c = KazooClient(hosts=f"127.0.0.1:{port}", timeout=10.0)
        c.start(timeout=15)
        c.sync("/")
        present = set(c.get_children(f"/r{round_no}"))
        lost = [p for p in acked if p.rsplit("/", 1)[1] not in present]
        if lost:
            missing[i + 1] = lost[:5]
        c.stop()
        c.close()
    time.sleep(0.3)
    digests = {four_letter(p, "hash").strip() for p in ensemble.client_ports}
    failover = (first_after_kill[0] - kill_time[0]) if first_after_kill[0] else None
    passed = ok and not missing and len(digests) == 1 and failover is not None
    print(f"round {round_no}: killed leader {leader}, acknowledged {len(acked)} writes, "
          f"first write after kill {failover * 1000:.0f} ms" if failover else f"round {round_no}: no write after kill",
          flush=True)
    if missing:
        print(f"  missing acknowledged writes: {missing}", flush=True)
    if len(digests) != 1:
        print(f"  digests differ: {digests}", flush=True)
    results.append((passed, failover))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--minizk", default=os.environ.get("MINIZK_BIN", ".build/debug/minizk"))
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="minizk-kill-")
    ensemble = Ensemble(os.path.abspath(args.minizk), workdir)
    results = []
    try:
        for sid in (1, 2, 3):
            ensemble.start(sid)
        if not ensemble.wait_serving():
            print("ensemble did not start serving", flush=True)
            print("0 passed, 1 failed")
            return 1
        for r in range(args.rounds):
            run_round(ensemble, r, results)
    finally:
        ensemble.stop_all()
    passed = sum(1 for p, _ in results if p)
    failovers = sorted(f for _, f in results if f is not None)
    if failovers:
        print(f"failover (kill -9 of the leader to first successful write): median {failovers[len(failovers)//2]*1000:.0f} ms")
    print(f"{passed} passed, {len(results) - passed} failed")
    if passed == len(results):
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"logs kept in {workdir}")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
