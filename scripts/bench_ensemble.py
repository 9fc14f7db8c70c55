#!/usr/bin/env python3
"""Side-by-side benchmark of a three-node MiniZK ensemble and a three-node Apache ZooKeeper 3.8.

Both run as three processes on loopback with fsync on (ZooKeeper forceSync=yes, MiniZK SQLite
synchronous=FULL), tickTime 200, fresh data directories; load comes from `minizk bench`, a lean
pipelining client. Every figure is measured in the same run for both, repeated --runs times; the
report gives medians and MiniZK/ZooKeeper ratios.

Usage: scripts/bench_ensemble.py [--minizk .build/release/minizk] [--runs 3] [--seconds 5]
           [--servers zk,minizk,minizk-inproc] [--workloads create:6:64,set:1:1,...] [--no-failover]
           [--per-member] [--minizk-args "--no-force-sync"] [--zk-force-sync yes|no] [--svg DIR]

--servers minizk-inproc is `minizk ensemble` (the three replicas in one process, talking without
sockets, SQLite stores side by side); it has no failover figure (its members cannot be killed
one at a time).

--svg DIR also writes the medians as SVG charts (ensemble-throughput.svg, -latency, -durations
and, with zk, -ratios: each MiniZK column against ZooKeeper). Progress (workload k of n, time
left) goes to standard error.

--per-member also runs every workload against each member alone and reports it by the member's
role (`..._on_leader_...`, `..._on_follower_...`); --minizk-args adds arguments to every
`minizk server` (for example --no-force-sync, to see what the fsyncs cost) and to `minizk
ensemble`. The in-memory comparison (what tests run) is
`--servers zk,minizk-inproc --minizk-args "--in-memory" --zk-force-sync no --no-failover`.
"""
import argparse, json, os, shutil, signal, socket, statistics, struct, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from compat.zk import four_letter_word_or_empty as four_letter, free_ports, server_mode as mode  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchplot import Progress, side_by_side_charts, write as write_svg  # noqa: E402

ZK_CLASSPATH = ":".join([
    "/usr/share/java/zookeeper.jar", "/usr/share/java/slf4j-simple.jar", "/usr/share/java/netty-codec.jar"])


class Cluster:
    def __init__(self, kind, binary, workdir, extra_args=(), zk_force_sync="yes"):
        self.kind, self.binary, self.workdir = kind, binary, workdir
        self.zk_force_sync = zk_force_sync
        self.extra_args = list(extra_args)
        ports = free_ports(9)
        self.client_ports, self.peer_ports, self.election_ports = ports[:3], ports[3:6], ports[6:]
        self.procs = {}

    def start_member(self, sid):
        i = sid - 1
        data = os.path.join(self.workdir, f"{self.kind}-data{sid}")
        os.makedirs(data, exist_ok=True)
        log = open(os.path.join(self.workdir, f"{self.kind}-{sid}.log"), "a")
        servers = "".join(
            f"server.{j+1}=127.0.0.1:{self.peer_ports[j]}:{self.election_ports[j]}"
            + (f";{self.client_ports[j]}" if self.kind == "minizk" else "") + "\n" for j in range(3))
        cfg = os.path.join(self.workdir, f"{self.kind}-{sid}.cfg")
        with open(cfg, "w") as f:
            f.write(f"tickTime=200\ninitLimit=10\nsyncLimit=5\ndataDir={data}\n")
            if self.kind == "zk":
                f.write(f"clientPort={self.client_ports[i]}\nclientPortAddress=127.0.0.1\n"
                        f"admin.enableServer=false\n4lw.commands.whitelist=*\nforceSync={self.zk_force_sync}\n")
                with open(os.path.join(data, "myid"), "w") as m:
                    m.write(str(sid))
            f.write(servers)
        if self.kind == "zk":
            cmd = ["java", "-Xmx3g", "-cp", ZK_CLASSPATH, "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg]
        else:
            cmd = [self.binary, "server", "--config", cfg, "--id", str(sid), "--log-level", "warning"] + self.extra_args
        self.procs[sid] = subprocess.Popen(cmd, stdout=log, stderr=log)

    def start_in_process(self):
        """`minizk ensemble`: three replicas in one process, free ports, SQLite under workdir."""
        log = open(os.path.join(self.workdir, "inproc.log"), "a")
        cmd = [self.binary, "ensemble", "--base-port", "0", "--data-dir", os.path.join(self.workdir, "data"),
               "--log-level", "warning"] + self.extra_args
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
        self.procs = {0: proc}
        for line in proc.stdout:
            if line.startswith("127.0.0.1:"):
                self.client_ports = [int(h.rsplit(":", 1)[1]) for h in line.strip().split(",")]
                return
        raise RuntimeError("minizk ensemble printed no connect string")

    def start(self):
        began = time.time()
        if self.kind == "minizk-inproc":
            self.start_in_process()
            if not self.wait_modes(60):
                raise RuntimeError("in-process ensemble did not start")
            return time.time() - began
        for sid in (1, 2, 3):
            self.start_member(sid)
        if not self.wait_modes(60):
            raise RuntimeError(f"{self.kind} ensemble did not start")
        return time.time() - began

    def wait_modes(self, limit):
        end = time.time() + limit
        while time.time() < end:
            modes = [mode(p) for p in self.client_ports]
            if modes.count("leader") == 1 and modes.count("follower") == 2:
                return True
            time.sleep(0.005)
        return False

    def leader(self):
        for i, p in enumerate(self.client_ports):
            if mode(p) == "leader":
                return i + 1
        return None

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
        for p in self.procs.values():
            p.wait()

    def hosts(self, members=None):
        members = members or (1, 2, 3)
        return ",".join(f"127.0.0.1:{self.client_ports[m-1]}" for m in members)


def bench(binary, hosts, op, connections, outstanding, seconds):
    out = subprocess.run(
        [binary, "bench", "--hosts", hosts, "--op", op, "--connections", str(connections), "--outstanding",
         str(outstanding), "--seconds", str(seconds), "--json"], capture_output=True, text=True, timeout=seconds + 60)
    line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "{}"
    return json.loads(line)


def raw_create(port, path, timeout=0.3):
    """Connects, opens a session and creates `path`; True on success."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        connect = struct.pack(">iqiqi16sB", 0, 0, 10000, 0, 16, b"\0" * 16, 0)
        s.sendall(struct.pack(">i", len(connect)) + connect)
        if not read_frame(s):
            return False
        p = path.encode()
        body = struct.pack(">ii", 1, 1) + struct.pack(">i", len(p)) + p + struct.pack(">i", 1) + b"x" \
            + struct.pack(">i", 1) + struct.pack(">i", 31) + struct.pack(">i", 5) + b"world" \
            + struct.pack(">i", 6) + b"anyone" + struct.pack(">i", 0)
        s.sendall(struct.pack(">i", len(body)) + body)
        reply = read_frame(s)
        return reply is not None and struct.unpack(">iqi", reply[:16])[2] == 0
    finally:
        s.close()


def read_frame(s):
    head = b""
    while len(head) < 4:
        d = s.recv(4 - len(head))
        if not d:
            return None
        head += d
    n = struct.unpack(">i", head)[0]
    body = b""
    while len(body) < n:
        d = s.recv(n - len(body))
        if not d:
            return None
        body += d
    return body


def failover(cluster):
    leader = cluster.leader()
    survivors = [m for m in (1, 2, 3) if m != leader]
    killed = time.time()
    cluster.procs[leader].send_signal(signal.SIGKILL)
    cluster.procs[leader].wait()
    n = 0
    while time.time() - killed < 30:
        for m in survivors:
            n += 1
            try:
                if raw_create(cluster.client_ports[m - 1], f"/failover-{os.getpid()}-{time.time_ns()}-{n}"):
                    return time.time() - killed
            except OSError:
                pass
        time.sleep(0.002)
    return None


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--minizk", default=os.environ.get("MINIZK_BIN", ".build/release/minizk"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--servers", default="zk,minizk", help="which ensembles to run, in order")
    parser.add_argument("--workloads", default="create:6:64,set:6:64,get:6:64,exists:6:64,set:1:1,get:1:1",
                        help="op:connections:outstanding, comma-separated")
    parser.add_argument("--no-failover", action="store_true")
    parser.add_argument("--per-member", action="store_true")
    parser.add_argument("--minizk-args", default="")
    parser.add_argument("--zk-force-sync", choices=("yes", "no"), default="yes",
                        help="ZooKeeper's forceSync (no: the fair peer of --minizk-args \"--in-memory\")")
    parser.add_argument("--svg", help="also write the medians as SVG charts into this directory")
    args = parser.parse_args()
    binary = os.path.abspath(args.minizk)
    figures = {"zk": {}, "minizk": {}, "minizk-inproc": {}}

    def note(kind, key, value):
        figures[kind].setdefault(key, []).append(value)

    workloads = [(op, int(c), int(w)) for op, c, w in (item.split(":") for item in args.workloads.split(","))]
    kinds = args.servers.split(",")
    progress = Progress(args.runs * len(kinds) * len(workloads), "bench")
    for run in range(args.runs):
        for kind in kinds:
            workdir = tempfile.mkdtemp(prefix=f"bench-{kind}-")
            cluster = Cluster(kind, binary, workdir, args.minizk_args.split() if kind.startswith("minizk") else (),
                              zk_force_sync=args.zk_force_sync)
            try:
                note(kind, "startup_s", cluster.start())
                time.sleep(0.5)
                for op, conns, window in workloads:
                    r = bench(binary, cluster.hosts(), op, conns, window, args.seconds)
                    key = f"{op}_{conns}x{window}"
                    note(kind, key + "_rate", r.get("rate"))
                    note(kind, key + "_p50_ms", r.get("p50_ms"))
                    note(kind, key + "_p99_ms", r.get("p99_ms"))
                    progress.step(f"(run {run + 1} {kind} {key})")
                    if args.per_member:
                        for member in (1, 2, 3):
                            role = mode(cluster.client_ports[member - 1]) or "unknown"
                            r = bench(binary, cluster.hosts([member]), op, conns, window, args.seconds)
                            note(kind, f"{key}_on_{role}_p50_ms", r.get("p50_ms"))
                            note(kind, f"{key}_on_{role}_p99_ms", r.get("p99_ms"))
                if not args.no_failover and kind != "minizk-inproc":
                    note(kind, "failover_s", failover(cluster))
            finally:
                cluster.stop()
                shutil.rmtree(workdir, ignore_errors=True)
            print(f"run {run + 1} {kind}: " + ", ".join(f"{k}={v[-1]:.4g}" for k, v in figures[kind].items() if v and v[-1] is not None), flush=True)

    titles = {"zk": "Apache ZooKeeper 3.8", "minizk": "MiniZK, 3 processes", "minizk-inproc": "MiniZK, 1 process"}
    ran = [kind for kind in ("zk", "minizk", "minizk-inproc") if kind in kinds]
    others = [kind for kind in ran if kind != "zk"]
    header = [titles[kind] for kind in ran] + ([f"{titles[kind]} / ZooKeeper" for kind in others] if "zk" in ran else [])
    print("\n| figure | " + " | ".join(header) + " |")
    print("|---" * (len(header) + 1) + "|")
    keys = []
    for kind in ran:
        keys += [key for key in figures[kind] if key not in keys]

    def show(value):
        return "-" if value is None else f"{value:.4g}"

    for key in keys:
        values = {kind: median(figures[kind].get(key, [])) for kind in ran}
        cells = [show(values[kind]) for kind in ran]
        if "zk" in ran:
            zk = values["zk"]
            cells += [f"{values[kind] / zk:.2f}" if zk and values[kind] else "-" for kind in others]
        print(f"| {key} | " + " | ".join(cells) + " |")
    print(json.dumps(figures))
    if args.svg:
        os.makedirs(args.svg, exist_ok=True)
        table = {key: {titles[kind]: median(figures[kind].get(key, [])) for kind in ran} for key in keys}
        # One-at-a-time latency only: the pipelined workloads' latencies are queueing, not service.
        table = {k: v for k, v in table.items() if not (k.endswith("_ms") and "_1x1_" not in k)}
        for name, svg in side_by_side_charts(table, [titles[kind] for kind in ran], baseline=titles["zk"]).items():
            write_svg(os.path.join(args.svg, f"ensemble-{name}.svg"), svg)


if __name__ == "__main__":
    sys.exit(main())
