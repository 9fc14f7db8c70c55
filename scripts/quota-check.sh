#!/usr/bin/env bash
# Quotas through ZooKeeper's zkCli and `minizk shell` against MiniZK and ZooKeeper 3.8, both
# enforcing (zookeeper.enforceQuota), across a restart; outputs compared line for line.
# usage: scripts/quota-check.sh [--keep-output DIR]
# Environment: MINIZK_BIN (default: swift build --show-bin-path)/minizk.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
if [ -z "${MINIZK_BIN:-}" ]; then
    MINIZK_BIN="$(swift build --show-bin-path 2>/dev/null)/minizk"
    export MINIZK_BIN
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
exec python3 scripts/quota_check.py "$@"
