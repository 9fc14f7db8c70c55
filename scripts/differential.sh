#!/usr/bin/env bash
# Differential tests: the scenarios of compat/diff_scenarios.py run through kazoo
# and a raw-protocol client against Apache ZooKeeper 3.8 and against MiniZK;
# the normalised transcripts are compared and every difference is printed.
#
# usage: scripts/differential.sh [--self-check] [-s SCENARIO]... [--list] [--verbose]
#
#   --self-check   compare ZooKeeper with a second ZooKeeper instead of MiniZK;
#                  must report no difference (it checks the normalisation)
#   -s SCENARIO    run only scenarios whose name contains SCENARIO (repeatable)
#
# Environment: MINIZK_BIN (default: swift build --show-bin-path)/minizk;
# DIFFERENTIAL_TIMEOUT (seconds for the whole run, default 900).
# The last line is "N passed, N failed" (scenarios); exit status 1 on any
# difference.  Transcripts are kept in compat/work/differential/.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"

against=minizk
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --self-check) against=zk ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) args+=("$1") ;;
    esac
    shift
done

if [ "$against" = minizk ] && [[ " ${args[*]:-} " != *" --list "* ]]; then
    if [ -z "${MINIZK_BIN:-}" ]; then
        MINIZK_BIN="$(swift build --show-bin-path 2>/dev/null)/minizk"
    fi
    export MINIZK_BIN
    if [ ! -x "$MINIZK_BIN" ]; then
        echo "differential: no minizk binary at $MINIZK_BIN (run swift build or set MINIZK_BIN)" >&2
        exit 2
    fi
fi

timeout --kill-after=30 "${DIFFERENTIAL_TIMEOUT:-900}" \
    python3 -m compat.differential --a zk --b "$against" "${args[@]}"
status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "differential: killed after ${DIFFERENTIAL_TIMEOUT:-900}s"
    echo "0 passed, 1 failed"
fi
exit "$status"
