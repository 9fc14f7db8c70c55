"""Summarise kazoo test-suite runs (pytest JUnit XML) for MiniZK and ZooKeeper.

    python3 -m compat.kazoo_report failures RUN.xml [--known FILE]
        print the pytest node ids that failed (minus known failures), for a rerun

    python3 -m compat.kazoo_report summary [--zk RUN.xml [--zk-rerun R.xml]]
        [--minizk RUN.xml [--minizk-rerun R.xml]] [--known FILE]
        [--deselected FILE] [--zk-seconds N] [--minizk-seconds N]
        [--zk-reference EARLIER_ZK.xml]
        print both pass/fail/skip counts, the tests that pass on ZooKeeper but
        fail on MiniZK, and exit 1 when a failure is neither known nor healed by
        the rerun (a test that fails once and passes on rerun is reported as
        flaky, not as a failure).

Test ids are written ``test_client.py::TestClient::test_create`` (the package
path ``kazoo/tests/`` left out).  A known-failures file holds one id a line;
text after ``#`` is a comment; an id naming a class or a module covers all its
tests.
"""

import argparse
import os
import sys
import xml.etree.ElementTree as ElementTree

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
KAZOO_TEST_PACKAGE = "kazoo/tests/"


def test_id(classname, name):
    parts = classname.split(".")
    for index, part in enumerate(parts):
        if part.startswith("test_"):
            return "::".join([part + ".py"] + parts[index + 1:] + [name])
    return "::".join([classname, name])


def load_outcomes(path):
    """Map test id -> (outcome, seconds) from one JUnit XML file."""
    outcomes = {}
    if not path or not os.path.exists(path):
        return None
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError:
        return None
    for case in root.iter("testcase"):
        ident = test_id(case.get("classname", ""), case.get("name", ""))
        tags = {child.tag for child in case}
        if "failure" in tags or "error" in tags:
            outcome = FAILED
        elif "skipped" in tags:
            outcome = SKIPPED
        else:
            outcome = PASSED
        previous = outcomes.get(ident)
        # A test can appear twice (call and teardown); a failure wins.
        if previous is None or outcome == FAILED:
            outcomes[ident] = (outcome, float(case.get("time") or 0.0))
    return outcomes


def load_known(path):
    known = []
    if not path or not os.path.exists(path):
        return known
    with open(path) as handle:
        for line in handle:
            entry = line.split("#", 1)[0].strip()
            if entry:
                known.append(entry.split()[0])
    return known


def is_known(ident, known):
    for entry in known:
        if entry.startswith(KAZOO_TEST_PACKAGE):
            entry = entry[len(KAZOO_TEST_PACKAGE):]
        if ident == entry or ident.startswith(entry + "::"):
            return True
    return False


def node_id(ident):
    return KAZOO_TEST_PACKAGE + ident


def failures(outcomes, known=()):
    return sorted(
        ident
        for ident, (outcome, _) in outcomes.items()
        if outcome == FAILED and not is_known(ident, known)
    )


def merge_rerun(outcomes, rerun):
    """Apply a rerun: returns (merged outcomes, ids that passed only on rerun)."""
    merged = dict(outcomes)
    flaky = []
    for ident, (outcome, seconds) in (rerun or {}).items():
        if ident in merged and merged[ident][0] == FAILED and outcome == PASSED:
            merged[ident] = (PASSED, seconds)
            flaky.append(ident)
    return merged, sorted(flaky)


def counts(outcomes):
    tally = {PASSED: 0, FAILED: 0, SKIPPED: 0}
    for outcome, _ in outcomes.values():
        tally[outcome] += 1
    return tally


def format_seconds(seconds):
    if seconds is None:
        return ""
    seconds = int(round(float(seconds)))
    return " in %dm%02ds" % (seconds // 60, seconds % 60)


def summary(args):
    known = load_known(args.known)
    deselected = []
    if args.deselected and os.path.exists(args.deselected):
        with open(args.deselected) as handle:
            deselected = [line.rstrip("\n").split("\t") for line in handle if line.strip()]

    status = 0
    results = {}
    lines = []
    for label, run, rerun, seconds in (
        ("ZooKeeper 3.8", args.zk, args.zk_rerun, args.zk_seconds),
        ("MiniZK", args.minizk, args.minizk_rerun, args.minizk_seconds),
    ):
        if run is None:
            continue
        outcomes = load_outcomes(run)
        if outcomes is None:
            lines.append("%-14s NO RESULTS (%s missing or unreadable: run crashed or timed out)"
                         % (label + ":", run))
            status = 1
            results[label] = None
            continue
        merged, flaky = merge_rerun(outcomes, load_outcomes(rerun))
        results[label] = (merged, flaky)
        tally = counts(merged)
        extra = ""
        if label == "MiniZK" and deselected:
            extra += ", %d deselected" % len(deselected)
        if flaky:
            extra += " (%d passed only on rerun)" % len(flaky)
        lines.append(
            "%-14s %d passed, %d failed, %d skipped%s%s"
            % (label + ":", tally[PASSED], tally[FAILED], tally[SKIPPED], extra,
               format_seconds(seconds))
        )

    print()
    print("=" * 72)
    print("kazoo 2.11 test suite")
    for line in lines:
        print("  " + line)
    print("=" * 72)

    zk = results.get("ZooKeeper 3.8")
    mini = results.get("MiniZK")

    for label, result in (("ZooKeeper 3.8", zk), ("MiniZK", mini)):
        if result and result[1]:
            print("\nFlaky on %s (failed, then passed on rerun):" % label)
            for ident in result[1]:
                print("  " + ident)

    if zk:
        zk_failed = failures(zk[0])
        if zk_failed:
            status = 1
            print("\nFailing on ZooKeeper itself (the reference run is broken):")
            for ident in zk_failed:
                print("  " + ident)

    if mini:
        mini_outcomes = mini[0]
        unknown = failures(mini_outcomes, known)
        known_failed = [i for i in failures(mini_outcomes) if is_known(i, known)]
        healed = sorted(
            ident
            for ident, (outcome, _) in mini_outcomes.items()
            if outcome == PASSED and is_known(ident, known)
        )
        if deselected:
            print("\nDeselected on MiniZK (need more than one server):")
            for row in deselected:
                print("  %s  (%s)" % (row[0].replace(KAZOO_TEST_PACKAGE, ""),
                                      row[1] if len(row) > 1 else ""))
        if healed:
            print("\nListed as known failures but passing now (remove them from the list):")
            for ident in healed:
                print("  " + ident)
        if unknown:
            status = 1
            print("\nFailures on MiniZK that are not known (%d):" % len(unknown))
            for ident in unknown:
                print("  " + ident)
        reference, reference_label = (zk[0], "ZooKeeper") if zk else (None, None)
        if reference is None and args.zk_reference:
            reference = load_outcomes(args.zk_reference)
            reference_label = "ZooKeeper (earlier run, %s)" % args.zk_reference
        if reference is not None:
            regressions = sorted(
                ident
                for ident, (outcome, _) in mini_outcomes.items()
                if outcome == FAILED and reference.get(ident, (None,))[0] == PASSED
            )
            print("\nPass on %s but fail on MiniZK (%d; [known] = listed in %s):"
                  % (reference_label, len(regressions), os.path.basename(args.known or "")))
            for ident in regressions:
                print("  %s%s" % (ident, "  [known]" if is_known(ident, known) else ""))
        elif known_failed:
            print("\nKnown failures on MiniZK (%d):" % len(known_failed))
            for ident in known_failed:
                print("  " + ident)
    print()
    print("kazoo suite: %s" % ("OK" if status == 0 else "FAILED"))
    return status


def main(argv):
    parser = argparse.ArgumentParser(prog="python3 -m compat.kazoo_report")
    sub = parser.add_subparsers(dest="action", required=True)
    fail = sub.add_parser("failures")
    fail.add_argument("xml")
    fail.add_argument("--known")
    summ = sub.add_parser("summary")
    summ.add_argument("--zk")
    summ.add_argument("--zk-rerun")
    summ.add_argument("--zk-seconds", type=float)
    summ.add_argument("--minizk")
    summ.add_argument("--minizk-rerun")
    summ.add_argument("--minizk-seconds", type=float)
    summ.add_argument("--known")
    summ.add_argument("--deselected")
    summ.add_argument("--zk-reference", help="an earlier ZooKeeper run, for the comparison only")
    args = parser.parse_args(argv)
    if args.action == "failures":
        outcomes = load_outcomes(args.xml) or {}
        for ident in failures(outcomes, load_known(args.known)):
            print(node_id(ident))
        return 0
    return summary(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
