"""Start and stop the servers that MiniZK's compatibility tests talk to.

Two kinds of server are managed here with one interface:

* ``ZooKeeperServer`` -- a standalone Apache ZooKeeper 3.8 (Debian's package) on
  loopback, the reference every comparison is made against;
* ``MiniZKServer`` -- the ``minizk server`` process built from this repository.

Both are configured alike: loopback only, a free port, tickTime 200 ms, a fresh
temporary data directory, every four-letter word enabled, extended types (TTL
nodes) enabled, and optionally a super-user digest.  ``start()`` returns only when
the server answers ``ruok`` with ``imok``.

Command line (used by the shell scripts)::

    python3 -m compat.zk run --kind zk|minizk [--super-digest D] -- CMD ARGS...

starts a server, runs CMD with ``ZK_HOST``, ``ZK_PORT`` and ``ZK_ADDRESS`` set in
its environment, stops the server and exits with CMD's status.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK_DIR = os.path.join(REPO_ROOT, "compat", "work")

JAVA_DIR = "/usr/share/java"
# The Debian jar's manifest names most dependencies but not netty-codec (needed
# by the Netty connection factory kazoo's harness selects) and no logging
# backend; adding them here keeps both server flavours working and logging.
ZOOKEEPER_CLASSPATH = ":".join(
    os.path.join(JAVA_DIR, jar)
    for jar in (
        "zookeeper.jar",
        "netty-codec.jar",
        "slf4j-log4j12.jar",
        "log4j-1.2.jar",
    )
)

# "super:test", the digest kazoo's own harness configures.
KAZOO_SUPER_DIGEST = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="

# The SASL DIGEST-MD5 users kazoo's harness gives ZooKeeper (its JAAS Server section).
KAZOO_SASL_USERS = {"super": "super_secret", "jaasuser": "jaas_password"}

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0


def free_port(host="127.0.0.1"):
    """Return a TCP port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def four_letter_word(host, port, word, timeout=5.0):
    """Send a four-letter word and return the whole reply as text."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(word.encode("ascii"))
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def free_ports(count, host="127.0.0.1"):
    """`count` distinct ports that were free a moment ago (all bound at once, then released)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def four_letter_word_or_empty(port, word, timeout=2.0, host="127.0.0.1"):
    """The reply to a four-letter word, or "" when nothing answers."""
    try:
        return four_letter_word(host, port, word, timeout)
    except OSError:
        return ""


def server_mode(port, host="127.0.0.1"):
    """The `Mode:` that `srvr` reports (leader, follower, standalone, ...), or None."""
    try:
        text = four_letter_word(host, port, "srvr", 0.5)
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return None


def minizk_binary():
    """Locate the minizk executable: $MINIZK_BIN, else swift's bin path."""
    explicit = os.environ.get("MINIZK_BIN")
    if explicit:
        return explicit
    try:
        bin_path = subprocess.run(
            ["swift", "build", "--show-bin-path"],
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as error:
        raise RuntimeError("cannot locate minizk (set MINIZK_BIN): %s" % error)
    return os.path.join(bin_path, "minizk")


class ServerError(RuntimeError):
    pass


class ManagedServer:
    """Common life cycle of one server process.

    Subclasses provide ``_command()`` and ``_prepare()``.  The data directory
    lives under ``work_dir`` and is kept between ``stop()`` and ``start()`` (so a
    restart keeps the tree); ``reset()`` wipes it and ``destroy()`` removes
    everything.
    """

    kind = "server"

    def __init__(
        self,
        port=None,
        host="127.0.0.1",
        super_digest=None,
        extended_types=True,
        work_dir=None,
        log_name=None,
        sasl_users=None,
        tls=None,
    ):
        self.host = host
        self.sasl_users = dict(sasl_users or {})
        # {"server_cert": path, "server_key": path, "ca_cert": path}: also serve TLS on secure_port.
        self.tls = tls
        self.secure_port = free_port(host) if tls else None
        self.port = port or free_port(host)
        self.super_digest = super_digest
        self.extended_types = extended_types
        os.makedirs(WORK_DIR, exist_ok=True)
        self.work_dir = work_dir or tempfile.mkdtemp(
            prefix="%s-%d-" % (self.kind, self.port), dir=WORK_DIR
        )
        self.data_dir = os.path.join(self.work_dir, "data")
        self.log_path = os.path.join(self.work_dir, log_name or "server.log")
        self.process = None
        self._log_file = None

    # -- identity -------------------------------------------------------------
    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    def __repr__(self):
        return "<%s %s %s>" % (
            type(self).__name__,
            self.address,
            "running" if self.running else "stopped",
        )

    # -- life cycle -----------------------------------------------------------
    def start(self, timeout=START_TIMEOUT_SECONDS):
        if self.running:
            return self
        self.spawn()
        self.wait_until_serving(timeout)
        return self

    def spawn(self):
        """Starts the process without waiting for it to serve."""
        os.makedirs(self.data_dir, exist_ok=True)
        self._prepare()
        self._log_file = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self._command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=self.work_dir,
            start_new_session=True,
        )

    def wait_until_serving(self, timeout=START_TIMEOUT_SECONDS):
        deadline = time.monotonic() + timeout
        last_error = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(
                    "%s exited with status %s before serving; log tail:\n%s"
                    % (self.kind, self.process.returncode, self.log_tail())
                )
            try:
                if (four_letter_word(self.host, self.port, "ruok", 2.0) == "imok"
                        and self._serving()):
                    return
            except OSError as error:
                last_error = error
            time.sleep(0.05)
        self.stop()
        raise ServerError(
            "%s on %s did not answer ruok within %.0f s (%s); log tail:\n%s"
            % (self.kind, self.address, timeout, last_error, self.log_tail())
        )

    def stop(self):
        """Stop the process (SIGTERM, then SIGKILL), keeping the data."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(STOP_TIMEOUT_SECONDS)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def kill(self):
        """Stop the process abruptly (SIGKILL), keeping the data."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.stop()

    def reset(self):
        """Stop the process and wipe its data directory."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def destroy(self):
        self.stop()
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, "rb") as handle:
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def four_letter_word(self, word):
        return four_letter_word(self.host, self.port, word)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.destroy()
        return False

    # -- subclass hooks -------------------------------------------------------
    def _prepare(self):
        pass

    def _serving(self):
        """Extra readiness check after ruok answered imok."""
        return True

    def _command(self):
        raise NotImplementedError


class ZooKeeperServer(ManagedServer):
    """A standalone Apache ZooKeeper 3.8 (ZooKeeperServerMain)."""

    kind = "zookeeper"

    def _serving(self):
        # ZooKeeper answers ruok before it accepts sessions (it drops them with
        # "ZooKeeperServer not running"); srvr tells the two states apart.
        return "Mode:" in four_letter_word(self.host, self.port, "srvr", 2.0)

    def _prepare(self):
        self.config_path = os.path.join(self.work_dir, "zoo.cfg")
        with open(self.config_path, "w") as config:
            config.write(
                "tickTime=200\n"
                "dataDir=%s\n"
                "clientPort=%d\n"
                "clientPortAddress=%s\n"
                "maxClientCnxns=0\n"
                "admin.enableServer=false\n"
                "4lw.commands.whitelist=*\n"
                "forceSync=no\n" % (self.data_dir, self.port, self.host)
            )
        if self.sasl_users:
            write_jaas_config(self.jaas_path, self.sasl_users)
        self.log4j_path = os.path.join(self.work_dir, "log4j.properties")
        with open(self.log4j_path, "w") as log4j:
            log4j.write(
                "log4j.rootLogger=INFO, CONSOLE\n"
                "log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender\n"
                "log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout\n"
                "log4j.appender.CONSOLE.layout.ConversionPattern="
                "%d{ISO8601} %-5p [%t:%C{1}@%L] - %m%n\n"
            )

    def _command(self):
        command = [
            "java",
            "-Xmx512m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Xshare:auto",
            "-Dfile.encoding=UTF-8",
            "-Djava.awt.headless=true",
            "-Dlog4j.configuration=file:%s" % self.log4j_path,
        ]
        if self.extended_types:
            command.append("-Dzookeeper.extendedTypesEnabled=true")
        if self.super_digest:
            command.append(
                "-Dzookeeper.DigestAuthenticationProvider.superDigest=%s"
                % self.super_digest
            )
        if self.sasl_users:
            # SASL DIGEST-MD5: the JAAS Server section's users, and the provider that lets
            # `sasl:` ACLs match the authenticated user.
            command += [
                "-Djava.security.auth.login.config=%s" % self.jaas_path,
                "-Dzookeeper.authProvider.1="
                "org.apache.zookeeper.server.auth.SASLAuthenticationProvider",
            ]
        command += [
            "-cp",
            os.environ.get("ZOOKEEPER_CLASSPATH", ZOOKEEPER_CLASSPATH),
            "org.apache.zookeeper.server.ZooKeeperServerMain",
            self.config_path,
        ]
        return command


    @property
    def jaas_path(self):
        return os.path.join(self.work_dir, "jaas.conf")


class MiniZKServer(ManagedServer):
    """``minizk server`` built from this repository."""

    kind = "minizk"

    def __init__(self, *args, binary=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.binary = binary or minizk_binary()

    def _prepare(self):
        if not os.access(self.binary, os.X_OK):
            raise ServerError("minizk binary not found: %s" % self.binary)
        if self.sasl_users:
            write_jaas_config(self.jaas_path, self.sasl_users)

    @property
    def jaas_path(self):
        return os.path.join(self.work_dir, "jaas.conf")

    def _auth_arguments(self):
        arguments = []
        if self.super_digest:
            arguments += ["--super-digest", self.super_digest]
        if self.sasl_users:
            arguments += ["--jaas-config", self.jaas_path]
        if self.tls:
            arguments += ["--secure-port", str(self.secure_port), "--tls-cert", self.tls["server_cert"],
                          "--tls-key", self.tls["server_key"], "--tls-ca", self.tls["ca_cert"]]
        return arguments

    def _command(self):
        command = [
            self.binary,
            "server",
            "--port",
            str(self.port),
            "--tick-ms",
            "200",
            "--data-dir",
            self.data_dir,
            "--host",
            self.host,
            # ruok (readiness), mntr, envi (kazoo's server_version)...: every word, as the
            # ZooKeeper server of this module is configured (4lw.commands.whitelist=*).
            "--4lw-commands-whitelist",
            "*",
            # As the ZooKeeper above (maxClientCnxns=0): test suites open many sessions from loopback.
            "--max-client-cnxns",
            "0",
        ]
        if self.extended_types:
            command.append("--extended-types")
        return command + self._auth_arguments()


class ZooKeeperMember(ZooKeeperServer):
    """An ensemble member: a QuorumPeerMain reading its own zoo.cfg, written by
    ``config_text(data_dir, server_lines)``, and its myid."""

    def __init__(self, sid, server_lines, config_text, **kwargs):
        self.sid, self.server_lines, self.config_text = sid, list(server_lines), config_text
        super().__init__(**kwargs)

    def _prepare(self):
        super()._prepare()  # the logging setup and config path of the standalone server
        with open(self.config_path, "w") as config:
            config.write(self.config_text(self.data_dir, self.server_lines))
        with open(os.path.join(self.data_dir, "myid"), "w") as myid:
            myid.write("%d\n" % self.sid)

    def _command(self):
        command = super()._command()
        main = command.index("org.apache.zookeeper.server.ZooKeeperServerMain")
        command[main] = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
        return command


class MiniZKMember(MiniZKServer):
    """An ensemble member: ``minizk server --config zoo.cfg --id N --data-dir DIR``, the zoo.cfg
    written by ``config_text(data_dir, server_lines)``; ``arguments`` go after those."""

    def __init__(self, sid, server_lines, config_text, arguments=(), **kwargs):
        self.sid, self.server_lines, self.config_text = sid, list(server_lines), config_text
        self.arguments = list(arguments)
        super().__init__(**kwargs)

    @property
    def config_path(self):
        return os.path.join(self.work_dir, "zoo.cfg")

    def _prepare(self):
        super()._prepare()
        with open(self.config_path, "w") as config:
            config.write(self.config_text(self.data_dir, self.server_lines))

    def _command(self):
        return [self.binary, "server", "--config", self.config_path, "--id", str(self.sid),
                "--data-dir", self.data_dir, "--4lw-commands-whitelist", "*"] + self.arguments + self._auth_arguments()


def make_test_certificates(directory):
    """A throw-away CA, a server certificate (CN localhost) and a client certificate it signed,
    as PEM files in `directory`. Returns a dict of their paths and PEM bytes."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    os.makedirs(directory, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(common_name):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    def issue(subject, key, issuer, issuer_key, serial, ca=False):
        builder = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
                   .public_key(key.public_key()).serial_number(serial)
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1)))
        if ca:
            builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
                critical=True)
        return builder.sign(issuer_key, hashes.SHA256())

    def new_key():
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    ca_key, server_key, client_key = new_key(), new_key(), new_key()
    ca_cert = issue("MiniZK test CA", ca_key, "MiniZK test CA", ca_key, 1, ca=True)
    server_cert = issue("localhost", server_key, "MiniZK test CA", ca_key, 2)
    client_cert = issue("client", client_key, "MiniZK test CA", ca_key, 3)
    result = {}
    for label, cert, key in (("ca", ca_cert, None), ("server", server_cert, server_key), ("client", client_cert, client_key)):
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        result[label + "_cert_pem"] = cert_pem
        result[label + "_cert"] = os.path.join(directory, label + "-cert.pem")
        with open(result[label + "_cert"], "wb") as f:
            f.write(cert_pem)
        if key is not None:
            key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                        serialization.NoEncryption())
            result[label + "_key_pem"] = key_pem
            result[label + "_key"] = os.path.join(directory, label + "-key.pem")
            with open(result[label + "_key"], "wb") as f:
                f.write(key_pem)
    return result


def write_jaas_config(path, users):
    """A JAAS file whose Server section holds `users` for SASL DIGEST-MD5, as ZooKeeper reads it."""
    entries = "\n".join('    user_%s="%s"' % (name, password) for name, password in sorted(users.items()))
    with open(path, "w") as f:
        f.write("Server {\n    org.apache.zookeeper.server.auth.DigestLoginModule required\n%s;\n};\n" % entries)


SERVER_KINDS = {
    "zk": ZooKeeperServer,
    "zookeeper": ZooKeeperServer,
    "minizk": MiniZKServer,
}


def make_server(kind, **kwargs):
    try:
        factory = SERVER_KINDS[kind]
    except KeyError:
        raise ValueError("unknown server kind %r (zk or minizk)" % kind)
    return factory(**kwargs)


def _main(argv):
    parser = argparse.ArgumentParser(prog="python3 -m compat.zk")
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser("run", help="run a command against a fresh server")
    run.add_argument("--kind", required=True, choices=sorted(SERVER_KINDS))
    run.add_argument("--super-digest", default=None)
    run.add_argument("--no-extended-types", action="store_true")
    run.add_argument("--sasl-user", action="append", default=[], metavar="NAME=PASSWORD",
                     help="a SASL DIGEST-MD5 user of the server's JAAS Server section (repeatable)")
    run.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        parser.error("run needs a command after --")

    server = make_server(
        args.kind,
        super_digest=args.super_digest,
        extended_types=not args.no_extended_types,
        sasl_users=dict(user.split("=", 1) for user in args.sasl_user),
    )
    try:
        server.start()
    except ServerError as error:
        print("compat.zk: %s" % error, file=sys.stderr)
        server.destroy()
        return 3
    env = dict(os.environ)
    env.update(
        ZK_HOST=server.host,
        ZK_PORT=str(server.port),
        ZK_ADDRESS=server.address,
        ZK_KIND=server.kind,
    )
    try:
        return subprocess.call(command, env=env)
    finally:
        alive = server.running
        server.destroy()
        if not alive:
            print("compat.zk: %s had died before the command ended" % args.kind,
                  file=sys.stderr)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
