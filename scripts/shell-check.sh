#!/usr/bin/env bash
# The same command script through `minizk shell` against MiniZK and ZooKeeper 3.8, and through
# ZooKeeper's zkCli against ZooKeeper 3.8; outputs compared with zxids, times and session ids
# masked. usage: scripts/shell-check.sh [--ci] [--keep-output DIR]
# Environment: MINIZK_BIN (default: swift build --show-bin-path)/minizk.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
if [ -z "${MINIZK_BIN:-}" ]; then
    MINIZK_BIN="$(swift build --show-bin-path 2>/dev/null)/minizk"
    export MINIZK_BIN
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
exec python3 scripts/shell_check.py "$@"
