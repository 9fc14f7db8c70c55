#!/usr/bin/env bash
# Side by side, on this machine: what a test pays for its ZooKeeper with MiniZK's TestEnsemble
# (`minizk testing-bench`) and with Curator's TestingServer / TestingCluster (Debian's
# libcurator-test-java, java/bench/CuratorTestingBench.java). Each scenario is one whole process,
# timed from its start to its exit, RUNS times in turn (A B A B ...); the median is printed.
#
#   startup 1   TestEnsemble(1)  vs TestingServer:      start to a client's first write
#   startup 3   TestEnsemble(3)  vs TestingCluster(3):  start to a client's first write
#   expiry      manual clock     vs TestingServer:      an ephemeral's session expires (4 s timeout)
#   failover    TestEnsemble(3)  vs TestingCluster(3):  kill the leader, write again
#
# usage: scripts/zktesting-bench.sh [RUNS]     (default 5). A benchmark: it asserts nothing.
# Environment: MINIZK_BIN (default: .build/debug/minizk).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${1:-5}
MINIZK_BIN=${MINIZK_BIN:-$REPO/.build/debug/minizk}
JARS=/usr/share/java
classpath=""
for jar in curator-test curator-framework curator-client curator-recipes zookeeper zookeeper-jute guava slf4j-api slf4j-nop; do
    classpath="$classpath:$JARS/$jar.jar"
done
classpath=${classpath#:}
classes=$(mktemp -d "${TMPDIR:-/tmp}/zktesting-bench.XXXXXX")
trap 'rm -rf "$classes"' EXIT
javac -nowarn -d "$classes" -cp "$classpath" "$REPO"/java/bench/CuratorTestingBench.java

python3 - "$RUNS" "$MINIZK_BIN" "$classes:$classpath" <<'PY'
import statistics, subprocess, sys, time
runs, minizk, cp = int(sys.argv[1]), sys.argv[2], sys.argv[3]
java = ["java", "-cp", cp, "CuratorTestingBench"]
scenarios = [
    ("startup, 1 member", [minizk, "testing-bench", "--scenario", "startup", "--members", "1"], java + ["startup", "server"]),
    ("startup, 3 members", [minizk, "testing-bench", "--scenario", "startup", "--members", "3"], java + ["startup", "cluster"]),
    ("session expiry test", [minizk, "testing-bench", "--scenario", "expiry", "--members", "1"], java + ["expiry"]),
    ("leader fail-over test", [minizk, "testing-bench", "--scenario", "failover", "--members", "3"], java + ["failover"]),
]
def timed(command):
    started = time.monotonic()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - started
print(f"{'scenario':24} {'MiniZK (s)':>11} {'Curator (s)':>12} {'ratio':>8}   medians of {runs} whole-process runs")
for name, ours, theirs in scenarios:
    timed(ours); timed(theirs)  # warm-up
    a, b = [], []
    for _ in range(runs):
        a.append(timed(ours)); b.append(timed(theirs))
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"{name:24} {ma:11.3f} {mb:12.3f} {mb / ma:7.1f}x")
PY
