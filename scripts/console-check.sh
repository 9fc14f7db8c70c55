#!/usr/bin/env bash
# MiniZK's web console in a real headless browser (see scripts/console_check.py): Debian's
# chromium and chromedriver driven by Selenium, against `minizk ensemble --admin-port 0
# --control ...`: three members and one leader, a kazoo client's znode in the tree view, a
# leader killed through the control API and the new leader and the leader-change event shown.
#
# usage: scripts/console-check.sh [--ci]
#   without --ci the screenshots are written to docs/images/ (the pictures in docs/operations.md);
#   with --ci to a temporary directory.
# Environment: MINIZK_BIN (default: the debug build, built if missing).
# Installs Debian's chromium and chromium-driver, and PyPI's selenium, when missing.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
pip_install() {
    python3 -m pip install -q "$@" >/dev/null 2>&1 || python3 -m pip install -q --break-system-packages "$@" >/dev/null
}
python3 -c "import selenium" 2>/dev/null || pip_install selenium
python3 -c "import kazoo" 2>/dev/null || pip_install kazoo==2.11.0
if [ -z "${MINIZK_BIN:-}" ]; then
    swift build --product minizk >/dev/null
    MINIZK_BIN="$(swift build --show-bin-path)/minizk"
    export MINIZK_BIN
fi
exec python3 scripts/console_check.py "$@"
