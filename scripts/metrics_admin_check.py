"""Checks MiniZK's Prometheus metrics and admin server against real tools and ZooKeeper 3.8.

1. MiniZK's /metrics is parsed by prometheus-client's parser and by `promtool check metrics`.
2. A real Prometheus server scrapes MiniZK and answers a query through its HTTP API.
3. Metric names and types are compared with ZooKeeper 3.8's: Debian's jars do not carry the
   Prometheus provider, so the reference is the list taken from ZooKeeper's source
   (compat/zookeeper-3.8-metrics.json) plus the numeric `mntr` keys of a running ZooKeeper 3.8,
   which its provider exports as gauges.
4. The admin server's /commands/<name> answers are compared with ZooKeeper 3.8's own admin
   server (Jetty), endpoint by endpoint: the same keys, and the same values where they are not
   host- or time-specific.

Both servers get the same client traffic (kazoo): a znode with data, an ephemeral child, two
watches, kept open while the endpoints are read.

usage: python3 scripts/metrics_admin_check.py [--ci] [--keep]
Exit status 0 when every check passes; differences listed in KNOWN_DIFFERENCES are reported but
do not fail the run.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from compat import zk  # noqa: E402

# What every ZooKeeper dashboard and alert reads: the mntr gauges, the latency, fsync, snapshot
# and election summaries, elections and learners. Each must be exported with ZooKeeper's type.
REQUIRED = {
    "znode_count": "gauge", "watch_count": "gauge", "ephemerals_count": "gauge",
    "approximate_data_size": "gauge", "outstanding_requests": "gauge", "num_alive_connections": "gauge",
    "avg_latency": "gauge", "min_latency": "gauge", "max_latency": "gauge", "packets_received": "gauge",
    "packets_sent": "gauge", "open_file_descriptor_count": "gauge", "max_file_descriptor_count": "gauge",
    "uptime": "gauge", "global_sessions": "gauge", "readlatency": "summary", "updatelatency": "summary",
    "fsynctime": "summary", "snapshottime": "summary", "election_time": "summary", "looking_count": "counter",
    "bytes_received_count": "counter", "response_bytes": "counter", "connection_request_count": "counter",
    "last_client_response_size": "gauge", "min_client_response_size": "gauge", "max_client_response_size": "gauge",
}
# Leader-only gauges, checked on an ensemble's leader by the Swift tests (a standalone server has none).
LEADER_ONLY = {"learners", "synced_followers", "pending_syncs"}

# Commands of ZooKeeper 3.8 that MiniZK does not answer.
MISSING_COMMANDS = {"observers", "observer_connection_stat_reset", "system_properties"}

# Values compared per command (dotted paths into the answer); everything else is compared by key only.
COMPARED_VALUES = {
    "ruok": ["command", "error"],
    "is_read_only": ["read_only"],
    "watch_summary": ["num_connections", "num_paths", "num_total_watches"],
    "watches": ["session_id_to_watched_paths"],
    "watches_by_path": ["path_to_session_ids"],
    "dump": ["session_id_to_ephemeral_paths", "expiry_time_to_session_ids.*"],
    "leader": ["error"],
    "zabstate": ["voting", "zabstate"],
    "voting_view": ["current_config"],
    "get_trace_mask": ["tracemask"],
    "server_stats": ["read_only", "server_stats.server_state", "server_stats.outstanding_requests",
                     "server_stats.num_alive_client_connections", "server_stats.provider_null",
                     "server_stats.fsync_threshold_exceed_count"],
    "stats": ["read_only", "server_stats.server_state", "connections.0.outstanding_requests",
              "connections.0.interest_ops"],
    "connections": ["connections.0.last_operation", "connections.0.outstanding_requests",
                    "connections.0.session_timeout", "connections.0.interest_ops"],
    "monitor": ["server_state", "ephemerals_count", "watch_count", "num_alive_connections",
                "outstanding_requests", "global_sessions", "local_sessions"],
    "configuration": ["tick_time", "min_session_timeout", "max_session_timeout", "server_id",
                      "client_port_listen_backlog"],
}

# Differences known and explained in docs/operations.md; reported, not failed.
KNOWN_DIFFERENCES = {
    # Both run with maxClientCnxns=0 here (compat/zk.py); reported should a default differ.
    "configuration: key max_client_cnxns value",
    # ZooKeeper's digest log is empty unless digests are enabled; MiniZK always has the tree's digest.
    "hash: key digests value",
    # ZooKeeper counts its JVM and thread pools, MiniZK its own.
    "monitor: keys only in ZooKeeper",
    "monitor: keys only in MiniZK",
    # The JVM's properties; MiniZK reports the same host, os and user keys.
    "environment: JVM keys",
    # Expiry buckets are times: ZooKeeper's are relative to its start, MiniZK's wall-clock ms.
}


def log(message):
    print(message, flush=True)


def http_get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read().decode()


def session_neutral(value, sessions):
    """Replaces session ids (as numbers or decimal strings) by 'SESSION' so answers compare."""
    if isinstance(value, dict):
        return {("SESSION" if k in sessions else k): session_neutral(v, sessions) for k, v in value.items()}
    if isinstance(value, list):
        return [session_neutral(v, sessions) for v in value]
    if isinstance(value, int) and str(value) in sessions:
        return "SESSION"
    return value


def lookup(value, path):
    if path.endswith(".*"):
        inner = lookup(value, path[:-2])
        return sorted(json.dumps(v, sort_keys=True) for v in inner.values() if v != []) if isinstance(inner, dict) else inner
    for part in path.split("."):
        if isinstance(value, list):
            index = int(part)
            if index >= len(value):
                return ("<absent>",)
            value = value[index]
        elif isinstance(value, dict):
            if part not in value:
                return ("<absent>",)
            value = value[part]
        else:
            return ("<absent>",)
    return value


# Objects keyed by data (session ids, expiry times, paths, server ids), compared by value instead.
DATA_MAPS = {"expiry_time_to_session_ids", "session_id_to_ephemeral_paths", "session_id_to_watched_paths",
             "path_to_session_ids", "current_config"}


def key_shape(value):
    """The keys of an answer, recursively: objects by key, lists by their first element."""
    if isinstance(value, dict):
        return {k: (None if k in DATA_MAPS else key_shape(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [key_shape(value[0])] if value and isinstance(value[0], (dict, list)) else []
    return None


def shape_differences(prefix, zk_shape, mini_shape, out):
    if isinstance(zk_shape, dict) and isinstance(mini_shape, dict):
        for key in sorted(set(zk_shape) - set(mini_shape)):
            out.append("%s%s only in ZooKeeper" % (prefix, key))
        for key in sorted(set(mini_shape) - set(zk_shape)):
            out.append("%s%s only in MiniZK" % (prefix, key))
        for key in sorted(set(zk_shape) & set(mini_shape)):
            shape_differences("%s%s." % (prefix, key), zk_shape[key], mini_shape[key], out)
    elif isinstance(zk_shape, list) and isinstance(mini_shape, list):
        if zk_shape and mini_shape:
            shape_differences(prefix + "0.", zk_shape[0], mini_shape[0], out)


class ZooKeeperWithAdmin(zk.ZooKeeperServer):
    """ZooKeeper 3.8 with its Jetty admin server on a free port (servlet-api is not in the jar's
    manifest)."""

    def __init__(self, **kwargs):
        self.admin_port = zk.free_port()
        super().__init__(**kwargs)

    def _prepare(self):
        super()._prepare()
        with open(self.config_path) as handle:
            text = handle.read().replace("admin.enableServer=false\n", "")
        with open(self.config_path, "w") as handle:
            handle.write(text + "admin.enableServer=true\nadmin.serverAddress=127.0.0.1\nadmin.serverPort=%d\n"
                         % self.admin_port)

    def _command(self):
        command = super()._command()
        index = command.index("-cp") + 1
        command[index] += ":/usr/share/java/servlet-api.jar"
        return command


class MiniZKWithOperations(zk.MiniZKServer):
    def __init__(self, **kwargs):
        self.metrics_port = zk.free_port()
        self.admin_port = zk.free_port()
        super().__init__(**kwargs)

    def _command(self):
        return super()._command() + ["--metrics-port", str(self.metrics_port), "--admin-port", str(self.admin_port)]


def wait_http(url, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return http_get(url)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def traffic(address):
    """The same client state on both servers; returns the client (keep it open) and its session."""
    from kazoo.client import KazooClient

    client = KazooClient(hosts=address, timeout=10)
    client.start(timeout=15)
    client.create("/a", b"x")
    client.create("/a/e", b"", ephemeral=True)
    client.get("/a", watch=lambda event: None)
    client.exists("/b", watch=lambda event: None)
    for _ in range(5):
        client.get("/a")
    return client, client.client_id[0]


def check_prometheus_text(text, failures):
    from prometheus_client.parser import text_string_to_metric_families

    families = {}
    try:
        for family in text_string_to_metric_families(text):
            families[family.name] = family.type
    except Exception as error:  # the parser's own error, whatever its class
        failures.append("prometheus-client cannot parse /metrics: %s" % error)
        return families
    log("prometheus-client parsed %d metric families" % len(families))
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    output = (result.stdout + result.stderr).strip()
    problems = [line for line in output.splitlines() if line.strip()]
    # Lint advice about names ZooKeeper chose (counters without _total) is not a format error.
    errors = [line for line in problems if "_total" not in line and "non-histogram and non-summary" not in line]
    if errors:
        failures.append("promtool check metrics: %s" % "; ".join(errors))
    else:
        log("promtool check metrics: format valid (%d naming notes on ZooKeeper's names: %s)"
            % (len(problems), "; ".join(sorted(set(p.split(": ", 1)[-1] for p in problems)))))
    return families


def run_prometheus(metrics_port, work, failures, expected_znodes):
    port = zk.free_port()
    config = os.path.join(work, "prometheus.yml")
    with open(config, "w") as handle:
        handle.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                     "scrape_configs:\n  - job_name: minizk\n    static_configs:\n"
                     "      - targets: ['127.0.0.1:%d']\n" % metrics_port)
    log_file = open(os.path.join(work, "prometheus.log"), "w")
    process = subprocess.Popen(
        ["prometheus", "--config.file=" + config, "--storage.tsdb.path=" + os.path.join(work, "tsdb"),
         "--web.listen-address=127.0.0.1:%d" % port],
        stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http("http://127.0.0.1:%d/-/ready" % port, timeout=60)
        deadline = time.monotonic() + 60
        answer = None
        while time.monotonic() < deadline:
            _, _, body = http_get("http://127.0.0.1:%d/api/v1/query?query=znode_count" % port)
            result = json.loads(body)["data"]["result"]
            if result:
                answer = result[0]
                break
            time.sleep(0.5)
        if answer is None:
            failures.append("Prometheus never answered znode_count")
            return
        value = float(answer["value"][1])
        _, _, body = http_get("http://127.0.0.1:%d/api/v1/query?query=up" % port)
        up = json.loads(body)["data"]["result"][0]["value"][1]
        _, _, body = http_get("http://127.0.0.1:%d/api/v1/query?query=readlatency_count" % port)
        reads = json.loads(body)["data"]["result"]
        log("Prometheus %s scraped MiniZK: up=%s, znode_count=%g (mntr says %d), readlatency_count=%s"
            % (subprocess.run(["prometheus", "--version"], capture_output=True, text=True).stdout.split("\n")[0],
               up, value, expected_znodes, reads[0]["value"][1] if reads else "none"))
        if up != "1" or value != expected_znodes or not reads:
            failures.append("Prometheus query: up=%s znode_count=%g expected %d" % (up, value, expected_znodes))
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_file.close()


def compare_names(families, zk_monitor, failures, verbose):
    with open(os.path.join(REPO, "compat", "zookeeper-3.8-metrics.json")) as handle:
        reference = json.load(handle)["metrics"]
    # The provider exports every numeric mntr value of a running server as a gauge.
    for key, value in zk_monitor.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in reference:
            if not key.split("_", 1)[0] in ("avg", "min", "max", "cnt", "sum", "p50", "p95", "p99", "p999"):
                reference[key] = "gauge"
    for name, kind in sorted(REQUIRED.items()):
        if reference.get(name) != kind:
            failures.append("reference list disagrees on %s: %s" % (name, reference.get(name)))
        if families.get(name) != kind:
            failures.append("metric %s: MiniZK exports %s, ZooKeeper %s" % (name, families.get(name), kind))
    shared = sorted(n for n in reference if n in families)
    wrong_type = [n for n in shared if families[n] != reference[n]]
    for name in wrong_type:
        failures.append("metric %s: MiniZK type %s, ZooKeeper %s" % (name, families[name], reference[name]))
    missing = sorted(n for n in reference if n not in families and n not in LEADER_ONLY)
    own = sorted(n for n in families if n not in reference)
    log("metric names: %d of ZooKeeper 3.8's %d exported with its type (%d required ones all present), "
        "%d leader-only checked by the Swift tests, %d not exported; %d MiniZK-only (minizk_*)"
        % (len(shared), len(reference), len(REQUIRED), len(LEADER_ONLY), len(missing), len(own)))
    if verbose:
        log("  not exported: " + ", ".join(missing))
        log("  MiniZK-only: " + ", ".join(own))


def compare_admin(zk_server, mini, sessions, failures, verbose):
    _, _, listing = http_get("http://127.0.0.1:%d/commands" % zk_server.admin_port)
    zk_commands = sorted(set(part.split('"')[0] for part in listing.split('href="/commands/')[1:]))
    _, _, mini_listing = http_get("http://127.0.0.1:%d/commands" % mini.admin_port)
    mini_commands = sorted(set(part.split('"')[0] for part in mini_listing.split('href="/commands/')[1:]))
    known, unexpected, identical = [], [], []
    for command in zk_commands:
        if command in ("connection_stat_reset", "stat_reset", "set_trace_mask", "observer_connection_stat_reset"):
            continue  # side effects; their answers are checked by the Swift tests
        if command not in mini_commands:
            (known if command in MISSING_COMMANDS else unexpected).append("%s: not answered by MiniZK" % command)
            continue
        zk_answer = json.loads(http_get("http://127.0.0.1:%d/commands/%s" % (zk_server.admin_port, command))[2])
        mini_answer = json.loads(http_get("http://127.0.0.1:%d/commands/%s" % (mini.admin_port, command))[2])
        differences = []
        if command == "monitor":
            zk_keys, mini_keys = set(zk_answer), set(mini_answer)
            only_zk, only_mini = sorted(zk_keys - mini_keys), sorted(mini_keys - zk_keys)
            if only_zk:
                differences.append(("monitor: keys only in ZooKeeper", "%d (%s ...)" % (len(only_zk), ", ".join(only_zk[:6]))))
            if only_mini:
                differences.append(("monitor: keys only in MiniZK", ", ".join(only_mini)))
            for key in sorted(zk_keys & mini_keys):
                if type(zk_answer[key]) is not type(mini_answer[key]) and not (
                        isinstance(zk_answer[key], (int, float)) and isinstance(mini_answer[key], (int, float))):
                    differences.append(("monitor: key %s type" % key, "%r vs %r" % (zk_answer[key], mini_answer[key])))
        else:
            if command == "environment":
                jvm = sorted(k for k in zk_answer if k.startswith("java.") or k.startswith("os.memory."))
                differences.append(("environment: JVM keys", ", ".join(jvm)))
                zk_answer = {k: v for k, v in zk_answer.items() if k not in jvm}
            shape = []
            shape_differences("", key_shape(zk_answer), key_shape(mini_answer), shape)
            for line in shape:
                differences.append(("%s: key %s" % (command, line.split(" only in ")[0]), line))
            if command == "hash" and zk_answer.get("digests") != mini_answer.get("digests"):
                differences.append(("hash: key digests value", "%r vs %r" % (zk_answer["digests"], mini_answer["digests"])))
        zk_neutral = session_neutral(zk_answer, sessions)
        mini_neutral = session_neutral(mini_answer, sessions)
        for path in COMPARED_VALUES.get(command, []) + (["max_client_cnxns"] if command == "configuration" else []):
            a, b = lookup(zk_neutral, path), lookup(mini_neutral, path)
            if a != b:
                differences.append(("%s: key %s value" % (command, path), "ZooKeeper %r, MiniZK %r" % (a, b)))
        if not differences:
            identical.append(command)
        for label, detail in differences:
            (known if label in KNOWN_DIFFERENCES else unexpected).append("%s (%s)" % (label, detail))
    extra = sorted(set(mini_commands) - set(zk_commands))
    log("admin server: %d of ZooKeeper's %d commands compared, %d with the same keys and compared values (%s)"
        % (len([c for c in zk_commands if c in mini_commands]), len(zk_commands), len(identical), ", ".join(identical)))
    if extra:
        unexpected.append("commands MiniZK lists that ZooKeeper does not: %s" % ", ".join(extra))
    for line in known:
        log("  known difference: " + line)
    for line in unexpected:
        log("  DIFFERENCE: " + line)
    failures.extend("admin: " + line for line in unexpected)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ci", action="store_true", help="terse output, for CI")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    started = time.monotonic()
    work = tempfile.mkdtemp(prefix="metrics-admin-")
    checks = {"format": [], "prometheus": [], "names": [], "admin": []}
    zk_server = ZooKeeperWithAdmin()
    mini = MiniZKWithOperations(extended_types=False)
    clients = []
    try:
        zk_server.start()
        mini.start()
        zk_client, zk_session = traffic(zk_server.address)
        mini_client, mini_session = traffic(mini.address)
        clients = [zk_client, mini_client]
        sessions = {str(zk_session), str(mini_session)}
        wait_http("http://127.0.0.1:%d/commands" % zk_server.admin_port, timeout=30)

        status, content_type, text = http_get("http://127.0.0.1:%d/metrics" % mini.metrics_port)
        if status != 200 or not content_type.startswith("text/plain"):
            checks["format"].append("/metrics answered %s %s" % (status, content_type))
        families = check_prometheus_text(text, checks["format"])
        mini_monitor = json.loads(http_get("http://127.0.0.1:%d/commands/monitor" % mini.admin_port)[2])
        zk_monitor = json.loads(http_get("http://127.0.0.1:%d/commands/monitor" % zk_server.admin_port)[2])
        compare_names(families, zk_monitor, checks["names"], not args.ci)
        run_prometheus(mini.metrics_port, work, checks["prometheus"], mini_monitor["znode_count"])
        compare_admin(zk_server, mini, sessions, checks["admin"], not args.ci)
    finally:
        for client in clients:
            try:
                client.stop()
                client.close()
            except Exception:
                pass
        mini.destroy()
        zk_server.destroy()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    log("%.0f s" % (time.monotonic() - started))
    for name, failures in checks.items():
        for failure in failures:
            log("FAIL %s: %s" % (name, failure))
    failed = sum(1 for failures in checks.values() if failures)
    print("metrics-admin: %d passed, %d failed" % (len(checks) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
