"""A MiniZK test ensemble in a child process, driven over its HTTP control API."""

import json
import os
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional


class ControlError(RuntimeError):
    """The control API refused an operation (its JSON ``error`` is the message)."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def find_minizk() -> str:
    """The minizk binary: $MINIZK_BIN, else `minizk` on PATH, else .build/debug/minizk of the
    checkout this package sits in."""
    explicit = os.environ.get("MINIZK_BIN")
    if explicit:
        return explicit
    on_path = shutil.which("minizk")
    if on_path:
        return on_path
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / ".build" / "debug" / "minizk"
        if candidate.exists():
            return str(candidate)
    raise FileNotFoundError("no minizk binary: set MINIZK_BIN or put minizk on PATH (swift build --product minizk)")


class MiniZKEnsemble:
    """``minizk ensemble --control 127.0.0.1:0 --base-port 0 --json`` as an object.

    Members are numbered 1..N. Every fault is a call: ``kill``, ``restart``, ``kill_leader``,
    ``partition``, ``isolate``, ``heal``, ``pause``, ``resume``, ``drop_connections``,
    ``expire_session``, ``close_session``; with ``clock="manual"`` time moves only through
    ``advance(ms)``; ``reset`` empties the tree and ends every session between tests.
    """

    def __init__(self, members: int = 1, clock: str = "wall", in_memory: bool = True, tick_ms: int = 2000,
                 minizk: Optional[str] = None, extra_args: Optional[List[str]] = None, start_timeout: float = 60.0):
        self.members_count = members
        self.clock = clock
        self.in_memory = in_memory
        self.tick_ms = tick_ms
        self.minizk = minizk or find_minizk()
        self.extra_args = list(extra_args or [])
        self.start_timeout = start_timeout
        self.process: Optional[subprocess.Popen] = None
        self.info: Dict = {}

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> "MiniZKEnsemble":
        args = [self.minizk, "ensemble", "--nodes", str(self.members_count), "--base-port", "0",
                "--control", "127.0.0.1:0", "--json", "--clock", self.clock, "--tick-ms", str(self.tick_ms),
                "--log-level", "warning"]
        if self.in_memory:
            args.append("--in-memory")
        args += self.extra_args
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        start_new_session=True)
        line = self._read_json_line()
        self.info = json.loads(line)
        return self

    def _read_json_line(self) -> str:
        import selectors
        import time
        assert self.process is not None and self.process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + self.start_timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    raise TimeoutError(f"minizk did not report serving within {self.start_timeout} s")
                line = self.process.stdout.readline()
                if not line:
                    err = self.process.stderr.read() if self.process.stderr else ""
                    raise RuntimeError(f"minizk exited before serving: {err[-2000:]}")
                if line.startswith("{"):
                    return line
        except BaseException:
            self.close()
            raise
        finally:
            selector.close()

    def close(self) -> None:
        """Stops the process (SIGTERM, then SIGKILL); nothing outlives this call."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for stream in (process.stdout, process.stderr):
            if stream:
                stream.close()

    def __enter__(self) -> "MiniZKEnsemble":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- facts -------------------------------------------------------------------------------

    @property
    def connect_string(self) -> str:
        return self.info["connectString"]

    @property
    def control_url(self) -> str:
        return self.info["control"]

    @property
    def pid(self) -> int:
        return self.info["pid"]

    def port(self, member: int) -> int:
        return next(m["port"] for m in self.info["members"] if m["id"] == member)

    def address(self, member: int) -> str:
        return f"127.0.0.1:{self.port(member)}"

    # -- the control API ---------------------------------------------------------------------

    def _call(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.control_url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            try:
                message = json.loads(error.read()).get("error", "")
            except ValueError:
                message = str(error)
            raise ControlError(error.code, message) from None

    def status(self) -> List[Dict]:
        return self._call("GET", "/members")

    def leader(self) -> Optional[int]:
        leader = self._call("GET", "/leader").get("leader")
        return leader["id"] if leader else None

    def kill(self, member: int) -> None:
        self._call("POST", f"/members/{member}/kill")

    def restart(self, member: int) -> None:
        self._call("POST", f"/members/{member}/restart")

    def kill_leader(self) -> int:
        return self._call("POST", "/kill-leader")["id"]

    def stop(self) -> None:
        self._call("POST", "/stop")

    def start_members(self) -> None:
        self._call("POST", "/start")

    def partition(self, *groups: List[int]) -> None:
        self._call("POST", "/partition", {"groups": [list(group) for group in groups]})

    def isolate(self, member: int) -> None:
        self._call("POST", f"/members/{member}/isolate")

    def heal(self) -> None:
        self._call("POST", "/heal")

    def pause(self, member: int) -> None:
        self._call("POST", f"/members/{member}/pause")

    def resume(self, member: int) -> None:
        self._call("POST", f"/members/{member}/resume")

    def drop_connections(self, member: Optional[int] = None, session: Optional[int] = None) -> int:
        if member is None:
            if session is None:
                raise ValueError("name a member, a session or both")
            return self._call("POST", f"/sessions/{session}/drop-connections")["closed"]
        suffix = f"?session={session}" if session is not None else ""
        return self._call("POST", f"/members/{member}/drop-connections{suffix}")["closed"]

    def await_ready(self) -> None:
        self._call("POST", "/await-ready")

    def sessions(self) -> List[Dict]:
        return self._call("GET", "/sessions")

    def member_of_session(self, session_id: int) -> Optional[int]:
        """The member where the session has its connection, if any."""
        member = self._call("GET", f"/sessions/{session_id}/member").get("member")
        return member["id"] if member else None

    def expire_session(self, session_id: int) -> None:
        self._call("POST", f"/sessions/{session_id}/expire")

    def close_session(self, session_id: int) -> None:
        self._call("POST", f"/sessions/{session_id}/close")

    def now_ms(self) -> int:
        return self._call("GET", "/clock")["nowMs"]

    def advance(self, ms: int) -> int:
        """Moves the manual clock forward; returns its new time."""
        return self._call("POST", "/clock/advance", {"ms": ms})["nowMs"]

    def reset(self) -> None:
        self._call("POST", "/reset")

    def load(self, tree: Dict[str, str]) -> None:
        self._call("POST", "/load", tree)

    def dump(self) -> Dict[str, str]:
        return self._call("GET", "/dump")
