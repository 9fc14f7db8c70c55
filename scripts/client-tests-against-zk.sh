#!/bin/sh
# Runs the ZKClientTests suite against a standalone Apache ZooKeeper 3.8 (Debian's package), started
# on a free loopback port by compat/zk.py (tickTime 200 ms, TTL nodes enabled, SASL DIGEST-MD5 with
# the test users in a JAAS Server section and SASLAuthenticationProvider) and stopped afterwards.
# Tests that need to stop ensemble members skip themselves, saying so.
# Usage: scripts/client-tests-against-zk.sh [extra swift test arguments]
set -eu
cd "$(dirname "$0")/.."
swift build --build-tests
exec python3 -m compat.zk run --kind zk --sasl-user jaasuser=jaas_password --sasl-user bob=bob_secret -- sh -c \
    'ZKCLIENT_TEST_SERVER="$ZK_ADDRESS" ZKCLIENT_TEST_SASL=1 exec swift test --skip-build --filter ZKClientTests "$@"' sh "$@"
