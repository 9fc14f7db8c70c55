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
# usage: scripts/zktesting-bench.sh [RUNS] [--svg FILE]    (default 5 runs). A benchmark: it
# asserts nothing. --svg also draws the medians as an SVG chart. Progress (run k of n, time left)
# goes to standard error.
# Environment: MINIZK_BIN (default: .build/debug/minizk).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
RUNS=5
SVG=""
while [ $# -gt 0 ]; do
    case "$1" in
        --svg) SVG=$2; shift 2 ;;
        *) RUNS=$1; shift ;;
    esac
done
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

python3 - "$RUNS" "$MINIZK_BIN" "$classes:$classpath" "$SVG" "$REPO/scripts" <<'PY'
import statistics, subprocess, sys, time
runs, minizk, cp, svg = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
sys.path.insert(0, sys.argv[5])
from benchplot import Progress, hbar_chart, write
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
progress = Progress(len(scenarios) * (runs + 1), "zktesting-bench")
medians = []
for name, ours, theirs in scenarios:
    timed(ours); timed(theirs)  # warm-up
    progress.step(f"({name}, warm-up)")
    a, b = [], []
    for run in range(runs):
        a.append(timed(ours)); b.append(timed(theirs))
        progress.step(f"({name}, run {run + 1})")
    ma, mb = statistics.median(a), statistics.median(b)
    medians.append((name, ma, mb))
    print(f"{name:24} {ma:11.3f} {mb:12.3f} {mb / ma:7.1f}x", flush=True)
if svg:
    write(svg, hbar_chart(
        "A test's ZooKeeper: MiniZK TestEnsemble against Curator", [n for n, _, _ in medians],
        [("Curator + ZooKeeper 3.8", [mb for _, _, mb in medians]), ("MiniZK testing-bench", [ma for _, ma, _ in medians])],
        unit="seconds, whole process (log scale)", log=True, subtitle=f"less is better; medians of {runs} runs"))
PY
