#!/usr/bin/env bash
# Drive a server with ZooKeeper's own command-line clients and check what they
# print: zkCli (Java, /usr/share/zookeeper/bin/zkCli.sh) and cli_mt (the C
# client's shell, /usr/lib/zookeeper/bin/cli_mt).  Runs against MiniZK and, as a
# control, against Apache ZooKeeper 3.8; each on a fresh server.
#
# usage: scripts/compat-cli.sh [--minizk-only | --zk-only]
#        scripts/compat-cli.sh --against HOST:PORT     (an already running server)
#
# Environment: MINIZK_BIN (default: swift build --show-bin-path)/minizk.
# Prints "compat-cli: N passed, N failed" last; exit status 1 on any failure.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
ZKCLI=${ZKCLI:-/usr/share/zookeeper/bin/zkCli.sh}
CLI_MT=${CLI_MT:-/usr/lib/zookeeper/bin/cli_mt}
COMMAND_TIMEOUT=60

# ---------------------------------------------------------------------------
# Inner mode: run every check against $ZK_ADDRESS.
# ---------------------------------------------------------------------------
passed=0
failed=0

# check NAME EXPECTED_STATUS PATTERN... -- COMMAND...
# Every PATTERN (an extended regex) must match a line of the output; a
# PATTERN starting with "!" must match no line.  EXPECTED_STATUS "-" = any.
check() {
    local name=$1 want=$2
    shift 2
    local patterns=()
    while [ "$1" != "--" ]; do patterns+=("$1"); shift; done
    shift
    local out status ok=1 why=""
    out=$("$@" 2>&1)
    status=$?
    if [ "$want" != "-" ] && [ "$status" != "$want" ]; then
        ok=0; why="exit status $status, expected $want"
    fi
    local pattern
    for pattern in "${patterns[@]}"; do
        if [ "${pattern:0:1}" = "!" ]; then
            if grep -qE -- "${pattern:1}" <<<"$out"; then ok=0; why="$why; unexpected /${pattern:1}/"; fi
        elif ! grep -qE -- "$pattern" <<<"$out"; then
            ok=0; why="$why; missing /$pattern/"
        fi
    done
    if [ "$ok" -eq 1 ]; then
        passed=$((passed + 1))
        echo "  ok   $name"
    else
        failed=$((failed + 1))
        echo "  FAIL $name (${why#; })"
        sed 's/^/         | /' <<<"$out" | head -25
    fi
}

# zkCli with one command; drop the JVM's and the client's chatter.
zkcli() {
    timeout "$COMMAND_TIMEOUT" "$ZKCLI" -server "$ZK_ADDRESS" "$@" 2>&1 |
        grep -v -E '^SLF4J|^Connecting to|^$|^WATCHER::|^WatchedEvent state:SyncConnected type:None'
    return "${PIPESTATUS[0]}"
}

# zkCli reading several commands from stdin (one session).
zkcli_session() {
    printf '%s\n' "$@" quit | timeout "$COMMAND_TIMEOUT" "$ZKCLI" -server "$ZK_ADDRESS" 2>&1 |
        grep -v -E '^SLF4J'
    return "${PIPESTATUS[1]}"
}

# zkCli ls, with the children sorted (servers may list them in any order).
zkcli_ls_sorted() {
    local out status
    out=$(zkcli ls "$1")
    status=$?
    sed -n 's/^\[\(.*\)\]$/\1/p' <<<"$out" | tr -d ' ' | tr ',' '\n' | sort | paste -sd, -
    return $status
}

# cli_mt in batch mode: one command, one session.
climt() {
    timeout "$COMMAND_TIMEOUT" "$CLI_MT" -h "$ZK_ADDRESS" -c "$*" 2>&1
}

# cli_mt reading commands from stdin, paced: its commands are asynchronous, and
# some (exists, addauth, myid) never end a batch-mode run.
climt_session() {
    {
        sleep 0.5
        local command
        for command in "$@"; do echo "$command"; sleep 0.3; done
        echo quit
    } | timeout "$COMMAND_TIMEOUT" "$CLI_MT" -h "$ZK_ADDRESS" 2>&1
}

zkcli_checks() {
    echo "zkCli ($ZK_KIND on $ZK_ADDRESS)"
    check "create" 0 '^Created /cli$' -- zkcli create /cli hello
    check "create existing" 1 '^Node already exists: /cli$' -- zkcli create /cli again
    check "create under missing parent" 1 '^Node does not exist: /cli-x/y$' -- zkcli create /cli-x/y
    check "get" 0 '^hello$' -- zkcli get /cli
    check "create sequential" 0 '^Created /cli/seq-0000000000$' -- zkcli create -s /cli/seq- x
    check "create sequential again" 0 '^Created /cli/seq-0000000001$' -- zkcli create -s /cli/seq- x
    check "create child" 0 '^Created /cli/child$' -- zkcli create /cli/child c
    check "ls" 0 '^child,seq-0000000000,seq-0000000001$' -- zkcli_ls_sorted /cli
    check "ls /zookeeper" 0 '^config,quota$' -- zkcli_ls_sorted /zookeeper
    check "stat" 0 '^cZxid = 0x[0-9a-f]+$' '^ctime = ' '^mZxid = 0x[0-9a-f]+$' '^pZxid = 0x[0-9a-f]+$' \
        '^cversion = 3$' '^dataVersion = 0$' '^aclVersion = 0$' '^ephemeralOwner = 0x0$' \
        '^dataLength = 5$' '^numChildren = 3$' -- zkcli stat /cli
    check "set" 0 -- zkcli set /cli world
    check "get -s" 0 '^world$' '^dataVersion = 1$' '^dataLength = 5$' -- zkcli get -s /cli
    check "set wrong version" 1 '^version No is not valid : /cli$' -- zkcli set -v 0 /cli x
    check "set right version" 0 -- zkcli set -v 1 /cli v2
    check "ls -s" 0 '^\[.*seq-0000000001.*\]$' '^dataVersion = 2$' -- zkcli ls -s /cli
    check "delete non-empty" 1 '^Node not empty: /cli$' -- zkcli delete /cli
    check "get missing" 1 '^Node does not exist: /nope$' -- zkcli get /nope
    check "delete wrong version" 1 '^version No is not valid : /cli/child$' -- zkcli delete -v 5 /cli/child
    check "delete" 0 -- zkcli delete /cli/child
    check "stat deleted" 1 '^Node does not exist: /cli/child$' -- zkcli stat /cli/child
    check "session: create ephemeral, getEphemerals" 0 '^Created /cli-eph$' '^\[/cli-eph\]$' -- \
        zkcli_session "create -e /cli-eph e" "getEphemerals /"
    check "ephemeral gone when its session closed" 0 '!cli-eph' '^cli,zookeeper$' -- zkcli_ls_sorted /
    # zkCli with a command on its command line exits without closing its
    # session, so this ephemeral goes only when the session expires (the
    # negotiated timeout is at most 20 ticks = 4 s).
    check "create ephemeral, session abandoned" 0 '^Created /cli-orphan$' -- zkcli create -e /cli-orphan o
    check "abandoned session still holds it" 0 '^cli,cli-orphan,zookeeper$' -- zkcli_ls_sorted /
    sleep 6
    check "ephemeral gone when its session expired" 0 '^cli,zookeeper$' -- zkcli_ls_sorted /
    check "create container" 0 '^Created /cli-cont$' -- zkcli create -c /cli-cont
    check "create ttl" 0 '^Created /cli-ttl$' -- zkcli create -t 60000 /cli-ttl t
    check "stat ttl" 0 '^ephemeralOwner = 0x0$' '^dataLength = 1$' -- zkcli stat /cli-ttl
    check "getAcl" 0 "^'world,'anyone$" '^: cdrwa$' -- zkcli getAcl /cli
    check "getAllChildrenNumber" 0 '^2$' -- zkcli getAllChildrenNumber /cli
    check "getAllChildrenNumber /" 0 '^[0-9]+$' -- zkcli getAllChildrenNumber /
    check "getEphemerals" 0 '^\[\]$' -- zkcli getEphemerals /
    check "whoami" 0 '^ip: 127\.0\.0\.1$' -- zkcli whoami
    check "sync" 0 '^Sync is OK$' -- zkcli sync /
    check "session: addauth, create with auth ACL, read back" 0 \
        '^digest: alice$' '^Created /cli-auth$' "^'digest,'alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=$" '^secret-data$' -- \
        zkcli_session "addauth digest alice:secret" whoami "create /cli-auth secret-data auth::cdrwa" \
        "getAcl /cli-auth" "get /cli-auth"
    check "another session denied" 1 '^Insufficient permission : /cli-auth$' -- zkcli get /cli-auth
    check "setAcl read-only" 0 -- zkcli setAcl /cli-ttl world:anyone:r
    check "set read-only node" 1 '^Insufficient permission : /cli-ttl$' -- zkcli set /cli-ttl x
    check "deleteall" 0 -- zkcli deleteall /cli
    check "deleted tree" 1 '^Node does not exist: /cli$' -- zkcli get /cli
}

climt_checks() {
    echo "cli_mt ($ZK_KIND on $ZK_ADDRESS)"
    check "create" - '^\[/cm\]: rc = 0$' 'name = /cm$' -- climt create /cm
    check "create existing" - '^\[/cm\]: rc = -110$' -- climt create /cm
    check "create under missing parent" - '^\[/cm-x/y\]: rc = -101$' -- climt create /cm-x/y
    check "create sequential" - 'name = /cm/s-0000000000$' -- climt create +s /cm/s-
    check "create ephemeral" - '^\[/cm/e\]: rc = 0$' -- climt create +e /cm/e
    check "create container" - '^\[/cm-cont\]: rc = 0$' -- climt create +c /cm-cont
    check "create ttl" - '^\[/cm-ttl\]: rc = 0$' -- climt create +t=60000 /cm-ttl
    check "create2" - '^\[/cm2\]: rc = 0$' 'czxid=[0-9]+' 'version=0.aversion=0' -- climt create2 /cm2
    check "get" - '^/cm: rc = 0$' 'value_len = 3' '^new$' 'version=0.aversion=0' -- climt get /cm
    check "set" - '^/cm: rc = 0' 'version=1.aversion=0' -- climt set /cm world
    check "get after set" - 'value_len = 5' '^world$' -- climt get /cm
    check "ls (ephemeral gone with its session)" - '^/cm: rc = 0$' 's-0000000000$' '!^.e$' -- climt ls /cm
    check "ls2" - '^/cm: rc = 0$' 's-0000000000$' 'version=1.aversion=0' -- climt ls2 /cm
    check "sync" - '^\[/\]: rc = 0$' -- climt sync /
    check "delete non-empty" - '^/cm: rc = -111$' -- climt delete /cm
    check "delete child" - '^/cm/s-0000000000: rc = 0$' -- climt delete /cm/s-0000000000
    check "delete" - '^/cm: rc = 0$' -- climt delete /cm
    check "get deleted" - '^/cm: rc = -101$' -- climt get /cm
    check "config" - '^/zookeeper/config: rc = 0$' -- climt config
    check "session: exists, addauth, myid" - \
        '^Error -101 for /cm-nope$' '!Error .* for /cm2$' '^session Id = [0-9a-f]+$' '!rc = -115' -- \
        climt_session "exists /cm2" "exists /cm-nope" "addauth digest u:p" "get /cm2" myid
}

if [ "${1:-}" = "--inner" ]; then
    : "${ZK_ADDRESS:?}" "${ZK_KIND:=server}"
    zkcli_checks
    climt_checks
    echo "compat-cli $ZK_KIND: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
fi

if [ "${1:-}" = "--against" ]; then
    ZK_ADDRESS=$2 ZK_KIND=server exec "$0" --inner
fi

# ---------------------------------------------------------------------------
# Outer mode: one fresh server per kind.
# ---------------------------------------------------------------------------
kinds=(zk minizk)
case "${1:-}" in
    --minizk-only) kinds=(minizk) ;;
    --zk-only) kinds=(zk) ;;
    "") ;;
    *) echo "usage: $0 [--minizk-only | --zk-only | --against HOST:PORT]" >&2; exit 2 ;;
esac
for tool in "$ZKCLI" "$CLI_MT"; do
    [ -x "$tool" ] || { echo "compat-cli: $tool missing (apt-get install zookeeper zookeeper-bin)" >&2; exit 2; }
done

cd "$REPO"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
if [[ " ${kinds[*]} " == *" minizk "* ]] && [ -z "${MINIZK_BIN:-}" ]; then
    MINIZK_BIN="$(swift build --show-bin-path 2>/dev/null)/minizk"
    export MINIZK_BIN
fi

total_failed=0
summary=()
for kind in "${kinds[@]}"; do
    log="$REPO/compat/work/cli-$kind.log"
    mkdir -p "$(dirname "$log")"
    python3 -m compat.zk run --kind "$kind" -- "$0" --inner | tee "$log"
    status=${PIPESTATUS[0]}
    line=$(grep '^compat-cli ' "$log" | tail -1)
    if [ -z "$line" ]; then
        line="compat-cli $kind: server did not start or checks did not run (status $status)"
    fi
    summary+=("$line")
    [ "$status" -eq 0 ] || total_failed=$((total_failed + 1))
done
echo
printf '%s\n' "${summary[@]}"
all_passed=0
all_failed=0
for line in "${summary[@]}"; do
    if [[ $line =~ ([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
        all_passed=$((all_passed + BASH_REMATCH[1]))
        all_failed=$((all_failed + BASH_REMATCH[2]))
    else
        all_failed=$((all_failed + 1))
    fi
done
echo "compat-cli: $all_passed passed, $all_failed failed"
[ "$total_failed" -eq 0 ] && [ "$all_failed" -eq 0 ]
