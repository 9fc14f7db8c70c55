#!/usr/bin/env bash
# ZooKeeper's Java client and Apache Curator 5.4 against three-member ensembles of Apache
# ZooKeeper 3.8 and of MiniZK: compiles compat/java into compat/work/java and runs
# compat/java_ensemble.py, which starts each ensemble, runs the checks, kills and restarts members
# when the checks ask, and prints a check x server table.
#
# usage: scripts/compat-java.sh [--minizk-only | --zk-only] [--only NAME,...] [--keep] [--fault-check]
#
# --fault-check puts fault-injecting proxies (compat/java_faults.py) in front of the members and
# passes only when the checks fail that should: SetWatches replies with xid -8, and a member that
# keeps a connection open after its session was closed through another member.
#
# Environment: MINIZK_BIN (default: .build/debug/minizk). Needs the Debian packages zookeeper,
# libcurator-*-java and libcurator-discovery-java. Exit status 0 only when everything passed.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
JARS=/usr/share/java
kinds=zk,minizk
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --minizk-only) kinds=minizk ;;
        --zk-only) kinds=zk ;;
        --only) extra+=(--only "$2"); shift ;;
        --keep) extra+=(--keep) ;;
        --fault-check) extra+=(--fault-check) ;;
        *) echo "usage: $0 [--minizk-only | --zk-only] [--only NAME,...] [--keep] [--fault-check]" >&2; exit 2 ;;
    esac
    shift
done

classpath=""
for jar in curator-framework curator-client curator-recipes curator-x-discovery zookeeper zookeeper-jute \
        guava slf4j-api netty-all jackson-databind jackson-core jackson-annotations; do
    [ -f "$JARS/$jar.jar" ] || { echo "compat-java: $JARS/$jar.jar missing" >&2; exit 2; }
    classpath="$classpath:$JARS/$jar.jar"
done

classes="$REPO/compat/work/java"
rm -rf "$classes"
mkdir -p "$classes"
javac -nowarn -d "$classes" -cp "${classpath#:}" "$REPO"/compat/java/*.java

cd "$REPO"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
exec python3 -m compat.java_ensemble --classes "$classes" --kinds "$kinds" "${extra[@]}"
