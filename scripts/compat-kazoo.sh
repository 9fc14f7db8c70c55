#!/usr/bin/env bash
# Run kazoo 2.11's own test suite (kazoo/tests, shipped in the wheel) against
# Apache ZooKeeper 3.8 (a three-member ensemble started by kazoo's harness) and
# against MiniZK (a one-member cluster from compat/kazoo_plugin.py), then print
# both pass/fail/skip counts and the tests that pass on ZooKeeper but fail on
# MiniZK.
#
# usage: scripts/compat-kazoo.sh [--minizk-only | --zk-only] [-k EXPR]
#                                [--no-rerun] [--self-check]
#
#   -k EXPR        pytest -k filter, for quick runs
#   --no-rerun     do not rerun failed tests once to tell flaky from failing
#   --self-check   put a standalone ZooKeeper behind the MiniZK plugin instead of
#                  minizk (checks the plugin while no server exists)
#
# Environment: MINIZK_BIN (default: swift build --show-bin-path)/minizk;
# MINIZK_CLUSTER_SIZE (1: one standalone minizk server; 3: an ensemble of three
# `minizk server --config` processes, as kazoo's own harness runs ZooKeeper);
# KAZOO_SUITE_TIMEOUT (seconds per whole run, default 1500);
# KAZOO_TEST_TIMEOUT (seconds per test, default 180);
# ZK_PORT_OFFSET (first port of kazoo's ZooKeeper ensemble, default 20000).
#
# Exit status: 0 when ZooKeeper passes everything and MiniZK fails only tests
# listed in compat/kazoo-known-failures.txt; 1 otherwise.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK="$REPO/compat/work/kazoo"
KNOWN="$REPO/compat/kazoo-known-failures.txt"
run_zk=1
run_minizk=1
rerun=1
self_check=0
filter=()

while [ $# -gt 0 ]; do
    case "$1" in
        --minizk-only) run_zk=0 ;;
        --zk-only) run_minizk=0 ;;
        --no-rerun) rerun=0 ;;
        --self-check) self_check=1 ;;
        -k) shift; filter=(-k "$1") ;;
        -k*) filter=(-k "${1#-k}") ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "compat-kazoo: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

SITE=$(python3 -c 'import kazoo, os; print(os.path.dirname(os.path.dirname(kazoo.__file__)))') || {
    echo "compat-kazoo: kazoo is not installed (pip install \"kazoo[test]==2.11.0\")" >&2
    exit 2
}
python3 -c 'import kazoo, sys; sys.exit(kazoo.version.__version__ != "2.11.0")' 2>/dev/null ||
    echo "compat-kazoo: warning: kazoo is not 2.11.0" >&2

mkdir -p "$WORK"
SUITE_TIMEOUT=${KAZOO_SUITE_TIMEOUT:-1500}
TEST_TIMEOUT=${KAZOO_TEST_TIMEOUT:-180}
PYTEST_ARGS=(-q -p no:cacheprovider -p no:warnings --timeout "$TEST_TIMEOUT" --tb=short
             --show-capture=no -o junit_family=xunit2 -o junit_logging=log)

# pytest_run LABEL XML [extra pytest args...]; runs from site-packages so that
# node ids are kazoo/tests/...; the environment for the run is set by callers.
pytest_run() {
    local label=$1 xml=$2
    shift 2
    (cd "$SITE" && env -u CI PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" \
        timeout --kill-after=30 "$SUITE_TIMEOUT" \
        python3 -m pytest "${PYTEST_ARGS[@]}" --junitxml="$xml" "$@") \
        2>&1 | tee "$WORK/$label.log"
    local status=${PIPESTATUS[0]}
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        echo "compat-kazoo: $label run killed after ${SUITE_TIMEOUT}s" >&2
    fi
    return 0
}

# rerun_failures LABEL XML RERUN_XML [known-file] [pytest args...]
rerun_failures() {
    local label=$1 xml=$2 rerun_xml=$3 known=$4
    shift 4
    rm -f "$rerun_xml"
    [ "$rerun" -eq 1 ] && [ -f "$xml" ] || return 0
    mapfile -t failed < <(python3 -m compat.kazoo_report failures "$xml" ${known:+--known "$known"})
    [ "${#failed[@]}" -gt 0 ] || return 0
    if [ "${#failed[@]}" -gt 60 ]; then
        echo "compat-kazoo: ${#failed[@]} failures on $label; not rerunning them"
        return 0
    fi
    echo "--- rerunning ${#failed[@]} failed $label test(s) once"
    pytest_run "$label-rerun" "$rerun_xml" "$@" "${failed[@]}"
}

cd "$REPO"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
report_args=(--known "$KNOWN")

if [ "$run_minizk" -eq 1 ] && [ "$self_check" -eq 0 ]; then
    if [ -z "${MINIZK_BIN:-}" ]; then
        MINIZK_BIN="$(swift build --show-bin-path 2>/dev/null)/minizk"
    fi
    export MINIZK_BIN
    if [ ! -x "$MINIZK_BIN" ]; then
        echo "compat-kazoo: no minizk binary at $MINIZK_BIN (run swift build or set MINIZK_BIN)" >&2
        exit 2
    fi
fi

if [ "$run_zk" -eq 1 ]; then
    echo "=== kazoo suite against Apache ZooKeeper 3.8 (three-member ensemble)"
    rm -f "$WORK/zk.xml"
    export ZOOKEEPER_CLASSPATH=/usr/share/java/zookeeper.jar:/usr/share/java/netty-codec.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar
    export ZOOKEEPER_VERSION=3.8.0
    export ZOOKEEPER_PORT_OFFSET=${ZK_PORT_OFFSET:-20000}
    start=$(date +%s)
    pytest_run zk "$WORK/zk.xml" "${filter[@]}" kazoo/tests
    rerun_failures zk "$WORK/zk.xml" "$WORK/zk-rerun.xml" "" "${filter[@]}"
    zk_seconds=$(( $(date +%s) - start ))
    report_args+=(--zk "$WORK/zk.xml" --zk-rerun "$WORK/zk-rerun.xml" --zk-seconds "$zk_seconds")
fi

if [ "$run_minizk" -eq 1 ]; then
    if [ "$self_check" -eq 1 ]; then
        export COMPAT_KAZOO_SERVER=zk
        echo "=== kazoo suite through the MiniZK plugin, standalone ZooKeeper behind it (self-check)"
    else
        export COMPAT_KAZOO_SERVER=minizk
        echo "=== kazoo suite against MiniZK ($MINIZK_BIN, ${MINIZK_CLUSTER_SIZE:-1}-member cluster)"
    fi
    export MINIZK_DESELECTED_FILE="$WORK/minizk-deselected.txt"
    rm -f "$WORK/minizk.xml" "$MINIZK_DESELECTED_FILE"
    start=$(date +%s)
    pytest_run minizk "$WORK/minizk.xml" -p compat.kazoo_plugin "${filter[@]}" kazoo/tests
    rerun_failures minizk "$WORK/minizk.xml" "$WORK/minizk-rerun.xml" "$KNOWN" \
        -p compat.kazoo_plugin
    minizk_seconds=$(( $(date +%s) - start ))
    report_args+=(--minizk "$WORK/minizk.xml" --minizk-rerun "$WORK/minizk-rerun.xml"
                  --minizk-seconds "$minizk_seconds" --deselected "$MINIZK_DESELECTED_FILE")
fi

if [ "$run_zk" -eq 0 ] && [ -f "$WORK/zk.xml" ]; then
    # Compare with the last ZooKeeper run, if there was one.
    report_args+=(--zk-reference "$WORK/zk.xml")
fi
python3 -m compat.kazoo_report summary "${report_args[@]}"
