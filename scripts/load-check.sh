#!/usr/bin/env bash
# Load held by a standalone MiniZK beside a standalone Apache ZooKeeper 3.8 (scripts/load_check.py):
# 10,000 sessions at once, 1,000,000 watches, a flood of connections from one address, each while
# a normal client's getData/setData latencies are measured; resident memory of each server.
#
# usage: scripts/load-check.sh [--ci] [--runs N] [--servers minizk,zk] [--scenarios ...] [--cycles N] [--depth N] [--keep] [--json FILE]
# --ci: 1,000 sessions, 100,000 watches, 1,000 flood attempts, one run (about 80 s).
# Environment: MINIZK_BIN (default: the release build, built if missing).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
# 10,000 sessions need as many descriptors in the load process and in each server.
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 12000 ]; then
    echo "load-check: the descriptor limit is $(ulimit -n); 10,000 sessions need about 12,000" >&2
fi
if [ -z "${MINIZK_BIN:-}" ]; then
    swift build -c release --product minizk >/dev/null
    MINIZK_BIN="$(swift build -c release --show-bin-path)/minizk"
    export MINIZK_BIN
fi
exec python3 scripts/load_check.py "$@"
