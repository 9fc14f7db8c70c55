import DequeModule
import ZKCore
import ZKProtocol
import ZKStorage

/// A whole ensemble of replicas plus their clients, driven on one thread in virtual time.
///
/// The same `Replica` code that the runtime shell drives runs here; the cluster plays the shell:
/// it carries out each `Ready` (storage into a `MemoryStore` with disk crash semantics, peer
/// messages into per-link FIFO queues, client frames into per-client logs) and schedules what
/// follows on one event queue ordered by (time, sequence). Nothing reads the real clock; every
/// choice comes from the seed, so a run is reproducible event for event.
public final class Cluster {
    public struct Options: Sendable {
        public var tickMs: Int64 = 100
        /// One-way latency of a peer or client message.
        public var messageLatencyMs: Int64 = 1
        /// Time an fsync takes.
        public var fsyncMs: Int64 = 1
        public var configure: @Sendable (inout ReplicaConfig) -> Void = { _ in }
        public init() {}
    }

    enum Event {
        case deliver(from: Int64, to: Int64, PeerMessage, link: UInt64)
        case persisted(Int64, through: UInt64, incarnation: Int)
        case tick(Int64, incarnation: Int)
        case clientFrame(ConnectionID, to: Int64, ReplicaInput)
    }

    struct Scheduled {
        var atMs: Int64
        var sequence: UInt64
        var event: Event
    }

    final class Node {
        let id: Int64
        var replica: Replica
        let store: MemoryStore
        var up = true
        /// Bumped on every restart so that events of a crashed incarnation are ignored.
        var incarnation = 0
        var pendingSequence: UInt64 = 0
        init(id: Int64, replica: Replica, store: MemoryStore) {
            self.id = id
            self.replica = replica
            self.store = store
        }
    }

    public let options: Options
    public let members: [Int64]
    public private(set) var nowMs: Int64 = 1_000_000
    var nodes: [Int64: Node] = [:]
    private var queue: [Scheduled] = []
    private var sequence: UInt64 = 0
    /// Link generation per ordered pair; a message sent on an older generation is lost.
    private var linkGeneration: [PairKey: UInt64] = [:]
    private var cut: Set<PairKey> = []
    /// Every peer message sent, for tests that check which sync a follower got.
    public private(set) var trace: [(from: Int64, to: Int64, message: PeerMessage)] = []
    /// Frames received per client connection.
    public private(set) var clientFrames: [ConnectionID: [ServerFrame]] = [:]
    public private(set) var closedClients: Set<ConnectionID> = []
    private var clientNode: [ConnectionID: Int64] = [:]
    private var nextClient: ConnectionID = 1
    private var xids: [ConnectionID: Int32] = [:]

    struct PairKey: Hashable {
        var from: Int64
        var to: Int64
    }

    public init(members: [Int64], options: Options = Options()) {
        self.options = options
        self.members = members.sorted()
        for id in self.members {
            let store = MemoryStore(syncsOnAppend: false)
            nodes[id] = Node(id: id, replica: makeReplica(id, recovered: RecoveredState()), store: store)
        }
    }

    private func makeReplica(_ id: Int64, recovered: RecoveredState) -> Replica {
        var config = ReplicaConfig()
        config.serverId = id
        config.members = members
        config.tickMs = options.tickMs
        options.configure(&config)
        return Replica(config: config, startTimeMs: nowMs, secret: 7, recovered: recovered)
    }

    public func replica(_ id: Int64) -> Replica { nodes[id]!.replica }

    public func isUp(_ id: Int64) -> Bool { nodes[id]!.up }

    /// Starts every replica: links come up, first ticks are scheduled.
    public func start() {
        for id in members { boot(id) }
    }

    private func boot(_ id: Int64) {
        let node = nodes[id]!
        node.up = true
        schedule(at: nowMs, .tick(id, incarnation: node.incarnation))
        for peer in members where peer != id && nodes[peer]!.up {
            connect(id, peer)
        }
    }

    private func connect(_ a: Int64, _ b: Int64) {
        guard !cut.contains(PairKey(from: a, to: b)) else { return }
        linkGeneration[PairKey(from: a, to: b), default: 0] += 1
        linkGeneration[PairKey(from: b, to: a), default: 0] += 1
        stepNode(a, .peerConnected(b))
        stepNode(b, .peerConnected(a))
    }

    private func disconnect(_ a: Int64, _ b: Int64) {
        linkGeneration[PairKey(from: a, to: b), default: 0] += 1
        linkGeneration[PairKey(from: b, to: a), default: 0] += 1
        if nodes[a]!.up { stepNode(a, .peerDisconnected(b)) }
        if nodes[b]!.up { stepNode(b, .peerDisconnected(a)) }
    }

    // MARK: - Faults

    /// Kills a replica: unsynced writes are lost (optionally leaving a torn last record), its
    /// links break, its clients are disconnected.
    public func crash(_ id: Int64, tearLastWrite: Bool = false) {
        let node = nodes[id]!
        guard node.up else { return }
        node.up = false
        node.incarnation += 1
        node.store.crash(tearLastWrite: tearLastWrite)
        for peer in members where peer != id { disconnect(id, peer) }
        for (client, owner) in clientNode where owner == id { closedClients.insert(client) }
    }

    /// Restarts a crashed replica from what its store kept.
    public func restart(_ id: Int64) {
        let node = nodes[id]!
        precondition(!node.up, "restart of running replica \(id)")
        let recovered: RecoveredState
        do { recovered = try node.store.recover() } catch { preconditionFailure("replica \(id) cannot recover: \(error)") }
        node.replica = makeReplica(id, recovered: recovered)
        boot(id)
    }

    /// Cuts the link between two replicas both ways (a symmetric partition of the pair).
    public func partition(_ a: Int64, _ b: Int64) {
        cut.insert(PairKey(from: a, to: b))
        cut.insert(PairKey(from: b, to: a))
        disconnect(a, b)
    }

    /// Isolates a replica from every other.
    public func isolate(_ id: Int64) {
        for peer in members where peer != id { partition(id, peer) }
    }

    public func heal() {
        let pairs = cut
        cut.removeAll()
        var done: Set<PairKey> = []
        for pair in pairs.sorted(by: { ($0.from, $0.to) < ($1.from, $1.to) }) where !done.contains(pair) {
            done.insert(pair)
            done.insert(PairKey(from: pair.to, to: pair.from))
            if nodes[pair.from]!.up && nodes[pair.to]!.up { connect(pair.from, pair.to) }
        }
    }

    // MARK: - Running

    private func schedule(at atMs: Int64, _ event: Event) {
        sequence += 1
        let item = Scheduled(atMs: atMs, sequence: sequence, event: event)
        // Keep the queue sorted by (time, sequence); events are mostly appended in order.
        var index = queue.count
        while index > 0 && (queue[index - 1].atMs, queue[index - 1].sequence) > (item.atMs, item.sequence) { index -= 1 }
        queue.insert(item, at: index)
    }

    /// Runs events until virtual time reaches `nowMs + ms`.
    public func run(forMs ms: Int64) {
        let end = nowMs + ms
        while let first = queue.first, first.atMs <= end {
            queue.removeFirst()
            nowMs = max(nowMs, first.atMs)
            handle(first.event)
        }
        nowMs = end
    }

    /// Runs until `condition` holds, checking after every event, for at most `limitMs`.
    @discardableResult
    public func run(untilMs limitMs: Int64 = 10_000, _ condition: (Cluster) -> Bool) -> Bool {
        let end = nowMs + limitMs
        if condition(self) { return true }
        while let first = queue.first, first.atMs <= end {
            queue.removeFirst()
            nowMs = max(nowMs, first.atMs)
            handle(first.event)
            if condition(self) { return true }
        }
        nowMs = end
        return condition(self)
    }

    private func handle(_ event: Event) {
        switch event {
        case .deliver(let from, let to, let message, let link):
            guard nodes[to]!.up, linkGeneration[PairKey(from: from, to: to)] == link else { return }
            stepNode(to, .peerMessage(from: from, message))
        case .persisted(let id, let through, let incarnation):
            let node = nodes[id]!
            guard node.up, node.incarnation == incarnation else { return }
            node.store.sync()
            stepNode(id, .persisted(upTo: node.store.lastZxid, through: through))
        case .tick(let id, let incarnation):
            let node = nodes[id]!
            guard node.up, node.incarnation == incarnation else { return }
            stepNode(id, .tick)
            schedule(at: nowMs + options.tickMs, .tick(id, incarnation: incarnation))
        case .clientFrame(let client, let id, let input):
            guard nodes[id]!.up, !closedClients.contains(client) else { return }
            stepNode(id, input)
        }
    }

    /// Steps a replica and carries out its Ready: the simulator's shell.
    private func stepNode(_ id: Int64, _ input: ReplicaInput) {
        let node = nodes[id]!
        let ready = node.replica.step(input, nowMs: nowMs)
        if ready.storageSequence > 0 {
            for op in ready.storage {
                do {
                    switch op {
                    case .append(let txns): try node.store.append(txns)
                    case .truncate(let zxid): try node.store.truncate(after: zxid)
                    case .installSnapshot(let tree): try node.store.installSnapshot(tree)
                    case .saveHardState(let state): try node.store.saveHardState(state)
                    }
                } catch {
                    preconditionFailure("memory store failed: \(error)")
                }
            }
            schedule(at: nowMs + options.fsyncMs, .persisted(id, through: ready.storageSequence, incarnation: node.incarnation))
        }
        for outgoing in ready.messages {
            trace.append((id, outgoing.to, outgoing.message))
            let key = PairKey(from: id, to: outgoing.to)
            guard !cut.contains(key), nodes[outgoing.to]!.up, let link = linkGeneration[key] else { continue }
            schedule(at: nowMs + options.messageLatencyMs, .deliver(from: id, to: outgoing.to, outgoing.message, link: link))
        }
        for frame in ready.frames {
            clientFrames[frame.connection, default: []].append(frame.frame)
        }
        for id in ready.close { closedClients.insert(id) }
        if let wake = ready.wakeAtMs, wake > nowMs, wake < nowMs + options.tickMs {
            schedule(at: wake, .tick(id, incarnation: node.incarnation))
        }
    }

    // MARK: - Clients

    /// Opens a client connection to a replica and sends a ConnectRequest (new session, or resume).
    public func connectClient(to id: Int64, sessionId: Int64 = 0, password: [UInt8]? = nil, timeoutMs: Int32 = 10_000) -> ConnectionID {
        let client = nextClient
        nextClient += 1
        clientNode[client] = id
        let request = ConnectRequest(
            timeoutMs: timeoutMs, sessionId: sessionId, password: password ?? [UInt8](repeating: 0, count: 16))
        schedule(at: nowMs, .clientFrame(client, to: id, .connectionOpened(client, peerAddress: "127.0.0.1", peerPort: Int(client))))
        schedule(at: nowMs, .clientFrame(client, to: id, .connect(client, request)))
        return client
    }

    /// Sends a request; returns its xid.
    @discardableResult
    public func send(_ client: ConnectionID, _ request: Request) -> Int32 {
        let xid = (xids[client] ?? 0) + 1
        xids[client] = xid
        let id = clientNode[client]!
        schedule(at: nowMs + options.messageLatencyMs, .clientFrame(client, to: id, .request(client, RequestHeader(xid: xid, type: request.opcode), request)))
        return xid
    }

    /// The connect response a client got, if any.
    public func session(_ client: ConnectionID) -> ConnectResponse? {
        for frame in clientFrames[client] ?? [] {
            if case .connect(let response) = frame { return response }
        }
        return nil
    }

    /// The reply to `xid`, if it arrived.
    public func reply(_ client: ConnectionID, xid: Int32) -> (ErrorCode, Response)? {
        for frame in clientFrames[client] ?? [] {
            if case .reply(let header, let response) = frame, header.xid == xid {
                return (ErrorCode(rawValue: header.err) ?? .systemError, response)
            }
        }
        return nil
    }

    public func events(_ client: ConnectionID) -> [WatcherEvent] {
        (clientFrames[client] ?? []).compactMap { frame in
            if case .notification(_, let event) = frame { return event }
            return nil
        }
    }

    // MARK: - Views

    /// Replicas that are up and serve as established leader.
    public var leaders: [Int64] { members.filter { nodes[$0]!.up && nodes[$0]!.replica.isLeader } }

    public var servingCount: Int { members.filter { nodes[$0]!.up && nodes[$0]!.replica.isServing }.count }

    /// Runs until exactly one leader serves and every running replica serves too.
    @discardableResult
    public func awaitStable(limitMs: Int64 = 10_000) -> Bool {
        run(untilMs: limitMs) { cluster in
            cluster.leaders.count == 1 && cluster.servingCount == cluster.members.filter { cluster.nodes[$0]!.up }.count
        }
    }

    public func store(_ id: Int64) -> MemoryStore { nodes[id]!.store }
}
