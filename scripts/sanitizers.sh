#!/usr/bin/env bash
# Runs the test suite under a sanitizer, in its own scratch path.
#
#   scripts/sanitizers.sh [thread|address] [--light] [--filter X] [--skip X]
#
# thread: ThreadSanitizer (scratch .build-tsan); address: AddressSanitizer (scratch .build-asan).
# Default thread. --light (address only): the package as the fuzz build sees it (MINIZK_FUZZ=1,
# scratch .build-fuzz, shared with `scripts/fuzz-libfuzzer.sh --ci`): the test targets that need
# no sockets, TLS or HTTP (protocol, core, storage, simulator and simulations, recipe and SparkLite
# cores); with --skip MiniZKSimulations, the CI pass. --filter/--skip are passed to `swift test`. The full log goes to
# <scratch>/sanitizer.log; the script prints the build and test times, every distinct sanitizer
# report (its SUMMARY line) and fails when the tests fail or a report appears. ThreadSanitizer
# runs with scripts/tsan-suppressions.txt (a false positive in the Swift runtime, see there).
set -uo pipefail
cd "$(dirname "$0")/.."

sanitizer=thread
light=0
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        thread|address) sanitizer="$1" ;;
        --light) light=1 ;;
        --filter|--skip) extra+=("$1" "$2"); shift ;;
        -h|--help) sed -n 2,13p "$0"; exit 0 ;;
        *) echo "unknown argument $1"; exit 2 ;;
    esac
    shift
done
case "$sanitizer" in
    thread) scratch=.build-tsan ;;
    address) scratch=.build-asan ;;
esac
if [ "$light" -eq 1 ]; then
    [ "$sanitizer" = address ] || { echo "--light is for address only"; exit 2; }
    scratch=.build-fuzz
    export MINIZK_FUZZ=1
fi
mkdir -p "$scratch"
log="$scratch/sanitizer.log"

start=$(date +%s)
echo "== building tests with --sanitize=$sanitizer ($scratch)"
if ! swift build --build-tests --sanitize="$sanitizer" --scratch-path "$scratch" >"$log" 2>&1; then
    grep -E "error:" "$log" | head -n 20
    echo "build failed (log: $log)"; exit 2
fi
built=$(date +%s)
echo "== built in $(( built - start )) s"

# halt_on_error=0: every report is printed and the run goes on, so one run lists them all.
export TSAN_OPTIONS="halt_on_error=0:second_deadlock_stack=1:suppressions=$PWD/scripts/tsan-suppressions.txt${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
swift test --skip-build --sanitize="$sanitizer" --scratch-path "$scratch" "${extra[@]}" >>"$log" 2>&1
rc=$?
echo "== tests ran in $(( $(date +%s) - built )) s, exit $rc"
grep -E "Executed [0-9]+ tests|Test run with" "$log" | tail -n 3
reports=$(grep -c "^WARNING: ThreadSanitizer\|^==[0-9]*==ERROR: AddressSanitizer" "$log" || true)
echo "== sanitizer reports: $reports"
grep -E "^SUMMARY: (ThreadSanitizer|AddressSanitizer)" "$log" | sort | uniq -c | sort -rn | head -n 30
if [ $rc -ne 0 ] || [ "$reports" -ne 0 ]; then
    echo "FAILED (log: $log)"
    exit 1
fi
echo "clean"
