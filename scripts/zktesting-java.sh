#!/usr/bin/env bash
# MiniZK's TestingCluster (java/src/io/minizk/testing, Curator's TestingCluster interface over
# `minizk ensemble --control`) compiled with javac against Debian's libcurator-test-java, and a
# Curator recipe test on it (java/checks/LeaderLatchFailover.java: leader-latch fail-over on a
# session expiry and on the death of the ZooKeeper leader). Prints "N passed, M failed".
#
# usage: scripts/zktesting-java.sh
# Environment: MINIZK_BIN (default: .build/debug/minizk). Exit status 0 only when every check passed.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
JARS=/usr/share/java
classpath=""
for jar in curator-test curator-framework curator-client curator-recipes zookeeper zookeeper-jute guava slf4j-api slf4j-nop; do
    [ -f "$JARS/$jar.jar" ] || { echo "zktesting-java: $JARS/$jar.jar missing" >&2; exit 2; }
    classpath="$classpath:$JARS/$jar.jar"
done
classpath=${classpath#:}
classes=$(mktemp -d "${TMPDIR:-/tmp}/zktesting-java.XXXXXX")
trap 'rm -rf "$classes"' EXIT
javac -nowarn -d "$classes" -cp "$classpath" "$REPO"/java/src/io/minizk/testing/*.java "$REPO"/java/checks/*.java
MINIZK_BIN=${MINIZK_BIN:-$REPO/.build/debug/minizk}
java -Dminizk.bin="$MINIZK_BIN" -cp "$classes:$classpath" LeaderLatchFailover
