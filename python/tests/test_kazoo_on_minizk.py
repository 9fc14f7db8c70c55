"""kazoo against MiniZK through the pytest plugin's fixtures: the way a project's own tests
would use them (pip install ./python, then plain pytest)."""

import threading
import time

import pytest
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import NoNodeError, SessionExpiredError
from kazoo.retry import KazooRetry


def connect(hosts, timeout=10.0):
    client = KazooClient(hosts=hosts, timeout=timeout,
                         connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.2),
                         command_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.2, deadline=20))
    client.start(timeout=15)
    return client


class States:
    """Records kazoo's connection states; `wait(state)` blocks until one is seen."""

    def __init__(self, client):
        self.seen = []
        self.condition = threading.Condition()
        client.add_listener(self.listen)

    def listen(self, state):
        with self.condition:
            self.seen.append(state)
            self.condition.notify_all()

    def wait(self, state, timeout=15):
        with self.condition:
            assert self.condition.wait_for(lambda: state in self.seen, timeout), f"never {state}: {self.seen}"


def test_create_and_read(zk_ensemble):
    client = connect(zk_ensemble.connect_string)
    try:
        client.create("/app/config", b"v=1", makepath=True)
        assert client.get("/app/config")[0] == b"v=1"
        assert zk_ensemble.dump() == {"/app": "", "/app/config": "v=1"}
    finally:
        client.stop()
        client.close()


def test_every_test_starts_from_an_empty_tree(zk_ensemble):
    # The test before created /app; the fixture's reset removed it.
    assert zk_ensemble.dump() == {}
    client = connect(zk_ensemble.connect_string)
    try:
        with pytest.raises(NoNodeError):
            client.get("/app")
    finally:
        client.stop()
        client.close()


def test_load_gives_kazoo_a_fixture_tree(zk_ensemble):
    zk_ensemble.load({"/services/a": "host-a", "/services/b": "host-b"})
    client = connect(zk_ensemble.connect_string)
    try:
        assert sorted(client.get_children("/services")) == ["a", "b"]
        assert client.get("/services/b")[0] == b"host-b"
    finally:
        client.stop()
        client.close()


def test_expire_session_loses_ephemerals_and_tells_kazoo(zk_ensemble3):
    client = connect(zk_ensemble3.connect_string)
    states = States(client)
    observer = connect(zk_ensemble3.connect_string)
    try:
        client.create("/lock", ephemeral=True)
        session_id = client.client_id[0]
        assert any(s["id"] == session_id and s["ephemerals"] == ["/lock"] for s in zk_ensemble3.sessions())
        zk_ensemble3.expire_session(session_id)
        states.wait(KazooState.LOST)
        assert observer.exists("/lock") is None
        assert all(s["id"] != session_id for s in zk_ensemble3.sessions())
    finally:
        for c in (client, observer):
            c.stop()
            c.close()


def test_leader_failover_is_transparent_to_kazoo(zk_ensemble3):
    client = connect(zk_ensemble3.connect_string)
    try:
        client.create("/before", b"1")
        old = zk_ensemble3.kill_leader()
        zk_ensemble3.await_ready()
        new = zk_ensemble3.leader()
        assert new is not None and new != old
        # Kazoo reconnects to a live member and its session survives.
        client.retry(client.create, "/after", b"2")
        assert client.get("/before")[0] == b"1"
        zk_ensemble3.restart(old)
        zk_ensemble3.await_ready()
    finally:
        client.stop()
        client.close()


def test_isolated_member_suspends_its_clients_until_heal(zk_ensemble3):
    leader = zk_ensemble3.leader()
    follower = next(m["id"] for m in zk_ensemble3.status() if m["id"] != leader)
    client = connect(zk_ensemble3.address(follower))
    states = States(client)
    try:
        zk_ensemble3.isolate(follower)
        states.wait(KazooState.SUSPENDED)
        zk_ensemble3.heal()
        zk_ensemble3.await_ready()
        states.seen.clear()
        states.wait(KazooState.CONNECTED)
        assert client.retry(client.exists, "/") is not None
    finally:
        client.stop()
        client.close()


def test_session_expiry_on_the_manual_clock_takes_no_real_time(zk_manual):
    leader = zk_manual.leader()
    client = connect(zk_manual.address(leader), timeout=10.0)
    states = States(client)
    try:
        client.create("/ephemeral", ephemeral=True)
        timeout_ms = client._session_timeout
        started = time.monotonic()
        # Nothing expires while the clock stands still, however long the test takes.
        time.sleep(0.5)
        assert client.exists("/ephemeral") is not None
        # The session's deadline is at most timeout + one tick away. kazoo's own pings (real
        # time) re-arm it at the clock's current time; an advance takes milliseconds, so a ping
        # landing inside one is rare, and a second advance covers it.
        for _ in range(2):
            zk_manual.advance(timeout_ms + 2000)
            if all(s["id"] != client.client_id[0] for s in zk_manual.sessions()):
                break
        states.wait(KazooState.LOST)
        assert time.monotonic() - started < 10
        observer = connect(zk_manual.connect_string)
        assert observer.exists("/ephemeral") is None
        observer.stop()
        observer.close()
    finally:
        client.stop()
        client.close()


def test_factory_starts_a_five_member_ensemble(zk_ensemble_factory):
    zk = zk_ensemble_factory(members=5)
    assert sorted(m["mode"] for m in zk.status()) == ["follower"] * 4 + ["leader"]
    client = connect(zk.connect_string)
    try:
        zk.kill_leader()
        other = next(m["id"] for m in zk.status() if m["running"])
        zk.kill(other)
        zk.await_ready()
        client.retry(client.create, "/three-of-five")
    finally:
        client.stop()
        client.close()
