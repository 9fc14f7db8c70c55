import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ZKCore
import ZKStorage
import ZKProtocol

/// A MiniZK server: one replica serving the ZooKeeper client protocol on one TCP port.
///
/// ```swift
/// let server = try await MiniZKServer.start(
///     config: ReplicaConfig(), host: "127.0.0.1", port: 0, group: group, logger: logger)
/// print(server.localPort)
/// try await server.shutdown()
/// ```
///
/// The replica, its timer and all of its client connections run on one event loop taken from
/// `group`; see `ReplicaHost` for why.
public final class MiniZKServer: Sendable {
    /// The port the client port is bound to (the real one when 0 was asked for).
    public let localPort: Int
    /// The address the client port is bound to.
    public let host: String
    /// The port the TLS client port is bound to, when there is one.
    public let secureLocalPort: Int?
    private let serverChannels: [any Channel]
    private let replicaHost: ReplicaHost
    private let transport: (any PeerTransport)?

    private init(
        serverChannels: [any Channel], replicaHost: ReplicaHost, host: String, localPort: Int, secureLocalPort: Int?,
        transport: (any PeerTransport)?
    ) {
        self.transport = transport
        self.serverChannels = serverChannels
        self.replicaHost = replicaHost
        self.host = host
        self.localPort = localPort
        self.secureLocalPort = secureLocalPort
    }

    /// A second client port whose connections speak TLS (ZooKeeper's `secureClientPort`); behind
    /// the TLS layer it is the same protocol and the same replica.
    public struct SecureClientPort: Sendable {
        public var port: Int
        public var tls: TLSConfiguration

        public init(port: Int, tls: TLSConfiguration) {
            self.port = port
            self.tls = tls
        }

        /// The server's certificate chain and private key from PEM files. With `trustedCAFile`,
        /// every client must present a certificate that CA signed (ZooKeeper's default
        /// `ssl.clientAuth=need`); host names are not checked.
        public static func pem(
            port: Int, certificateChainFile: String, privateKeyFile: String, trustedCAFile: String?
        ) throws -> SecureClientPort {
            let chain = try NIOSSLCertificate.fromPEMFile(certificateChainFile).map { NIOSSLCertificateSource.certificate($0) }
            let key = try NIOSSLPrivateKey(file: privateKeyFile, format: .pem)
            var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
            if let trustedCAFile {
                tls.trustRoots = .file(trustedCAFile)
                tls.certificateVerification = .noHostnameVerification
            }
            return SecureClientPort(port: port, tls: tls)
        }
    }

    /// Starts a replica and binds its client port. `port` 0 picks a free port.
    /// `config.clientPort` is overwritten with the bound port so that `conf` reports it.
    /// Recovers the store and hands what it read to a new replica host. The recovered state is
    /// released when this returns: the replica then holds the only copy of the tree, so applying
    /// the recovered log changes it in place instead of copying what the two would share.
    private static func recoverHost(
        config: ReplicaConfig, options: ServerOptions, store: any ReplicaStore, eventLoop: any EventLoop, logger: Logger,
        clock: ManualClock?
    ) throws -> ReplicaHost {
        let recoveryStarted = ContinuousClock.now
        let recovered = try store.recover()
        var recoveryMetadata: Logger.Metadata = [
            "zxid": "0x\(String(recovered.lastZxid, radix: 16))", "znodes": "\(recovered.tree.nodeCount)",
            "log": "\(recovered.log.count)", "duration": "\(ContinuousClock.now - recoveryStarted)",
        ]
        var recovery = RecoveryMetrics()
        recovery.totalSeconds = Double((ContinuousClock.now - recoveryStarted).components.attoseconds) / 1e18
            + Double((ContinuousClock.now - recoveryStarted).components.seconds)
        recovery.logTransactions = recovered.log.count
        if let sqlite = store as? SQLiteStore {
            recoveryMetadata["timing"] = "\(sqlite.recoveryTiming)"
            let timing = sqlite.recoveryTiming
            recovery.snapshotReadSeconds = timing.readSeconds
            recovery.snapshotDecodeSeconds = timing.decodeSeconds
            recovery.treeRestoreSeconds = timing.restoreSeconds
            recovery.logSeconds = timing.logSeconds
            recovery.snapshotNodes = timing.snapshotNodes
        }
        logger.info("recovered", metadata: recoveryMetadata)
        // Recovery decoded the snapshot into temporary arrays, now freed: give that memory back to
        // the system rather than keep it in the allocator's free lists.
        SystemFacts.releaseFreeMemory()
        return ReplicaHost(
            config: config, options: options, store: store, recovered: recovered, eventLoop: eventLoop, logger: logger,
            manualClock: clock, recovery: recovery)
    }

    public static func start(
        config: ReplicaConfig, host: String, port: Int, group: any EventLoopGroup, logger: Logger,
        options: ServerOptions = ServerOptions(), store: (any ReplicaStore)? = nil,
        transport: (any PeerTransport)? = nil, secure: SecureClientPort? = nil, clock: ManualClock? = nil
    ) async throws -> MiniZKServer {
        let tlsContext = try secure.map { try NIOSSLContext(configuration: $0.tls) }
        let eventLoop = group.next()
        let bootstrap = ServerBootstrap(group: eventLoop, childGroup: eventLoop)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            // One read of at most `readBytesPerTurn` per connection per look at the sockets
            // (see `ServerOptions.readBytesPerTurn`); 0 keeps NIO's reads (16 of up to 64 KiB).
            .childChannelOption(.maxMessagesPerRead, value: UInt(options.readBytesPerTurn > 0 ? 1 : 16))
            .childChannelOption(
                .recvAllocator,
                value: options.readBytesPerTurn > 0
                    ? AdaptiveRecvByteBufferAllocator(
                        minimum: 64, initial: min(2048, max(64, options.readBytesPerTurn)), maximum: max(64, options.readBytesPerTurn))
                    : AdaptiveRecvByteBufferAllocator())

        var config = config
        config.clientPort = port
        let store = store ?? MemoryStore(keepsEncoded: false)
        let replicaHost = try recoverHost(
            config: config, options: options, store: store, eventLoop: eventLoop, logger: logger, clock: clock)
        // A standalone replica serves as soon as its first epoch is durable: wait for that before
        // opening the client port, so that no client is turned away as "not serving yet".
        let standalone = config.isStandalone
        if standalone {
            do {
                try await eventLoop.flatSubmit {
                    replicaHost.start()
                    return replicaHost.whenServing()
                }.get()
            } catch {
                try? await eventLoop.flatSubmit { replicaHost.stop() }.get()
                throw error
            }
        }
        let childLogger = logger
        /// Binds a client port; with `tls`, its connections go through a TLS layer first.
        func bindClientPort(_ port: Int, tls: NIOSSLContext?) async throws -> (any Channel, Int) {
            let channel = try await bootstrap.childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    let handler = ClientConnectionHandler(host: replicaHost, logger: childLogger)
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }.bind(host: host, port: port).get()
            guard let bound = channel.localAddress?.port else {
                try? await channel.close()
                throw MiniZKServerError.notBound(host: host, port: port)
            }
            return (channel, bound)
        }
        var serverChannels: [any Channel] = []
        let boundPort: Int
        var secureBoundPort: Int?
        do {
            let (channel, bound) = try await bindClientPort(port, tls: nil)
            serverChannels.append(channel)
            boundPort = bound
            if let secure, let tlsContext {
                let (secureChannel, secureBound) = try await bindClientPort(secure.port, tls: tlsContext)
                serverChannels.append(secureChannel)
                secureBoundPort = secureBound
            }
        } catch {
            for channel in serverChannels { try? await channel.close() }
            try? await eventLoop.flatSubmit { replicaHost.stop() }.get()
            throw error
        }
        // `conf` reports the bound port; the replica never reads `clientPort`.
        try await eventLoop.submit {
            replicaHost.config.clientPort = boundPort
            replicaHost.peerTransport = transport
            if !standalone { replicaHost.start() }
        }.get()
        if let transport {
            transport.attach(serverId: config.serverId) { inputs in
                replicaHost.eventLoop.execute {
                    for input in inputs { replicaHost.submit(input) }
                }
            }
        }
        var serving: Logger.Metadata = ["host": "\(host)", "port": "\(boundPort)"]
        if let secureBoundPort { serving["securePort"] = "\(secureBoundPort)" }
        logger.info("MiniZK serving", metadata: serving)
        return MiniZKServer(
            serverChannels: serverChannels, replicaHost: replicaHost, host: host, localPort: boundPort,
            secureLocalPort: secureBoundPort, transport: transport)
    }

    /// The replica's status (mode, zxid, digest, ...), read on its event loop.
    public func status() async throws -> ReplicaStatus {
        let replicaHost = self.replicaHost
        return try await replicaHost.eventLoop.submit { replicaHost.replicaStatus() }.get()
    }

    /// The committed tree as of now. Taking it costs the event loop O(1) (the copy shares the
    /// replica's nodes); reading it costs the caller, off the event loop.
    public func committedTree() async throws -> DataTree {
        let replicaHost = self.replicaHost
        return try await replicaHost.eventLoop.submit { replicaHost.committedTree() }.get()
    }

    /// Stops this member abruptly, as a crash would: peers see it disconnect, clients lose their
    /// connections, nothing more is written.
    public func kill() async throws {
        try await shutdown()
    }

    /// Calls `callback` (on the replica's event loop) if the store fails and the replica stops
    /// serving; at once if it already has.
    public func whenStoreFails(_ callback: @escaping @Sendable (String) -> Void) {
        let replicaHost = self.replicaHost
        replicaHost.eventLoop.execute { replicaHost.whenFailed(callback) }
    }

    /// After the store failed: completes once nothing touches the store any more, so that the
    /// caller may close it (releasing its files) and open it again later. The failed server keeps
    /// its client port and answers four-letter words, `mntr` saying why it does not serve.
    public func storeReleased() async throws {
        let replicaHost = self.replicaHost
        try await replicaHost.eventLoop.flatSubmit { replicaHost.storageThreadStopped() }.get()
    }

    /// This server's metrics in the Prometheus text format, as of now (`/metrics`).
    public func prometheusText() async throws -> String {
        let snapshot = try await operationsSnapshot()
        return PrometheusExposition.render(snapshot, registry: replicaHost.metrics)
    }

    /// What the metrics and the admin server report, as of now; `digest` adds the digest of the
    /// committed tree (an O(n) walk), `watchesByConnection` every connection's watched paths
    /// (O(watches)).
    public func operationsSnapshot(digest: Bool = false, watchesByConnection: Bool = false) async throws -> OperationsSnapshot {
        let replicaHost = self.replicaHost
        return try await replicaHost.eventLoop.submit {
            replicaHost.operationsSnapshot(digest: digest, watchesByConnection: watchesByConnection)
        }.get()
    }

    /// Answers a four-letter word as the client port would (including `crst`, `srst`, `stmk`
    /// side effects).
    public func answer(_ word: FourLetterWord, argument: Int64? = nil) async throws -> String {
        let replicaHost = self.replicaHost
        return try await replicaHost.eventLoop.submit { replicaHost.answer(word, argument: argument) }.get()
    }

    /// What the four-letter words would report now.
    public func snapshot() async throws -> FourLetterWordSnapshot {
        let replicaHost = self.replicaHost
        return try await replicaHost.eventLoop.submit { replicaHost.snapshot() }.get()
    }

    /// Stops accepting connections, closes every client connection and stops the replica's timer.
    /// Sessions are not closed: a restarted MiniZK with durable storage resumes them.
    public func shutdown() async throws {
        transport?.detach(serverId: replicaHost.config.serverId)
        for channel in serverChannels { try? await channel.close() }
        let replicaHost = self.replicaHost
        try await replicaHost.eventLoop.flatSubmit { replicaHost.stop() }.get()
        replicaHost.logger.info("MiniZK stopped", metadata: ["port": "\(localPort)"])
    }
}

// MARK: - Faults and inspection for tests (ZKTesting)

extension MiniZKServer {
    /// Stalls this member as a paused process: it steps nothing (inputs from peers and clients
    /// wait, ticks are skipped) and reads nothing from its client connections, which stay open.
    public func pause() async throws {
        let replicaHost = self.replicaHost
        try await replicaHost.eventLoop.submit { replicaHost.pause() }.get()
    }

    /// Ends a `pause`: what arrived meanwhile is stepped in order and clients are read again.
    public func resume() async throws {
        let replicaHost = self.replicaHost
        try await replicaHost.eventLoop.submit { replicaHost.resume() }.get()
    }

    public func isPaused() async throws -> Bool {
        let replicaHost = self.replicaHost
        return try await replicaHost.eventLoop.submit { replicaHost.isPaused }.get()
    }

    /// Client requests decoded and not yet answered, whether reading is throttled for them
    /// (`ServerOptions.outstandingRequestsMax`) and how many times it has been.
    public func clientThrottling() async throws -> (outstandingRequests: Int, isThrottled: Bool, throttleCount: Int) {
        let replicaHost = self.replicaHost
        return try await replicaHost.eventLoop.submit {
            (replicaHost.outstandingRequests, replicaHost.isThrottled, replicaHost.throttleCount)
        }.get()
    }

    /// Closes this member's client connections (those of `sessionId` only, when given) as a
    /// network failure would; their sessions live on. Returns how many were closed.
    @discardableResult
    public func dropClientConnections(sessionId: Int64? = nil) async throws -> Int {
        let replicaHost = self.replicaHost
        return try await replicaHost.eventLoop.submit { replicaHost.dropConnections(sessionId: sessionId) }.get()
    }

    /// Expires `sessionId` through the log as the leader's expiry does. False when this member
    /// does not lead or does not know the session.
    public func expireSession(_ sessionId: Int64) async throws -> Bool {
        let replicaHost = self.replicaHost
        return try await replicaHost.eventLoop.submit { replicaHost.expireSession(sessionId) }.get()
    }

    /// The password a client presents to resume `sessionId` (the same on every member).
    public func sessionPassword(for sessionId: Int64) async throws -> [UInt8] {
        let replicaHost = self.replicaHost
        return try await replicaHost.eventLoop.submit { replicaHost.sessionPassword(for: sessionId) }.get()
    }
}

public enum MiniZKServerError: Error, CustomStringConvertible {
    case notBound(host: String, port: Int)

    public var description: String {
        switch self {
        case .notBound(let host, let port): return "could not bind the client port \(host):\(port)"
        }
    }
}
