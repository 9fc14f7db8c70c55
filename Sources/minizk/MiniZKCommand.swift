import ArgumentParser
import Dispatch
import Logging
import NIOCore
import NIOPosix
import ZKCore
import ZKProtocol
import ZKServer

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
        subcommands: [ServerCommand.self, EnsembleCommand.self]
    )
}

/// The settings `server` and `ensemble` share.
struct ReplicaArguments: ParsableArguments {
    @Option(help: "Address to listen on.")
    var host: String = "127.0.0.1"

    @Option(help: "Length of a tick in milliseconds (ZooKeeper's tickTime).")
    var tickMs: Int64 = 2000

    @Option(help: "Data directory. Accepted for compatibility; storage is in memory for now.")
    var dataDir: String?

    @Flag(help: "Enable TTL nodes (ZooKeeper's zookeeper.extendedTypesEnabled).")
    var extendedTypes = false

    @Option(help: "user:base64(sha1(user:password)) of the super user.")
    var superDigest: String?

    @Option(help: "Smallest session timeout granted, in ms (default 2 ticks).")
    var minSessionTimeoutMs: Int64?

    @Option(help: "Largest session timeout granted, in ms (default 20 ticks).")
    var maxSessionTimeoutMs: Int64?

    @Option(help: "Largest frame a client may send, in bytes (ZooKeeper's jute.maxbuffer).")
    var maxFrameBytes: Int = 1_048_575

    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    func validate() throws {
        guard tickMs > 0 else { throw ValidationError("--tick-ms must be positive") }
        guard maxFrameBytes > 0 else { throw ValidationError("--max-frame-bytes must be positive") }
        if let min = minSessionTimeoutMs, let max = maxSessionTimeoutMs, min > max {
            throw ValidationError("--min-session-timeout-ms is above --max-session-timeout-ms")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("unknown --log-level \(logLevel)")
        }
    }

    func replicaConfig(clientPort: Int) -> ReplicaConfig {
        var config = ReplicaConfig()
        config.tickMs = tickMs
        config.minSessionTimeoutMs = minSessionTimeoutMs
        config.maxSessionTimeoutMs = maxSessionTimeoutMs
        config.superDigest = superDigest
        config.extendedTypesEnabled = extendedTypes
        config.clientPort = clientPort
        config.dataDir = dataDir ?? ""
        return config
    }

    var serverOptions: ServerOptions {
        var options = ServerOptions()
        options.frameBytesMax = maxFrameBytes
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
        abstract: "Run one standalone replica until SIGINT or SIGTERM."
    )

    @Option(help: "Client port; 0 picks a free one.")
    var port: Int = 2181

    @OptionGroup var replica: ReplicaArguments

    func run() async throws {
        try await serve(replica: replica, port: port) { server in
            printLine("MiniZK serving on \(server.host):\(server.localPort)")
        }
    }
}

struct EnsembleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ensemble",
        abstract: "Run an ensemble in this process (for now: one replica) until SIGINT or SIGTERM."
    )

    @Option(help: "Number of replicas. Only 1 is supported for now.")
    var nodes: Int = 1

    @Option(help: "Client port of the first replica; 0 picks a free one.")
    var basePort: Int = 2181

    @Flag(help: "Keep all data in memory (the only storage for now).")
    var inMemory = false

    @OptionGroup var replica: ReplicaArguments

    func validate() throws {
        guard nodes >= 1 else { throw ValidationError("--nodes must be at least 1") }
        guard nodes == 1 else {
            throw ValidationError("--nodes \(nodes): ensembles of more than one replica are not supported yet")
        }
    }

    func run() async throws {
        try await serve(replica: replica, port: basePort) { server in
            printLine("MiniZK ensemble of 1 replica (a single replica for now; more are not supported yet)")
            printLine("\(server.host):\(server.localPort)")
        }
    }
}

/// Starts a server, reports it, waits for SIGINT or SIGTERM and shuts down cleanly.
private func serve(
    replica arguments: ReplicaArguments, port: Int, announce: (MiniZKServer) -> Void
) async throws {
    let logger = arguments.makeLogger()
    let signals = TerminationSignals()
    let group = MultiThreadedEventLoopGroup(numberOfThreads: min(2, System.coreCount))
    let server: MiniZKServer
    do {
        server = try await MiniZKServer.start(
            config: arguments.replicaConfig(clientPort: port), host: arguments.host, port: port, group: group,
            logger: logger, options: arguments.serverOptions)
    } catch {
        try? await group.shutdownGracefully()
        throw error
    }
    if arguments.dataDir != nil {
        logger.notice("--data-dir is accepted, but storage is in memory for now: nothing is written there")
    }
    announce(server)
    let signal = await signals.wait()
    logger.info("shutting down", metadata: ["signal": "\(signal)"])
    try await server.shutdown()
    try await group.shutdownGracefully()
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

/// SIGINT and SIGTERM, delivered through Dispatch instead of their default (fatal) action.
final class TerminationSignals: @unchecked Sendable {
    private let queue = DispatchQueue(label: "minizk.signals")
    // Touched only on `queue`.
    private var sources: [any DispatchSourceSignal] = []
    private var received: Int32?
    private var waiter: CheckedContinuation<Int32, Never>?

    init() {
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: queue)
            source.setEventHandler { [self] in self.deliver(signalNumber) }
            source.resume()
            queue.sync { sources.append(source) }
        }
    }

    /// Returns the first termination signal received.
    func wait() async -> Int32 {
        await withCheckedContinuation { continuation in
            queue.async {
                if let received = self.received {
                    continuation.resume(returning: received)
                } else {
                    self.waiter = continuation
                }
            }
        }
    }

    private func deliver(_ signalNumber: Int32) {
        guard received == nil else { return }
        received = signalNumber
        waiter?.resume(returning: signalNumber)
        waiter = nil
    }
}
