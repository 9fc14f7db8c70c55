#!/usr/bin/env bash
# Builds MiniZK once per planted bug (ZKCore, ZKStorage, ZKRecipesCore and SparkLiteCore compiled with
# -DMINIZK_BUG_<NAME>) and runs the simulator on seeds 1, 2, 3, ... (with recipe contenders for
# the RECIPE_ bugs, SparkLite's scenario, `--sparklite`, for the SPARKLITE_ bugs) until
# it catches the bug: prints how many seeds it needed and which property caught it.
#
#   Simulations/planted-bugs.sh                 every bug, up to 1000 seeds each
#   Simulations/planted-bugs.sh ACK_BEFORE_FSYNC SKIP_SESSION_CLOSE
#   SEEDS=3000 CONFIG=debug Simulations/planted-bugs.sh
#
# The builds go to .build-bugs (kept apart from .build; ignored by git). Only ZKCore and the
# targets above it are rebuilt per bug: the define reaches ZKCore alone through the
# MINIZK_PLANTED_BUGS variable that Package.swift reads (-Xswiftc -DMINIZK_BUG_<NAME> works too,
# but rebuilds every package).
set -u
cd "$(dirname "$0")/.."

ALL_BUGS=(
    ACK_BEFORE_FSYNC
    COMMIT_WITHOUT_QUORUM
    DIFF_INSTEAD_OF_TRUNC
    NEWLEADER_ACK_BEFORE_DURABLE
    VOTE_ORDER_NOT_TOTAL
    SKIP_SESSION_CLOSE
    FOLLOWER_READ_BEFORE_OWN_WRITE
    SEQUENCE_FROM_WRONG_COUNTER
    WRITE_OF_CLOSING_SESSION
    KEEP_CONNECTION_OF_CLOSED_SESSION
    RECIPE_WATCH_PARENT
    RECIPE_IGNORE_SESSION_LOSS
    RECIPE_COUNTER_BLIND_SET
    SPARKLITE_NO_EPOCH_CHECK
    SNAPSHOT_COMPACTS_ONE_TOO_MANY
)
BUGS=("$@")
[ ${#BUGS[@]} -eq 0 ] && BUGS=("${ALL_BUGS[@]}")
SEEDS=${SEEDS:-1000}
CONFIG=${CONFIG:-release}
SCRATCH=${SCRATCH:-.build-bugs}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

rows=()
missed=0
for bug in "${BUGS[@]}"; do
    echo "== MINIZK_BUG_$bug: building ($CONFIG)" >&2
    if ! MINIZK_PLANTED_BUGS=$bug swift build -c "$CONFIG" --scratch-path "$SCRATCH" --product minizk >"$WORK/build.log" 2>&1; then
        tail -20 "$WORK/build.log" >&2
        rows+=("| $bug | build failed | - | - |")
        missed=$((missed + 1))
        continue
    fi
    binary="$SCRATCH/$CONFIG/minizk"
    echo "== MINIZK_BUG_$bug: seeds 1..$SEEDS" >&2
    start=$(date +%s)
    # Recipe bugs (in ZKRecipesCore) show only where recipe contenders run.
    extra=()
    case $bug in RECIPE_*) extra=(--recipes on) ;; SPARKLITE_*) extra=(--sparklite) ;; esac
    "$binary" sim --seeds "1..$SEEDS" "${extra[@]}" --stop-on-failure --quiet --checkpoint "$WORK/seed" >"$WORK/out" 2>"$WORK/err"
    status=$?
    elapsed=$(( $(date +%s) - start ))
    if [ $status -eq 0 ]; then
        rows+=("| $bug | **no** | > $SEEDS | - |")
        missed=$((missed + 1))
        echo "   not caught in $SEEDS seeds (${elapsed}s)" >&2
    elif grep -q "^first failure:" "$WORK/out"; then
        seed=$(sed -n 's/^first failure: seed \([0-9]*\) property \(.*\)$/\1/p' "$WORK/out")
        property=$(sed -n 's/^first failure: seed \([0-9]*\) property \(.*\)$/\2/p' "$WORK/out")
        rows+=("| $bug | yes | $seed | $property |")
        echo "   caught by $property at seed $seed (${elapsed}s): MINIZK_PLANTED_BUGS=$bug swift run minizk sim --seed $seed${extra[*]:+ ${extra[*]}}" >&2
    else
        # The process died: a replica stopped on one of its own preconditions.
        seed=$(cat "$WORK/seed" 2>/dev/null || echo "?")
        why=$(grep -m1 -o "Fatal error:.*" "$WORK/err" | cut -c1-100)
        rows+=("| $bug | yes | $seed | replica precondition ($why) |")
        echo "   caught at seed $seed: the process trapped: $why (${elapsed}s)" >&2
    fi
done

echo
echo "| planted bug (MINIZK_BUG_…) | caught | seeds needed | property that caught it |"
echo "|---|---|---|---|"
for row in "${rows[@]}"; do echo "$row"; done
exit $missed
