import Logging
import NIOCore
import NIOPosix
import ZKCore
import ZKStorage

/// An ensemble of replicas in one process: each has its own client port and store, and they talk
/// through an `InProcessNetwork` (no sockets between them).
///
/// ```swift
/// let ensemble = try await Ensemble.start(nodes: 3, group: group, logger: logger)
/// print(ensemble.connectString)   // 127.0.0.1:PORT1,127.0.0.1:PORT2,127.0.0.1:PORT3
/// try await ensemble.shutdown()
/// ```
public final class Ensemble: Sendable {
    public let servers: [MiniZKServer]
    public let network: InProcessNetwork

    private init(servers: [MiniZKServer], network: InProcessNetwork) {
        self.servers = servers
        self.network = network
    }

    /// `host:port` of every member, comma-separated, as clients take it.
    public var connectString: String {
        servers.map { "\($0.host):\($0.localPort)" }.joined(separator: ",")
    }

    /// Starts `nodes` replicas with ids 1...nodes. `basePort` 0 picks free ports; otherwise
    /// member N listens on `basePort + N - 1`. `makeStore` gives each member its store (memory by
    /// default). With `secure`, every member also serves TLS, member N on `secure.port + N - 1`.
    public static func start(
        nodes: Int = 3, host: String = "127.0.0.1", basePort: Int = 0, config: ReplicaConfig = ReplicaConfig(),
        group: any EventLoopGroup, logger: Logger, options: ServerOptions = ServerOptions(),
        secure: MiniZKServer.SecureClientPort? = nil,
        makeStore: (Int64) throws -> any ReplicaStore = { _ in MemoryStore(keepsEncoded: false) }
    ) async throws -> Ensemble {
        precondition(nodes >= 1, "an ensemble needs at least one member")
        let ids = (1...Int64(nodes)).map { $0 }
        let network = InProcessNetwork()
        var servers: [MiniZKServer] = []
        do {
            // Ports are known only after binding when 0 is asked for; /zookeeper/config names the
            // ports asked for, which is what Curator-style clients rewrite connect strings from
            // when fixed ports are used.
            let configText = ids.map { id in
                let port = basePort == 0 ? 0 : basePort + Int(id) - 1
                return "server.\(id)=\(host):\(port == 0 ? 0 : port + 1000):\(port == 0 ? 0 : port + 2000):participant;\(host):\(port)"
            }.joined(separator: "\n") + "\nversion=0"
            for id in ids {
                var memberConfig = config
                memberConfig.serverId = id
                memberConfig.members = ids
                memberConfig.ensembleConfigText = nodes > 1 ? configText : nil
                var memberLogger = logger
                memberLogger[metadataKey: "replica"] = "\(id)"
                // Member N's TLS port is the one asked for plus N - 1 (0 stays 0: a free one each).
                let memberSecure = secure.map { secure in
                    MiniZKServer.SecureClientPort(port: secure.port == 0 ? 0 : secure.port + Int(id) - 1, tls: secure.tls)
                }
                let server = try await MiniZKServer.start(
                    config: memberConfig, host: host, port: basePort == 0 ? 0 : basePort + Int(id) - 1, group: group,
                    logger: memberLogger, options: options, store: try makeStore(id), transport: nodes > 1 ? network : nil,
                    secure: memberSecure)
                servers.append(server)
            }
        } catch {
            for server in servers { try? await server.shutdown() }
            throw error
        }
        return Ensemble(servers: servers, network: network)
    }

    /// Waits until every member serves (an established leader and up-to-date followers).
    public func waitUntilServing(timeoutMs: Int64 = 10_000) async throws -> Bool {
        let deadline = NIODeadline.now() + .milliseconds(timeoutMs)
        while NIODeadline.now() < deadline {
            var all = true
            for server in servers {
                let status = try await server.status()
                if !status.serving { all = false }
            }
            if all { return true }
            try await Task.sleep(nanoseconds: 2_000_000)
        }
        return false
    }

    public func shutdown() async throws {
        for server in servers { try await server.shutdown() }
    }
}
