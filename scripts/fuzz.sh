#!/usr/bin/env bash
# Seeded random differential fuzzing, MiniZK against Apache ZooKeeper 3.8 (compat/fuzz.py):
# 2-4 raw-protocol sessions issue a random mix of every opcode; each step's answers, Stats and
# watch events are compared; a difference is shrunk to a minimal replay.
#
# usage: scripts/fuzz.sh [--topology standalone|ensemble|both] [--seeds 1-20 | --seed N]
#                        [--ops 300] [--self-check] [--skip-known] [--no-shrink]
#                        [--replay compat/work/fuzz/FILE.json] [--findings]
#        scripts/fuzz.sh --ci      the fixed CI set (both topologies, see compat/README.md)
#        scripts/fuzz.sh --long    200 seeds x 2,000 operations, both topologies
#
# Environment: MINIZK_BIN (default .build/debug/minizk; this script never builds);
# FUZZ_TIMEOUT (seconds for the whole run, default 3600).
# The last line is "fuzz: N seeds, N operations, N difference(s) in N s"; exit status 1 on
# any difference. Minimal replays are saved under compat/work/fuzz/.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export MINIZK_BIN="${MINIZK_BIN:-$REPO/.build/debug/minizk}"

args=()
for arg in "$@"; do
    case "$arg" in
        --ci) args+=(--topology both --seeds 1-20 --ops 500 --skip-known --shrink-seconds 30 --max-differences 3) ;;
        --long) args+=(--topology both --seeds 1-200 --ops 2000 --skip-known) ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) args+=("$arg") ;;
    esac
done

timeout --kill-after=30 "${FUZZ_TIMEOUT:-3600}" python3 -m compat.fuzz "${args[@]}"
status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "fuzz: killed after ${FUZZ_TIMEOUT:-3600}s"
fi
exit "$status"
