#!/bin/sh
# Disk faults with real processes (see scripts/disk_faults.py): member 3 of a three-process
# ensemble on a small loop-device ext4 that fills up, then starts failing writes, then is made
# read-only. Needs root (mount, losetup, e2fsck).
# Usage: scripts/disk-faults.sh [--ci] [--keep] [--scenarios full,failing,readonly]
# MINIZK=path/to/minizk picks the binary (default .build/debug/minizk, built when missing).
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "disk-faults: needs root (mount, loop devices)" >&2; exit 2; }
ARGS=""
for arg in "$@"; do
    case "$arg" in
        --ci) ;;  # the full run is the CI run: three scenarios, about a minute and a half
        *) ARGS="$ARGS $arg" ;;
    esac
done
if [ -z "${MINIZK:-}" ]; then
    [ -x .build/debug/minizk ] || swift build --product minizk
    MINIZK=.build/debug/minizk
fi
# shellcheck disable=SC2086
exec timeout 600 python3 scripts/disk_faults.py --minizk "$MINIZK" $ARGS
