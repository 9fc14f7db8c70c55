"""Swift (zkrecipes-interop) and Java (Apache Curator 5.4, CuratorInterop) processes using the same
recipes on the same paths of one server ($ZK_ADDRESS). Started by scripts/recipes-interop.sh.

Checks: mutex holders never overlap; a read-write lock's writers share with no one; a semaphore
never grants more leases than it has; a double barrier lets nobody in before all arrive, or out before all leave; latch leaders never overlap and each candidate leads once;
a counter incremented from both sides loses nothing; a service registered on either side is
found by the other; queue items put from both sides are each consumed exactly once; delay-queue
items put on one side are consumed by the other, each once and none before its time; Curator's
GroupMember sees the node a Swift PersistentNode keeps, with its data update.
"""

import os
import random
import subprocess
import sys
import tempfile
import time

ADDRESS = os.environ["ZK_ADDRESS"]
SWIFT = os.environ["SWIFT_INTEROP_BIN"]
JAVA_CP = os.environ["CURATOR_INTEROP_CP"]
BASE = "/interop-%08x" % random.getrandbits(32)
failures = []


def swift(*args):
    return [SWIFT, args[0], ADDRESS, *args[1:]]


def java(*args):
    return ["java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", JAVA_CP, "CuratorInterop", args[0], ADDRESS, *args[1:]]


def run_all(commands, timeout=120, marks=None):
    """Runs commands at once; returns their stdout texts; a failing one is a failure. With
    `marks`, creates MARKS.go once every command has written its "ready" line."""
    processes = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    if marks:
        deadline = time.time() + 60
        while open(marks).read().count("ready ") < len(commands) and time.time() < deadline:
            time.sleep(0.01)
        open(marks + ".go", "w").close()
    outputs = []
    for command, process in zip(commands, processes):
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            failures.append("timed out: %s" % " ".join(command[:4]))
        if process.returncode != 0:
            failures.append("exit %s: %s\n%s" % (process.returncode, " ".join(command), err[-2000:]))
        outputs.append(out)
    return outputs


def check(name, condition, detail=""):
    print("%-6s %s %s" % ("ok" if condition else "FAIL", name, detail))
    if not condition:
        failures.append(name + " " + detail)


def exclusive(marks_path, expected_enters):
    """enter/exit marks alternate (never two holders) and every holder entered as expected."""
    lines = open(marks_path).read().split()
    events = [pair for pair in zip(lines[0::2], lines[1::2]) if pair[0] != "ready"]
    holder = None
    overlaps = 0
    enters = {}
    for verb, who in events:
        if verb == "enter":
            if holder is not None:
                overlaps += 1
            holder = who
            enters[who] = enters.get(who, 0) + 1
        else:
            if holder != who:
                overlaps += 1
            holder = None
    return overlaps, enters


def handovers(marks_path):
    """How often the hold passed from a Swift holder to a Java one or back."""
    holders = [who.split("-")[0] for verb, who in zip(*[iter(open(marks_path).read().split())] * 2) if verb == "enter"]
    return sum(1 for a, b in zip(holders, holders[1:]) if a != b)


def mutex_check():
    path, marks = BASE + "/mutex", tempfile.mktemp(prefix="mutex-marks-")
    open(marks, "w").close()
    rounds = 10
    ids = ["swift-1", "swift-2", "java-1", "java-2"]
    run_all([swift("mutex", path, str(rounds), marks, "swift-1"), swift("mutex", path, str(rounds), marks, "swift-2"),
             java("mutex", path, str(rounds), marks, "java-1"), java("mutex", path, str(rounds), marks, "java-2")], marks=marks)
    overlaps, enters = exclusive(marks, rounds)
    check("mutex: Swift and Java holders never overlap", overlaps == 0, "overlaps=%d handovers between Swift and Java=%d" % (overlaps, handovers(marks)))
    check("mutex: every contender held it %d times" % rounds, all(enters.get(i) == rounds for i in ids), str(enters))
    os.unlink(marks)
    os.unlink(marks + ".go")


def occupancy(marks_path):
    """Replays enter/exit marks: the most holders inside at once, writers' conflicts, enters by id."""
    lines = open(marks_path).read().split()
    inside, most, conflicts, enters = set(), 0, 0, {}
    for verb, who in zip(lines[0::2], lines[1::2]):
        if verb == "enter":
            writer = "-write-" in who
            if (writer and inside) or any("-write-" in other for other in inside):
                conflicts += 1
            inside.add(who)
            most = max(most, len(inside))
            enters[who] = enters.get(who, 0) + 1
        elif verb == "exit":
            inside.discard(who)
    return most, conflicts, enters


def rwlock_check():
    path, marks, rounds = BASE + "/rwlock", tempfile.mktemp(prefix="rw-marks-"), 6
    open(marks, "w").close()
    ids = ["swift-read-1", "swift-write-1", "java-read-1", "java-write-1", "swift-read-2", "java-read-2"]
    run_all([(swift if i.startswith("swift") else java)("rwlock", path, str(rounds), marks, i) for i in ids], marks=marks)
    most, conflicts, enters = occupancy(marks)
    check("read-write lock: a writer never shares with anyone (Swift and Java)", conflicts == 0,
          "conflicts=%d most readers at once=%d" % (conflicts, most))
    check("read-write lock: every reader and writer got in %d times" % rounds, all(enters.get(i) == rounds for i in ids), str(enters))
    os.unlink(marks)
    os.unlink(marks + ".go")


def semaphore_check():
    path, marks, rounds, leases = BASE + "/semaphore", tempfile.mktemp(prefix="sem-marks-"), 5, 2
    open(marks, "w").close()
    ids = ["swift-1", "swift-2", "java-1", "java-2"]
    run_all([(swift if i.startswith("swift") else java)("semaphore", path, str(leases), str(rounds), marks, i) for i in ids], marks=marks)
    most, _, enters = occupancy(marks)
    check("semaphore: never more than %d leases held by Swift and Java together" % leases, most <= leases, "most at once=%d" % most)
    check("semaphore: every taker got %d leases" % rounds, all(enters.get(i) == rounds for i in ids), str(enters))
    os.unlink(marks)
    os.unlink(marks + ".go")


def double_barrier_check():
    path, marks = BASE + "/double-barrier", tempfile.mktemp(prefix="db-marks-")
    open(marks, "w").close()
    ids = ["swift-1", "swift-2", "java-1", "java-2"]
    run_all([(swift if i.startswith("swift") else java)("double-barrier", path, str(len(ids)), marks, i) for i in ids], marks=marks)
    lines = open(marks).read().split()
    events = [(verb, who) for verb, who in zip(lines[0::2], lines[1::2]) if verb != "ready"]
    def index(verb, who):
        return events.index((verb, who)) if (verb, who) in events else None
    arrivals = [index("arrive", i) for i in ids]
    entries = [index("entered", i) for i in ids]
    leavings = [index("leaving", i) for i in ids]
    exits = [index("left", i) for i in ids]
    complete = None not in arrivals + entries + leavings + exits
    check("double barrier: nobody (Swift or Java) entered before all four arrived", complete and min(entries) > max(arrivals),
          str(events) if not complete else "")
    check("double barrier: nobody left before all four were leaving", complete and min(exits) > max(leavings),
          str(events) if not complete else "")
    os.unlink(marks)
    os.unlink(marks + ".go")


def latch_check():
    path, marks = BASE + "/latch", tempfile.mktemp(prefix="latch-marks-")
    open(marks, "w").close()
    ids = ["swift-1", "swift-2", "java-1", "java-2"]
    run_all([swift("latch", path, marks, "swift-1"), swift("latch", path, marks, "swift-2"),
             java("latch", path, marks, "java-1"), java("latch", path, marks, "java-2")], marks=marks)
    overlaps, enters = exclusive(marks, 1)
    check("latch: one leader at a time among Swift and Java candidates", overlaps == 0,
          "overlaps=%d handovers between Swift and Java=%d" % (overlaps, handovers(marks)))
    check("latch: each candidate led once in turn", all(enters.get(i) == 1 for i in ids), str(enters))
    os.unlink(marks)
    os.unlink(marks + ".go")


def counter_check():
    path, n, marks = BASE + "/counter", 40, tempfile.mktemp(prefix="counter-marks-")
    open(marks, "w").close()
    run_all([swift("counter", path, str(n), marks, "swift-1"), swift("counter", path, str(n), marks, "swift-2"),
             java("counter", path, str(n), marks, "java-1"), java("counter", path, str(n), marks, "java-2")], marks=marks)
    swift_view, java_view = run_all([swift("get", path), java("get", path)])
    check("counter: 4 x %d increments from Swift and Java at once" % n, swift_view.strip() == str(4 * n) and java_view.strip() == str(4 * n),
          "swift=%s java=%s" % (swift_view.strip(), java_view.strip()))
    os.unlink(marks)
    os.unlink(marks + ".go")


def discovery_check():
    base = BASE + "/services"
    # Swift registers, Curator's ServiceDiscovery finds it.
    register = subprocess.Popen(swift("register", base, "worker", "swift-instance", "4"), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    register.stdout.readline()
    found = run_all([java("discover", base, "worker", "swift-instance", "20")])[0]
    register.wait(timeout=30)
    check("discovery: Curator finds the Swift registration", "found worker swift-instance 127.0.0.3:7070 type=DYNAMIC" in found, found.strip())
    # Curator registers, Swift finds it.
    register = subprocess.Popen(java("register", base, "worker", "java-instance", "4"), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    register.stdout.readline()
    found = run_all([swift("discover", base, "worker", "java-instance", "20")])[0]
    register.wait(timeout=30)
    check("discovery: Swift finds the Curator registration", "found worker java-instance 127.0.0.2:9090 type=DYNAMIC" in found, found.strip())


def queue_check():
    path, n = BASE + "/queue", 15
    # Consumers (one per side, each spending 20 ms per message) and producers (one per side) at once.
    outputs = run_all([swift("queue-take", path, "6"), java("queue-take", path, "6"),
                       swift("queue-put", path, "swift", str(n)), java("queue-put", path, "java", str(n))])
    taken = [line.split(" ", 1)[1] for out in outputs for line in out.splitlines() if line.startswith("took ")]
    expected = {"%s-%d" % (side, i) for side in ("swift", "java") for i in range(n)}
    by_side = [sum(1 for line in out.splitlines() if line.startswith("took ")) for out in outputs[:2]]
    check("queue: every item consumed exactly once by Swift and Java consumers",
          len(taken) == len(expected) and set(taken) == expected, "taken=%d distinct=%d by swift/java=%s" % (len(taken), len(set(taken)), by_side))


def delay_queue_check():
    path, n, delay_ms = BASE + "/delay", 5, 1500

    def early(outputs):
        # "took PREFIX-i@DUE at NOW": none may be taken before it is due (one machine, one clock).
        taken = [line.split(" ") for out in outputs for line in out.splitlines() if line.startswith("took ")]
        return [t[1] for t in taken if int(t[3]) < int(t[1].rsplit("@", 1)[1])], [t[1].rsplit("@", 1)[0] for t in taken]

    # Curator puts, Swift consumes; then Swift puts, Curator consumes.
    for producer, consumer, side in ((java, swift, "java"), (swift, java, "swift")):
        outputs = run_all([consumer("delay-take", path, "6"), producer("delay-put", path, side, str(n), str(delay_ms))])
        too_early, taken = early(outputs)
        expected = ["%s-%d" % (side, i) for i in range(n)]
        check("delay queue: every %s item consumed once by the %s consumer, none before its time" % (side, "Swift" if consumer is swift else "Curator"),
              sorted(taken) == expected and not too_early, "taken=%s early=%s" % (taken, too_early))


def persistent_node_check():
    path = BASE + "/group"
    # Curator's GroupMember (its own PersistentNode plus a cache) sees the node a Swift PersistentNode keeps, with its updated data.
    outputs = run_all([swift("persistent-node", path + "/swift-member", "swift-data-1", "swift-data-2", "4"),
                       java("group-watch", path, "java-member", "swift-member", "swift-data-2", "20")])
    check("persistent node: Curator's GroupMember sees the Swift PersistentNode and its data update",
          "members [java-member, swift-member] swift-member=swift-data-2" in outputs[1], outputs[1].strip())


def checker_self_check():
    """The checkers see violations: overlapping marks must be reported."""
    path = tempfile.mktemp(prefix="selfcheck-")
    with open(path, "w") as f:
        f.write("ready a\nready b\nenter a\nenter b\nexit b\nexit a\nenter java-write-1\nenter swift-read-1\nexit swift-read-1\nexit java-write-1\n")
    overlaps, _ = exclusive(path, 1)
    most, conflicts, _ = occupancy(path)
    os.unlink(path)
    check("checkers detect planted overlaps", overlaps > 0 and conflicts == 1 and most == 2,
          "overlaps=%d conflicts=%d most=%d" % (overlaps, conflicts, most))


checker_self_check()
started = time.time()
for step in (mutex_check, rwlock_check, semaphore_check, double_barrier_check, latch_check, counter_check, discovery_check, queue_check, delay_queue_check,
             persistent_node_check):
    begun = time.time()
    step()
    print("       (%s: %.1fs)" % (step.__name__, time.time() - begun))
print("interop against %s: %s in %.0fs" % (ADDRESS, "FAILED" if failures else "passed", time.time() - started))
for failure in failures:
    print("  " + failure)
sys.exit(1 if failures else 0)
