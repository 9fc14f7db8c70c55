#!/usr/bin/env python3
"""Disk faults under a three-process MiniZK ensemble (run by scripts/disk-faults.sh, as root).

Member 3 keeps its SQLite store on a small ext4 filesystem in a loop device, mounted with
errors=remount-ro. A kazoo client writes 2 KiB znodes through the whole run and records every
acknowledged write. Three scenarios, each followed by a repair and a check:

  full       a filler file leaves ~1 MiB free; member 3's writes fail (ENOSPC). It must stop
             acknowledging and say why (log and mntr); the ensemble goes on. Repair: the filler
             is removed; member 3, still the same process, opens its store again and catches up.
  failing    the filesystem starts failing writes (ext4 trigger_fs_error: from then on every
             write is refused with EROFS, as after an I/O error of the device). Member 3 must
             let go of its files: repair is unmount, e2fsck, mount again, and member 3 (the same
             process) comes back by itself.

With --policy exit (`minizk server --on-store-failure exit`, ZooKeeper's way) member 3 must
exit with status 1 instead; it is restarted once on the still-full disk (it must not serve),
and restarted after each repair.
  readonly   member 3 is restarted with its data directory made read-only (a read-only bind
             mount over it). It must refuse to serve. Repair: remove the bind mount, restart.

After each repair: the three members reach the same zxid and the same tree digest (`hash`),
every acknowledged write is on every member (read after sync), and at the end `minizk inspect`
verifies each store as recovery reads it. Prints one line per check and `N passed, N failed`.
"""
import argparse, logging, os, re, shutil, subprocess, sys, tempfile, threading, time

from kazoo.client import KazooClient
from kazoo.retry import KazooRetry

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from compat.zk import four_letter_word_or_empty as four_letter, free_ports, server_mode as mode  # noqa: E402


logging.basicConfig(level=logging.CRITICAL)


def run(*cmd, check=True):
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


class Ensemble:
    def __init__(self, binary, workdir, policy="retry"):
        self.binary, self.workdir, self.policy = binary, workdir, policy
        ports = free_ports(6)
        self.client_ports, self.peer_ports = ports[:3], ports[3:]
        self.cfg = os.path.join(workdir, "zoo.cfg")
        with open(self.cfg, "w") as f:
            f.write("tickTime=200\ninitLimit=20\nsyncLimit=5\n4lw.commands.whitelist=*\n")
            for i in range(3):
                f.write(f"server.{i+1}=127.0.0.1:{self.peer_ports[i]}:{self.peer_ports[i]+1};{self.client_ports[i]}\n")
        self.procs = {}

    def data_dir(self, sid):
        return os.path.join(self.workdir, f"data{sid}")

    def log_path(self, sid):
        return os.path.join(self.workdir, f"member{sid}.log")

    def start(self, sid):
        with open(self.log_path(sid), "a") as log:
            log.write(f"--- start {time.strftime('%H:%M:%S')}\n")
            log.flush()
            self.procs[sid] = subprocess.Popen(
                [self.binary, "server", "--config", self.cfg, "--id", str(sid), "--data-dir", self.data_dir(sid),
                 "--log-level", "notice", "--on-store-failure", self.policy, "--store-retry-ms", "500"], stdout=log, stderr=log)

    def stop(self, sid):
        p = self.procs.get(sid)
        if p and p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop_all(self):
        for sid in list(self.procs):
            self.stop(sid)

    def port(self, sid):
        return self.client_ports[sid - 1]

    def hosts(self):
        return ",".join(f"127.0.0.1:{p}" for p in self.client_ports)

    def zxid(self, sid):
        m = re.search(r"^Zxid: (\S+)", four_letter(self.port(sid), "srvr"), re.M)
        return m.group(1) if m else None

    def converged(self, deadline_s=60):
        end = time.time() + deadline_s
        while time.time() < end:
            modes = sorted(str(mode(p)) for p in self.client_ports)
            zxids = {self.zxid(s) for s in (1, 2, 3)}
            if modes == ["follower", "follower", "leader"] and len(zxids) == 1 and None not in zxids:
                return True
            time.sleep(0.2)
        return False


class Writer:
    """Writes 2 KiB znodes under /d with many requests outstanding; records what was acknowledged."""

    def __init__(self, ensemble):
        self.acked, self.lock, self.stop = [], threading.Lock(), threading.Event()
        # Set while the checks compare digests: the writer finishes its batch and waits.
        self.pause, self.idle = threading.Event(), threading.Event()
        self.client = KazooClient(hosts=ensemble.hosts(), timeout=4.0,
                                  connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.2))
        self.client.start(timeout=20)
        self.client.ensure_path("/d")
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        n = 0
        while not self.stop.is_set():
            if self.pause.is_set():
                self.idle.set()
                time.sleep(0.05)
                continue
            self.idle.clear()
            batch = []
            for _ in range(20):
                path = f"/d/n{n:07d}"
                n += 1
                batch.append((path, self.client.create_async(path, os.urandom(1024).hex().encode())))
            for path, result in batch:
                try:
                    result.get(timeout=15)
                    with self.lock:
                        self.acked.append(path)
                except Exception:
                    pass  # not acknowledged
            time.sleep(0.02)

    def count(self):
        with self.lock:
            return len(self.acked)

    def close(self):
        self.stop.set()
        self.thread.join()
        self.client.stop()
        self.client.close()


class Disk:
    """A small ext4 filesystem in a loop device, mounted on member 3's data directory."""

    def __init__(self, workdir, mountpoint, size_mb):
        self.image = os.path.join(workdir, "disk3.img")
        self.mountpoint = mountpoint
        run("truncate", "-s", f"{size_mb}M", self.image)
        run("mkfs.ext4", "-q", "-F", self.image)
        os.makedirs(mountpoint, exist_ok=True)
        self.mount()

    def mount(self):
        run("mount", "-o", "loop,errors=remount-ro", self.image, self.mountpoint)
        self.device = run("findmnt", "-n", "-o", "SOURCE", self.mountpoint).stdout.strip()

    def umount(self):
        run("umount", self.mountpoint, check=False)

    def free_bytes(self):
        st = os.statvfs(self.mountpoint)
        return st.f_bavail * st.f_frsize

    def mounted(self):
        return run("findmnt", "-n", self.mountpoint, check=False).returncode == 0


class Run:
    def __init__(self, ensemble, writer):
        self.ensemble, self.writer, self.results = ensemble, writer, []

    def check(self, name, ok, detail=""):
        self.results.append((name, ok))
        print(f"  [{'ok' if ok else 'FAILED'}] {name}{': ' + detail if detail else ''}", flush=True)

    def wait_exit(self, sid, seconds):
        p = self.ensemble.procs[sid]
        try:
            return p.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return None

    def wait_failed(self, sid, seconds):
        """Member `sid`'s `zk_store_failure` line from mntr once it reports a failed store, or None."""
        end = time.time() + seconds
        while time.time() < end:
            m = re.search(r"^zk_store_failure\t(.*)$", four_letter(self.ensemble.port(sid), "mntr"), re.M)
            if m:
                return m.group(1)
            time.sleep(0.2)
        return None

    def stays_up_and_says_why(self, sid, since, pattern):
        """Under the retry policy: the process lives on, mntr reports the failed store, the log says why."""
        failure = self.wait_failed(sid, 90)
        self.check(f"member {sid} stops serving and mntr says why", failure is not None and re.search(pattern, failure, re.I) is not None,
                   (failure or "no zk_store_failure in mntr")[:200])
        self.check(f"member {sid} stays up (the same process)", self.ensemble.procs[sid].poll() is None)
        lines = self.reason(sid, since)
        self.check(f"member {sid} says why in its log", any(re.search(pattern, l, re.I) for l in lines),
                   (lines[-1][:200] if lines else "nothing logged"))

    def came_back_by_itself(self, sid, label):
        self.check(f"{label}: member {sid} came back without a restart", self.ensemble.procs[sid].poll() is None)

    def reason(self, sid, since):
        """The log lines of member `sid` after byte offset `since` that say why it stopped."""
        with open(self.ensemble.log_path(sid), errors="replace") as f:
            f.seek(since)
            text = f.read()
        lines = [l.strip() for l in text.splitlines()
                 if re.search(r"stops serving|stopped serving|refuses|cannot|full|read-only|readonly|error", l, re.I)]
        return lines

    def goes_on(self, seconds=3.0):
        """Acknowledged writes keep coming while member 3 is down."""
        before = self.writer.count()
        time.sleep(seconds)
        after = self.writer.count()
        self.check("the ensemble goes on without member 3", after > before, f"{after - before} writes acknowledged in {seconds:.0f} s")

    def caught_up(self, label):
        self.writer.idle.clear()
        self.writer.pause.set()
        self.writer.idle.wait(60)
        try:
            self.compare(label)
        finally:
            self.writer.pause.clear()

    def compare(self, label):
        ok = self.ensemble.converged(90)
        zxids = [self.ensemble.zxid(s) for s in (1, 2, 3)]
        self.check(f"{label}: member 3 caught up (same zxid on all three)", ok, " ".join(str(z) for z in zxids))
        time.sleep(0.5)
        digests = {four_letter(p, "hash").strip() for p in self.ensemble.client_ports}
        self.check(f"{label}: same tree digest on all three", len(digests) == 1 and "" not in digests)
        with self.writer.lock:
            acked = list(self.writer.acked)
        for sid in (1, 2, 3):
            c = KazooClient(hosts=f"127.0.0.1:{self.ensemble.port(sid)}", timeout=10.0)
            c.start(timeout=20)
            c.sync("/d")
            present = set(c.get_children("/d"))
            c.stop()
            c.close()
            lost = [p for p in acked if p.rsplit("/", 1)[1] not in present]
            self.check(f"{label}: member {sid} has every acknowledged write", not lost,
                       f"{len(acked)} acknowledged" + (f", missing {lost[:3]}" if lost else ""))


def scenario_full(r, disk, e):
    print("scenario: disk full", flush=True)
    since = os.path.getsize(e.log_path(3))
    filler = os.path.join(disk.mountpoint, "filler")
    leave = 1 << 20
    run("fallocate", "-l", str(max(disk.free_bytes() - leave, 0)), filler)
    print(f"  filler written, {disk.free_bytes() >> 10} KiB left", flush=True)
    if e.policy == "retry":
        r.stays_up_and_says_why(3, since, r"full|space|SQLITE_FULL|ENOSPC")
        r.goes_on()
        # While the disk stays full, member 3 tries its store again every 500 ms and keeps failing.
        time.sleep(3)
        r.check("on the still-full disk, member 3 still reports its failed store", r.wait_failed(3, 10) is not None)
        os.remove(filler)
        print(f"  filler removed, {disk.free_bytes() >> 20} MiB free; member 3 left to come back", flush=True)
        r.caught_up("after space was freed")
        r.came_back_by_itself(3, "after space was freed")
        return
    code = r.wait_exit(3, 90)
    r.check("member 3 stops when its disk is full", code is not None, f"exit status {code}")
    lines = r.reason(3, since)
    r.check("member 3 says why in its log", any(re.search(r"full|space|SQLITE_FULL|ENOSPC", l, re.I) for l in lines),
            (lines[-1][:200] if lines else "nothing logged"))
    r.goes_on()
    # Restarted while the disk is still full: it may start, but must not acknowledge; it stops again or stays behind.
    since = os.path.getsize(e.log_path(3))
    e.start(3)
    code = r.wait_exit(3, 20)
    m = mode(e.port(3))
    lines = r.reason(3, since)
    r.check("restarted on the full disk, member 3 does not serve", code is not None or m not in ("leader", "follower"),
            f"exit status {code}, mode {m}; " + (lines[-1][:160] if lines else "nothing logged"))
    e.stop(3)
    os.remove(filler)
    print(f"  filler removed, {disk.free_bytes() >> 20} MiB free; restarting member 3", flush=True)
    e.start(3)
    r.caught_up("after space was freed")


def scenario_failing(r, disk, e):
    print("scenario: device starts failing writes", flush=True)
    since = os.path.getsize(e.log_path(3))
    name = os.path.basename(disk.device)
    with open(f"/sys/fs/ext4/{name}/trigger_fs_error", "w") as f:
        f.write("1\n")
    print("  ext4 error triggered: every write is refused from now on", flush=True)
    if e.policy == "retry":
        r.stays_up_and_says_why(3, since, r"I/O|read-only|readonly|error")
        r.goes_on()
        # The member closed its store: the file system can be unmounted under the running process.
        unmounted = False
        for _ in range(20):
            if run("umount", disk.mountpoint, check=False).returncode == 0:
                unmounted = True
                break
            time.sleep(0.3)
        r.check("member 3 let go of its files (the file system unmounts under it)", unmounted)
        if not unmounted:
            run("umount", "-l", disk.mountpoint, check=False)
        fsck = run("e2fsck", "-fy", disk.image, check=False)
        time.sleep(1.5)
        r.check("with its data directory gone, member 3 does not start from an empty store",
                not os.path.exists(os.path.join(e.data_dir(3), "minizk.sqlite3")) and r.wait_failed(3, 5) is not None)
        print(f"  unmounted, e2fsck exit {fsck.returncode}, mounting again; member 3 left to come back", flush=True)
        disk.mount()
        r.caught_up("after the device was repaired")
        r.came_back_by_itself(3, "after the device was repaired")
        return
    code = r.wait_exit(3, 90)
    r.check("member 3 stops when its device fails writes", code is not None, f"exit status {code}")
    lines = r.reason(3, since)
    r.check("member 3 says why in its log", bool(lines), lines[-1][:200] if lines else "nothing logged")
    r.goes_on()
    e.stop(3)
    disk.umount()
    fsck = run("e2fsck", "-fy", disk.image, check=False)
    print(f"  unmounted, e2fsck exit {fsck.returncode}, mounted again; restarting member 3", flush=True)
    disk.mount()
    e.start(3)
    r.caught_up("after the device was repaired")


def scenario_readonly(r, disk, e):
    print("scenario: data directory made read-only", flush=True)
    e.stop(3)
    d = e.data_dir(3)
    run("mount", "--bind", d, d)
    run("mount", "-o", "remount,bind,ro", d)
    since = os.path.getsize(e.log_path(3))
    e.start(3)
    code = r.wait_exit(3, 30)
    m = mode(e.port(3))
    lines = r.reason(3, since)
    r.check("member 3 refuses to serve from a read-only directory", code is not None and code != 0 or m not in ("leader", "follower"),
            f"exit status {code}, mode {m}")
    r.check("member 3 says why in its log", bool(lines), lines[-1][:200] if lines else "nothing logged")
    r.goes_on()
    e.stop(3)
    run("umount", d)
    print("  read-only bind mount removed; restarting member 3", flush=True)
    e.start(3)
    r.caught_up("after the directory was writable again")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--minizk", required=True)
    parser.add_argument("--disk-mb", type=int, default=256,
                        help="size of member 3's file system: room for the writes of the whole run and SQLite's WAL (up to 64 MiB)")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--scenarios", default="full,failing,readonly")
    parser.add_argument("--policy", choices=("retry", "exit"), default="retry",
                        help="member 3's --on-store-failure (the other members keep the default)")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="minizk-disk-")
    e = Ensemble(os.path.abspath(args.minizk), workdir, args.policy)
    disk = writer = None
    results = []
    started = time.time()
    try:
        disk = Disk(workdir, e.data_dir(3), args.disk_mb)
        for sid in (1, 2, 3):
            e.start(sid)
        if not e.converged(60):
            print("the ensemble did not start serving", flush=True)
            results.append(("start", False))
            return 1
        writer = Writer(e)
        time.sleep(2)
        r = Run(e, writer)
        scenarios = {"full": scenario_full, "failing": scenario_failing, "readonly": scenario_readonly}
        for name in args.scenarios.split(","):
            scenarios[name](r, disk, e)
        writer.close()
        writer = None
        e.converged(30)
        e.stop_all()
        for sid in (1, 2, 3):
            out = run(args.minizk, "inspect", e.data_dir(sid), check=False)
            line = [l for l in out.stdout.splitlines() if l.startswith("recovery:")]
            r.check(f"store {sid} verified by minizk inspect", out.returncode == 0 and bool(line),
                    (line[0] if line else out.stderr.strip()[:200]))
        results = r.results
    finally:
        if writer:
            writer.close()
        e.stop_all()
        for d in (e.data_dir(3),):
            while run("findmnt", "-n", d, check=False).returncode == 0:
                if run("umount", d, check=False).returncode != 0:
                    run("umount", "-l", d, check=False)
                    break
        passed = sum(1 for _, ok in results if ok)
        failed = len(results) - passed
        print(f"disk faults: {passed} passed, {failed} failed in {time.time() - started:.0f} s", flush=True)
        if failed or args.keep or not results:
            print(f"logs kept in {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if results and all(ok for _, ok in results) else 1


if __name__ == "__main__":
    sys.exit(main())
