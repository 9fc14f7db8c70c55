#!/usr/bin/env bash
# The pytest plugin (python/, pip-installable as minizk-testing) running a kazoo test module
# against MiniZK ensembles started through `minizk ensemble --control`.
#
# usage: scripts/zktesting-python.sh [pytest args]
# Environment: MINIZK_BIN (default: .build/debug/minizk). Installs the plugin from the checkout
# into a throw-away virtual environment that sees the system's kazoo and pytest.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
export MINIZK_BIN=${MINIZK_BIN:-$REPO/.build/debug/minizk}
venv=$(mktemp -d "${TMPDIR:-/tmp}/zktesting-venv.XXXXXX")
trap 'rm -rf "$venv"' EXIT
python3 -m venv --system-site-packages "$venv"
"$venv/bin/pip" install -q --no-deps "$REPO/python"
cd "$REPO/python"
"$venv/bin/python" -m pytest -p no:cacheprovider -q "$@" tests
