#!/bin/sh
# Kill -9 crash test of MiniZK's SQLite storage with real processes (see scripts/crash_test.py).
# Usage: scripts/crash-test.sh [--rounds 5] [--seed N] [--keep]
# MINIZK=path/to/minizk picks the binary; by default the release build if there is one, else the
# debug build (built first when missing).
set -eu
cd "$(dirname "$0")/.."
if [ -z "${MINIZK:-}" ]; then
    if [ -x .build/release/minizk ]; then
        MINIZK=.build/release/minizk
    else
        [ -x .build/debug/minizk ] || swift build --product minizk
        MINIZK=.build/debug/minizk
    fi
fi
exec timeout 120 python3 scripts/crash_test.py --minizk "$MINIZK" "$@"
