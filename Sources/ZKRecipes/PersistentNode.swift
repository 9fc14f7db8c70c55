import NIOConcurrencyHelpers
import ZKClient
import ZKRecipesCore

/// Curator's `PersistentNode` (and `PersistentEphemeralNode`): a node that stays. It is created
/// at `start()` (parents as containers), watched, and created again when it is deleted, when the
/// connection comes back (Curator's `RECONNECTED`: an existing node then gets our data again), and —
/// given `newSession` — under a new session after the old one expired (an ephemeral node goes
/// with its session). `setData` changes the node and what later creates write.
///
/// Names are Curator's: with `useProtection` the node is `<parent>/_c_<uuid>-<name>` (plus the
/// sequence number in sequential modes), and a create whose reply was lost is found again by that
/// prefix. As in Curator, a sequential node once created keeps its name: it is created again
/// non-sequentially at the same path (protected: `_c_<uuid>-<name>`, without a sequence number).
/// A protected node still there after a reconnect is kept as it is (Curator's `createNode` then
/// issues a protected, non-sequential create at the base path, whose name `_c_<uuid>-<name>`
/// differs from a sequential node's).
///
///     let node = PersistentNode(client: client, path: "/workers/w-", mode: .ephemeralSequential,
///                               useProtection: true, data: Array("10.0.0.7".utf8))
///     node.start()
///     guard await node.waitForInitialCreate(timeout: .seconds(5)) else { ... }
///     node.actualPath                   // /workers/_c_<uuid>-w-0000000003
///     for await state in node.states { ... }   // starting, created(path), deleted, ..., closed
public final class PersistentNode: Sendable {
    public enum State: Sendable, Hashable {
        /// Not created yet (or being created again).
        case starting
        /// The node is there, at this path.
        case created(String)
        /// The node is gone (deleted, or the connection is down); it is being created again.
        case recreating
        /// The server refused the create or the data with this code (NOAUTH, an invalid path,
        /// TTL nodes not enabled, ...); tried again after the next reconnect, not at once.
        case failed(ErrorCode)
        /// The session ended and no `newSession` was given (or it failed): the node is not kept.
        case lost
        /// `close()` was called.
        case closed
    }

    public let path: String
    public let mode: CreateMode
    public let useProtection: Bool
    public let ttl: Duration?
    /// Whether `close()` deletes the node (PersistentTTLNode leaves its container to the server).
    let deletesOnClose: Bool
    let uuid: String
    let newSession: (@Sendable () async throws -> ZooKeeperClient)?

    struct Inner {
        var client: ZooKeeperClient
        var data: [UInt8]
        var nodePath: String?
        var started = false
        var closed = false
    }
    let inner: NIOLockedValueBox<Inner>
    let state = Broadcast<State>(.starting)
    let task = NIOLockedTask()

    /// - Parameters:
    ///   - mode: any create mode; TTL modes need `ttl`.
    ///   - newSession: called when the session expires, for a client with a new session to keep
    ///     the node with (Curator's framework does this itself); nil: the node is `lost`.
    ///   - uuid: the protected-name UUID (a random one by default).
    public convenience init(
        client: ZooKeeperClient, path: String, mode: CreateMode, useProtection: Bool = false, data: [UInt8] = [],
        ttl: Duration? = nil, uuid: String? = nil, newSession: (@Sendable () async throws -> ZooKeeperClient)? = nil
    ) {
        self.init(client: client, path: path, mode: mode, useProtection: useProtection, data: data, ttl: ttl, uuid: uuid,
                  newSession: newSession, deletesOnClose: true)
    }

    init(
        client: ZooKeeperClient, path: String, mode: CreateMode, useProtection: Bool, data: [UInt8], ttl: Duration?,
        uuid: String?, newSession: (@Sendable () async throws -> ZooKeeperClient)?, deletesOnClose: Bool
    ) {
        precondition(!mode.isTTL || ttl != nil, "TTL modes need a ttl")
        self.path = path
        self.mode = mode
        self.useProtection = useProtection
        self.ttl = ttl
        self.uuid = uuid ?? systemUUID()
        self.newSession = newSession
        self.deletesOnClose = deletesOnClose
        inner = NIOLockedValueBox(Inner(client: client, data: data))
    }

    /// The node's path once created (with the protected prefix and sequence number), else nil.
    public var actualPath: String? { inner.withLockedValue { $0.nodePath } }
    /// The data the node is kept with.
    public var data: [UInt8] { inner.withLockedValue { $0.data } }
    /// The client the node is kept with (a new one after `newSession` replaced an expired one).
    public var client: ZooKeeperClient { inner.withLockedValue { $0.client } }
    public var currentState: State { state.value }
    /// The states: the current one, then each change.
    public var states: AsyncStream<State> { state.stream() }

    /// Starts creating and keeping the node.
    public func start() {
        let first = inner.withLockedValue { inner -> Bool in
            defer { inner.started = true }
            return !inner.started
        }
        precondition(first, "PersistentNode already started")
        task.set(Task { [self] in await self.run() })
    }

    /// Whether the node was created within `timeout` (at once when it already was).
    public func waitForInitialCreate(timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask { [state] in
                await state.first { if case .created = $0 { return true } else { return $0 == .closed || $0 == .lost } }
                    .map { if case .created = $0 { return true } else { return false } } ?? false
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let result = await group.next() ?? false
            group.cancelAll()
            return result
        }
    }

    /// Changes the data: written to the node now (once it exists) and by every later create.
    public func setData(_ data: [UInt8]) async throws {
        let (client, nodePath) = inner.withLockedValue { inner -> (ZooKeeperClient, String?) in
            inner.data = data
            return (inner.client, inner.nodePath)
        }
        guard let nodePath else { return }
        do { try await client.setData(nodePath, data: data) } catch ZooKeeperError.noNode {}
    }

    /// Stops keeping the node and deletes it (Curator's `close`).
    public func close() async {
        let (client, nodePath, wasOpen) = inner.withLockedValue { inner -> (ZooKeeperClient, String?, Bool) in
            defer { inner.closed = true; inner.nodePath = nil }
            return (inner.client, inner.nodePath, !inner.closed)
        }
        guard wasOpen else { return }
        task.cancel()
        if deletesOnClose, let nodePath {
            do { try await client.delete(nodePath) } catch {}
        }
        state.publish(.closed)
        state.finish()
    }

    var isClosed: Bool { inner.withLockedValue { $0.closed } }

    // MARK: - The keeping loop

    func run() async {
        while !isClosed && !Task.isCancelled {
            let client = self.client
            do {
                let nodePath = try await ensureNode(client)
                if isClosed {
                    // Closed while the create was in flight (Curator's closed-state callback).
                    if deletesOnClose { try? await client.delete(nodePath) }
                    return
                }
                state.publish(.created(nodePath))
                // Watch it until it goes or the connection comes back.
                try await watch(nodePath, client)
                if isClosed { return }
                state.publish(.recreating)
            } catch is CancellationError {
                return
            } catch let error as ZooKeeperError where error.code == .sessionExpired || error.code == .authFailed {
                if !(await replaceSession(after: client)) { return }
            } catch let error as ZooKeeperError where !error.isRetryable {
                // Trying again at once would fail the same way (Curator would loop): wait for a
                // reconnect.
                state.publish(.failed(error.code))
                if !(await waitForReconnect(client)) && client.state.isTerminal {
                    if !(await replaceSession(after: client)) { return }
                }
            } catch {
                // connectionLoss and the like: try again once connected.
                if client.state.isTerminal {
                    if !(await replaceSession(after: client)) { return }
                } else {
                    state.publish(.recreating)
                    await awaitConnection(client)
                    try? await Task.sleep(for: .milliseconds(50))
                }
            }
        }
    }

    /// Creates the node (or adopts an existing one, giving it our data); returns its path.
    func ensureNode(_ client: ZooKeeperClient) async throws -> String {
        let (existing, data) = inner.withLockedValue { ($0.nodePath, $0.data) }
        if useProtection, let existing, try await client.exists(existing) != nil {
            // Still there (a reconnect within the session): keep it rather than create a second
            // protected node beside it.
            try await client.setData(existing, data: data)
            return existing
        }
        let createPath: String
        if useProtection {
            createPath = CuratorNames.protectedPath(base: CuratorNames.parent(path), uuid: uuid, name: CuratorNames.nodeName(path))
        } else {
            createPath = existing ?? path
        }
        let createMode: CreateMode
        switch (mode, existing != nil) {
        case (.ephemeralSequential, true): createMode = .ephemeral
        case (.persistentSequential, true): createMode = .persistent
        case (.persistentSequentialWithTTL, true): createMode = .persistentWithTTL
        default: createMode = mode
        }
        do {
            let (created, _) = try await client.createCreatingParents(createPath, data: data, mode: createMode, ttl: ttl)
            record(created)
            return created
        } catch ZooKeeperError.nodeExists {
            // Ours from before (a reconnect) or someone else's: it is the node, with our data.
            record(createPath)
            try await client.setData(createPath, data: data)
            return createPath
        } catch ZooKeeperError.connectionLoss where useProtection {
            // The create may have happened: find it by the protected prefix once connected.
            await awaitConnection(client)
            let parent = CuratorNames.parent(path)
            let prefix = CuratorNames.protectedPrefix(uuid)
            let children = (try? await client.getChildren(parent)) ?? []
            if let found = children.first(where: { $0.hasPrefix(prefix) }) {
                let foundPath = CuratorNames.join(parent, found)
                record(foundPath)
                return foundPath
            }
            throw ZooKeeperError.connectionLoss
        }
    }

    func record(_ nodePath: String) {
        inner.withLockedValue { $0.nodePath = nodePath }
    }

    /// Returns when the node is gone or the connection came back (both: create again).
    func watch(_ nodePath: String, _ client: ZooKeeperClient) async throws {
        while true {
            let (stat, watch) = try await client.exists(nodePath, watch: true)
            guard stat != nil else { return }
            let outcome: WatchOutcome = try await withThrowingTaskGroup(of: WatchOutcome.self) { group in
                group.addTask {
                    let event = try await watch?.event()
                    return event?.type == .nodeDeleted ? .deleted : .changed
                }
                group.addTask {
                    // The first state is the current one; a reconnect is a later one.
                    for await state in client.states.dropFirst() {
                        if state == .reconnected { return .reconnected }
                        if state.isTerminal { throw ZooKeeperError(state == .authFailed ? .authFailed : .sessionExpired) }
                    }
                    throw CancellationError()
                }
                let outcome = try await group.next()!
                group.cancelAll()
                return outcome
            }
            switch outcome {
            case .changed: continue
            case .deleted, .reconnected: return
            }
        }
    }

    enum WatchOutcome: Sendable { case deleted, changed, reconnected }

    /// Waits for the next `reconnected`; false when the session ended instead.
    func waitForReconnect(_ client: ZooKeeperClient) async -> Bool {
        if client.state.isTerminal { return false }
        for await state in client.states.dropFirst() {
            if state == .reconnected || state == .connected { return true }
            if state.isTerminal { return false }
        }
        return false
    }

    /// The session ended: continue with a new one if we can. False when the node is lost.
    func replaceSession(after old: ZooKeeperClient) async -> Bool {
        guard let newSession, !isClosed else {
            if !isClosed { state.publish(.lost) }
            return false
        }
        state.publish(.recreating)
        do {
            let client = try await newSession()
            inner.withLockedValue { $0.client = client }
            return true
        } catch {
            state.publish(.lost)
            return false
        }
    }
}

/// Curator's `PersistentTtlNode`: a node that lives while some process keeps it, and is removed
/// by the server once none has for `ttl`. The node itself is a container kept by a
/// `PersistentNode` (with the data); every `ttl / touchScheduleFactor` a child `touch` is set
/// (created with the TTL when missing: `CreateMode.persistentWithTTL`). When the keepers stop,
/// the child expires after its TTL, the container is then empty and the server deletes it.
/// `close()` stops touching and leaves the node to expire (as Curator). The server must enable
/// TTL nodes (ZooKeeper: `zookeeper.extendedTypesEnabled=true`; MiniZK: `--extended-types`).
public final class PersistentTTLNode: Sendable {
    public static let defaultChildName = "touch"
    public static let defaultTouchScheduleFactor = 2

    public let node: PersistentNode
    public let ttl: Duration
    public let childPath: String
    let touchScheduleFactor: Int
    let task = NIOLockedTask()

    public init(
        client: ZooKeeperClient, path: String, ttl: Duration, data: [UInt8] = [], childName: String = PersistentTTLNode.defaultChildName,
        touchScheduleFactor: Int = PersistentTTLNode.defaultTouchScheduleFactor,
        newSession: (@Sendable () async throws -> ZooKeeperClient)? = nil
    ) {
        precondition(touchScheduleFactor > 0, "touchScheduleFactor must be positive")
        node = PersistentNode(client: client, path: path, mode: .container, useProtection: false, data: data, ttl: nil, uuid: nil,
                              newSession: newSession, deletesOnClose: false)
        self.ttl = ttl
        self.touchScheduleFactor = touchScheduleFactor
        childPath = CuratorNames.join(path, childName)
    }

    public func start() {
        node.start()
        let period = ttl / touchScheduleFactor
        task.set(Task { [node, childPath, ttl] in
            while !Task.isCancelled {
                do { try await Task.sleep(for: period) } catch { return }
                try? await Self.touch(node.client, childPath, ttl: ttl)
            }
        })
    }

    /// Sets the child, creating it with the TTL when it is missing (Curator's touch task).
    static func touch(_ client: ZooKeeperClient, _ childPath: String, ttl: Duration) async throws {
        do {
            try await client.setData(childPath, data: [])
        } catch ZooKeeperError.noNode {
            do {
                try await client.create(childPath, mode: .persistentWithTTL, ttl: ttl)
            } catch ZooKeeperError.nodeExists {
                try await client.setData(childPath, data: [])
            }
        }
    }

    public func waitForInitialCreate(timeout: Duration) async -> Bool { await node.waitForInitialCreate(timeout: timeout) }
    public func setData(_ data: [UInt8]) async throws { try await node.setData(data) }
    public var data: [UInt8] { node.data }
    public var states: AsyncStream<PersistentNode.State> { node.states }

    /// Stops touching; the node is left to expire.
    public func close() async {
        task.cancel()
        await node.close()
    }
}
