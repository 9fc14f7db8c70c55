#!/usr/bin/env bash
# SparkLite's demo: a three-member MiniZK ensemble, two masters and N workers as
# processes; a word count whose active master and one worker are killed (kill -9)
# mid-job; the result checked against a single-process computation and the
# fail-over (kill -9 of the active master until the standby's first assignment)
# measured.  Fails when the result differs, or when the fail-over is not below
# the bound.
#
# usage: scripts/sparklite-demo.sh [--ci] [--runs N] [--bound-ms MS] [-- demo options...]
#   --ci         the short job (12 maps, 4 reduces), one run by default
#   --runs N     repeat the demo N times (default 1) and print every fail-over figure
#   --bound-ms   fail-over bound in ms (default 1000)
#
# Environment: MINIZK_BIN (default: swift build --show-bin-path)/minizk.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
ci=()
runs=1
bound=1000
extra=()
while [ $# -gt 0 ]; do
    case $1 in
        --ci) ci=(--ci); shift ;;
        --runs) runs=$2; shift 2 ;;
        --bound-ms) bound=$2; shift 2 ;;
        --) shift; extra=("$@"); break ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

if [ -z "${MINIZK_BIN:-}" ]; then
    (cd "$REPO" && swift build --product minizk >/dev/null) || exit 1
    MINIZK_BIN="$(cd "$REPO" && swift build --show-bin-path)/minizk"
fi

failures=0
figures=()
for run in $(seq 1 "$runs"); do
    line=$(timeout 300 "$MINIZK_BIN" spark demo "${ci[@]}" --json "${extra[@]}" | tail -1)
    status=$?
    echo "run $run: $line"
    failover=$(printf '%s' "$line" | sed -n 's/.*"failoverMs":\([0-9]*\).*/\1/p')
    verified=$(printf '%s' "$line" | sed -n 's/.*"verified":\([a-z]*\).*/\1/p')
    if [ "$status" -ne 0 ] || [ "$verified" != "true" ] || [ -z "$failover" ] || [ "$failover" -ge "$bound" ]; then
        echo "run $run FAILED (status $status, verified ${verified:-?}, fail-over ${failover:-?} ms, bound $bound ms)"
        failures=$((failures + 1))
    fi
    [ -n "$failover" ] && figures+=("$failover")
done
sorted=$(printf '%s\n' "${figures[@]}" | sort -n | tr '\n' ' ')
echo "sparklite-demo: $runs runs, $failures failed; fail-over ms (sorted): $sorted"
[ "$failures" -eq 0 ]
