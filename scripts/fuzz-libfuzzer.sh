#!/usr/bin/env bash
# Builds MiniZK's libFuzzer targets (-sanitize=fuzzer, AddressSanitizer) and runs each for a while.
#
#   scripts/fuzz-libfuzzer.sh [--ci | --long] [--debug | --release] [--seconds N] [TARGET...]
#
# Targets (default: all): frames connect request connect-response reply client-session peer
# transaction snapshot zoocfg jaas sasl. Each runs N seconds (default 60).
#   --ci    a debug build (a few minutes from nothing) and 5 s per target: the CI pass
#   --long  a release build and an hour per target
# --debug/--release choose the build alone (default release: several times more runs a second,
# a much longer build). The corpus grows in a scratch copy (.build-fuzz/corpus/<target>), seeded
# from the committed Fuzz/corpus/<target>. A crash, a leak, a timeout (a hang of over 10 s on one
# input) or a violated round-trip property stops the target; the input is saved under
# .build-fuzz/crashes/<target>/, minimized, and the script exits 1 after running the others.
# Stop a run (kill) rather than pause it (SIGSTOP): libFuzzer's per-input limit counts wall
# time, so a paused target reports the input it was on as a hang.
# The build uses its own scratch path (.build-fuzz) and MINIZK_FUZZ=1, which alone adds the
# minizk-fuzz target to the package (and leaves out everything it does not need): the normal
# build never sees it. `scripts/sanitizers.sh address --light` shares that build.
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=60
# --ci fixes libFuzzer's seed: the same mutations from the committed seeds on every machine (a
# slower one runs a prefix of them), so a CI pass is repeatable; the other modes explore anew.
seed_args=""
config=release
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --ci) seconds=5; config=debug; seed_args="-seed=1" ;;
        --long) seconds=3600; config=release ;;
        --debug) config=debug ;;
        --release) config=release ;;
        --seconds) seconds="$2"; shift ;;
        -h|--help) sed -n 2,19p "$0"; exit 0 ;;
        -*) echo "unknown option $1"; exit 2 ;;
        *) targets+=("$1") ;;
    esac
    shift
done
all=(frames connect request connect-response reply client-session peer transaction snapshot zoocfg jaas sasl)
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")

scratch=.build-fuzz
start=$(date +%s)
echo "== building minizk-fuzz ($config, fuzzer+address)"
# Coverage (-sanitize=fuzzer) is set per module in Package.swift; AddressSanitizer for all.
if ! MINIZK_FUZZ=1 swift build -c "$config" --scratch-path "$scratch" --product minizk-fuzz \
        --sanitize=address 2>&1 | grep -v "Cannot export local symbol '__asan" | tail -n 20; then
    echo "build failed"; exit 2
fi
binary="$scratch/$config/minizk-fuzz"
[ -x "$binary" ] || { echo "no $binary"; exit 2; }
echo "== built in $(( $(date +%s) - start )) s"

# Seeds that the encoders write (peer, transaction, snapshot) join the committed ones.
generated="$scratch/generated-seeds"
rm -rf "$generated"
SWIFT_BACKTRACE=enable=no MINIZK_FUZZ_WRITE_SEEDS="$generated" "$binary" >/dev/null 2>&1 || { echo "writing seeds failed"; exit 2; }

failed=()
for target in "${targets[@]}"; do
    corpus="$scratch/corpus/$target"
    crashes="$scratch/crashes/$target"
    mkdir -p "$corpus" "$crashes"
    for seeds in "Fuzz/corpus/$target" "$generated/$target"; do
        [ -d "$seeds" ] && cp -n "$seeds"/* "$corpus"/ 2>/dev/null
    done
    # Per build, so that the CI pass can run beside a long run of the same target.
    log="$scratch/logs/$target-$config.log"
    mkdir -p "$(dirname "$log")"
    t0=$(date +%s)
    SWIFT_BACKTRACE=enable=no MINIZK_FUZZ_TARGET="$target" ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 "$binary" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 $seed_args \
        -artifact_prefix="$crashes/" "$corpus" >"$log" 2>&1
    rc=$?
    runs=$(grep -ao 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    cov=$(grep -ao 'cov: [0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*$' || true)
    if [ $rc -ne 0 ]; then
        failed+=("$target")
        artifact=$(ls -t "$crashes"/crash-* "$crashes"/timeout-* "$crashes"/leak-* "$crashes"/oom-* 2>/dev/null | head -n 1)
        echo "!! $target: FAILED (exit $rc) after $(( $(date +%s) - t0 )) s; input: ${artifact:-none}; log: $log"
        grep -m 3 -E "property violated|Fatal error|ERROR: (AddressSanitizer|libFuzzer)|SUMMARY" "$log" | sed 's/^/   /'
        if [ -n "$artifact" ]; then
            SWIFT_BACKTRACE=enable=no MINIZK_FUZZ_TARGET="$target" "$binary" -minimize_crash=1 -max_total_time=30 -runs=100000 \
                -exact_artifact_path="$artifact.min" "$artifact" >"$log.min" 2>&1
            [ -f "$artifact.min" ] && echo "   minimized: $artifact.min ($(wc -c <"$artifact.min") bytes): $(xxd -p "$artifact.min" | tr -d '\n' | head -c 200)"
        fi
    else
        echo "ok $target: ${seconds} s, ${runs:-?} runs, cov ${cov:-?}, corpus $(ls "$corpus" | wc -l)"
    fi
done
echo "== total $(( $(date +%s) - start )) s"
if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]}"
    exit 1
fi
