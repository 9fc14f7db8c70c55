import ArgumentParser
import Dispatch
import Logging
import NIOCore
import NIOPosix
import ZKCore
import ZKProtocol
import ZKServer
import ZKStorage
import ZKTesting
import ZKOperations
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

@main
struct MiniZKCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "minizk",
        abstract: "MiniZK: a ZooKeeper-compatible coordination server.",
        version: MiniZKVersion.fullVersion,
        subcommands: [
            ServerCommand.self, EnsembleCommand.self, InspectCommand.self, BenchCommand.self, SimCommand.self, DiskCommand.self,
            TestingBenchCommand.self, SparkCommand.self, ShellCommand.self, ChaosClientCommand.self,
        ]
    )
}

/// The settings `server` and `ensemble` share.
struct ReplicaArguments: ParsableArguments {
    @Option(help: "Address to listen on.")
    var host: String = "127.0.0.1"

    @Option(help: "Length of a tick in milliseconds (ZooKeeper's tickTime).")
    var tickMs: Int64 = 2000

    @Option(help: "Data directory for the SQLite store (server: memory when absent; ensemble: ./minizk-data).")
    var dataDir: String?

    @Flag(help: "Enable TTL nodes (ZooKeeper's zookeeper.extendedTypesEnabled).")
    var extendedTypes = false

    @Option(help: "user:base64(sha1(user:password)) of the super user.")
    var superDigest: String?

    @Flag(help: "Read-only mode (ZooKeeper's readonlymode.enabled): a member without a leader serves read-only clients.")
    var readOnlyMode = false

    @Flag(help: "Refuse creates and setData beyond a hard quota limit with QUOTAEXCEEDED and log soft limits exceeded (ZooKeeper's zookeeper.enforceQuota; also read from zoo.cfg as enforceQuota=true).")
    var enforceQuota = false

    @Flag(help: "Let clients change the ensemble's members with reconfig (ZooKeeper's reconfigEnabled; also read from zoo.cfg).")
    var reconfigEnabled = false

    @Option(help: "Also serve clients over TLS on this port (ZooKeeper's secureClientPort; ensemble: member N on this port + N - 1); needs --tls-cert and --tls-key.")
    var securePort: Int?

    @Option(help: "PEM certificate chain of the TLS client port.")
    var tlsCert: String?

    @Option(help: "PEM private key of the TLS client port.")
    var tlsKey: String?

    @Option(help: "PEM CA certificates; TLS clients must present a certificate one of them signed (ZooKeeper's ssl.clientAuth=need).")
    var tlsCa: String?

    @Option(help: "JAAS configuration whose Server section's user_NAME=\"PASSWORD\" entries are the SASL DIGEST-MD5 users (ZooKeeper's java.security.auth.login.config).")
    var jaasConfig: String?

    @Option(help: "Smallest session timeout granted, in ms (default 2 ticks).")
    var minSessionTimeoutMs: Int64?

    @Option(help: "Largest session timeout granted, in ms (default 20 ticks).")
    var maxSessionTimeoutMs: Int64?

    @Option(help: "Largest frame a client may send, in bytes (ZooKeeper's jute.maxbuffer).")
    var maxFrameBytes: Int = 1_048_575

    @Option(help: "Client connections one IP address may hold (ZooKeeper's maxClientCnxns; default 60, also read from zoo.cfg; 0: no limit).")
    var maxClientCnxns: Int?

    @Option(help: "Client connections in all (ZooKeeper's maxCnxns; default 0: no limit; also read from zoo.cfg).")
    var maxCnxns: Int?

    @Option(help: "Paths one client connection may watch at once; a read that would watch one more is refused with THROTTLEDOP (default 0: no limit, as ZooKeeper).")
    var maxWatchedPathsPerConnection: Int = 0

    @Option(help: "Requests outstanding over all client connections above which client sockets are not read until they are answered (ZooKeeper's globalOutstandingLimit; default 1000, also read from zoo.cfg; 0: no limit).")
    var globalOutstandingLimit: Int?

    @Option(help: "Serve Prometheus metrics at /metrics on this port (ZooKeeper's metricsProvider.httpPort; ensemble: member N on this port + N - 1; 0: a free one).")
    var metricsPort: Int?

    @Option(help: "Serve the admin server's /commands and the web console (/console) on this port (ZooKeeper's admin.serverPort; ensemble: member N on this port + N - 1; 0: a free one).")
    var adminPort: Int?

    @Option(
        name: .customLong("4lw-commands-whitelist"),
        help: "Four-letter words answered on the client port, comma-separated, or * for all (ZooKeeper's 4lw.commands.whitelist; also read from zoo.cfg). Default: srvr only.")
    var fourLetterWordWhitelist: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    @Flag(inversion: .prefixedNo, help: "fsync every group-commit batch of the SQLite log (ZooKeeper's forceSync).")
    var forceSync = true

    @Option(help: "minizk server: when the SQLite store fails while serving (disk full, write errors, read-only file system): retry (keep the port, answer four-letter words with the reason in mntr, open the store again every --store-retry-ms and serve again once it works) or exit (status 1, as ZooKeeper, for a supervisor).")
    var onStoreFailure: StoreFailurePolicy = .retry

    @Option(help: "Milliseconds between attempts to open a failed store again (minizk server --on-store-failure retry).")
    var storeRetryMs: Int = 2_000

    @Option(help: "Take a snapshot after about this many logged transactions (drawn in [N/2, N]; ZooKeeper's snapCount).")
    var snapshotEvery: Int = 100_000

    @Option(help: "Snapshots kept in the store; the log older than the oldest kept one is removed.")
    var snapshotsKept: Int = 3

    @Option(help: "Most transactions made durable in one group-commit batch (one fsync).")
    var groupCommitMaxTransactions: Int = GroupCommitLimits().transactionsMax

    @Option(help: "Most bytes (estimated) made durable in one group-commit batch.")
    var groupCommitMaxBytes: Int = GroupCommitLimits().bytesMax

    func validate() throws {
        guard tickMs > 0 else { throw ValidationError("--tick-ms must be positive") }
        guard maxFrameBytes > 0 else { throw ValidationError("--max-frame-bytes must be positive") }
        if let min = minSessionTimeoutMs, let max = maxSessionTimeoutMs, min > max {
            throw ValidationError("--min-session-timeout-ms is above --max-session-timeout-ms")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("unknown --log-level \(logLevel)")
        }
        guard snapshotEvery > 0 else { throw ValidationError("--snapshot-every must be positive") }
        guard storeRetryMs > 0 else { throw ValidationError("--store-retry-ms must be positive") }
        guard snapshotsKept > 0 else { throw ValidationError("--snapshots-kept must be positive") }
        guard groupCommitMaxTransactions > 0, groupCommitMaxBytes > 0 else {
            throw ValidationError("--group-commit-max-transactions and --group-commit-max-bytes must be positive")
        }
    }

    /// The SQLite store under `directory` with these arguments' settings.
    /// The SQLite store under `directory`; with `mustExist`, only one that is already there.
    func makeStore(directory: String, mustExist: Bool = false) throws -> SQLiteStore {
        var options = SQLiteStore.Options()
        options.mustExist = mustExist
        options.forceSync = forceSync
        options.snapshotsKept = snapshotsKept
        return try SQLiteStore(directory: directory, options: options)
    }

    /// The TLS client port of `--secure-port`, nil without it.
    func secureClientPort() throws -> MiniZKServer.SecureClientPort? {
        guard let securePort else { return nil }
        guard let tlsCert, let tlsKey else { throw ValidationError("--secure-port needs --tls-cert and --tls-key") }
        do {
            return try .pem(port: securePort, certificateChainFile: tlsCert, privateKeyFile: tlsKey, trustedCAFile: tlsCa)
        } catch {
            throw ValidationError("cannot set up TLS from --tls-cert \(tlsCert) and --tls-key \(tlsKey): \(error)")
        }
    }

    /// The SASL users of `--jaas-config`; none without it.
    func saslUsers() throws -> [String: String] {
        guard let jaasConfig else { return [:] }
        let text: String
        do {
            text = try String(contentsOfFile: jaasConfig, encoding: .utf8)
        } catch {
            throw ValidationError("cannot read --jaas-config \(jaasConfig): \(error.localizedDescription)")
        }
        do {
            return try JAASConfig.serverUsers(in: text)
        } catch {
            throw ValidationError("--jaas-config \(jaasConfig): \(error)")
        }
    }

    func replicaConfig(clientPort: Int) throws -> ReplicaConfig {
        var config = ReplicaConfig()
        config.saslUsers = try saslUsers()
        config.readOnlyModeEnabled = readOnlyMode
        config.reconfigEnabled = reconfigEnabled
        config.tickMs = tickMs
        config.minSessionTimeoutMs = minSessionTimeoutMs
        config.watchedPathsPerConnectionMax = max(0, maxWatchedPathsPerConnection)
        config.maxSessionTimeoutMs = maxSessionTimeoutMs
        config.superDigest = superDigest
        config.extendedTypesEnabled = extendedTypes
        config.enforceQuota = enforceQuota
        config.clientPort = clientPort
        config.dataDir = dataDir ?? ""
        return config
    }

    var serverOptions: ServerOptions {
        var options = ServerOptions()
        options.frameBytesMax = maxFrameBytes
        if let fourLetterWordWhitelist { options.fourLetterWords = FourLetterWordWhitelist(parsing: fourLetterWordWhitelist) }
        if let maxClientCnxns { options.connectionsPerClientAddressMax = max(0, maxClientCnxns) }
        if let maxCnxns { options.connectionsMax = max(0, maxCnxns) }
        if let globalOutstandingLimit { options.outstandingRequestsMax = max(0, globalOutstandingLimit) }
        options.snapshotEveryTransactions = snapshotEvery
        options.groupCommit = GroupCommitLimits(transactionsMax: groupCommitMaxTransactions, bytesMax: groupCommitMaxBytes)
        return options
    }

    func makeLogger() -> Logger {
        var logger = Logger(label: "minizk") { label in StreamLogHandler.standardError(label: label) }
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        return logger
    }
}

struct ServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server",
        abstract: "Run one replica until SIGINT or SIGTERM: standalone, or a member of an ensemble described by a zoo.cfg."
    )

    @Option(help: "Client port; 0 picks a free one.")
    var port: Int = 2181

    @Option(help: "A ZooKeeper-style zoo.cfg (server.N=host:peerPort:electionPort;clientPort, tickTime, initLimit, syncLimit, dataDir).")
    var config: String?

    @Option(help: "This replica's id in the zoo.cfg (ZooKeeper's myid).")
    var id: Int64?

    @Flag(help: "Keep all data in memory instead of SQLite under the data directory.")
    var inMemory = false

    @OptionGroup var replica: ReplicaArguments

    func validate() throws {
        if config != nil && id == nil { throw ValidationError("--config needs --id") }
    }

    func run() async throws {
        try await refusingDamagedState {
            try await runServer()
        }
    }

    private func runServer() async throws {
        guard let path = config, let id else {
            try await serve(replica: replica, port: port, inMemory: inMemory) { server in
                printLine("MiniZK serving on \(server.host):\(server.localPort)" + tlsNote(server))
            }
            return
        }
        let zooConfig = try ZooConfig(parsing: String(contentsOfFile: path, encoding: .utf8))
        guard let me = zooConfig.servers.first(where: { $0.id == id }) else {
            throw ValidationError("server.\(id) is not in \(path)")
        }
        let logger = replica.makeLogger()
        let signals = TerminationSignals()
        // One event loop serves the replica, its clients and its peers: a message from a peer
        // reaches the replica, and its answer leaves, without crossing threads. (Storage has a
        // thread of its own.)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var replicaConfig = zooConfig.replicaConfig(for: id)
        replicaConfig.superDigest = replica.superDigest
        replicaConfig.saslUsers = try replica.saslUsers()
        replicaConfig.readOnlyModeEnabled = replica.readOnlyMode
        replicaConfig.extendedTypesEnabled = zooConfig.extendedTypesEnabled || replica.extendedTypes
        if let ms = replica.minSessionTimeoutMs { replicaConfig.minSessionTimeoutMs = ms }
        if let ms = replica.maxSessionTimeoutMs { replicaConfig.maxSessionTimeoutMs = ms }
        replicaConfig.watchedPathsPerConnectionMax = max(0, replica.maxWatchedPathsPerConnection)
        replicaConfig.reconfigEnabled = zooConfig.reconfigEnabled || replica.reconfigEnabled
        replicaConfig.enforceQuota = zooConfig.enforceQuota || replica.enforceQuota
        // Every member keeps the default session secret: a session must check out on any member,
        // also on one that joined later with a configuration of its own.
        // The flag wins over zoo.cfg's 4lw.commands.whitelist.
        var options = replica.serverOptions
        if replica.fourLetterWordWhitelist == nil, let whitelist = zooConfig.fourLetterWordWhitelist {
            options.fourLetterWords = FourLetterWordWhitelist(parsing: whitelist)
        }
        let dataDir = replica.dataDir ?? zooConfig.dataDir ?? "minizk-data/node-\(id)"
        let sqliteStore: SQLiteStore? = inMemory ? nil : try replica.makeStore(directory: dataDir)
        let peers = zooConfig.servers.map { TCPPeerTransport.Peer(id: $0.id, host: $0.host, port: $0.peerPort) }
        if replica.maxClientCnxns == nil, let value = zooConfig.maxClientCnxns { options.connectionsPerClientAddressMax = max(0, value) }
        if replica.maxCnxns == nil, let value = zooConfig.maxCnxns { options.connectionsMax = max(0, value) }
        if replica.globalOutstandingLimit == nil, let value = zooConfig.globalOutstandingLimit {
            options.outstandingRequestsMax = max(0, value)
        }
        let serverOptions = options
        let replica = self.replica
        let initialConfiguration = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        /// Starts the replica on `store` with its metrics, admin server and console.
        func start(_ store: any ReplicaStore, clientPort: Int, securePort: Int?) async throws -> Incarnation {
            var secure = try replica.secureClientPort()
            if let securePort { secure?.port = securePort }
            // A transport per incarnation: shutting a server down detaches and closes its own.
            let transport = TCPPeerTransport(serverId: id, peers: peers, group: group, logger: logger)
            try await listenRetryingWhileInUse { try await transport.listen(host: me.host, port: me.peerPort) }
            let server = try await MiniZKServer.start(
                config: replicaConfig, host: me.clientHost, port: clientPort, group: group, logger: logger,
                options: serverOptions, store: store, transport: transport, secure: secure)
            // A member of a multi-process ensemble shows itself only: its peers are other processes.
            let console = (replica.adminPort ?? zooConfig.adminPort) == nil ? nil : Console(
                members: { [ConsoleMember(id: id, host: server.host, clientPort: server.localPort, server: server)] })
            await console?.monitor.start()
            let endpoints = try await OperationsEndpoints.start(
                for: server, host: zooConfig.metricsHTTPHost ?? zooConfig.adminServerAddress ?? me.clientHost,
                metricsPort: replica.metricsPort ?? zooConfig.metricsPort, adminPort: replica.adminPort ?? zooConfig.adminPort,
                context: AdminCommands.Context(initialConfiguration: initialConfiguration, clientHost: me.clientHost),
                console: console, memberId: id, logger: logger)
            return Incarnation(server: server) {
                await console?.monitor.stop()
                await endpoints.stop()
            }
        }
        let first = try await start(sqliteStore ?? MemoryStore(keepsEncoded: false), clientPort: me.clientPort, securePort: nil)
        printLine("MiniZK replica \(id) of \(zooConfig.servers.count) serving on \(first.server.host):\(first.server.localPort)" + tlsNote(first.server))
        let stop = try await serveRetryingTheStore(
            policy: replica.onStoreFailure, retryMs: replica.storeRetryMs, logger: logger, signals: signals,
            first: first, store: sqliteStore,
            reopen: { try replica.makeStore(directory: dataDir, mustExist: true) },
            restart: { store, ports in try await start(store, clientPort: ports.client, securePort: ports.secure) })
        try await group.shutdownGracefully()
        try stop.exit(logger: logger)
    }
}

struct EnsembleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ensemble",
        abstract: "Run an ensemble of replicas in this process until SIGINT or SIGTERM, and print its connect string."
    )

    @Option(help: "Number of replicas (an odd number).")
    var nodes: Int = 3

    @Option(help: "Client port of the first replica (the others follow); 0 picks free ones.")
    var basePort: Int = 2181

    @Flag(help: "Keep all data in memory instead of SQLite under the data directory.")
    var inMemory = false

    @OptionGroup var replica: ReplicaArguments

    @Option(help: "Serve the HTTP control API (docs/testing.md) on host:port (port 0: a free one). The ensemble then runs as a test ensemble: ports kept across restarts, faults and time on call, data in memory (--in-memory) or in a temporary directory removed at exit.")
    var control: String?

    @Option(help: "With --control: wall, or manual (time moves only through POST /clock/advance).")
    var clock: String = "wall"

    @Flag(help: "Print one JSON line (connect string, members and ports, control address, pid) once serving, instead of text.")
    var json = false

    func validate() throws {
        guard nodes >= 1 else { throw ValidationError("--nodes must be at least 1") }
        guard TestEnsemble.Clock(rawValue: clock) != nil else { throw ValidationError("--clock is wall or manual") }
        if clock == "manual", control == nil { throw ValidationError("--clock manual needs --control (time moves through it)") }
        if let control, ControlAddress(control) == nil { throw ValidationError("--control is host:port") }
    }

    func run() async throws {
        try await refusingDamagedState {
            if control != nil {
                try await runControlled()
            } else {
                try await runEnsemble()
            }
        }
    }

    private func runEnsemble() async throws {
        let logger = replica.makeLogger()
        let signals = TerminationSignals()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: min(2, System.coreCount))
        let dataDir = replica.dataDir ?? "minizk-data"
        let inMemory = self.inMemory
        let replica = self.replica
        let started = ContinuousClock.now
        let ensemble: Ensemble
        do {
            ensemble = try await Ensemble.start(
                nodes: nodes, host: replica.host, basePort: basePort, config: try replica.replicaConfig(clientPort: basePort),
                group: group, logger: logger, options: replica.serverOptions, secure: try replica.secureClientPort()
            ) { id -> any ReplicaStore in
                if inMemory { return MemoryStore(keepsEncoded: false) }
                return try replica.makeStore(directory: "\(dataDir)/node-\(id)")
            }
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        let serving = try await ensemble.waitUntilServing()
        let elapsed = ContinuousClock.now - started
        let storage = inMemory ? "in memory" : "SQLite under \(dataDir)"
        if json {
            let members = ensemble.servers.enumerated().map { TestEnsemble.Member(id: Int64($0.offset + 1), host: $0.element.host, port: $0.element.localPort) }
            let info = ControlAPI.Info(
                connectString: ensemble.connectString, members: members, control: nil, pid: getpid(), clock: "wall",
                storage: inMemory ? "inMemory" : "sqlite")
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            printLine(String(decoding: try encoder.encode(info), as: UTF8.self))
        } else {
        printLine("MiniZK ensemble of \(nodes) replicas (\(storage)), \(serving ? "serving" : "not serving yet") after \(elapsed)")
        printLine(ensemble.connectString)
        let securePorts = ensemble.servers.compactMap { server in server.secureLocalPort.map { "\(server.host):\($0)" } }
        if !securePorts.isEmpty { printLine("TLS: " + securePorts.joined(separator: ",")) }
        }
        // Every member's admin server serves the same console, which sees all members.
        let console = replica.adminPort == nil ? nil : Console(servers: ensemble.servers)
        await console?.monitor.start()
        var endpoints: [OperationsEndpoints] = []
        for (index, server) in ensemble.servers.enumerated() {
            endpoints.append(try await OperationsEndpoints.start(
                for: server, index: index, host: replica.host, metricsPort: replica.metricsPort, adminPort: replica.adminPort,
                context: AdminCommands.Context(clientHost: replica.host), console: console, logger: logger))
        }
        for server in ensemble.servers {
            server.whenStoreFails { reason in signals.storeFailed(reason) }
        }
        let stop = await signals.wait()
        await console?.monitor.stop()
        for endpoint in endpoints { await endpoint.stop() }
        try await ensemble.shutdown()
        try await group.shutdownGracefully()
        try stop.exit(logger: logger)
    }
}

/// `host:port` of `--control`.
struct ControlAddress {
    var host: String
    var port: Int

    init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            return nil
        }
        host = colon == text.startIndex ? "127.0.0.1" : String(text[..<colon])
        self.port = port
    }
}

/// ", TLS on host:port" when the server has a TLS client port.
private func tlsNote(_ server: MiniZKServer) -> String {
    server.secureLocalPort.map { ", TLS on \(server.host):\($0)" } ?? ""
}

/// Starts a server, reports it, waits for SIGINT or SIGTERM and shuts down cleanly; a store that
/// fails meanwhile is retried or ends the process (`--on-store-failure`).
private func serve(
    replica arguments: ReplicaArguments, port: Int, inMemory: Bool, announce: (MiniZKServer) -> Void
) async throws {
    let logger = arguments.makeLogger()
    let signals = TerminationSignals()
    let group = MultiThreadedEventLoopGroup(numberOfThreads: min(2, System.coreCount))
    let dataDir = inMemory ? nil : arguments.dataDir
    /// Starts the replica on `store` with its metrics, admin server and console.
    func start(_ store: any ReplicaStore, clientPort: Int, securePort: Int?) async throws -> Incarnation {
        var secure = try arguments.secureClientPort()
        if let securePort { secure?.port = securePort }
        let server = try await MiniZKServer.start(
            config: try arguments.replicaConfig(clientPort: clientPort), host: arguments.host, port: clientPort, group: group,
            logger: logger, options: arguments.serverOptions, store: store, secure: secure)
        let console = arguments.adminPort == nil ? nil : Console(servers: [server])
        await console?.monitor.start()
        do {
            let endpoints = try await OperationsEndpoints.start(
                for: server, host: arguments.host, metricsPort: arguments.metricsPort, adminPort: arguments.adminPort,
                context: AdminCommands.Context(clientHost: arguments.host), console: console, logger: logger)
            return Incarnation(server: server) {
                await console?.monitor.stop()
                await endpoints.stop()
            }
        } catch {
            await console?.monitor.stop()
            try? await server.shutdown()
            throw error
        }
    }
    let sqliteStore: SQLiteStore?
    let first: Incarnation
    do {
        sqliteStore = try dataDir.map { try arguments.makeStore(directory: $0) }
        first = try await start(sqliteStore ?? MemoryStore(keepsEncoded: false), clientPort: port, securePort: nil)
    } catch {
        try? await group.shutdownGracefully()
        throw error
    }
    announce(first.server)
    let stop = try await serveRetryingTheStore(
        policy: arguments.onStoreFailure, retryMs: arguments.storeRetryMs, logger: logger, signals: signals,
        first: first, store: sqliteStore,
        reopen: { try arguments.makeStore(directory: dataDir!, mustExist: true) },
        restart: { store, ports in try await start(store, clientPort: ports.client, securePort: ports.secure) })
    try await group.shutdownGracefully()
    try stop.exit(logger: logger)
}

/// Runs a command that opens stores; a store that cannot be used ends the command with a message
/// on standard error and exit status 1, rather than a server that serves from damaged state.
func refusingDamagedState(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as StorageError {
        printError("minizk: \(error.isDamage ? "refuses to serve from damaged state" : "cannot use the store"): \(error)")
        throw ExitCode.failure
    }
}

/// Writes a line to standard error.
func printError(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeBytes { raw in
            write(STDERR_FILENO, raw.baseAddress! + offset, raw.count - offset)
        }
        if written < 0, errno == EINTR { continue }
        if written <= 0 { return }
        offset += written
    }
}

/// Writes a line to standard output at once, unbuffered, so that a parent process waiting for it
/// sees it even when standard output is a pipe.
func printLine(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeBytes { raw in
            write(STDOUT_FILENO, raw.baseAddress! + offset, raw.count - offset)
        }
        if written < 0, errno == EINTR { continue }
        if written <= 0 { return }
        offset += written
    }
}

/// Why a server command stops.
enum StopReason: Sendable {
    case signal(Int32)
    /// A replica's store failed; the process exits with status 1 so that a supervisor notices.
    case storeFailed(String)

    func exit(logger: Logger) throws {
        switch self {
        case .signal(let number):
            logger.info("stopped", metadata: ["signal": "\(number)"])
        case .storeFailed(let reason):
            printError("minizk: stopped serving: \(reason)")
            throw ExitCode.failure
        }
    }
}

/// SIGINT and SIGTERM, delivered through Dispatch instead of their default (fatal) action, and
/// store failures, which stop a server command too (or make it retry the store).
final class TerminationSignals: @unchecked Sendable {
    private let queue = DispatchQueue(label: "minizk.signals")
    // Touched only on `queue`.
    private var sources: [any DispatchSourceSignal] = []
    private var received: StopReason?
    private var waiter: CheckedContinuation<StopReason?, Never>?
    private var waits: UInt64 = 0

    init() {
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: queue)
            source.setEventHandler { [self] in self.deliver(signalNumber) }
            source.resume()
            queue.sync { sources.append(source) }
        }
    }

    /// Returns the first reason to stop: a termination signal or a store failure.
    func wait() async -> StopReason {
        await wait(timeoutMs: nil)!
    }

    /// The first reason to stop, or nil once `timeoutMs` passed without one.
    func wait(timeoutMs: Int?) async -> StopReason? {
        await withCheckedContinuation { continuation in
            queue.async {
                if let received = self.received {
                    continuation.resume(returning: received)
                    return
                }
                self.waits += 1
                self.waiter = continuation
                guard let timeoutMs else { return }
                let wait = self.waits
                self.queue.asyncAfter(deadline: .now() + .milliseconds(timeoutMs)) {
                    guard self.waits == wait, let waiter = self.waiter else { return }
                    self.waiter = nil
                    waiter.resume(returning: nil)
                }
            }
        }
    }

    /// Forgets a store failure already handled (a signal is never forgotten).
    func clearStoreFailure() {
        queue.sync {
            if case .storeFailed = received { received = nil }
        }
    }

    func storeFailed(_ reason: String) {
        queue.async { self.deliver(.storeFailed(reason)) }
    }

    private func deliver(_ signalNumber: Int32) {
        deliver(.signal(signalNumber))
    }

    private func deliver(_ reason: StopReason) {
        switch (received, reason) {
        case (nil, _), (.storeFailed?, .signal):
            // A signal overrides a failure not yet handled: the process is asked to stop.
            received = reason
        default:
            return
        }
        waiter?.resume(returning: reason)
        waiter = nil
    }
}
