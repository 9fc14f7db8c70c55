import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import ZKClientCore
import ZKProtocol

/// A ZooKeeper session, usable from any task.
///
///     let client = try await ZooKeeperClient.connect("127.0.0.1:2181,127.0.0.1:2182/app", sessionTimeout: .seconds(10))
///     let (path, _) = try await client.create("/jobs/job-", data: Array("x".utf8), mode: .persistentSequential)
///     let (data, stat, watch) = try await client.getData(path, watch: true)
///     let event = try await watch!.event()
///     try await client.close()
///
/// Semantics are ZooKeeper's: calls are sent in the order they are made and answered in that
/// order; a call in flight when the connection drops throws `ZooKeeperError.connectionLoss` (it may
/// or may not have taken effect); once the session has expired every call throws
/// `ZooKeeperError.sessionExpired`; the client reconnects by itself to the members of the connect
/// string and resumes the session, re-registering every watch. See docs/client.md.
public final class ZooKeeperClient: Sendable {
    /// How to connect. Defaults follow ZooKeeper's Java client.
    public struct Configuration: Sendable {
        /// `host:port,host:port[/chroot]`.
        public var connectString: String
        /// Asked of the server, which bounds it (ZooKeeper: 2 to 20 ticks).
        public var sessionTimeout: Duration = .seconds(10)
        /// Accept a member that serves reads only when it has no quorum (state `connectedReadOnly`).
        public var canBeReadOnly: Bool = false
        /// Speak TLS to the members (their secure client port).
        public var tls: TLSConfiguration? = nil
        /// A call not answered after this long throws `requestTimeout` and drops the connection.
        public var requestTimeout: Duration? = nil
        /// One connect attempt (TCP, TLS and handshake); default session timeout / number of hosts.
        public var connectTimeout: Duration? = nil
        /// How long `connect` waits for the first connection before giving up.
        public var initialConnectTimeout: Duration? = nil
        /// Pause after every member refused a connection in a row.
        public var reconnectDelay: Duration = .seconds(1)
        /// Calls in flight (and waiting for a connection) beyond which a call throws `throttledOp`.
        public var outstandingRequestsMax: Int = 10_000
        /// Frames announcing more bytes are refused before anything is allocated (jute.maxbuffer).
        public var frameBytesMax: Int = ZKFrameDecoder.defaultFrameBytesMax
        /// Resume an existing session (id and password from `sessionId` / `sessionPassword`).
        public var sessionId: Int64 = 0
        public var sessionPassword: [UInt8] = [UInt8](repeating: 0, count: 16)
        /// With `sessionId`: the last zxid the earlier client of the session saw
        /// (`ZooKeeperClient.lastZxidSeen`); members that are behind it refuse the connect, so
        /// the resumed session never goes back in time.
        public var lastZxidSeen: Int64 = 0
        /// Credentials (scheme, auth) sent on every connection.
        public var authInfo: [(scheme: String, auth: [UInt8])] = []
        /// SASL DIGEST-MD5: every connection authenticates as this user before anything else (what
        /// a JAAS `Client` section with ZooKeeper's `DigestLoginModule` does for the Java client).
        /// The connection counts as up only once the server accepted it; a refusal ends the
        /// session `authFailed` (`connect` throws `ZooKeeperError.authFailed`).
        public var sasl: SASLCredentials? = nil
        /// How often the session checks its timers.
        public var tickInterval: Duration = .milliseconds(20)
        /// The event loops to run on; default `MultiThreadedEventLoopGroup.singleton`.
        public var eventLoopGroup: (any EventLoopGroup)? = nil
        /// Seeds the shuffle of the hosts; nil uses the system generator.
        public var shuffleSeed: UInt64? = nil
        public var logger: Logger = Logger(label: "ZKClient", factory: { _ in SwiftLogNoOpLogHandler() })

        public init(connectString: String, sessionTimeout: Duration = .seconds(10)) {
            self.connectString = connectString
            self.sessionTimeout = sessionTimeout
        }
    }

    let driver: SessionDriver
    /// The parsed connect string.
    public let connectString: ConnectString

    private init(driver: SessionDriver, connectString: ConnectString) {
        self.driver = driver
        self.connectString = connectString
    }

    /// Opens a session and waits until it is connected.
    ///
    /// Throws `ZooKeeperError.connectionLoss` when no member answers within
    /// `initialConnectTimeout` (default: the session timeout), `.sessionExpired` when resuming a
    /// session the ensemble no longer knows, `.authFailed` when `authInfo` or `sasl` is refused.
    public static func connect(_ connectString: String, sessionTimeout: Duration = .seconds(10)) async throws -> ZooKeeperClient {
        try await connect(configuration: Configuration(connectString: connectString, sessionTimeout: sessionTimeout))
    }

    public static func connect(configuration: Configuration) async throws -> ZooKeeperClient {
        let client = try start(configuration: configuration)
        let waitMs = (configuration.initialConnectTimeout ?? configuration.sessionTimeout).milliseconds
        let states = client.states
        let outcome: ConnectionState? = try await withThrowingTaskGroup(of: ConnectionState?.self) { group in
            group.addTask {
                for await state in states where state != .connecting && state != .suspended { return state }
                return nil
            }
            group.addTask {
                try await Task.sleep(for: .milliseconds(waitMs))
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            return first
        }
        switch outcome {
        case .connected?, .connectedReadOnly?, .reconnected?:
            return client
        case .expired?:
            await client.close()
            throw ZooKeeperError.sessionExpired
        case .authFailed?:
            await client.close()
            throw ZooKeeperError.authFailed
        default:
            await client.close()
            throw ZooKeeperError.connectionLoss
        }
    }

    /// Starts a session without waiting for it to connect (calls made meanwhile wait for the
    /// connection, and fail with connectionLoss if the first attempt fails).
    public static func start(configuration: Configuration) throws -> ZooKeeperClient {
        let parsed = try ConnectString(parsing: configuration.connectString)
        var core = ClientSession.Configuration(
            sessionTimeoutMs: Int32(clamping: configuration.sessionTimeout.milliseconds), chroot: parsed.chroot)
        core.canBeReadOnly = configuration.canBeReadOnly
        core.requestTimeoutMs = configuration.requestTimeout?.milliseconds
        core.connectTimeoutMs = configuration.connectTimeout?.milliseconds
        core.reconnectDelayMs = configuration.reconnectDelay.milliseconds
        core.outstandingRequestsMax = configuration.outstandingRequestsMax
        core.sessionId = configuration.sessionId
        core.password = configuration.sessionPassword
        core.lastZxidSeen = configuration.sessionId != 0 ? configuration.lastZxidSeen : 0
        core.authInfo = configuration.authInfo.map { ClientSession.AuthInfo(scheme: $0.scheme, auth: $0.auth) }
        core.sasl = configuration.sasl
        let session: ClientSession
        if let seed = configuration.shuffleSeed {
            var generator = SplitMix64(seed: seed)
            session = ClientSession(hosts: parsed.hosts, configuration: core, generator: &generator)
        } else {
            var generator = SystemRandomNumberGenerator()
            session = ClientSession(hosts: parsed.hosts, configuration: core, generator: &generator)
        }
        let tls = try configuration.tls.map { try NIOSSLContext(configuration: $0) }
        let group = configuration.eventLoopGroup ?? MultiThreadedEventLoopGroup.singleton
        let driver = SessionDriver(
            session: session, loop: group.next(), logger: configuration.logger, frameBytesMax: configuration.frameBytesMax,
            tls: tls, tickIntervalMs: max(configuration.tickInterval.milliseconds, 1))
        driver.start()
        return ZooKeeperClient(driver: driver, connectString: parsed)
    }

    // MARK: - Session facts

    /// The current connection state.
    public var state: ConnectionState { driver.published.withLockedValue { $0.state } }
    /// Connection states as they change, starting with the current one; ends after a terminal
    /// state (expired, closed, authFailed). Each access makes a new, independent sequence.
    public var states: AsyncStream<ConnectionState> { driver.states() }
    /// The session id (0 before the first connection).
    public var sessionId: Int64 { driver.published.withLockedValue { $0.sessionId } }
    /// The session password: with the id, another client can resume this session.
    public var sessionPassword: [UInt8] { driver.published.withLockedValue { $0.password } }
    /// The timeout the server granted, in milliseconds (0 before the first connection).
    public var negotiatedSessionTimeoutMs: Int32 { driver.published.withLockedValue { $0.negotiatedTimeoutMs } }
    /// The member serving the session, nil while not connected.
    public var connectedHost: HostAddress? { driver.published.withLockedValue { $0.connectedHost } }
    /// The highest zxid this session has seen.
    public var lastZxidSeen: Int64 { driver.published.withLockedValue { $0.lastZxidSeen } }

    /// Closes the session (its ephemeral nodes go at once) and the connection. Calls made
    /// afterwards throw `sessionExpired`.
    public func close() async {
        await driver.close()
    }

    // MARK: - Writes

    /// Creates a node; returns the path created (with the sequence suffix for sequential modes)
    /// and its Stat. TTL modes need `ttl` (the server must enable them: ZooKeeper's
    /// `zookeeper.extendedTypesEnabled`).
    @discardableResult
    public func create(
        _ path: String, data: [UInt8] = [], acl: [ACL] = ACL.openUnsafe, mode: CreateMode = .persistent, ttl: Duration? = nil
    ) async throws -> (path: String, stat: Stat) {
        try Self.check(path, sequential: mode.isSequential)
        let response = try await call(Self.createRequest(path, data: data, acl: acl, mode: mode, ttl: ttl, inMulti: false), path: path)
        switch response {
        case .create2(let created, let stat): return (created, stat)
        case .create(let created): return (created, Stat())
        default: throw Self.unexpected(response, path: path)
        }
    }

    /// Deletes a node (`version` -1: whatever its version).
    public func delete(_ path: String, version: Int32 = -1) async throws {
        try Self.check(path)
        _ = try await call(.delete(path: path, version: version), path: path)
    }

    /// Replaces a node's data if its version matches (`version` -1: any); returns the new Stat.
    @discardableResult
    public func setData(_ path: String, data: [UInt8], version: Int32 = -1) async throws -> Stat {
        try Self.check(path)
        let response = try await call(.setData(path: path, data: data, version: version), path: path)
        guard case .stat(let stat) = response else { throw Self.unexpected(response, path: path) }
        return stat
    }

    /// Replaces a node's ACL if its ACL version (`aversion`) matches; returns the new Stat.
    @discardableResult
    public func setACL(_ path: String, acl: [ACL], version: Int32 = -1) async throws -> Stat {
        try Self.check(path)
        let response = try await call(.setACL(path: path, acl: acl, version: version), path: path)
        guard case .stat(let stat) = response else { throw Self.unexpected(response, path: path) }
        return stat
    }

    /// Applies every operation or none. When one fails, throws a `ZooKeeperError` whose `code` is
    /// the first failure and whose `results` holds every operation's outcome.
    @discardableResult
    public func multi(_ transaction: Transaction) async throws -> [OperationResult] {
        for (operation, path) in zip(transaction.operations, transaction.paths) {
            if case .create(let create) = operation {
                try Self.check(path, sequential: CreateMode(rawValue: create.flags)?.isSequential ?? false)
            } else if case .createTTL(let create) = operation {
                try Self.check(path, sequential: CreateMode(rawValue: create.flags)?.isSequential ?? false)
            } else {
                try Self.check(path)
            }
        }
        guard !transaction.isEmpty else { return [] }
        let response = try await call(.multi(transaction.operations), path: nil)
        guard case .multi(let raw) = response else { throw Self.unexpected(response, path: nil) }
        let results = raw.map(OperationResult.init)
        // A failed multi marks the failing operation with its code, those before it ok and those
        // after it runtimeInconsistency.
        let failing = results.firstIndex(where: { $0.error != nil && $0.error != .ok && $0.error != .runtimeInconsistency })
            ?? results.firstIndex(where: { $0.error != nil })
        if let index = failing, let code = results[index].error {
            throw ZooKeeperError(code == .ok ? .runtimeInconsistency : code, path: transaction.paths[index], results: results)
        }
        return results
    }

    // MARK: - Reads

    /// The Stat of a node, nil when it does not exist.
    public func exists(_ path: String) async throws -> Stat? {
        try await exists(path, watch: false).stat
    }

    /// exists with a one-shot watch: it fires on the node's creation when missing, on data change
    /// or deletion when present. `watch` is nil when `watch` is false.
    public func exists(_ path: String, watch: Bool) async throws -> (stat: Stat?, watch: OneShotWatch?) {
        try Self.check(path)
        let (stream, sink) = Self.oneShot(watch)
        do {
            let response = try await driver.call(.exists(path: path, watch: watch), watch: sink)
            guard case .stat(let stat) = response else { throw Self.unexpected(response, path: path) }
            return (stat, stream)
        } catch let error as ZooKeeperError where error.code == .noNode {
            return (nil, stream)
        } catch let error as ZooKeeperError {
            throw ZooKeeperError(error.code, path: path)
        }
    }

    /// A node's data and Stat.
    public func getData(_ path: String) async throws -> (data: [UInt8], stat: Stat) {
        let result = try await getData(path, watch: false)
        return (result.data, result.stat)
    }

    /// getData with a one-shot watch (fires on data change or deletion).
    public func getData(_ path: String, watch: Bool) async throws -> (data: [UInt8], stat: Stat, watch: OneShotWatch?) {
        try Self.check(path)
        let (stream, sink) = Self.oneShot(watch)
        let response = try await call(.getData(path: path, watch: watch), path: path, watch: sink)
        guard case .getData(let data, let stat) = response else { throw Self.unexpected(response, path: path) }
        return (data ?? [], stat, stream)
    }

    /// The names of a node's children (unsorted, as the server sends them).
    public func getChildren(_ path: String) async throws -> [String] {
        try await getChildren(path, watch: false).children
    }

    /// getChildren with a one-shot watch (fires when a child is created or deleted, or the node is).
    public func getChildren(_ path: String, watch: Bool) async throws -> (children: [String], watch: OneShotWatch?) {
        try Self.check(path)
        let (stream, sink) = Self.oneShot(watch)
        let response = try await call(.getChildren(path: path, watch: watch), path: path, watch: sink)
        guard case .getChildren(let children) = response else { throw Self.unexpected(response, path: path) }
        return (children, stream)
    }

    /// getChildren2: the children and the parent's Stat, optionally with a one-shot watch.
    public func getChildrenWithStat(_ path: String, watch: Bool = false) async throws -> (children: [String], stat: Stat, watch: OneShotWatch?) {
        try Self.check(path)
        let (stream, sink) = Self.oneShot(watch)
        let response = try await call(.getChildren2(path: path, watch: watch), path: path, watch: sink)
        guard case .getChildren2(let children, let stat) = response else { throw Self.unexpected(response, path: path) }
        return (children, stat, stream)
    }

    /// A node's ACL and Stat.
    public func getACL(_ path: String) async throws -> (acl: [ACL], stat: Stat) {
        try Self.check(path)
        let response = try await call(.getACL(path: path), path: path)
        guard case .getACL(let acl, let stat) = response else { throw Self.unexpected(response, path: path) }
        return (acl, stat)
    }

    /// Waits until the member this session talks to has applied everything the leader had
    /// committed when the sync arrived; returns the path.
    @discardableResult
    public func sync(_ path: String = "/") async throws -> String {
        try Self.check(path)
        let response = try await call(.sync(path: path), path: path)
        guard case .sync(let synced) = response else { throw Self.unexpected(response, path: path) }
        return synced
    }

    /// Several reads in one round trip; each result is independent (a failed read is `.failed`).
    public func multiRead(_ transaction: ReadTransaction) async throws -> [OperationResult] {
        guard !transaction.operations.isEmpty else { return [] }
        let response = try await call(.multiRead(transaction.operations), path: nil)
        guard case .multi(let raw) = response else { throw Self.unexpected(response, path: nil) }
        return raw.map(OperationResult.init)
    }

    /// The ephemeral nodes of this session whose paths start with `prefix` ("/" for all).
    public func getEphemerals(_ prefix: String = "/") async throws -> [String] {
        let response = try await call(.getEphemerals(prefixPath: prefix), path: prefix)
        guard case .getEphemerals(let paths) = response else { throw Self.unexpected(response, path: prefix) }
        return paths
    }

    /// The number of descendants of a node (not counting itself).
    public func getAllChildrenNumber(_ path: String) async throws -> Int {
        try Self.check(path)
        let response = try await call(.getAllChildrenNumber(path: path), path: path)
        guard case .getAllChildrenNumber(let count) = response else { throw Self.unexpected(response, path: path) }
        return Int(count)
    }

    // MARK: - Watches

    /// A persistent watch (`.persistent`: events on the node) or a recursive one
    /// (`.persistentRecursive`: data, create and delete events on the node and every descendant).
    /// It stays until `removeWatches` and survives reconnects.
    public func addWatch(_ path: String, mode: AddWatchMode) async throws -> PersistentWatch {
        try Self.check(path)
        let (stream, continuation) = AsyncThrowingStream<WatchEvent, any Error>.makeStream()
        _ = try await call(.addWatch(path: path, mode: mode.rawValue), path: path, watch: .persistent(continuation))
        return PersistentWatch(stream: stream, path: path, mode: mode)
    }

    /// Removes this session's watches of `type` on `path`, on the server and here: their one-shot
    /// watches throw `noWatcher`, their persistent sequences end. Throws `noWatcher` when the
    /// server has none.
    public func removeWatches(_ path: String, type: WatcherType = .any) async throws {
        try Self.check(path)
        _ = try await call(.removeWatches(path: path, type: type.rawValue), path: path)
    }

    /// Whether the server holds a watch of `type` for this session on `path` (throws `noWatcher`
    /// when it does not).
    public func checkWatches(_ path: String, type: WatcherType = .any) async throws {
        try Self.check(path)
        _ = try await call(.checkWatches(path: path, type: type.rawValue), path: path)
    }

    // MARK: - Auth

    /// Adds credentials to the session (e.g. `digest`, `user:password`). They are sent again after
    /// every reconnect. The server refusing them ends the session (`authFailed`).
    public func addAuth(scheme: String, auth: [UInt8]) async throws {
        try await driver.addAuth(scheme: scheme, auth: auth)
    }

    /// The identities the server attaches to this session.
    public func whoAmI() async throws -> [ClientInfo] {
        let response = try await call(.whoAmI, path: nil)
        guard case .whoAmI(let identities) = response else { throw Self.unexpected(response, path: nil) }
        return identities
    }

    // MARK: - Configuration of the ensemble

    /// The ensemble's dynamic configuration (`/zookeeper/config`, outside any chroot), optionally
    /// watched.
    public func getConfig(watch: Bool = false) async throws -> (data: [UInt8], stat: Stat, watch: OneShotWatch?) {
        let (stream, sink) = Self.oneShot(watch)
        let path = "/zookeeper/config"
        let response = try await call(.getData(path: path, watch: watch), path: path, watch: sink, ignoresChroot: true)
        guard case .getData(let data, let stat) = response else { throw Self.unexpected(response, path: path) }
        return (data ?? [], stat, stream)
    }

    /// Changes the membership: incrementally (`joining` / `leaving`, comma-separated server lines /
    /// ids) or wholesale (`newMembers`). `fromConfig` -1 skips the version check. Returns the new
    /// configuration.
    public func reconfig(joining: String? = nil, leaving: String? = nil, newMembers: String? = nil, fromConfig: Int64 = -1)
        async throws -> (data: [UInt8], stat: Stat)
    {
        let request = ReconfigRequest(joiningServers: joining, leavingServers: leaving, newMembers: newMembers, currentConfigId: fromConfig)
        let response = try await call(.reconfig(request), path: nil)
        guard case .getData(let data, let stat) = response else { throw Self.unexpected(response, path: nil) }
        return (data ?? [], stat)
    }

    /// Sends one request as it is and returns the server's answer, an error code included (the
    /// outcome of a call that failed locally, connectionLoss or sessionExpired, too). With
    /// `watch` (getData, exists, getChildren, getChildren2), a one-shot watch is set with the
    /// request; exists keeps it when the answer is noNode. For programs that speak in requests
    /// (`CoordinationProgram`s run by `ZKRecipes.ProgramRunner`); the typed methods above are
    /// the usual way in.
    public func send(_ request: Request, watch: Bool = false) async -> (result: Result<Response, ErrorCode>, watch: OneShotWatch?) {
        let (stream, sink) = Self.oneShot(watch)
        do {
            return (.success(try await driver.call(request, watch: sink)), stream)
        } catch let error as ZooKeeperError {
            let keepsWatch: Bool
            if case .exists = request, error.code == .noNode { keepsWatch = true } else { keepsWatch = false }
            return (.failure(error.code), keepsWatch ? stream : nil)
        } catch {
            return (.failure(.systemError), nil)
        }
    }

    // MARK: - Plumbing

    private func call(
        _ request: Request, path: String?, watch: SessionDriver.Sink? = nil, ignoresChroot: Bool = false
    ) async throws -> Response {
        do {
            return try await driver.call(request, watch: watch, ignoresChroot: ignoresChroot)
        } catch let error as ZooKeeperError {
            throw ZooKeeperError(error.code, path: path)
        }
    }

    private static func oneShot(_ watch: Bool) -> (OneShotWatch?, SessionDriver.Sink?) {
        guard watch else { return (nil, nil) }
        let (stream, continuation) = AsyncThrowingStream<WatchEvent, any Error>.makeStream()
        let fired = NIOLockedValueBox<WatchEvent?>(nil)
        return (OneShotWatch(stream: stream, fired: fired), .oneShot(continuation, fired))
    }

    static func check(_ path: String, sequential: Bool = false) throws {
        guard PathRules.isValid(path, sequential: sequential) else { throw ZooKeeperError(.badArguments, path: path) }
    }

    static func unexpected(_ response: Response, path: String?) -> ZooKeeperError {
        ZooKeeperError(.marshallingError, path: path)
    }

    static func createRequest(
        _ path: String, data: [UInt8], acl: [ACL], mode: CreateMode, ttl: Duration?, inMulti: Bool
    ) -> Request {
        let create = CreateRequest(path: path, data: data, acl: acl, flags: mode.rawValue, ttl: ttl?.milliseconds)
        if mode.isTTL { return .createTTL(create) }
        if mode.isContainer { return .createContainer(create) }
        return inMulti ? .create(create) : .create2(create)
    }
}

extension Duration {
    /// Whole milliseconds (rounded down).
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}

