#!/usr/bin/env python3
"""Side-by-side storage benchmark: a standalone MiniZK (SQLite) against a standalone Apache
ZooKeeper 3.8, both with fsync on, on this machine, in one run.

Figures (MiniZK and ZooKeeper each, and the ratio MiniZK/ZooKeeper):
  (a) durable creates and setData per second, 1 connection with 1 and with 100 requests outstanding;
  (b) fsyncs per second behind them (MiniZK: `zk_fsync_batches` of mntr, one per group-commit batch;
      ZooKeeper: `zk_cnt_fsynctime` of mntr, one per log commit);
  (c) restart time until serving (`ruok` answers imok and a getData succeeds) with N znodes of
      100 bytes, loaded with pipelined creates;
  (d) resident memory (VmRSS) with those znodes loaded, before and after the restart;
  (e) the data folder's size.
Medians of --runs runs for (a), (b) and (c); the runs alternate between the two servers (both stay
up), so a noisy moment on a shared machine does not land on one of them only. Load comes from `minizk bench`, a lean pipelining
client (one event loop, many requests per write), run as its own process.

Usage: scripts/bench_storage.py [--minizk .build/release/minizk] [--runs 3] [--seconds 5]
                                [--znodes 1000000] [--only minizk|zookeeper] [--json FILE]
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

ZK_CLASSPATH = ":".join([
    "/usr/share/java/zookeeper.jar", "/usr/share/java/slf4j-simple.jar", "/usr/share/java/netty-codec.jar"])
ZK_HEAP = "3g"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def four_letter(port, word, timeout=1.0):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(word.encode())
            out = b""
            while True:
                data = s.recv(65536)
                if not data:
                    break
                out += data
            return out.decode(errors="replace")
    except OSError:
        return ""


def mntr(port):
    values = {}
    for line in four_letter(port, "mntr", timeout=10).splitlines():
        parts = line.split("\t")
        if len(parts) == 2:
            values[parts[0]] = parts[1]
    return values


def get_data(port, path, timeout=2.0):
    """Connects with the raw protocol and reads `path`; True when the server answers it without error."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            connect = struct.pack(">iqiqi16sB", 0, 0, 30000, 0, 16, b"\0" * 16, 0)
            s.sendall(struct.pack(">i", len(connect)) + connect)
            read_frame(s)
            encoded = path.encode()
            request = struct.pack(">ii", 1, 4) + struct.pack(">i", len(encoded)) + encoded + b"\0"
            s.sendall(struct.pack(">i", len(request)) + request)
            reply = read_frame(s)
            xid, _zxid, err = struct.unpack(">iqi", reply[:16])
            return xid == 1 and err == 0
    except (OSError, struct.error, ValueError):
        return False


def read_frame(sock):
    header = read_exactly(sock, 4)
    (length,) = struct.unpack(">i", header)
    return read_exactly(sock, length)


def read_exactly(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ValueError("connection closed")
        data += chunk
    return data


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def folder_bytes(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


class Server:
    def __init__(self, kind, work, minizk):
        self.kind = kind
        self.work = os.path.join(work, kind)
        self.data = os.path.join(self.work, "data")
        self.minizk = minizk
        self.port = free_port()
        self.process = None
        os.makedirs(self.data, exist_ok=True)
        self.log = open(os.path.join(self.work, "server.log"), "a")

    def command(self):
        if self.kind == "minizk":
            return [self.minizk, "server", "--port", str(self.port), "--data-dir", self.data, "--tick-ms", "200",
                    "--log-level", "info", "--4lw-commands-whitelist", "*"]
        config = os.path.join(self.work, "zoo.cfg")
        with open(config, "w") as f:
            f.write("tickTime=200\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"
                    "admin.enableServer=false\n4lw.commands.whitelist=*\nforceSync=yes\nmaxClientCnxns=0\n"
                    % (self.data, self.port))
        return ["java", "-Xmx" + ZK_HEAP, "-cp", ZK_CLASSPATH, "org.apache.zookeeper.server.ZooKeeperServerMain", config]

    def start(self, probe_path="/zookeeper", timeout=300):
        """Starts the server; returns the seconds until `ruok` says imok and a getData of
        `probe_path` succeeds (ZooKeeper answers imok before it serves)."""
        started = time.monotonic()
        self.process = subprocess.Popen(self.command(), stdout=self.log, stderr=self.log, cwd=self.work)
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError("%s exited with %s (log: %s)" % (self.kind, self.process.returncode, self.log.name))
            if four_letter(self.port, "ruok", timeout=0.5) == "imok" and get_data(self.port, probe_path):
                return time.monotonic() - started
            time.sleep(0.005)
        raise RuntimeError("%s did not serve within %d s" % (self.kind, timeout))

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def wipe(self):
        shutil.rmtree(self.data, ignore_errors=True)
        os.makedirs(self.data)

    def recovery_line(self):
        """MiniZK's log line that breaks its last recovery down."""
        self.log.flush()
        with open(self.log.name) as f:
            lines = [line.strip() for line in f if "recovered" in line and "timing=" in line]
        return lines[-1] if lines else ""

    def fsyncs(self):
        values = mntr(self.port)
        key = "zk_fsync_batches" if self.kind == "minizk" else "zk_cnt_fsynctime"
        return int(values.get(key, "0"))


def bench(minizk, port, op, connections, outstanding, seconds=None, count=None):
    command = [minizk, "bench", "--hosts", "127.0.0.1:%d" % port, "--op", op, "--connections", str(connections),
               "--outstanding", str(outstanding), "--json"]
    if count is not None:
        command += ["--count", str(count), "--seconds", "100000"]
    else:
        command += ["--seconds", str(seconds)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        out, _ = process.communicate(timeout=1800 if count is not None else seconds + 120)
    except subprocess.TimeoutExpired:
        process.kill()
        raise RuntimeError("minizk bench did not finish: %s" % " ".join(command))
    if process.returncode != 0:
        raise RuntimeError("minizk bench failed: %s" % out)
    result = json.loads(out.strip().splitlines()[-1])
    result["prefix"] = "/minizk-bench-%d" % process.pid
    return result


def throughput(server, minizk, op, outstanding, seconds):
    before = server.fsyncs()
    started = time.monotonic()
    result = bench(minizk, server.port, op, 1, outstanding, seconds=seconds)
    elapsed = time.monotonic() - started
    after = server.fsyncs()
    # The fsync counter runs through bench's one-second warm-up too, at the same load.
    return {"rate": result["rate"], "p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"],
            "errors": result["errors"], "fsyncs_per_s": (after - before) / elapsed}


def median(values):
    return statistics.median(values) if values else float("nan")


def measure(args, work):
    """Both servers side by side: every throughput run and every restart alternates between them,
    so that a noisy moment on the machine does not land on one server only."""
    servers = {kind: Server(kind, work, args.minizk) for kind in args.kinds}
    figures = {kind: {"kind": kind} for kind in args.kinds}
    try:
        for server in servers.values():
            server.start()
        for op in ("create", "set"):
            for outstanding in (1, 100):
                runs = {kind: [] for kind in servers}
                for run in range(args.runs):
                    order = list(servers) if run % 2 == 0 else list(reversed(list(servers)))
                    for kind in order:
                        runs[kind].append(throughput(servers[kind], args.minizk, op, outstanding, args.seconds))
                for kind, results in runs.items():
                    key = "%s_%d" % (op, outstanding)
                    f = figures[kind]
                    f[key] = median([r["rate"] for r in results])
                    f[key + "_p50_ms"] = median([r["p50_ms"] for r in results])
                    f[key + "_p99_ms"] = median([r["p99_ms"] for r in results])
                    f[key + "_fsyncs_per_s"] = median([r["fsyncs_per_s"] for r in results])
                    f[key + "_runs"] = [round(r["rate"]) for r in results]
                    print("  %-9s %-6s outstanding %3d: %8.0f ops/s  %8.0f fsyncs/s  p50 %.3f ms  p99 %.3f ms  (runs %s)" % (
                        kind, op, outstanding, f[key], f[key + "_fsyncs_per_s"], f[key + "_p50_ms"], f[key + "_p99_ms"],
                        f[key + "_runs"]), flush=True)
        # Load the znodes into fresh data directories, one server at a time: 6 connections x 64
        # outstanding, pipelined creates of 100 bytes.
        probes = {}
        for kind, server in servers.items():
            server.stop()
            server.wipe()
        for kind, server in servers.items():
            f = figures[kind]
            server.start()
            load_started = time.monotonic()
            loaded = bench(args.minizk, server.port, "create", 6, 64, count=args.znodes)
            f["load_seconds"] = time.monotonic() - load_started
            f["load_rate"] = loaded["rate"]
            f["znodes"] = int(mntr(server.port).get("zk_znode_count", "0"))
            time.sleep(2)
            f["rss_loaded"] = rss_bytes(server.process.pid)
            probes[kind] = loaded["prefix"] + "/n0"
            print("  %-9s loaded %d znodes in %.1f s (%.0f creates/s); RSS %.0f MiB" % (
                kind, f["znodes"], f["load_seconds"], loaded["rate"], f["rss_loaded"] / 2**20), flush=True)
        restarts = {kind: [] for kind in servers}
        rss_after = {kind: [] for kind in servers}
        for run in range(args.runs):
            order = list(servers) if run % 2 == 0 else list(reversed(list(servers)))
            for kind in order:
                server = servers[kind]
                server.stop()
                restarts[kind].append(server.start(probe_path=probes[kind]))
                time.sleep(1)
                rss_after[kind].append(rss_bytes(server.process.pid))
                print("  %-9s restart until serving: %.2f s; RSS %.0f MiB" % (kind, restarts[kind][-1], rss_after[kind][-1] / 2**20), flush=True)
                if kind == "minizk":
                    print("            " + server.recovery_line().split("minizk: ", 1)[-1], flush=True)
        for kind, server in servers.items():
            f = figures[kind]
            f["restart_s"] = median(restarts[kind])
            f["restart_runs"] = [round(r, 2) for r in restarts[kind]]
            f["rss_restarted"] = median(rss_after[kind])
            f["znodes_after_restart"] = int(mntr(server.port).get("zk_znode_count", "0"))
            server.stop()
            f["data_bytes"] = folder_bytes(server.data)
            print("  %-9s data folder %.0f MiB" % (kind, f["data_bytes"] / 2**20), flush=True)
    finally:
        for server in servers.values():
            server.stop()
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minizk", default=".build/release/minizk")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--znodes", type=int, default=1_000_000)
    parser.add_argument("--only", choices=["minizk", "zookeeper"])
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--svg", help="also write the figures as SVG charts into this directory (needs both servers)")
    args = parser.parse_args()
    args.minizk = os.path.abspath(args.minizk)
    work = tempfile.mkdtemp(prefix="minizk-bench-storage-")
    print("work directory %s; %d runs of %.0f s; %d znodes" % (work, args.runs, args.seconds, args.znodes), flush=True)
    args.kinds = [kind for kind in ("minizk", "zookeeper") if not args.only or args.only == kind]
    try:
        results = measure(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if len(results) == 2:
        m, z = results["minizk"], results["zookeeper"]
        print()
        print("| figure | MiniZK | ZooKeeper 3.8 | MiniZK/ZooKeeper |")
        print("|---|---|---|---|")
        rows = [
            ("creates/s, 1 outstanding", "create_1", "%.0f"),
            ("creates/s, 100 outstanding", "create_100", "%.0f"),
            ("setData/s, 1 outstanding", "set_1", "%.0f"),
            ("setData/s, 100 outstanding", "set_100", "%.0f"),
            ("fsyncs/s behind creates, 1 outstanding", "create_1_fsyncs_per_s", "%.0f"),
            ("fsyncs/s behind creates, 100 outstanding", "create_100_fsyncs_per_s", "%.0f"),
            ("fsyncs/s behind setData, 1 outstanding", "set_1_fsyncs_per_s", "%.0f"),
            ("fsyncs/s behind setData, 100 outstanding", "set_100_fsyncs_per_s", "%.0f"),
            ("p99 ms, setData, 100 outstanding", "set_100_p99_ms", "%.1f"),
            ("znodes loaded", "znodes", "%d"),
            ("load rate, creates/s (6 connections x 64)", "load_rate", "%.0f"),
            ("restart until serving, s", "restart_s", "%.2f"),
            ("RSS with the znodes loaded, MiB", "rss_loaded", None),
            ("RSS after restart, MiB", "rss_restarted", None),
            ("data folder, MiB", "data_bytes", None),
        ]
        for label, key, fmt in rows:
            mv, zv = m.get(key, 0), z.get(key, 0)
            if fmt is None:
                mv, zv, fmt = mv / 2**20, zv / 2**20, "%.0f"
            ratio = mv / zv if zv else float("nan")
            print("| %s | %s | %s | %.2f |" % (label, fmt % mv, fmt % zv, ratio))
        if args.svg:
            write_charts(args.svg, m, z)


def write_charts(directory, m, z):
    """storage-throughput.svg, -latency, -durations, -memory and -ratios (MiniZK against ZooKeeper)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from benchplot import side_by_side_charts, write

    figures = [
        ("create1_rate", "create_1", 1, "creates, 1 × 1"), ("create100_rate", "create_100", 1, "creates, 1 × 100"),
        ("set1_rate", "set_1", 1, "setData, 1 × 1"), ("set100_rate", "set_100", 1, "setData, 1 × 100"),
        ("load_rate", "load_rate", 1, "loading, 6 × 64"),
        ("create1_p50_ms", "create_1_p50_ms", 1, "create p50, 1 × 1"), ("set1_p50_ms", "set_1_p50_ms", 1, "setData p50, 1 × 1"),
        ("set100_p99_ms", "set_100_p99_ms", 1, "setData p99, 1 × 100"),
        ("restart_s", "restart_s", 1, "restart until serving"),
        ("rss_loaded_mib", "rss_loaded", 2**-20, "RSS, znodes loaded"), ("rss_restart_mib", "rss_restarted", 2**-20, "RSS after a restart"),
        ("data_mib", "data_bytes", 2**-20, "data folder"),
    ]
    table = {key: {"MiniZK": m.get(source, 0) * scale or None, "ZooKeeper 3.8": z.get(source, 0) * scale or None}
             for key, source, scale, _ in figures}
    labels = {key: label for key, _, _, label in figures}
    os.makedirs(directory, exist_ok=True)
    for name, svg in side_by_side_charts(table, ["ZooKeeper 3.8", "MiniZK"], labels, baseline="ZooKeeper 3.8").items():
        write(os.path.join(directory, f"storage-{name}.svg"), svg)


if __name__ == "__main__":
    main()
