#!/bin/sh
# Swift recipes (ZKRecipes, via the zkrecipes-interop executable) and Apache Curator 5.4's recipes
# (compat/curator-interop/CuratorInterop.java, compiled here with javac) on the same paths: mutex,
# leader latch, atomic counter, service discovery, queue. Runs against MiniZK ($MINIZK_BIN, default
# /work/main/.build/debug/minizk) and against a standalone Apache ZooKeeper 3.8, each started on a
# free loopback port by compat/zk.py.
# Usage: scripts/recipes-interop.sh [minizk|zk|both]   (default both)
set -eu
cd "$(dirname "$0")/.."
KIND=${1:-both}
: "${MINIZK_BIN:=/work/main/.build/debug/minizk}"
export MINIZK_BIN
swift build --product zkrecipes-interop >/dev/null
SWIFT_INTEROP_BIN="$(swift build --show-bin-path)/zkrecipes-interop"
CLASSES=$(mktemp -d)
trap 'rm -rf "$CLASSES"' EXIT
JARS=""
for jar in curator-client curator-framework curator-recipes curator-x-discovery zookeeper zookeeper-jute guava \
    slf4j-api jackson-core jackson-databind jackson-annotations netty-handler netty-transport netty-common \
    netty-buffer netty-codec netty-resolver netty-transport-native-epoll netty-transport-native-unix-common; do
    [ -f "/usr/share/java/$jar.jar" ] && JARS="$JARS:/usr/share/java/$jar.jar"
done
JARS=${JARS#:}
javac -d "$CLASSES" -cp "$JARS" compat/curator-interop/CuratorInterop.java
CURATOR_INTEROP_CP="$CLASSES:$JARS"
export SWIFT_INTEROP_BIN CURATOR_INTEROP_CP
status=0
case "$KIND" in both) kinds="minizk zk" ;; *) kinds="$KIND" ;; esac
for kind in $kinds; do
    echo "== recipes interop against $kind"
    python3 -m compat.zk run --kind "$kind" -- python3 compat/curator-interop/run_checks.py || status=1
done
exit $status
