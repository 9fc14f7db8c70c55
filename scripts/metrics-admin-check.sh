#!/usr/bin/env bash
# MiniZK's /metrics and admin server against real tools and ZooKeeper 3.8 (see
# scripts/metrics_admin_check.py): prometheus-client's parser, promtool, a real Prometheus
# server scraping MiniZK, ZooKeeper 3.8's metric names and types, and ZooKeeper 3.8's own admin
# server endpoint by endpoint.
#
# usage: scripts/metrics-admin-check.sh [--ci] [--keep]
# Environment: MINIZK_BIN (default: the debug build, built if missing).
# Installs Debian's prometheus (promtool, the server) and PyPI's prometheus-client when missing.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"

if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
python3 -c "import prometheus_client" 2>/dev/null || pip install -q prometheus-client >/dev/null 2>&1
python3 -c "import kazoo" 2>/dev/null || pip install -q kazoo==2.11.0 >/dev/null 2>&1
if [ -z "${MINIZK_BIN:-}" ]; then
    swift build --product minizk >/dev/null
    MINIZK_BIN="$(swift build --show-bin-path)/minizk"
    export MINIZK_BIN
fi
exec python3 scripts/metrics_admin_check.py "$@"
