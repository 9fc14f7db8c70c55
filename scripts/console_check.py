"""Checks MiniZK's web console in a real headless browser (Debian's chromium and chromedriver,
driven by Selenium).

Starts `minizk ensemble --nodes 3 --admin-port 0 --control 127.0.0.1:0` (a test ensemble whose
members can be killed through the control API; every member's admin server serves the console
of the whole ensemble), opens member 1's /console in headless Chromium and checks, through what
the page shows:

1. three members, exactly one leader, and the header naming it;
2. a znode written by a real client (kazoo) appears in the tree view with its data (text and
   pretty-printed JSON), its Stat and ACL; the client's session with its ephemeral and watch
   appears in the sessions table; the charts draw lines once there is traffic;
3. after the leader is killed through the control API, the page shows a new leader, the killed
   member as not running, and a leader-change event naming the old leader.

Screenshots (PNG) go to docs/images/ (with --ci: a temporary directory, removed when every
check passes; the repository is left alone).

usage: python3 scripts/console_check.py [--ci] [--screenshots DIR]
Exit status 0 when every check passes.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from kazoo.client import KazooClient
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKS = []


def check(name, ok, detail=""):
    CHECKS.append((name, bool(ok)))
    print(("ok   " if ok else "FAIL ") + name + (f" ({detail})" if detail else ""), flush=True)
    return ok


def wait_for(what, predicate, timeout=15.0, interval=0.2):
    """Polls `predicate` until it returns something truthy; returns it, or None after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as error:  # the page may be re-rendering between two reads
            last_error = error
        time.sleep(interval)
    print(f"     timed out waiting for {what}" + (f": {last_error}" if last_error else ""), flush=True)
    return None


def post(url):
    request = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.loads(response.read())


def start_ensemble(binary, log):
    process = subprocess.Popen(
        [binary, "ensemble", "--nodes", "3", "--base-port", "0", "--tick-ms", "200",
         "--admin-port", "0", "--control", "127.0.0.1:0", "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=log, text=True)
    lines, consoles, control = [], [], None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(consoles) < 3:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if line.startswith("control: "):
            control = line.split(" ", 1)[1].strip()
        if line.startswith("console: "):
            consoles.append(line.split(" ", 1)[1].strip())
    if control is None or len(consoles) < 3:
        process.kill()
        raise SystemExit("minizk ensemble did not announce its control API and consoles:\n" + "\n".join(lines))
    connect = lines[1]
    # Keep reading standard output so that the process never blocks on a full pipe.
    threading.Thread(target=lambda: process.stdout.read(), daemon=True).start()
    return process, connect, control, consoles


def browser(width, height):
    options = webdriver.ChromeOptions()
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={width},{height}", "--hide-scrollbars", "--force-device-scale-factor=1"]:
        options.add_argument(argument)
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(service=service, options=options)


def text_of(driver, selector):
    """The text of the element `selector` picks, read in one step in the page (the page
    re-renders its tables while Selenium looks at them)."""
    return driver.execute_script("const e = document.querySelector(arguments[0]); return e ? e.innerText : null;", selector)


def members(driver):
    rows = driver.find_elements(By.CSS_SELECTOR, "#members tbody tr.member")
    return [(row.get_attribute("data-id"), row.get_attribute("data-mode")) for row in rows]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ci", action="store_true", help="screenshots to a temporary directory")
    parser.add_argument("--screenshots", help="where the PNGs go (default docs/images, with --ci a temporary directory)")
    args = parser.parse_args()
    binary = os.environ.get("MINIZK_BIN") or os.path.join(REPO, ".build", "debug", "minizk")
    shots = args.screenshots or (tempfile.mkdtemp(prefix="minizk-console-") if args.ci else os.path.join(REPO, "docs", "images"))
    os.makedirs(shots, exist_ok=True)
    started = time.monotonic()

    log = tempfile.NamedTemporaryFile(prefix="minizk-console-check-", suffix=".log", delete=False)
    process, connect, control, consoles = start_ensemble(binary, log)
    driver = None
    client = None
    stop_load = threading.Event()
    try:
        print(f"ensemble {connect}, control {control}, console {consoles[0]}", flush=True)
        driver = browser(1400, 1300)
        driver.get(consoles[0])
        check("the page loads", "MiniZK console" in driver.title, driver.title)

        # 1. Three members, one leader.
        seen = wait_for("three members and one leader", lambda: (lambda m: m if len(m) == 3 and
                        [mode for _, mode in m].count("leader") == 1 else None)(members(driver)))
        check("three members with one leader", seen, f"{seen}")
        leader = next((member for member, mode in seen or [] if mode == "leader"), None)
        header = driver.find_element(By.ID, "leader").text
        check("the header names the leader", leader and header == f"member {leader}", header)
        check("the others follow", seen and sorted(mode for _, mode in seen) == ["follower", "follower", "leader"])

        # 2. A client's write in the tree view; its session in the sessions table.
        client = KazooClient(hosts=connect, timeout=10)
        client.start(timeout=15)
        document = {"service": "orders", "replicas": 3, "zones": ["a", "b"]}
        client.ensure_path("/console-check")
        client.create("/console-check/config", json.dumps(document).encode())
        client.create("/console-check/member-", b"10.0.0.7:8080", ephemeral=True, sequence=True)
        client.exists("/console-check/flag", watch=lambda event: None)
        session = "0x%x" % client.client_id[0]

        def load():
            n = 0
            while not stop_load.is_set():
                try:
                    client.set("/console-check/config", json.dumps(dict(document, generation=n)).encode())
                    client.get("/console-check/config")
                    client.exists("/console-check/none")
                    n += 1
                except Exception:  # the leader is killed under it: kazoo reconnects
                    time.sleep(0.1)
        loader = threading.Thread(target=load, daemon=True)
        loader.start()

        driver.get(consoles[0] + "#/console-check")
        child = wait_for("the znode in the children list", lambda: driver.find_element(
            By.CSS_SELECTOR, '#children li[data-path="/console-check/config"] a'))
        check("the client's znode appears in the tree", child)
        if child:
            child.click()
        text = wait_for("the znode's data", lambda: (lambda t: t if '"service": "orders"' in t else None)(
            driver.find_element(By.ID, "data-view").text))
        check("its data is shown as text", text, (text or "")[:60])
        driver.find_element(By.CSS_SELECTOR, '.tabs button[data-view="json"]').click()
        pretty = driver.find_element(By.ID, "data-view").text
        check("its data is shown as JSON", '"service": "orders"' in pretty and '"replicas": 3' in pretty)
        driver.find_element(By.CSS_SELECTOR, '.tabs button[data-view="hex"]').click()
        hexdump = driver.find_element(By.ID, "data-view").text
        check("its data is shown as hex", hexdump.startswith("00000000  7b 22 73 65"), hexdump[:40])
        driver.find_element(By.CSS_SELECTOR, '.tabs button[data-view="json"]').click()
        stat = driver.find_element(By.ID, "stat").text
        check("its Stat is shown", "czxid" in stat and "dataLength" in stat and "ephemeralOwner" in stat)
        acl = driver.find_element(By.CSS_SELECTOR, "#acl tbody").text
        check("its ACL is shown", "world anyone cdrwa" in acl, acl)

        row = wait_for("the session in the sessions table", lambda: (lambda t: t if t and "/console-check/member-" in t
                       and "/console-check/flag" in t else None)(text_of(driver, f'#sessions tr[data-session="{session}"]')))
        check("the session shows its ephemeral and its watch", row, row or session)
        lines = wait_for("lines in the request-rate chart", lambda: driver.find_elements(By.CSS_SELECTOR, "#chart-rate path"), timeout=10)
        check("the request-rate chart draws each member", lines and len(lines) == 3, f"{len(lines or [])} lines")
        check("the fsync chart draws", wait_for("fsync line", lambda: driver.find_elements(By.CSS_SELECTOR, "#chart-fsync path"), timeout=5))
        time.sleep(2.5)  # a few more samples for the picture
        driver.save_screenshot(os.path.join(shots, "console.png"))

        # 3. Kill the leader through the control API.
        killed = post(control + "/kill-leader")
        check("the control API killed the leader", str(killed.get("id")) == leader, f"{killed}")
        new = wait_for("a new leader on the page", lambda: (lambda m: m if len(m) == 3 and any(
            mode == "leader" and member != leader for member, mode in m) else None)(members(driver)), timeout=25)
        check("the page shows a new leader", new, f"{new}")
        check("the killed member is shown not running", new and dict(new).get(leader) == "not running", f"{new}")
        new_leader = next((member for member, mode in new or [] if mode == "leader"), None)
        event = wait_for("the leader-change event", lambda: driver.find_element(
            By.CSS_SELECTOR, f'#events li.event[data-kind="leader"][data-member="{new_leader}"][data-previous="{leader}"]'))
        check("a leader-change event names both leaders", event, event.text if event else "")
        down = driver.find_elements(By.CSS_SELECTOR, f'#events li.event[data-kind="member-down"][data-member="{leader}"]')
        check("a member-down event for the old leader", down)
        header = wait_for("the header", lambda: (lambda t: t if t == f"member {new_leader}" else None)(
            driver.find_element(By.ID, "leader").text))
        check("the header names the new leader", header, header or "")
        time.sleep(2)
        driver.save_screenshot(os.path.join(shots, "console-leader-change.png"))

        # The tree view reads from the new leader and still shows the client's data.
        driver.get(consoles[1] + "#/console-check/config")
        text = wait_for("the znode on the new leader", lambda: (lambda t: t if '"service": "orders"' in t else None)(
            driver.find_element(By.ID, "data-view").text))
        check("another member's console shows the same tree after the change", text)
        crumbs = driver.find_element(By.ID, "crumbs").text
        check("the tree is read from the new leader", f"member {new_leader}" in crumbs, crumbs)
        errors = [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]
        check("no errors in the browser's console", not errors, f"{errors[:2]}")
    finally:
        stop_load.set()
        if client is not None:
            try:
                client.stop()
                client.close()
            except Exception:
                pass
        if driver is not None:
            driver.quit()
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
    failed = [name for name, ok in CHECKS if not ok]
    print(f"{len(CHECKS) - len(failed)}/{len(CHECKS)} checks passed in {time.monotonic() - started:.1f} s; "
          f"screenshots in {shots}" + (" (removed)" if args.ci and not args.screenshots and not failed else ""), flush=True)
    if failed:
        print("minizk log: " + log.name)
        return 1
    os.unlink(log.name)
    if args.ci and not args.screenshots:
        shutil.rmtree(shots, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
