"""pytest plugin: run kazoo's own test suite against MiniZK.

Load with ``-p compat.kazoo_plugin`` (the repository root must be on
``PYTHONPATH``).  kazoo's test harness gets its servers from the module-level
function ``kazoo.testing.harness.get_global_cluster()``, which it looks up by
name at every use; this plugin replaces that function, before any test runs, with
one that returns a cluster of ``minizk server`` processes.

The cluster has one member.  kazoo's own harness runs a three-member ensemble,
so the few tests that stop two members, move a client between members or
reconfigure the ensemble cannot run; they are deselected here (and listed at the
end of the run) rather than reported as failures.  With ``MINIZK_CLUSTER_SIZE=3``
the members form an ensemble and nothing is deselected.

Environment:
    MINIZK_BIN            the minizk executable (default: swift's bin path)
    COMPAT_KAZOO_SERVER   ``minizk`` (default) or ``zk``: the latter puts a
                          standalone Apache ZooKeeper behind the same one-member
                          cluster, which checks this plugin itself
    MINIZK_DESELECTED_FILE  where to write the deselected tests, one a line
"""

import os
import time

import pytest

from compat.zk import KAZOO_SASL_USERS, KAZOO_SUPER_DIGEST, MiniZKServer, ServerError, ZooKeeperServer, four_letter_word, free_port, minizk_binary

# Tests that need more than one server, with the reason.  A key is a node-id
# suffix; "::name" alone matches that test in every class (kazoo runs its
# client tests once per handler: threading, eventlet, gevent).
MULTI_SERVER_TESTS = {
    "::test_update_host_list":
        "stops member 0 and expects the client to stay connected to another member",
    "test_connection.py::TestReadOnlyMode::test_read_only":
        "stops members 1 and 2 and expects member 0 to turn read-only",
    "test_client.py::TestReconfig::test_no_super_auth":
        "dynamic reconfiguration needs an ensemble",
    "test_client.py::TestReconfig::test_add_remove_observer":
        "dynamic reconfiguration needs an ensemble",
    "test_client.py::TestReconfig::test_bad_input":
        "dynamic reconfiguration needs an ensemble",
}


# With MINIZK_CLUSTER_SIZE=3 the members form one ensemble (``minizk server --config``, with
# read-only mode and reconfiguration on, as kazoo's harness runs ZooKeeper); every test runs.
ENSEMBLE_UNSUPPORTED_TESTS = {}


class MiniZKEnsembleServer(MiniZKServer):
    """One member of a MiniZK ensemble described by a shared zoo.cfg."""

    def __init__(self, *args, ensemble=None, server_id=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.ensemble = ensemble
        self.server_id = server_id

    def _command(self):
        command = [
            self.binary, "server", "--config", self.ensemble.config_path, "--id", str(self.server_id),
            "--data-dir", self.data_dir, "--read-only-mode", "--4lw-commands-whitelist", "*",
        ]
        if self.extended_types:
            command.append("--extended-types")
        return command + self._auth_arguments()

    def _serving(self):
        text = four_letter_word(self.host, self.port, "srvr", 2.0)
        return "Mode: leader" in text or "Mode: follower" in text

    def start(self, timeout=60):
        # A member alone cannot serve: without a quorum it only starts the process, and the
        # cluster waits for everyone once all are up.
        others = [m for m in self.ensemble.members if m is not self and m.running]
        if len(others) + 1 < self.ensemble.quorum:
            if not self.running:
                self.spawn()
            return self
        return super().start(timeout)


class MiniZKEnsemble:
    """The shared configuration of an ensemble of MiniZK processes."""

    def __init__(self, size, binary, work_dir):
        self.members = []
        self.quorum = size // 2 + 1
        os.makedirs(work_dir, exist_ok=True)
        self.config_path = os.path.join(work_dir, "zoo.cfg")
        ports = [(free_port("127.0.0.1"), free_port("127.0.0.1"), free_port("127.0.0.1")) for _ in range(size)]
        with open(self.config_path, "w") as config:
            config.write("tickTime=200\ninitLimit=10\nsyncLimit=5\nreconfigEnabled=true\n")
            for index, (client, peer, election) in enumerate(ports):
                config.write("server.%d=127.0.0.1:%d:%d;%d\n" % (index + 1, peer, election, client))
        self.client_ports = [client for client, _, _ in ports]

    def wait_until_serving(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(member.running and member._serving() for member in self.members):
                return
            time.sleep(0.05)
        raise ServerError("MiniZK ensemble did not serve within %d s" % timeout)


class MiniZKMember:
    """One cluster member, shaped like kazoo's ``ManagedZooKeeper``."""

    def __init__(self, server_id, make_server, tls=None):
        self.server_id = server_id
        self.host = "127.0.0.1"
        options = dict(
            super_digest=KAZOO_SUPER_DIGEST,
            sasl_users=KAZOO_SASL_USERS,
            extended_types=True,
            log_name="member-%d.log" % server_id,
        )
        if tls:
            options["tls"] = tls
        self._server = make_server(**options)

    @property
    def client_port(self):
        return self._server.port

    @property
    def address(self):
        return self._server.address

    @property
    def secure_client_port(self):
        # The TLS client port (`--secure-port`); a ZooKeeper member behind the plugin has none.
        return getattr(self._server, "secure_port", None) or self._server.port + 1

    @property
    def secure_address(self):
        return "%s:%d" % (self.host, self.secure_client_port)

    @property
    def running(self):
        return self._server.running

    def run(self):
        self._server.start()

    def stop(self):
        self._server.stop()

    def reset(self):
        self._server.reset()

    def destroy(self):
        # Keep the log of every incarnation for post-mortems; wipe the data.
        self._server.reset()

    def get_logs(self, num_lines=100):
        return [line + "\n" for line in self._server.log_tail(num_lines).splitlines()]


class MiniZKCluster:
    """Shaped like kazoo's ``ZookeeperCluster``; members are MiniZK processes."""

    def __init__(self, size=1, kind="minizk"):
        self.ensemble = None
        if kind == "zk":
            make_server = ZooKeeperServer
        elif size > 1:
            binary = minizk_binary()
            from compat.zk import WORK_DIR
            self.ensemble = MiniZKEnsemble(size, binary, os.path.join(WORK_DIR, "ensemble-%d" % os.getpid()))
            counter = iter(range(size))

            def make_server(**options):
                index = next(counter)
                server = MiniZKEnsembleServer(
                    binary=binary, port=self.ensemble.client_ports[index], ensemble=self.ensemble,
                    server_id=index + 1, **options)
                self.ensemble.members.append(server)
                return server
        else:
            binary = minizk_binary()

            def make_server(**options):
                return MiniZKServer(binary=binary, **options)

        # As kazoo's harness does for ZooKeeper: every member also serves TLS, with certificates
        # of a throw-away CA that TestSSLClient's clients get from get_ssl_client_configuration.
        self._tls = None
        tls_files = None
        if kind != "zk":
            from compat.zk import WORK_DIR, make_test_certificates
            self._tls = make_test_certificates(os.path.join(WORK_DIR, "tls-%d" % os.getpid()))
            tls_files = {key: self._tls[key] for key in ("server_cert", "server_key", "ca_cert")}
        self._servers = [MiniZKMember(i + 1, make_server, tls=tls_files) for i in range(size)]

    def __getitem__(self, index):
        return self._servers[index]

    def __iter__(self):
        return iter(self._servers)

    def __len__(self):
        return len(self._servers)

    def start(self):
        for server in reversed(self._servers):
            server.run()
        if self.ensemble is not None:
            self.ensemble.wait_until_serving()

    def stop(self):
        for server in self._servers:
            server.stop()

    def terminate(self):
        # kazoo calls this after every test class; the next setUp starts the
        # members again with empty data directories.
        for server in self._servers:
            server.destroy()

    def reset(self):
        for server in self._servers:
            server.reset()

    def get_logs(self):
        logs = []
        for server in self._servers:
            logs += server.get_logs()
        return logs

    def get_ssl_client_configuration(self):
        if not self._tls:
            raise RuntimeError("this cluster has no TLS client port")
        return {
            "client_key": self._tls["client_key_pem"],
            "client_cert": self._tls["client_cert_pem"],
            "ca_cert": self._tls["ca_cert_pem"],
        }

    def shutdown(self):
        # Logs stay under compat/work for post-mortems; data does not.
        for server in self._servers:
            server.destroy()


_CLUSTER = None


def get_minizk_cluster():
    global _CLUSTER
    if _CLUSTER is None:
        kind = os.environ.get("COMPAT_KAZOO_SERVER", "minizk")
        _CLUSTER = MiniZKCluster(size=_cluster_size(), kind=kind)
    return _CLUSTER


def _cluster_size():
    return int(os.environ.get("MINIZK_CLUSTER_SIZE", "1"))


def pytest_configure(config):
    import kazoo.testing.harness as harness

    harness.get_global_cluster = get_minizk_cluster
    config._minizk_deselected = []


def pytest_unconfigure(config):
    if _CLUSTER is not None:
        _CLUSTER.shutdown()


def _multi_server_reason(nodeid):
    table = ENSEMBLE_UNSUPPORTED_TESTS if _cluster_size() > 1 else MULTI_SERVER_TESTS
    for suffix, reason in table.items():
        if suffix.startswith("::"):
            if nodeid.endswith(suffix):
                return reason
        elif nodeid == suffix or nodeid.endswith("/" + suffix):
            return reason
    return None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    # trylast: -k and -m have already removed what the caller did not ask for.
    keep, drop = [], []
    for item in items:
        reason = _multi_server_reason(item.nodeid)
        if reason is None:
            keep.append(item)
        else:
            drop.append(item)
            config._minizk_deselected.append((item.nodeid, reason))
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    deselected = getattr(config, "_minizk_deselected", [])
    if not deselected:
        return
    terminalreporter.section("deselected for a one-member MiniZK cluster")
    for nodeid, reason in deselected:
        terminalreporter.write_line("%s  (%s)" % (nodeid, reason))
    path = os.environ.get("MINIZK_DESELECTED_FILE")
    if path:
        with open(path, "w") as handle:
            for nodeid, reason in deselected:
                handle.write("%s\t%s\n" % (nodeid, reason))
