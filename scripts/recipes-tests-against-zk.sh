#!/bin/sh
# Runs the ZKRecipesTests and ZKRecipesCoreTests suites against a standalone Apache ZooKeeper 3.8
# (Debian's package), started on a free loopback port by compat/zk.py and stopped afterwards.
# Tests that need to stop ensemble members skip themselves, saying so.
# Usage: scripts/recipes-tests-against-zk.sh [extra swift test arguments]
set -eu
cd "$(dirname "$0")/.."
swift build --build-tests
exec python3 -m compat.zk run --kind zk -- sh -c \
    'ZKCLIENT_TEST_SERVER="$ZK_ADDRESS" exec swift test --skip-build --filter "ZKRecipesTests|ZKRecipesCoreTests" "$@"' sh "$@"
