#!/usr/bin/env bash
# A long seed sweep with a release build: a progress line, every failure with its replay
# command, and a summary table.
#
#   Simulations/sweep.sh                  seeds 1..5000
#   Simulations/sweep.sh 1 20000 --profile long
#
# A replica that stops on one of its own preconditions ends the process; the sweep records
# that seed as failed and carries on from the next one.
set -u
cd "$(dirname "$0")/.."
FIRST=${1:-1}
LAST=${2:-5000}
shift $(( $# > 2 ? 2 : $# ))
swift build -c release --product minizk >&2 || exit 2
CHECKPOINT=$(mktemp)
trap 'rm -f "$CHECKPOINT"' EXIT
git rev-parse --short HEAD 2>/dev/null | sed 's/^/commit /'
trapped=()
next=$FIRST
status=0
while [ "$next" -le "$LAST" ]; do
    .build/release/minizk sim --seeds "$next..$LAST" --checkpoint "$CHECKPOINT" "$@"
    code=$?
    if [ $code -le 1 ]; then
        [ $code -eq 1 ] && status=1
        break
    fi
    seed=$(cat "$CHECKPOINT")
    echo "TRAP seed $seed: a replica stopped on a precondition (exit $code); replay: swift run minizk sim --seed $seed $*"
    trapped+=("$seed")
    status=1
    next=$((seed + 1))
done
[ ${#trapped[@]} -gt 0 ] && echo "seeds that trapped: ${trapped[*]}"
exit $status
