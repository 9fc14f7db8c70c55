#!/bin/sh
# Side-by-side storage benchmark of a standalone MiniZK and a standalone Apache ZooKeeper 3.8 (see
# scripts/bench_storage.py for the figures). Builds the release binary first.
# Usage: scripts/bench-storage.sh [--runs 3] [--seconds 5] [--znodes 1000000] [--only minizk|zookeeper]
set -eu
cd "$(dirname "$0")/.."
swift build -c release --product minizk
exec python3 scripts/bench_storage.py --minizk .build/release/minizk "$@"
