"""Real Apache Spark's standalone high availability (recoveryMode=ZOOKEEPER) on MiniZK and ZooKeeper.

For each kind of ensemble -- three ``minizk server --config zoo.cfg --id N`` processes, or three
Apache ZooKeeper 3.8 ``QuorumPeerMain`` processes -- one run does:

1. start the ensemble, two Spark masters (``org.apache.spark.deploy.master.Master`` with
   ``spark.deploy.recoveryMode=ZOOKEEPER``) and one worker given both masters;
2. run the SumOfSquares job (compat/spark/SumOfSquares.java) and, once its first round is done,
   ``kill -9`` the ALIVE master; the standby must take over and the job must give the closed form;
3. (full mode) restart the killed master as the new standby, run the job again and ``kill -9`` the
   ensemble's leader during it.

A poller reads every master's ``http://127.0.0.1:WEBUI/json/`` every 100 ms for the whole run and
records the states; a sample with two ALIVE masters fails the run. Reported per kill: the
take-over time (kill until a master other than the killed one reads ALIVE, or, for an ensemble
leader kill, until a master reads ALIVE after none did), the longest stretch without an ALIVE
master, and the job's result.

    python3 -m compat.spark_ha --spark-home DIR --job-jar JAR [--kinds minizk,zk] [--runs N]
                               [--ci] [--keep] [--json FILE]

``--ci`` is one run on MiniZK with the master kill only. scripts/spark-ha.sh fetches Spark,
compiles the job and calls this. Everything a run writes (zoo.cfg, data, logs, Spark's work
directories) goes to a temporary directory under compat/work/, removed at the end unless --keep
(a failure prints the log tails first);
every process started is killed on exit, on failure and on SIGINT/SIGTERM.
"""

import argparse
import collections
import json
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from compat.zk import (WORK_DIR, MiniZKMember, ServerError, ZooKeeperMember, free_ports, minizk_binary,
                       server_mode)

TICK_MS = 200
# Spark's SparkCuratorUtil asks for a 60 s session (and a 15 s connection timeout), fixed in code;
# both kinds of server cap it at maxSessionTimeout, so the dead master's latch node goes after 4 s.
MAX_SESSION_TIMEOUT_MS = 4000
# Spark's own timeouts, the same for both kinds: a worker is declared dead after 10 s without a
# heartbeat (default 60 s); the recovery timeout (the wait for workers and applications to answer
# a new master) defaults to it.
SPARK_WORKER_TIMEOUT_S = 10
MEMBERS = (1, 2, 3)
POLL_INTERVAL_S = 0.1
START_TIMEOUT_S = 120.0
JOB_TIMEOUT_S = 300.0
# The job: sum of i*i + round over i = 1..N in PARTITIONS tasks of at least SLEEP_MS, ROUNDS times.
JOB_N, JOB_PARTITIONS, JOB_ROUNDS, JOB_SLEEP_MS = 1000000, 4, 8, 1000

LEADING = ("ALIVE", "RECOVERING", "COMPLETING_RECOVERY")


def log(message):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), message), flush=True)


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
            "%s\n" % (TICK_MS, data_dir, MAX_SESSION_TIMEOUT_MS, "\n".join(server_lines)))


OPCODES = {1: "create", 2: "delete", 3: "exists", 4: "getData", 5: "setData", 6: "getACL", 7: "setACL",
           8: "getChildren", 9: "sync", 11: "ping", 12: "getChildren2", 13: "check", 14: "multi",
           15: "create2", 16: "reconfig", 17: "checkWatches", 18: "removeWatches", 19: "createContainer",
           21: "createTTL", 22: "multiRead", 100: "auth", 101: "setWatches", 102: "sasl",
           103: "getEphemerals", 104: "getAllChildrenNumber", 105: "setWatches2", 106: "addWatch",
           107: "whoAmI", -11: "closeSession"}
ERRORS = {0: "ok", -4: "connectionLoss", -6: "unimplemented", -7: "operationTimeout", -8: "badArguments",
          -101: "noNode", -102: "noAuth", -103: "badVersion", -108: "noChildrenForEphemerals",
          -110: "nodeExists", -111: "notEmpty", -112: "sessionExpired", -118: "sessionMoved"}
CREATE_MODES = {0: "PERSISTENT", 1: "EPHEMERAL", 2: "PERSISTENT_SEQUENTIAL", 3: "EPHEMERAL_SEQUENTIAL",
                4: "CONTAINER"}
EVENT_TYPES = {-1: "none", 1: "created", 2: "deleted", 3: "dataChanged", 4: "childrenChanged"}
PATH_OPCODES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 15, 17, 18, 19, 21, 103, 104, 106)


def normal_path(path):
    """A path with what differs from run to run (UUIDs, sequence numbers, ids) replaced."""
    path = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>", path)
    path = re.sub(r"(app|worker|driver)_[A-Za-z0-9.-]+$", r"\1_<id>", path)
    return re.sub(r"\d{10}$", "<seq>", path)


def _frame(sock):
    def exact(count):
        data = b""
        while len(data) < count:
            chunk = sock.recv(count - len(data))
            if not chunk:
                return None
            data += chunk
        return data
    try:
        head = exact(4)
        return None if head is None else exact(struct.unpack(">i", head)[0])
    except OSError:
        return None


def _string(body, offset):
    length = struct.unpack(">i", body[offset:offset + 4])[0]
    if length < 0:
        return None, offset + 4
    return body[offset + 4:offset + 4 + length].decode("utf-8", "replace"), offset + 4 + length


def describe_request(body):
    """(xid, "op path [mode]") of a request frame after the handshake."""
    xid, opcode = struct.unpack(">ii", body[:8])
    name = OPCODES.get(opcode, "op%d" % opcode)
    if opcode not in PATH_OPCODES or len(body) < 12:
        return xid, name
    try:
        path, offset = _string(body, 8)
        text = "%s %s" % (name, normal_path(path or ""))
        if opcode in (1, 15, 19, 21):
            data_length = struct.unpack(">i", body[offset:offset + 4])[0]
            offset += 4 + max(0, data_length)
            acl_count = struct.unpack(">i", body[offset:offset + 4])[0]
            offset += 4
            for _ in range(max(0, acl_count)):
                offset += 4
                _, offset = _string(body, offset)
                _, offset = _string(body, offset)
            flags = struct.unpack(">i", body[offset:offset + 4])[0]
            text += " " + CREATE_MODES.get(flags, "flags%d" % flags)
        return xid, text
    except (struct.error, IndexError):
        return xid, name


class TraceProxy:
    """Forwards a member's client port and counts what passes: each request (opcode, normalised path,
    create mode) with the error of its reply, watch events, and the negotiated session timeouts."""

    def __init__(self, target_port, counts, lock, journal, name, heard):
        self.target_port, self.counts, self.lock, self.journal, self.name = target_port, counts, lock, journal, name
        self.heard = heard  # connection -> when its client last sent a frame (pings included)
        self.connections = 0
        self.port_map = {}  # member client port -> proxy port, for /zookeeper/config replies
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _count(self, key, connection):
        with self.lock:
            self.counts[key] += 1
            self.journal.append("%.3f %s#%d %s" % (time.monotonic(), self.name, connection, key))

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            pending = {}
            self.connections += 1
            for source, sink, requests in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pump, args=(source, sink, pending, requests, self.connections),
                                 daemon=True).start()

    def _pump(self, source, sink, pending, requests, connection):
        handshake = True
        while True:
            body = _frame(source)
            if body is None:
                self._count("closed by %s" % ("client" if requests else "member"), connection)
                for sock in (source, sink):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    sock.close()
                return
            try:
                if handshake:
                    if not requests and len(body) >= 8:
                        self._count("connect -> timeout %d ms" % struct.unpack(">i", body[4:8])[0], connection)
                elif requests and len(body) >= 8:
                    with self.lock:
                        self.heard["%s#%d" % (self.name, connection)] = time.monotonic()
                    xid, text = describe_request(body)
                    if xid != -2:
                        pending[xid] = text
                elif not requests and len(body) >= 16:
                    xid, _, error = struct.unpack(">iqi", body[:16])
                    if xid == -1 and len(body) >= 24:
                        kind, _ = struct.unpack(">ii", body[16:24])
                        path, _ = _string(body, 24)
                        self._count("event %s %s" % (EVENT_TYPES.get(kind, kind), normal_path(path or "")), connection)
                    elif xid != -2 and xid in pending:
                        request = pending.pop(xid)
                        self._count("%s -> %s" % (request, ERRORS.get(error, error)), connection)
                        if request == "getData /zookeeper/config" and error == 0:
                            body = self._through_proxies(body)
            except (struct.error, IndexError):
                pass
            handshake = False
            try:
                sink.sendall(struct.pack(">i", len(body)) + body)
            except OSError:
                pass

    def _through_proxies(self, body):
        """A getData reply of /zookeeper/config with each member's client port replaced by its
        proxy's, so that Curator's EnsembleTracker, which reconnects to the ports listed there
        after a dropped connection, keeps going through the proxies."""
        length = struct.unpack(">i", body[16:20])[0]
        if length <= 0:
            return body
        text = body[20:20 + length].decode("utf-8", "replace")
        for member_port, proxy_port in self.port_map.items():
            text = re.sub(r";(\S*:)%d(?=\s|$)" % member_port, r";\g<1>%d" % proxy_port, text, flags=re.M)
        data = text.encode("utf-8")
        return body[:16] + struct.pack(">i", len(data)) + data + body[20 + length:]

    def close(self):
        self.listener.close()


class Processes:
    """Every process a run starts, each in its own process group, killed group by group at the end."""

    def __init__(self):
        self.groups = []

    def spawn(self, command, log_path, env=None, cwd=None, stdout=None):
        log_file = open(log_path, "ab")
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                   stdout=stdout if stdout is not None else log_file,
                                   stderr=log_file, env=env, cwd=cwd, start_new_session=True,
                                   **({"text": True, "bufsize": 1} if stdout is not None else {}))
        log_file.close()
        self.groups.append(process.pid)
        return process

    def kill_all(self):
        for pgid in self.groups:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.groups = []


class Ensemble:
    def __init__(self, kind, binary, root, trace=False):
        self.kind = kind
        self.trace_counts, self.trace_lock, self.proxies = collections.Counter(), threading.Lock(), {}
        self.trace_journal, self.trace_heard = [], {}
        ports = free_ports(3 * len(MEMBERS))
        self.client_port = {sid: ports[3 * i] for i, sid in enumerate(MEMBERS)}
        lines = ["server.%d=127.0.0.1:%d:%d:participant;127.0.0.1:%d" % (sid, ports[3 * i + 1], ports[3 * i + 2],
                                                                          self.client_port[sid])
                 for i, sid in enumerate(MEMBERS)]
        self.servers = {}
        for sid in MEMBERS:
            common = dict(port=self.client_port[sid], extended_types=False,
                          work_dir=os.path.join(root, "%s%d" % (kind, sid)), log_name="server.log")
            os.makedirs(common["work_dir"])
            if kind == "zk":
                self.servers[sid] = ZooKeeperMember(sid, lines, zoo_cfg_text, **common)
            else:
                self.servers[sid] = MiniZKMember(sid, lines, zoo_cfg_text, arguments=["--log-level", "info"],
                                                 binary=binary, **common)

        if trace:
            self.proxies = {sid: TraceProxy(self.client_port[sid], self.trace_counts, self.trace_lock,
                                            self.trace_journal, "member%d" % sid, self.trace_heard)
                            for sid in MEMBERS}
            port_map = {self.client_port[sid]: self.proxies[sid].port for sid in MEMBERS}
            for proxy in self.proxies.values():
                proxy.port_map = port_map

    @property
    def connect_string(self):
        return ",".join("127.0.0.1:%d" % self.client_port[sid] for sid in MEMBERS)

    @property
    def spark_connect_string(self):
        """What Spark is given: the members, or the trace proxies in front of them."""
        if self.proxies:
            return ",".join("127.0.0.1:%d" % self.proxies[sid].port for sid in MEMBERS)
        return self.connect_string

    def modes(self):
        return {sid: server_mode(self.client_port[sid]) for sid in MEMBERS}

    def start(self, timeout=START_TIMEOUT_S):
        for server in self.servers.values():
            server.spawn()
        deadline = time.monotonic() + timeout
        while True:
            modes = self.modes()
            values = list(modes.values())
            if values.count("leader") == 1 and values.count("follower") == len(MEMBERS) - 1:
                return modes
            ended = {sid: s.process.returncode for sid, s in self.servers.items() if s.process.poll() is not None}
            if ended or time.monotonic() > deadline:
                raise ServerError("%s ensemble not serving: modes %s, exited %s" % (self.kind, modes, ended))
            time.sleep(0.1)

    def leader(self):
        for sid, mode in self.modes().items():
            if mode == "leader":
                return sid
        return None

    def serving_again(self, timeout=60.0):
        """Seconds until the surviving members serve again with one leader, or None."""
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            values = [server_mode(self.client_port[sid]) for sid, s in self.servers.items() if s.running]
            if values.count("leader") == 1 and values.count("follower") == len(values) - 1:
                return time.monotonic() - began
            time.sleep(0.05)
        return None

    def kill(self, sid):
        self.servers[sid].kill()

    def stop(self):
        for proxy in self.proxies.values():
            proxy.close()
        for server in self.servers.values():
            if server.process is not None and server.process.poll() is None:
                server.process.kill()
        for server in self.servers.values():
            server.stop()

    def tails(self, lines=20):
        return "\n".join("---- %s member %d (%s)\n%s" % (self.kind, sid, s.log_path, s.log_tail(lines))
                         for sid, s in sorted(self.servers.items()))


def master_json(webui_port, timeout=0.5):
    """The master's /json/ status, or {"status": "DOWN"} when nothing answers."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/json/" % webui_port, timeout=timeout) as reply:
            return json.loads(reply.read().decode("utf-8"))
    except (urllib.error.URLError, OSError, ValueError):
        return {"status": "DOWN"}


class Poller(threading.Thread):
    """Reads each master's status every POLL_INTERVAL_S; keeps (monotonic time, {name: status})."""

    def __init__(self, masters):
        super().__init__(daemon=True)
        self.masters = masters
        self.samples = []
        self.lock = threading.Lock()
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            began = time.monotonic()
            states = {}
            for name, master in self.masters.items():
                states[name] = master_json(master.webui_port, timeout=0.3).get("status", "?")
            with self.lock:
                self.samples.append((began, states))
            self.halt.wait(max(0.0, POLL_INTERVAL_S - (time.monotonic() - began)))

    def since(self, t0):
        with self.lock:
            return [sample for sample in self.samples if sample[0] >= t0]

    def stop(self):
        self.halt.set()
        self.join(5)


class Spark:
    """Two masters and a worker of one Spark home, their environment and their logs."""

    def __init__(self, spark_home, root, ensemble, processes):
        self.spark_home, self.root, self.ensemble, self.processes = spark_home, root, ensemble, processes
        self.conf_dir = os.path.join(root, "spark-conf")
        os.makedirs(self.conf_dir)
        ports = free_ports(6)
        self.masters = {
            "A": Master("A", ports[0], ports[1]),
            "B": Master("B", ports[2], ports[3]),
        }
        self.worker_port, self.worker_webui_port = ports[4], ports[5]
        self.worker = None
        self.daemon_options = [
            "-Dspark.deploy.recoveryMode=ZOOKEEPER",
            "-Dspark.deploy.zookeeper.url=%s" % ensemble.spark_connect_string,
            "-Dspark.deploy.zookeeper.dir=/spark",
            "-Dspark.worker.timeout=%d" % SPARK_WORKER_TIMEOUT_S,
            # The master's REST submission server would take the fixed port 6066; not needed here.
            "-Dspark.master.rest.enabled=false",
        ]

    @property
    def master_url(self):
        return "spark://" + ",".join("127.0.0.1:%d" % m.port for m in self.masters.values())

    def env(self, extra_options=()):
        env = dict(os.environ)
        for key in list(env):
            if key.startswith("SPARK_") or key.startswith("PYSPARK_"):
                del env[key]
        env.update(SPARK_HOME=self.spark_home, SPARK_CONF_DIR=self.conf_dir, SPARK_LOCAL_IP="127.0.0.1",
                   SPARK_LOG_DIR=os.path.join(self.root, "spark-logs"),
                   SPARK_LOCAL_DIRS=os.path.join(self.root, "spark-local"),
                   SPARK_DAEMON_MEMORY="384m",
                   SPARK_DAEMON_JAVA_OPTS=" ".join(self.daemon_options + ["-XX:+UseSerialGC"] + list(extra_options)))
        return env

    def start_master(self, name):
        master = self.masters[name]
        master.starts += 1
        master.killed = master.exited = False
        master.log_path = os.path.join(self.root, "master-%s-%d.log" % (name, master.starts))
        master.process = self.processes.spawn(
            [os.path.join(self.spark_home, "bin", "spark-class"), "org.apache.spark.deploy.master.Master",
             "--host", "127.0.0.1", "--port", str(master.port), "--webui-port", str(master.webui_port)],
            master.log_path, env=self.env(master.extra_options), cwd=self.root)

    def start_worker(self):
        work_dir = os.path.join(self.root, "worker-work")
        os.makedirs(work_dir, exist_ok=True)
        self.worker_log = os.path.join(self.root, "worker.log")
        self.worker = self.processes.spawn(
            [os.path.join(self.spark_home, "bin", "spark-class"), "org.apache.spark.deploy.worker.Worker",
             "--host", "127.0.0.1", "--port", str(self.worker_port), "--webui-port", str(self.worker_webui_port),
             "--cores", "2", "--memory", "2g", "--work-dir", work_dir, self.master_url],
            self.worker_log, env=self.env(), cwd=self.root)

    def wait(self, predicate, what, timeout=START_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            for name, master in self.masters.items():
                if (master.process is not None and master.process.poll() is not None and not master.killed
                        and not master.exited):
                    raise RuntimeError("master %s exited (%s) while waiting for %s; log tail:\n%s"
                                       % (name, master.process.returncode, what, tail(master.log_path)))
            time.sleep(0.2)
        raise RuntimeError("timed out after %.0f s waiting for %s" % (timeout, what))

    def statuses(self):
        return {name: master_json(m.webui_port) for name, m in self.masters.items()}

    def alive_master(self):
        alive = [name for name, status in self.statuses().items() if status.get("status") == "ALIVE"]
        return alive[0] if len(alive) == 1 else None

    def submit(self, log_path):
        command = [os.path.join(self.spark_home, "bin", "spark-submit"), "--master", self.master_url,
                   "--deploy-mode", "client", "--class", "SumOfSquares",
                   "--driver-memory", "1g", "--executor-memory", "1g",
                   "--conf", "spark.ui.enabled=false", "--conf", "spark.driver.host=127.0.0.1",
                   "--conf", "spark.executor.extraJavaOptions=-XX:+UseSerialGC",
                   self.job_jar, str(JOB_N), str(JOB_PARTITIONS), str(JOB_ROUNDS), str(JOB_SLEEP_MS)]
        return Job(self.processes.spawn(command, log_path, env=self.env(), cwd=self.root, stdout=subprocess.PIPE),
                   log_path)


class Master:
    def __init__(self, name, port, webui_port):
        self.name, self.port, self.webui_port = name, port, webui_port
        self.process, self.log_path, self.starts, self.killed, self.exited = None, None, 0, False, False
        self.extra_options = []  # appended to SPARK_DAEMON_JAVA_OPTS (a later -D wins)

    def kill(self):
        self.killed = True
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()


class Job:
    """A running spark-submit; its stdout lines are read by a thread and timestamped."""

    def __init__(self, process, log_path):
        self.process, self.log_path = process, log_path
        self.lines = []
        self.first_round = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            line = line.rstrip("\n")
            self.lines.append((time.monotonic(), line))
            if line.startswith("ROUND "):
                self.first_round.set()

    def wait(self, timeout=JOB_TIMEOUT_S):
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            status = None
        self.reader.join(5)
        result = [line for _, line in self.lines if line.startswith("RESULT ")]
        match = re.match(r"RESULT total=(-?\d+) expected=(-?\d+) correct=(\w+)", result[-1]) if result else None
        return {
            "exit": status,
            "total": int(match.group(1)) if match else None,
            "expected": int(match.group(2)) if match else None,
            "correct": bool(match and match.group(1) == match.group(2) and status == 0),
            "rounds": sum(1 for _, line in self.lines if line.startswith("ROUND ")),
        }


def tail(path, lines=25):
    try:
        with open(path, "rb") as handle:
            return "\n".join(handle.read().decode("utf-8", "replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def znode_tree(connect_string, root="/spark"):
    """Paths under root (sequence suffixes and ids kept), read with kazoo; None if it fails."""
    try:
        from kazoo.client import KazooClient
    except ImportError:
        return None
    client = KazooClient(hosts=connect_string, timeout=10)
    try:
        client.start(timeout=15)
        paths = []

        def walk(path):
            for child in sorted(client.get_children(path)):
                full = path.rstrip("/") + "/" + child
                stat = client.exists(full)
                paths.append((full, "ephemeral" if stat and stat.ephemeralOwner else "persistent"))
                walk(full)
        if client.exists(root):
            walk(root)
        return paths
    except Exception as error:  # a failed listing is reported, not fatal
        return ["(listing failed: %s)" % error]
    finally:
        try:
            client.stop()
            client.close()
        except Exception:
            pass


def expiry_after_last_heard(ensemble, t_kill):
    """From the trace: (seconds from the killed master's last frame on its latch session to the
    standby's watch event for that latch node's deletion, seconds from that last frame to the
    kill), i.e. how long after the session was last heard from the ensemble expired it and told
    the watcher; None when it cannot be told."""
    with ensemble.trace_lock:
        entries = [line.split(" ", 2) for line in ensemble.trace_journal if not line.split(" ", 2)[1] == "----"]
        heard = dict(ensemble.trace_heard)
    entries = [(float(t), connection, text) for t, connection, text in entries]
    killed = {c for t, c, text in entries if t_kill <= t <= t_kill + 1.0 and text == "closed by client"}
    latch = {c for t, c, text in entries if text.startswith("create2 /spark/leader_election/") and text.endswith("-> ok")}
    sessions = killed & latch
    event = min((t for t, c, text in entries if t > t_kill and text.startswith("event deleted /spark/leader_election/")),
                default=None)
    if len(sessions) != 1 or event is None:
        return None
    last = heard[sessions.pop()]
    return event - last, t_kill - last


def analyse(samples, kill_time, killed_master, active_before):
    """Take-over time, outage and the single-ALIVE check over the samples of one kill."""
    double = [(t, s) for t, s in samples if sum(1 for v in s.values() if v == "ALIVE") > 1]
    after = [(t, s) for t, s in samples if t >= kill_time]
    takeover = None
    if killed_master is not None:
        for t, states in after:
            if any(name != killed_master and v == "ALIVE" for name, v in states.items()):
                takeover = t - kill_time
                break
    else:
        # An ensemble member was killed: if some sample after the kill has no ALIVE master, the
        # take-over ends at the first ALIVE after it; if none lacks one, nothing had to take over.
        gap = next((t for t, states in after if "ALIVE" not in states.values()), None)
        if gap is None:
            takeover = 0.0 if after else None
        else:
            takeover = next((t - kill_time for t, states in after if t > gap and "ALIVE" in states.values()), None)
    outage, start = 0.0, None
    for t, states in after:
        if any(v == "ALIVE" for v in states.values()):
            if start is not None:
                outage = max(outage, t - start)
                start = None
        elif start is None:
            start = t
    if start is not None:
        outage = max(outage, after[-1][0] - start)
    transitions, previous = [], None
    for t, states in samples:
        if states != previous:
            transitions.append(("%+.1f" % (t - kill_time), dict(states)))
            previous = states
    alive_after = [name for name, v in (after[-1][1] if after else {}).items() if v == "ALIVE"]
    return {
        "double_alive_samples": len(double),
        "double_alive_first": ("%+.2f s" % (double[0][0] - kill_time), double[0][1]) if double else None,
        "leading_overlap_samples": sum(1 for _, s in samples if sum(1 for v in s.values() if v in LEADING) > 1),
        "takeover_s": takeover,
        "outage_s": outage,
        "active_before": active_before,
        "alive_at_end": alive_after,
        "samples": len(samples),
        "transitions": transitions,
    }


def run_once(kind, binary, spark_home, job_jar, full, keep, index, trace=False):
    """One run on a fresh ensemble: the master kill, then (full) the ensemble leader kill."""
    os.makedirs(WORK_DIR, exist_ok=True)
    root = tempfile.mkdtemp(prefix="spark-%s-" % kind, dir=WORK_DIR)
    processes = Processes()
    ensemble = Ensemble(kind, binary, root, trace)
    poller = spark = None
    report = {"kind": kind, "run": index, "scenarios": [], "root": root}
    ok = False
    try:
        began = time.monotonic()
        modes = ensemble.start()
        log("%s run %d: ensemble serving after %.1f s %s (%s)" % (kind, index, time.monotonic() - began,
                                                                   modes, ensemble.connect_string))
        spark = Spark(spark_home, root, ensemble, processes)
        spark.job_jar = job_jar
        began = time.monotonic()
        spark.start_master("A")
        spark.start_master("B")

        def one_alive_one_standby():
            states = sorted(s.get("status") for s in spark.statuses().values())
            return states == ["ALIVE", "STANDBY"]
        spark.wait(one_alive_one_standby, "one ALIVE and one STANDBY master")
        active = spark.alive_master()
        log("masters up after %.1f s: %s ALIVE" % (time.monotonic() - began, active))
        poller = Poller(spark.masters)
        poller.start()
        spark.start_worker()
        spark.wait(lambda: spark.statuses()[spark.alive_master() or active].get("aliveworkers", 0) >= 1,
                   "the worker to register")
        log("worker registered with master %s" % spark.alive_master())

        # -- scenario 1: kill -9 the ALIVE master during a job ------------------------------------
        scenario = run_scenario(spark, ensemble, poller, "master", root)
        report["scenarios"].append(scenario)
        ok = scenario["ok"]
        if full and ok:
            killed = scenario["killed"]
            spark.start_master(killed)
            spark.wait(lambda: sorted(s.get("status") for s in spark.statuses().values()) == ["ALIVE", "STANDBY"],
                       "the restarted master %s to be STANDBY" % killed)
            log("master %s restarted as STANDBY" % killed)
            scenario = run_scenario(spark, ensemble, poller, "ensemble-leader", root)
            report["scenarios"].append(scenario)
            ok = scenario["ok"]
        return report, ok
    except (RuntimeError, ServerError, OSError) as error:
        report["error"] = str(error)
        log("FAILED: %s" % error)
        print(ensemble.tails(), flush=True)
        if spark is not None:
            for name, master in spark.masters.items():
                if master.log_path:
                    print("---- master %s log tail (%s)\n%s" % (name, master.log_path, tail(master.log_path)))
            if spark.worker is not None:
                print("---- worker log tail\n%s" % tail(spark.worker_log), flush=True)
        return report, False
    finally:
        if poller is not None:
            poller.stop()
        processes.kill_all()
        ensemble.stop()
        if trace:
            report["trace"] = {key: count for key, count in ensemble.trace_counts.items()
                               if not key.startswith("closed by")}
            with open(os.path.join(root, "trace.log"), "w") as journal:
                journal.write("\n".join(ensemble.trace_journal) + "\n")
        if keep:
            log("work directory kept: %s" % root)
        else:
            shutil.rmtree(root, ignore_errors=True)
            report["root"] = None


def run_scenario(spark, ensemble, poller, what, root):
    """Runs a job, kills the ALIVE master or the ensemble leader after its first round, checks."""
    number = 1 if what == "master" else 2
    before = spark.statuses()
    active = spark.alive_master()
    app_count_before = len(before[active].get("completedapps", [])) if active else 0
    job = spark.submit(os.path.join(root, "job-%d.log" % number))
    t_submit = time.monotonic()
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not job.first_round.wait(0.2) and job.process.poll() is None and time.monotonic() < deadline:
        pass
    if not job.first_round.is_set():
        raise RuntimeError("job %d did not finish a round; log tail:\n%s" % (number, tail(job.log_path)))
    status = spark.statuses()[active]
    app_ids = [app.get("id") for app in status.get("activeapps", [])]
    tree = znode_tree(ensemble.connect_string)
    t_kill = time.monotonic()
    if what == "master":
        spark.masters[active].kill()
        killed, victim = active, "master %s (pid %d)" % (active, spark.masters[active].process.pid)
        election = None
    else:
        leader = ensemble.leader()
        if leader is None:
            raise RuntimeError("no ensemble leader to kill")
        ensemble.kill(leader)
        killed, victim = None, "%s leader member %d" % (ensemble.kind, leader)
        election = ensemble.serving_again()
    log("job %d: killed %s %.1f s after submit (app %s)" % (number, victim, t_kill - t_submit, app_ids))
    with ensemble.trace_lock:
        ensemble.trace_journal.append("%.3f ---- killed %s" % (t_kill, victim))
    result = job.wait()
    time.sleep(1.0)  # a few more samples after the job
    t_end = time.monotonic()
    analysis = analyse(poller.since(t_submit), t_kill, killed, active)
    # What the master that is ALIVE at the end knows: the worker and the application it recovered.
    final = spark.statuses()
    alive_now = [name for name, s in final.items() if s.get("status") == "ALIVE"]
    recovered = {}
    if alive_now:
        status = final[alive_now[0]]
        known = [a.get("id") for a in status.get("activeapps", []) + status.get("completedapps", [])]
        recovered = {"master": alive_now[0], "aliveworkers": status.get("aliveworkers"),
                     "app_known": all(app in known for app in app_ids) if app_ids else None}
    exited = {name: m.process.returncode for name, m in spark.masters.items()
              if not m.killed and m.process is not None and m.process.poll() is not None}
    for name in exited:
        spark.masters[name].exited = True
    scenario = {
        "masters_exited": exited,
        "what": what, "victim": victim, "killed": killed, "kill_after_submit_s": round(t_kill - t_submit, 2),
        "job": result, "ensemble_reelection_s": election, "recovered": recovered, "znodes_before_kill": tree,
        "duration_s": round(t_end - t_submit, 1),
    }
    scenario.update(analysis)
    if ensemble.proxies and what == "master":
        traced = expiry_after_last_heard(ensemble, t_kill)
        if traced is not None:
            lag, silent_before_kill = traced
            scenario["expiry_after_last_heard_s"] = round(lag, 3)
            log("job %d: the killed master's latch session was last heard %.2f s before the kill; the standby "
                "saw its latch node deleted %.2f s after that (maxSessionTimeout %.1f s)"
                % (number, silent_before_kill, lag, MAX_SESSION_TIMEOUT_MS / 1000.0))
    problems = []
    if analysis["double_alive_samples"]:
        problems.append("two ALIVE masters in %d samples (first %s)" % (analysis["double_alive_samples"],
                                                                       analysis["double_alive_first"]))
    if analysis["takeover_s"] is None:
        problems.append("no master became ALIVE after the kill")
    if not result["correct"]:
        problems.append("job result wrong or missing: %s" % result)
    if len(alive_now) != 1:
        problems.append("%d ALIVE masters at the end" % len(alive_now))
    elif not recovered.get("aliveworkers"):
        problems.append("the ALIVE master has no live worker at the end")
    elif recovered.get("app_known") is False:
        problems.append("the ALIVE master does not know application %s" % app_ids)
    scenario["problems"] = problems
    scenario["ok"] = not problems
    log("job %d (%s kill): result %s (%s), take-over %s, no ALIVE master for %.1f s, max ALIVE at once %s, "
        "ALIVE at end %s, masters that quit %s, worker/app recovered %s%s"
        % (number, what, result["total"], "correct" if result["correct"] else "WRONG",
           "%.2f s" % analysis["takeover_s"] if analysis["takeover_s"] is not None else "never",
           analysis["outage_s"], 2 if analysis["double_alive_samples"] else 1, alive_now, exited or "none", recovered,
           "" if not problems else " -- PROBLEMS: " + "; ".join(problems)))
    if problems:
        for name, master in spark.masters.items():
            print("---- master %s log tail (%s)\n%s" % (name, master.log_path, tail(master.log_path, 40)))
        print("---- job log tail\n%s" % tail(job.log_path, 30))
        print("---- states\n%s" % "\n".join("%s %s" % item for item in analysis["transitions"]))
    return scenario


def self_check(binary, spark_home, job_jar, keep):
    """The single-ALIVE check must see a split brain: master B is given another
    spark.deploy.zookeeper.dir, so each master wins a latch of its own and both become ALIVE.
    Returns True when the analysis finds samples with two ALIVE masters."""
    os.makedirs(WORK_DIR, exist_ok=True)
    root = tempfile.mkdtemp(prefix="spark-selfcheck-", dir=WORK_DIR)
    processes = Processes()
    ensemble = Ensemble("minizk", binary, root)
    poller = None
    try:
        ensemble.start()
        spark = Spark(spark_home, root, ensemble, processes)
        spark.job_jar = job_jar
        spark.masters["B"].extra_options = ["-Dspark.deploy.zookeeper.dir=/spark-elsewhere"]
        poller = Poller(spark.masters)
        poller.start()
        t0 = time.monotonic()
        spark.start_master("A")
        spark.start_master("B")
        spark.wait(lambda: all(s.get("status") == "ALIVE" for s in spark.statuses().values()),
                   "both masters of the split configuration to be ALIVE")
        time.sleep(1.0)
        analysis = analyse(poller.since(t0), t0, None, None)
        log("self-check (masters under /spark and /spark-elsewhere): %d samples with two ALIVE masters -> %s"
            % (analysis["double_alive_samples"], "caught" if analysis["double_alive_samples"] else "MISSED"))
        return analysis["double_alive_samples"] > 0
    except (RuntimeError, ServerError, OSError) as error:
        log("self-check FAILED: %s" % error)
        return False
    finally:
        if poller is not None:
            poller.stop()
        processes.kill_all()
        ensemble.stop()
        if keep:
            log("work directory kept: %s" % root)
        else:
            shutil.rmtree(root, ignore_errors=True)


def summarise(reports):
    lines = []
    kinds = sorted({r["kind"] for r in reports}, key=lambda k: (k != "minizk", k))
    for kind in kinds:
        for what in ("master", "ensemble-leader"):
            scenarios = [s for r in reports if r["kind"] == kind for s in r["scenarios"] if s["what"] == what]
            failed_runs = [r for r in reports if r["kind"] == kind and "error" in r]
            if not scenarios and not failed_runs:
                continue
            takeovers = [s["takeover_s"] for s in scenarios if s["takeover_s"] is not None]
            outages = [s["outage_s"] for s in scenarios]
            lines.append(
                "%-7s %-16s runs %d  take-over median %s (min %s, max %s)  longest no-ALIVE median %s  "
                "single ALIVE %d/%d  correct %d/%d%s"
                % (kind, what + " kill", len(scenarios),
                   "%.2f s" % statistics.median(takeovers) if takeovers else "-",
                   "%.2f" % min(takeovers) if takeovers else "-", "%.2f" % max(takeovers) if takeovers else "-",
                   "%.2f s" % statistics.median(outages) if outages else "-",
                   sum(1 for s in scenarios if not s["double_alive_samples"]), len(scenarios),
                   sum(1 for s in scenarios if s["job"]["correct"]), len(scenarios),
                   "  (%d runs failed before)" % len(failed_runs) if failed_runs and what == "master" else ""))
    return "\n".join(lines)


def trace_table(reports):
    """What Spark's masters sent and what each kind answered, summed over the runs; the lines that
    appear for one kind only are marked."""
    kinds = sorted({r["kind"] for r in reports}, key=lambda k: (k != "minizk", k))
    totals = {kind: collections.Counter() for kind in kinds}
    for report in reports:
        totals[report["kind"]].update(report.get("trace", {}))
    keys = sorted(set().union(*totals.values()))
    lines = ["\n== what Spark's masters sent and were answered (counts over all runs; * = one kind only;",
             "   the proxies show /zookeeper/config with their own ports, which Curator reconnects to)",
             "  " + "".join("%8s" % kind for kind in kinds) + "  request -> reply"]
    for key in keys:
        counts = [totals[kind][key] for kind in kinds]
        marker = "*" if len(kinds) > 1 and 0 in counts else " "
        lines.append(marker + " " + "".join("%8d" % c for c in counts) + "  " + key)
    return "\n".join(lines)


def main(argv):
    parser = argparse.ArgumentParser(prog="python3 -m compat.spark_ha")
    parser.add_argument("--spark-home", required=True)
    parser.add_argument("--job-jar", required=True)
    parser.add_argument("--kinds", default="minizk,zk")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--ci", action="store_true", help="one run on MiniZK, the master kill only")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--json", default=None, help="write every measurement to this file")
    parser.add_argument("--minizk", default=None)
    parser.add_argument("--self-check", action="store_true",
                        help="only check that the single-ALIVE check catches a split brain (two masters "
                             "under different spark.deploy.zookeeper.dir on MiniZK)")
    parser.add_argument("--trace", action="store_true",
                        help="put recording proxies between Spark and the members and compare what each kind "
                             "answered (requests by opcode, path and mode with their errors, watch events)")
    args = parser.parse_args(argv)
    kinds = ["minizk"] if args.ci or args.self_check else [k for k in args.kinds.split(",") if k]
    runs = 1 if args.ci else args.runs
    binary = args.minizk or minizk_binary() if "minizk" in kinds else None
    if binary and not os.access(binary, os.X_OK):
        print("minizk binary not found: %s (swift build first, or set MINIZK_BIN)" % binary, file=sys.stderr)
        return 2

    def terminate(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)

    if args.self_check:
        caught = self_check(binary, args.spark_home, args.job_jar, args.keep)
        print("spark-ha self-check: %s" % ("OK" if caught else "FAILED"))
        return 0 if caught else 1
    log("Spark %s, job %s; ensembles: %s; %d run(s) each; %s" % (
        args.spark_home, args.job_jar, ",".join(kinds), runs, "master kill only" if args.ci else
        "master kill then ensemble leader kill"))
    log("servers: tickTime=%d maxSessionTimeout=%d; Spark: spark.worker.timeout=%d (s), "
        "recovery timeout = worker timeout, session asked 60000 ms (SparkCuratorUtil)"
        % (TICK_MS, MAX_SESSION_TIMEOUT_MS, SPARK_WORKER_TIMEOUT_S))
    reports, all_ok = [], True
    began = time.monotonic()
    for index in range(1, runs + 1):
        for kind in kinds:
            report, ok = run_once(kind, binary, args.spark_home, args.job_jar, not args.ci, args.keep, index,
                                  args.trace)
            reports.append(report)
            all_ok = all_ok and ok
    print("\n== summary (%.0f s)" % (time.monotonic() - began))
    print(summarise(reports))
    if args.trace:
        print(trace_table(reports))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(reports, out, indent=1, default=str)
    print("spark-ha: %s" % ("OK" if all_ok else "FAILED"))
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
