import Foundation
import Logging
import NIOCore
import NIOPosix
import ZKCore
import ZKProtocol
import ZKServer
import ZKStorage

/// A ZooKeeper ensemble for tests: 1, 3 or 5 MiniZK members in this process, real client ports
/// that any ZooKeeper client connects to, and faults and time under the test's control.
///
/// ```swift
/// try await withTestEnsemble(members: 3, clock: .manual) { zk in
///     let client = try await TestClient.connect(port: zk.member(1).port, group: zk.eventLoopGroup)
///     try await zk.killLeader()
///     try await zk.awaitReady()
///     try await zk.advance(by: 12_000)   // sessions of 10 s expire, exactly
/// }
/// ```
///
/// Ports are chosen by the system and kept when a member restarts, so a client's connect string
/// stays valid. Peers talk in memory; a partition cuts their links (both sides see the
/// connection break at once).
public actor TestEnsemble {
    public enum Storage: String, Sendable, Codable {
        /// Each member's log and snapshots in memory; they survive the member's kill and restart
        /// (as a disk would), not the ensemble's `close()`.
        case inMemory
        /// SQLite files in a temporary directory per member, removed by `close()`.
        case temporaryDirectory
    }

    public enum Clock: String, Sendable, Codable {
        /// Ticks come from a timer, as in production.
        case wall
        /// Time moves only through `advance(by:)` (see `ManualClock`).
        case manual
    }

    /// One member: its server id and client port (kept across restarts).
    public struct Member: Sendable, Hashable, Codable {
        public var id: Int64
        public var host: String
        public var port: Int
        public var address: String { "\(host):\(port)" }

        public init(id: Int64, host: String, port: Int) {
            self.id = id
            self.host = host
            self.port = port
        }
    }

    /// A member's state as the harness sees it.
    public struct MemberStatus: Sendable, Codable {
        public var id: Int64
        public var host: String
        public var port: Int
        /// False after `kill`/`stop`, until `restart`/`start`.
        public var running: Bool
        public var paused: Bool
        /// "leader", "follower", "looking", "standalone" or "stopped".
        public var mode: String
        public var serving: Bool
        public var lastZxid: Int64
        public var connections: Int
    }

    /// A session as the leader knows it.
    public struct Session: Sendable, Hashable, Codable {
        public var id: Int64
        public var timeoutMs: Int64
        /// On the leader's clock (the manual clock's time in `.manual`).
        public var expiresAtMs: Int64
        public var ephemerals: [String]
    }

    public nonisolated let members: [Member]
    public nonisolated let storage: Storage
    public nonisolated let clock: Clock
    public nonisolated let eventLoopGroup: any EventLoopGroup
    /// The manual clock, in `.manual`.
    public nonisolated let manualClock: ManualClock?
    /// Every member's settings (the server id is set per member).
    public nonisolated let config: ReplicaConfig
    private let ownsGroup: Bool
    private let network: TestNetwork
    private let logger: Logger
    private let options: ServerOptions
    private let directory: String?
    private var stores: [Int64: any ReplicaStore] = [:]
    private var servers: [Int64: MiniZKServer] = [:]
    private var isClosed = false

    /// The user `reset`, `load` and `dump` authenticate as (digest scheme); it is the ensemble's
    /// super user unless `config.superDigest` was set by the caller.
    public static let superCredentials = "zktesting:zktesting"
    static let superDigest = "zktesting:qDFBNtTlzrKVV21gwiJm4DVtAb4="

    /// `host:port` of every member, as clients take it.
    public nonisolated var connectString: String {
        members.map(\.address).joined(separator: ",")
    }

    private init(
        members: [Member], storage: Storage, clock: Clock, group: any EventLoopGroup, ownsGroup: Bool,
        manualClock: ManualClock?, config: ReplicaConfig, options: ServerOptions, directory: String?, logger: Logger
    ) {
        self.members = members
        self.storage = storage
        self.clock = clock
        self.eventLoopGroup = group
        self.ownsGroup = ownsGroup
        self.manualClock = manualClock
        self.config = config
        self.options = options
        self.directory = directory
        self.logger = logger
        self.network = TestNetwork()
    }

    /// Starts an ensemble and waits until it serves (`awaitReady`).
    ///
    /// - Parameters:
    ///   - members: 1 (standalone), 3 or 5 (any positive count works).
    ///   - tickMs: the tick; sessions may ask for 2 to 20 ticks.
    ///   - configure: changes every member's `ReplicaConfig` (server ids and members are set after).
    ///   - group: event loops to run on; by default the ensemble makes (and later shuts down) its own.
    public static func start(
        members count: Int = 1, storage: Storage = .inMemory, clock: Clock = .wall, tickMs: Int64 = 2000,
        host: String = "127.0.0.1", basePort: Int = 0, configure: (inout ReplicaConfig) -> Void = { _ in },
        options: ServerOptions = ServerOptions(), group: (any EventLoopGroup)? = nil, logger: Logger? = nil
    ) async throws -> TestEnsemble {
        precondition(count >= 1, "an ensemble needs at least one member")
        var config = ReplicaConfig()
        config.tickMs = tickMs
        configure(&config)
        if config.superDigest == nil { config.superDigest = superDigest }
        let ownsGroup = group == nil
        let group = group ?? MultiThreadedEventLoopGroup(numberOfThreads: min(max(count, 1), 2))
        var quiet = Logger(label: "zktesting")
        quiet.logLevel = .warning
        let logger = logger ?? quiet
        var directory: String?
        do {
            // Member N on basePort + N - 1 when asked; otherwise ports the system picks.
            let ports = basePort == 0 ? try await reservePorts(count, host: host, group: group) : (0..<count).map { basePort + $0 }
            let members = ports.enumerated().map { Member(id: Int64($0.offset + 1), host: host, port: $0.element) }
            if storage == .temporaryDirectory {
                let path = FileManager.default.temporaryDirectory.appendingPathComponent("zktesting-\(UUID().uuidString)").path
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
                directory = path
            }
            if count > 1 {
                config.members = members.map(\.id)
                config.ensembleConfigText = members.map { "server.\($0.id)=\(host):0:0:participant;\(host):\($0.port)" }
                    .joined(separator: "\n") + "\nversion=0"
            }
            let manualClock: ManualClock? = clock == .manual ? ManualClock(startMs: Self.wallClockMs() / tickMs * tickMs) : nil
            let ensemble = TestEnsemble(
                members: members, storage: storage, clock: clock, group: group, ownsGroup: ownsGroup, manualClock: manualClock,
                config: config, options: options, directory: directory, logger: logger)
            do {
                try await ensemble.startAll()
                try await ensemble.awaitReady()
            } catch {
                try? await ensemble.close()
                throw error
            }
            return ensemble
        } catch {
            if let directory { try? FileManager.default.removeItem(atPath: directory) }
            if ownsGroup { try? await group.shutdownGracefully() }
            throw error
        }
    }

    static func wallClockMs() -> Int64 {
        Int64(Date().timeIntervalSince1970 * 1000)
    }

    /// Binds `count` listening sockets on port 0 to learn free ports, then releases them for the
    /// members (which bind with SO_REUSEADDR, as they do again on restart).
    private static func reservePorts(_ count: Int, host: String, group: any EventLoopGroup) async throws -> [Int] {
        var channels: [any Channel] = []
        defer { for channel in channels { channel.close(promise: nil) } }
        var ports: [Int] = []
        for _ in 0..<count {
            let channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { $0.eventLoop.makeSucceededVoidFuture() }
                .bind(host: host, port: 0).get()
            channels.append(channel)
            guard let port = channel.localAddress?.port else { throw TestEnsembleError.noPort }
            ports.append(port)
        }
        for channel in channels { try? await channel.close() }
        channels = []
        return ports
    }

    // MARK: - Members

    public nonisolated func member(_ id: Int64) -> Member {
        guard let member = members.first(where: { $0.id == id }) else { preconditionFailure("no member \(id)") }
        return member
    }

    /// The member a client with this port is connected to.
    public nonisolated func member(port: Int) -> Member? {
        members.first { $0.port == port }
    }

    /// The member that serves as leader now (the standalone member of a one-member ensemble).
    /// A leader cut off from a majority by a partition, which has not noticed yet, does not count.
    public func leader() async throws -> Member? {
        let cut = Set(network.cutLinks.map { "\($0.0)-\($0.1)" })
        for (id, server) in servers.sorted(by: { $0.key < $1.key }) {
            guard !(try await server.isPaused()) else { continue }
            let status = try await server.status()
            guard status.serving, status.mode == "leader" || status.mode == "standalone" else { continue }
            let reachable = members.filter { $0.id == id || !cut.contains("\(min(id, $0.id))-\(max(id, $0.id))") }.count
            if reachable * 2 > members.count { return member(id) }
        }
        return nil
    }

    /// The member where `sessionId` has its connection, if any.
    public func member(connectedTo sessionId: Int64) async throws -> Member? {
        for (id, server) in servers.sorted(by: { $0.key < $1.key }) {
            let status = try await server.status()
            if status.connections.contains(where: { $0.sessionId == sessionId }) { return member(id) }
        }
        return nil
    }

    public func status() async throws -> [MemberStatus] {
        var result: [MemberStatus] = []
        for member in members {
            guard let server = servers[member.id] else {
                result.append(MemberStatus(
                    id: member.id, host: member.host, port: member.port, running: false, paused: false, mode: "stopped",
                    serving: false, lastZxid: 0, connections: 0))
                continue
            }
            let status = try await server.status()
            result.append(MemberStatus(
                id: member.id, host: member.host, port: member.port, running: true, paused: try await server.isPaused(),
                mode: status.mode, serving: status.serving, lastZxid: status.lastZxid, connections: status.connections.count))
        }
        return result
    }

    /// The running server of a member, for what this API does not cover.
    public func server(_ id: Int64) -> MiniZKServer? { servers[id] }

    // MARK: - Life cycle

    private func startAll() async throws {
        for member in members where servers[member.id] == nil { try await startMember(member.id) }
    }

    private func store(for id: Int64) throws -> any ReplicaStore {
        switch storage {
        case .inMemory:
            if let store = stores[id] { return store }
            let store = MemoryStore(keepsEncoded: false)
            stores[id] = store
            return store
        case .temporaryDirectory:
            let path = URL(fileURLWithPath: directory!).appendingPathComponent("member-\(id)").path
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            var storeOptions = SQLiteStore.Options()
            storeOptions.forceSync = false
            return try SQLiteStore(directory: path, options: storeOptions)
        }
    }

    private func startMember(_ id: Int64) async throws {
        try checkOpen()
        var memberConfig = config
        memberConfig.serverId = id
        if let directory { memberConfig.dataDir = URL(fileURLWithPath: directory).appendingPathComponent("member-\(id)").path }
        var memberLogger = logger
        memberLogger[metadataKey: "replica"] = "\(id)"
        // The store is handed to the member's storage thread and used there only; the ensemble
        // keeps it (in memory) for a later restart, when the member that used it has stopped.
        let server = try await Self.startServer(
            config: memberConfig, member: member(id), group: eventLoopGroup, logger: memberLogger, options: options,
            store: UncheckedStore(store: try store(for: id)), transport: members.count > 1 ? network : nil, clock: manualClock)
        servers[id] = server
    }

    private struct UncheckedStore: @unchecked Sendable {
        let store: any ReplicaStore
    }

    private nonisolated static func startServer(
        config: ReplicaConfig, member: Member, group: any EventLoopGroup, logger: Logger, options: ServerOptions,
        store: UncheckedStore, transport: TestNetwork?, clock: ManualClock?
    ) async throws -> MiniZKServer {
        try await MiniZKServer.start(
            config: config, host: member.host, port: member.port, group: group, logger: logger, options: options,
            store: store.store, transport: transport, clock: clock)
    }

    /// Stops a member abruptly, as a crash: clients lose their connections, peers see it go.
    /// What it logged stays in its store for `restart`.
    public func kill(_ id: Int64) async throws {
        guard let server = servers.removeValue(forKey: id) else { return }
        try await server.kill()
    }

    /// Starts a killed member again on the same port, from what its store kept.
    public func restart(_ id: Int64) async throws {
        if servers[id] != nil { try await kill(id) }
        try await startMember(id)
    }

    /// Kills the current leader and returns it.
    @discardableResult
    public func killLeader() async throws -> Member {
        guard let leader = try await leader() else { throw TestEnsembleError.noLeader }
        try await kill(leader.id)
        return leader
    }

    /// Stops every member (their stores are kept); `start()` brings them back on the same ports.
    public func stop() async throws {
        for id in servers.keys.sorted() { try await kill(id) }
    }

    /// Starts every stopped member and waits until the ensemble serves.
    public func start() async throws {
        try await startAll()
        try await awaitReady()
    }

    /// Stops everything and releases ports, event loops and temporary files. Safe to call twice.
    public func close() async throws {
        guard !isClosed else { return }
        isClosed = true
        for id in servers.keys.sorted() {
            if let server = servers.removeValue(forKey: id) { try? await server.kill() }
        }
        stores = [:]
        if let directory { try? FileManager.default.removeItem(atPath: directory) }
        if ownsGroup { try await eventLoopGroup.shutdownGracefully() }
    }

    private func checkOpen() throws {
        if isClosed { throw TestEnsembleError.closed }
    }

    // MARK: - Faults

    /// Cuts the ensemble into groups of members that reach each other and no one else, e.g.
    /// `[[1], [2, 3]]`. A member named in no group is isolated.
    public func partition(_ groups: [[Int64]]) {
        network.partition(groups, allMembers: members.map(\.id))
    }

    /// Cuts one member off from every other.
    public func isolate(_ id: Int64) {
        partition([[id], members.map(\.id).filter { $0 != id }])
    }

    /// Restores every link between members.
    public func heal() {
        network.heal()
    }

    /// Stalls a member as a paused process (SIGSTOP): no messages in or out, its clients' bytes
    /// stay unread, no ticks. Its connections and its peers' links stay up.
    public func pause(_ id: Int64) async throws {
        guard let server = servers[id] else { throw TestEnsembleError.notRunning(id) }
        try await server.pause()
    }

    public func resume(_ id: Int64) async throws {
        guard let server = servers[id] else { throw TestEnsembleError.notRunning(id) }
        try await server.resume()
    }

    /// Closes the client connections of a member (of one session only, when given) as a network
    /// failure would; the sessions live on and their clients reconnect. Returns how many closed.
    @discardableResult
    public func dropConnections(of id: Int64, session: Int64? = nil) async throws -> Int {
        guard let server = servers[id] else { throw TestEnsembleError.notRunning(id) }
        return try await server.dropClientConnections(sessionId: session)
    }

    /// Closes the connections of a session wherever it is connected.
    @discardableResult
    public func dropConnections(ofSession session: Int64) async throws -> Int {
        var closed = 0
        for server in servers.values { closed += try await server.dropClientConnections(sessionId: session) }
        return closed
    }

    /// Expires a session now, as the leader does when its time-out passes: a closeSession
    /// transaction goes through the log, its ephemerals are deleted, its client is disconnected
    /// and told the session expired when it reconnects. Returns once the expiry is applied.
    public func expireSession(_ sessionId: Int64, timeout: Duration = .seconds(10)) async throws {
        guard let leader = try await leader(), let server = servers[leader.id] else { throw TestEnsembleError.noLeader }
        guard try await server.expireSession(sessionId) else { throw TestEnsembleError.unknownSession(sessionId) }
        try await waitUntilGone(sessionId, timeout: timeout)
    }

    /// Closes a session as its client would (a closeSession request on a connection that resumes
    /// it), through the log. Returns once the close is applied.
    public func closeSession(_ sessionId: Int64, timeout: Duration = .seconds(10)) async throws {
        guard let leader = try await leader(), let server = servers[leader.id] else { throw TestEnsembleError.noLeader }
        guard try await sessions().contains(where: { $0.id == sessionId }) else { throw TestEnsembleError.unknownSession(sessionId) }
        let password = try await server.sessionPassword(for: sessionId)
        let client = try await TestClient.connect(
            host: leader.host, port: leader.port, group: eventLoopGroup, sessionId: sessionId, password: password)
        try await client.close()
        try await waitUntilGone(sessionId, timeout: timeout)
    }

    private func waitUntilGone(_ sessionId: Int64, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while try await sessions().contains(where: { $0.id == sessionId }) {
            guard ContinuousClock.now < deadline else { throw TestEnsembleError.timeout("session 0x\(String(sessionId, radix: 16)) to end") }
            try await settle()
        }
    }

    /// The sessions the leader holds, by id.
    public func sessions() async throws -> [Session] {
        guard let leader = try await leader(), let server = servers[leader.id] else { throw TestEnsembleError.noLeader }
        return try await server.status().sessions.map {
            Session(id: $0.id, timeoutMs: $0.timeoutMs, expiresAtMs: $0.expiresAtMs, ephemerals: $0.ephemerals.sorted())
        }.sorted { $0.id < $1.id }
    }

    // MARK: - Time

    /// Advances the manual clock by `ms`, delivering every tick and wake-up due in between, in
    /// order, and letting the ensemble settle after each. Only in `.manual`.
    public func advance(by ms: Int64) async throws {
        guard let manualClock else { throw TestEnsembleError.notManual }
        try await manualClock.advance(by: ms)
    }

    /// The manual clock's time (the wall clock's in `.wall`), in milliseconds.
    public nonisolated var nowMs: Int64 {
        manualClock?.nowMs ?? Self.wallClockMs()
    }

    /// Lets messages and storage in flight complete (manual clock), or yields briefly (wall).
    private func settle() async throws {
        if let manualClock {
            try await manualClock.settle()
        } else {
            try await Task.sleep(nanoseconds: 1_000_000)
        }
    }

    /// Waits until the ensemble serves: one leader, and every running member that is not paused
    /// and reaches the leader serving. With the manual clock, time moves only as far as the
    /// next tick or wake-up a member waits for (an election's wait for better votes), step by step,
    /// until then; with the wall clock this waits in real time.
    public func awaitReady(timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            if try await isReady() { return }
            guard ContinuousClock.now < deadline else {
                throw TestEnsembleError.timeout("the ensemble to serve: \(try await status().map { "\($0.id):\($0.mode)" })")
            }
            if let manualClock {
                try await manualClock.settle()
                if try await isReady() { return }
                try await manualClock.advanceToNextDue()
            } else {
                try await Task.sleep(nanoseconds: 2_000_000)
            }
        }
    }

    private func isReady() async throws -> Bool {
        guard let leader = try await leader() else { return false }
        let cut = Set(network.cutLinks.map { "\($0.0)-\($0.1)" })
        for (id, server) in servers where id != leader.id {
            if try await server.isPaused() { continue }
            let link = "\(min(id, leader.id))-\(max(id, leader.id))"
            if cut.contains(link) { continue }
            // A member that reaches the leader serves, and as its follower: a second leader (one
            // that lost its followers and has not timed out yet) is not ready.
            let status = try await server.status()
            if !status.serving || status.mode == "leader" { return false }
        }
        return true
    }

    // MARK: - Data

    /// A connection as the super user to the leader, for `reset`, `load` and `dump`.
    private func adminClient() async throws -> TestClient {
        guard let leader = try await leader() else { throw TestEnsembleError.noLeader }
        let client = try await TestClient.connect(host: leader.host, port: leader.port, group: eventLoopGroup)
        if config.superDigest == Self.superDigest {
            try await client.addAuth(scheme: "digest", Self.superCredentials)
        }
        return client
    }

    /// Empties the ensemble between tests, much faster than a restart: every session is expired
    /// (through the log, so clients learn it) and every node outside `/zookeeper` is deleted.
    public func reset() async throws {
        for session in try await sessions() {
            if let leader = try await leader(), let server = servers[leader.id] {
                _ = try await server.expireSession(session.id)
            }
        }
        let client = try await adminClient()
        do {
            let paths = try await allPaths(client)
            // Deepest first, all at once: a parent goes after its children on one connection.
            let doomed = paths.filter { $0 != "/" }.sorted { depth($0) > depth($1) || (depth($0) == depth($1) && $0 > $1) }
            for chunk in stride(from: 0, to: doomed.count, by: 1000) {
                let requests = doomed[chunk..<min(chunk + 1000, doomed.count)].map { Request.delete(path: $0, version: -1) }
                for (header, _) in try await client.pipeline(requests) where header.err != 0 && header.err != ErrorCode.noNode.rawValue {
                    throw TestClientError.server(ErrorCode(rawValue: header.err) ?? .systemError, request: "delete during reset")
                }
            }
            try await client.close()
        } catch {
            await client.disconnect()
            throw error
        }
        // Wait for the expiries to be applied too.
        let deadline = ContinuousClock.now + .seconds(10)
        while try await sessions().count > 0 {
            guard ContinuousClock.now < deadline else { throw TestEnsembleError.timeout("sessions to end in reset") }
            try await settle()
        }
    }

    private func depth(_ path: String) -> Int { path.utf8.filter { $0 == UInt8(ascii: "/") }.count }

    /// Every path under `/` except `/zookeeper` and below, parents before children.
    private func allPaths(_ client: TestClient) async throws -> [String] {
        var result: [String] = []
        var frontier = ["/"]
        while !frontier.isEmpty {
            let replies = try await client.pipeline(frontier.map { .getChildren(path: $0, watch: false) })
            var next: [String] = []
            for (parent, (header, response)) in zip(frontier, replies) {
                guard header.err == 0, case .getChildren(let children) = response else { continue }
                for child in children.sorted() {
                    let path = parent == "/" ? "/\(child)" : "\(parent)/\(child)"
                    if path == "/zookeeper" { continue }
                    result.append(path)
                    next.append(path)
                }
            }
            frontier = next
        }
        return result
    }

    /// Creates the nodes of `tree` (path → UTF-8 data), parents first; a parent missing from it is
    /// created empty. Existing nodes get the given data.
    public func load(tree: [String: String]) async throws {
        try await load(data: tree.mapValues { Array($0.utf8) })
    }

    /// As `load(tree:)`, from a JSON file holding one object of path → data.
    public func load(treeFile path: String) async throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        try await load(tree: try JSONDecoder().decode([String: String].self, from: bytes))
    }

    /// As `load(tree:)` with binary data.
    public func load(data tree: [String: [UInt8]]) async throws {
        var all: [String: [UInt8]] = [:]
        for (path, data) in tree {
            guard path.hasPrefix("/"), path != "/" else { throw TestEnsembleError.badPath(path) }
            all[path] = data
            var parent = path
            while let slash = parent.lastIndex(of: "/"), slash != parent.startIndex {
                parent = String(parent[..<slash])
                if all[parent] == nil, tree[parent] == nil { all[parent] = [] }
            }
        }
        let ordered = all.keys.sorted { depth($0) < depth($1) || (depth($0) == depth($1) && $0 < $1) }
        let client = try await adminClient()
        do {
            let creates = ordered.map { Request.create(CreateRequest(path: $0, data: all[$0]!, acl: ACL.openUnsafe, flags: 0)) }
            let replies = try await client.pipeline(creates)
            var updates: [Request] = []
            for (path, (header, _)) in zip(ordered, replies) {
                if header.err == ErrorCode.nodeExists.rawValue {
                    if tree[path] != nil { updates.append(.setData(path: path, data: all[path]!, version: -1)) }
                } else if header.err != 0 {
                    throw TestClientError.server(ErrorCode(rawValue: header.err) ?? .systemError, request: "create \(path)")
                }
            }
            for (header, _) in try await client.pipeline(updates) where header.err != 0 {
                throw TestClientError.server(ErrorCode(rawValue: header.err) ?? .systemError, request: "setData in load")
            }
            try await client.close()
        } catch {
            await client.disconnect()
            throw error
        }
    }

    /// Every node outside `/zookeeper` with its data as UTF-8 text, as the leader has it.
    public func dump() async throws -> [String: String] {
        try await dumpData().mapValues { String(decoding: $0, as: UTF8.self) }
    }

    /// Every node outside `/zookeeper` with its data, as the leader has it.
    public func dumpData() async throws -> [String: [UInt8]] {
        let client = try await adminClient()
        do {
            let paths = try await allPaths(client)
            let replies = try await client.pipeline(paths.map { .getData(path: $0, watch: false) })
            var result: [String: [UInt8]] = [:]
            for (path, (header, response)) in zip(paths, replies) {
                if header.err == 0, case .getData(let data, _) = response { result[path] = data ?? [] }
            }
            try await client.close()
            return result
        } catch {
            await client.disconnect()
            throw error
        }
    }
}

public enum TestEnsembleError: Error, CustomStringConvertible {
    case noPort
    case noLeader
    case notRunning(Int64)
    case notManual
    case unknownSession(Int64)
    case timeout(String)
    case closed
    case badPath(String)

    public var description: String {
        switch self {
        case .noPort: return "could not learn a free port"
        case .noLeader: return "no member leads the ensemble now"
        case .notRunning(let id): return "member \(id) is not running"
        case .notManual: return "the ensemble does not run on a manual clock"
        case .unknownSession(let id): return "the leader knows no session 0x\(String(id, radix: 16))"
        case .timeout(let what): return "timed out waiting for \(what)"
        case .closed: return "the ensemble is closed"
        case .badPath(let path): return "not a node path: \(path)"
        }
    }
}

/// Runs `body` with a started ensemble and closes it afterwards, whether `body` returns or throws.
/// Works the same from XCTest and from Swift Testing.
public func withTestEnsemble<T: Sendable>(
    members: Int = 1, storage: TestEnsemble.Storage = .inMemory, clock: TestEnsemble.Clock = .wall, tickMs: Int64 = 2000,
    configure: (inout ReplicaConfig) -> Void = { _ in },
    _ body: (TestEnsemble) async throws -> T
) async throws -> T {
    let ensemble = try await TestEnsemble.start(
        members: members, storage: storage, clock: clock, tickMs: tickMs, configure: configure)
    do {
        let result = try await body(ensemble)
        try await ensemble.close()
        return result
    } catch {
        try? await ensemble.close()
        throw error
    }
}
