#!/usr/bin/env bash
# Real Apache Spark's standalone high availability (spark.deploy.recoveryMode=ZOOKEEPER) on a
# three-member MiniZK ensemble, beside the same runs on Apache ZooKeeper 3.8: fetches Spark
# (scripts/spark-fetch.sh), compiles the SumOfSquares job (compat/spark/) against Spark's jars and
# runs compat/spark_ha.py, which starts two masters and a worker, kills the ALIVE master during a
# job, then the ensemble's leader during a second job, and reports take-over times, whether more
# than one master was ALIVE at once, and the jobs' results.
#
# usage: scripts/spark-ha.sh [--ci] [--kinds minizk,zk] [--runs N] [--trace] [--self-check] [--keep] [--json FILE]
#
#   --ci        one run on MiniZK, the master kill only (70–90 s once Spark is cached)
#   (default)   one run on MiniZK and one on ZooKeeper, each with both kills
#   --runs N    N runs of each kind (the medians in docs/sparklite.md come from --runs 3)
#   --trace     recording proxies between the masters and the members; compares the replies per kind
#   --self-check  only shows that the single-ALIVE check catches two masters under different
#               spark.deploy.zookeeper.dir (a split brain); about 30 s
#
# Environment: MINIZK_BIN (default: swift build's bin path), SPARK_CACHE, SPARK_VERSION (see
# spark-fetch.sh). Needs Java 17, the Debian zookeeper package (for the ZooKeeper runs) and kazoo.
# Exit status 0 only when every run kept a single ALIVE master, took over and computed the right sum.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"

spark_home=$("$REPO/scripts/spark-fetch.sh")
build=$(mktemp -d "${TMPDIR:-/tmp}/minizk-spark-job.XXXXXX")
child=""
cleanup() {
    if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null || true; wait "$child" 2>/dev/null || true; fi
    rm -rf "$build"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

javac -nowarn -d "$build/classes" -cp "$spark_home/jars/*" "$REPO/compat/spark/SumOfSquares.java"
jar cf "$build/job.jar" -C "$build/classes" .

python3 -m compat.spark_ha --spark-home "$spark_home" --job-jar "$build/job.jar" "$@" &
child=$!
status=0
wait "$child" || status=$?
child=""
exit "$status"
