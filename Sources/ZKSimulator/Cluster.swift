import NIOCore
import ZKCore
import ZKProtocol
import ZKStorage

/// A whole ensemble of replicas plus their clients, driven on one thread in virtual time.
///
/// The same `Replica` code that the runtime shell drives runs here; the cluster plays the shell:
/// it carries out each `Ready` (storage into a `MemoryStore` with disk crash semantics, peer
/// messages onto simulated connections, client frames onto simulated client connections) and
/// schedules what follows on one event queue ordered by (time, sequence). Nothing reads the real
/// clock; every choice comes from `Options.seed`, so a run is reproducible event for event.
///
/// Peer messages travel as bytes: the sender's message is encoded with `PeerCodec` (the server's
/// wire format) and the receiver steps what decodes from those bytes, so an encoding bug shows up
/// as a run that goes wrong (or a frame that does not decode, which stops the run).
///
/// Snapshots are the replica's decision (`Ready.snapshot`, from its seeded `SnapshotSchedule`):
/// the cluster starts writing one into the `MemoryStore`, finishes it (snapshot stored, log it
/// covers compacted away) after `snapshotLatency`, and steps `.snapshotFinished`. A crash in
/// between loses it; a restart recovers from the newest snapshot and the log after it.
///
/// ## The network, and why its faults are connection-level
///
/// The replica relies on what TCP gives it: between two replicas, messages arrive in order and
/// none is lost *while a connection lasts*, and when a connection breaks both sides are told
/// (`.peerDisconnected`); messages sent on it may then have been lost. Peer messages carry no
/// sequence numbers because of that contract. So the simulator never drops, duplicates or
/// reorders a message silently inside a live connection: that would be a fault the real
/// transport cannot produce, and any "bug" it found would be a bug of the simulator. Instead,
/// packet-level faults surface the way they surface above TCP:
///
/// - **delay**: every directed link has its own latency distribution, with occasional spikes;
///   messages on one connection still arrive in order (a message never overtakes an earlier one);
/// - **drop**: the message is lost and the connection breaks: everything sent after it on that
///   connection is lost too, and each side learns of the break after its own detection delay
///   (one side may keep sending into the void for a while);
/// - **duplicate / reorder**: the message is delivered (a reordered one late, holding back what
///   follows it) and then the connection breaks; after reconnection the protocol re-sends what
///   it needs, which is how a receiver sees the same request twice above TCP;
/// - **partitions** (symmetric, one-way, bridge) cut directed pairs: a one-way cut loses the
///   messages in its direction until the connection is found broken, and no new connection can
///   be made while either direction is cut;
/// - **clogging** holds every message to and from a replica until the clog ends (no loss);
/// - **pausing** stops a replica from running (a long GC pause or a stopped VM): its inputs wait.
///
/// A broken connection is re-established after a reconnect delay, with a new generation: a
/// message sent on an older generation is never delivered.
///
/// Client connections are TCP connections too: in order while they last, and a break (a fault,
/// a replica crash, or the replica closing the connection) is seen by both sides, after their
/// detection delays. Frames in flight on a broken client connection are lost.
public final class Cluster {
    public struct Options: Sendable {
        public var tickMs: Int64 = 100
        /// One-way latency of a peer or client message when no latency model is given.
        public var messageLatencyMs: Int64 = 1
        /// Time an fsync takes when no disk model is given.
        public var fsyncMs: Int64 = 1
        public var configure: @Sendable (inout ReplicaConfig) -> Void = { _ in }
        /// Seed of the cluster's own draws (latencies, fsync times, per-message faults).
        public var seed: UInt64 = 0
        /// Virtual time at the start.
        public var startTimeMs: Int64 = 1_000_000
        /// Latency of peer messages; each directed link scales it by its own factor in
        /// `1...linkLatencySpread`.
        public var peerLatency: LatencyModel? = nil
        public var linkLatencySpread: Int64 = 1
        /// Latency of client frames (both ways).
        public var clientLatency: LatencyModel? = nil
        /// Time from a storage batch to its fsync completing.
        public var fsyncLatency: LatencyModel? = nil
        /// Per peer message: lost and the connection broken.
        public var dropProbability: Double = 0
        /// Per peer message: delivered, then the connection broken.
        public var duplicateProbability: Double = 0
        /// Per peer message: delivered late (holding back what follows), then the connection broken.
        public var reorderProbability: Double = 0
        /// How long a side takes to notice that a connection broke.
        public var detectionDelay: LatencyModel = .fixed(0)
        /// How long after a break (both sides told) a new connection comes up.
        public var reconnectDelay: LatencyModel = .fixed(0)
        /// Keep every peer message in `trace` (the Zab tests look at the sync kinds).
        public var recordsMessages = true
        /// The replicas' snapshot interval N (`ReplicaConfig.snapshotEveryTransactions`); nil
        /// keeps the replica's default. Each replica's schedule is seeded from `seed`, its id and
        /// its incarnation.
        public var snapshotEveryTransactions: Int? = nil
        /// Time from a snapshot asked for to its being written (and the log compacted); nil:
        /// `fsyncMs`.
        public var snapshotLatency: LatencyModel? = nil
        public init() {}
    }

    /// What a client sees on its connection.
    public enum ClientDelivery: Sendable {
        case frame(ServerFrame)
        /// The connection is gone (closed by the replica, broken, or the replica died).
        case closed
    }

    enum Event {
        /// A peer message, as the frame `PeerCodec` encoded.
        case deliver(from: Int64, to: Int64, ByteBuffer, generation: UInt64)
        case persisted(Int64, through: UInt64, incarnation: Int)
        /// The snapshot a replica asked for is written.
        case snapshotWritten(Int64, incarnation: Int)
        /// A regular tick (`periodic`, which schedules the next one) or a wake-up the replica asked for.
        case tick(Int64, incarnation: Int, periodic: Bool)
        case toReplica(ConnectionID, ReplicaInput)
        case toClient(ConnectionID, ClientDelivery)
        /// The replica hears that a client connection is gone.
        case clientGone(ConnectionID, incarnation: Int)
        case peerLost(Int64, peer: Int64, incarnation: Int)
        case reconnect(Pair)
        case breakLink(Pair, generation: UInt64)
        case call(() -> Void)

        /// The replica an event is an input of, if any (paused replicas hold these back).
        var target: Int64? {
            switch self {
            case .deliver(_, let to, _, _): return to
            case .persisted(let id, _, _), .tick(let id, _, _), .peerLost(let id, _, _): return id
            case .snapshotWritten(let id, _): return id
            default: return nil
            }
        }
    }

    final class Node {
        let id: Int64
        var replica: Replica
        let store: MemoryStore
        var up = true
        /// Bumped on every crash so that events of a dead incarnation are ignored.
        var incarnation = 0
        var lastFsyncMs: Int64 = 0
        var clogUntilMs: Int64 = 0
        var pausedUntilMs: Int64 = 0
        var diskStallUntilMs: Int64 = 0
        /// Wake-up ticks already scheduled, so that many steps asking for the same one add one.
        var wakes: Set<Int64> = []
        init(id: Int64, replica: Replica, store: MemoryStore) {
            self.id = id
            self.replica = replica
            self.store = store
        }
    }

    /// An unordered pair of replicas: one connection between them.
    struct Pair: Hashable, Comparable {
        let low: Int64
        let high: Int64
        init(_ a: Int64, _ b: Int64) {
            low = min(a, b)
            high = max(a, b)
        }
        static func < (a: Pair, b: Pair) -> Bool { (a.low, a.high) < (b.low, b.high) }
    }

    struct PairKey: Hashable {
        var from: Int64
        var to: Int64
    }

    /// The connection between two replicas.
    struct Link {
        var generation: UInt64 = 0
        var up = false
        /// Break notices not yet delivered; no new connection before they are.
        var pendingNotices = 0
        /// Latest delivery time per sender, to keep the connection in order.
        var lastDeliveryMs: [Int64: Int64] = [:]
    }

    struct ClientConnection {
        var node: Int64
        var incarnation: Int
        /// nil: a connection of the tests' API, whose frames are kept in `clientFrames`.
        var handler: ((ClientDelivery) -> Void)?
        var broken = false
        var clientKnowsClosed = false
        var replicaKnowsClosed = false
        /// The replica closed it: what it sent before still arrives, then the close.
        var replicaClosing = false
        var lastToReplicaMs: Int64 = 0
        var lastToClientMs: Int64 = 0
    }

    public let options: Options
    public let members: [Int64]
    public private(set) var nowMs: Int64
    /// Events handled so far: a logical clock finer than milliseconds, for histories.
    public private(set) var eventsHandled: UInt64 = 0
    var nodes: [Int64: Node] = [:]
    private var queue = EventQueue<Event>()
    private var links: [Pair: Link] = [:]
    private var cut: Set<PairKey> = []
    private var linkLatency: [PairKey: LatencyModel] = [:]
    private var random: SimRandom
    private var clients: [ConnectionID: ClientConnection] = [:]
    private var nextClient: ConnectionID = 1
    private var xids: [ConnectionID: Int32] = [:]
    /// Every peer message sent (when `recordsMessages`), for tests that check which sync a
    /// follower got.
    public private(set) var trace: [(from: Int64, to: Int64, message: PeerMessage)] = []
    /// Frames received per client connection of the tests' API.
    public private(set) var clientFrames: [ConnectionID: [ServerFrame]] = [:]
    public private(set) var closedClients: Set<ConnectionID> = []
    /// Told of every step, crash and restart; the checkers live here.
    public var observers: [ClusterObserver] = []
    /// Receives one line per event when set: the event trace.
    public var traceSink: ((String) -> Void)?
    /// Set by a checker to stop the run at the first violation.
    public var halted = false
    /// Per-message faults (drop, duplicate, reorder) apply while this is on.
    public var messageFaultsEnabled = true
    /// Latency spikes (slow packets, slow fsyncs) apply while this is on; off, every latency
    /// stays within its model's base range.
    public var latencySpikesEnabled = true
    /// Counters for the report.
    public private(set) var statistics = Statistics()

    public struct Statistics: Sendable {
        public var peerMessages = 0
        /// Bytes of the peer frames sent (each encoded with `PeerCodec`).
        public var peerBytes = 0
        public var peerMessagesLost = 0
        public var snapshotsWritten = 0
        public var linkBreaks = 0
        public var clientFrames = 0
        public var clientBreaks = 0
        public var fsyncs = 0
        public var crashes = 0
        public var steps = 0
    }

    public init(members: [Int64], options: Options = Options()) {
        self.options = options
        self.members = members.sorted()
        self.nowMs = options.startTimeMs
        self.random = SimRandom.derive(options.seed, "cluster")
        var linkRandom = SimRandom.derive(options.seed, "links")
        let base = options.peerLatency ?? .fixed(options.messageLatencyMs)
        for from in self.members {
            for to in self.members where to != from {
                let factor = options.linkLatencySpread > 1 ? linkRandom.int(1...options.linkLatencySpread) : 1
                linkLatency[PairKey(from: from, to: to)] = LatencyModel(
                    minMs: base.minMs * factor, maxMs: base.maxMs * factor, spikeProbability: base.spikeProbability,
                    spikeMaxMs: base.spikeMaxMs)
            }
        }
        for id in self.members {
            let store = MemoryStore(syncsOnAppend: false)
            nodes[id] = Node(id: id, replica: makeReplica(id, incarnation: 0, recovered: RecoveredState()), store: store)
        }
    }

    private func makeReplica(_ id: Int64, incarnation: Int, recovered: RecoveredState) -> Replica {
        var config = ReplicaConfig()
        config.serverId = id
        config.members = members
        config.tickMs = options.tickMs
        if let every = options.snapshotEveryTransactions { config.snapshotEveryTransactions = every }
        var snapshotRandom = SimRandom.derive(options.seed, "snapshots n\(id) #\(incarnation)")
        config.snapshotSeed = snapshotRandom.next()
        options.configure(&config)
        return Replica(config: config, startTimeMs: nowMs, secret: 7, recovered: recovered)
    }

    public func replica(_ id: Int64) -> Replica { nodes[id]!.replica }

    public func isUp(_ id: Int64) -> Bool { nodes[id]!.up }

    public func store(_ id: Int64) -> MemoryStore { nodes[id]!.store }

    /// Starts every replica: links come up, first ticks are scheduled.
    public func start() {
        for id in members { boot(id) }
    }

    private func boot(_ id: Int64) {
        let node = nodes[id]!
        node.up = true
        schedule(at: nowMs, .tick(id, incarnation: node.incarnation, periodic: true))
        for peer in members where peer != id && nodes[peer]!.up {
            let pair = Pair(id, peer)
            if links[pair]?.up != true && (links[pair]?.pendingNotices ?? 0) == 0 && !isCut(pair) {
                connect(id, peer)
            }
        }
    }

    private func isCut(_ pair: Pair) -> Bool {
        cut.contains(PairKey(from: pair.low, to: pair.high)) || cut.contains(PairKey(from: pair.high, to: pair.low))
    }

    private func connect(_ a: Int64, _ b: Int64) {
        let pair = Pair(a, b)
        var link = links[pair] ?? Link()
        precondition(!link.up && link.pendingNotices == 0, "connect \(a)-\(b) over a live link")
        link.up = true
        link.generation += 1
        link.lastDeliveryMs = [:]
        links[pair] = link
        note("link \(a)-\(b) up (generation \(link.generation))")
        stepNode(a, .peerConnected(b))
        stepNode(b, .peerConnected(a))
    }

    /// Breaks a live connection: whatever is in flight on it is lost, each live side is told
    /// after its detection delay.
    private func breakLink(_ pair: Pair, reason: String) {
        guard var link = links[pair], link.up else { return }
        link.up = false
        link.generation += 1
        statistics.linkBreaks += 1
        var immediate: [(Int64, Int64)] = []
        for (side, other) in [(pair.low, pair.high), (pair.high, pair.low)] where nodes[side]!.up {
            let delay = options.detectionDelay.sample(&random)
            if delay == 0 {
                immediate.append((side, other))
            } else {
                link.pendingNotices += 1
                schedule(at: nowMs + delay, .peerLost(side, peer: other, incarnation: nodes[side]!.incarnation))
            }
        }
        links[pair] = link
        note("link \(pair.low)-\(pair.high) broken: \(reason)")
        for (side, other) in immediate { stepNode(side, .peerDisconnected(other)) }
        if link.pendingNotices == 0 { scheduleReconnect(pair) }
    }

    private func scheduleReconnect(_ pair: Pair) {
        guard nodes[pair.low]!.up, nodes[pair.high]!.up, !isCut(pair) else { return }
        schedule(at: nowMs + options.reconnectDelay.sample(&random), .reconnect(pair))
    }

    // MARK: - Faults

    /// Kills a replica: unsynced writes are lost (optionally leaving a torn last record), its
    /// links break, its clients are disconnected.
    public func crash(_ id: Int64, tearLastWrite: Bool = false) {
        let node = nodes[id]!
        guard node.up else { return }
        node.up = false
        node.incarnation += 1
        node.pausedUntilMs = 0
        node.clogUntilMs = 0
        node.wakes.removeAll()
        node.store.crash(tearLastWrite: tearLastWrite)
        statistics.crashes += 1
        note("crash n\(id)\(tearLastWrite ? " (torn last write)" : "")")
        for peer in members where peer != id { breakLink(Pair(id, peer), reason: "n\(id) crashed") }
        for client in clients.keys.sorted() where clients[client]!.node == id && !clients[client]!.replicaKnowsClosed {
            clients[client]!.replicaKnowsClosed = true
            breakClient(client, tellReplica: false)
        }
        for observer in observers { observer.cluster(self, crashed: id) }
    }

    /// Restarts a crashed replica from what its store kept.
    public func restart(_ id: Int64) {
        let node = nodes[id]!
        precondition(!node.up, "restart of running replica \(id)")
        let recovered: RecoveredState
        do { recovered = try node.store.recover() } catch { preconditionFailure("replica \(id) cannot recover: \(error)") }
        node.replica = makeReplica(id, incarnation: node.incarnation, recovered: recovered)
        note("restart n\(id) (snapshot 0x\(String(recovered.tree.lastZxid, radix: 16)), log to 0x\(String(recovered.lastZxid, radix: 16)))")
        for observer in observers { observer.cluster(self, restarted: id) }
        boot(id)
    }

    /// Cuts the link between two replicas both ways (a symmetric partition of the pair).
    public func partition(_ a: Int64, _ b: Int64) {
        cut.insert(PairKey(from: a, to: b))
        cut.insert(PairKey(from: b, to: a))
        breakLink(Pair(a, b), reason: "partition \(a)|\(b)")
    }

    /// Cuts one direction only: messages from `from` to `to` are lost until the connection is
    /// found broken, and no new connection comes up while the cut lasts.
    public func partitionOneWay(from: Int64, to: Int64) {
        cut.insert(PairKey(from: from, to: to))
        let pair = Pair(from, to)
        guard let link = links[pair], link.up else { return }
        note("one-way cut \(from)->\(to)")
        schedule(at: nowMs + options.detectionDelay.sample(&random), .breakLink(pair, generation: link.generation))
    }

    /// Cuts the given directed pairs (a partition of any shape) and breaks the connections of
    /// the pairs cut both ways at once; a pair cut one way breaks after a detection delay.
    public func cut(_ pairs: [(from: Int64, to: Int64)]) {
        for pair in pairs { cut.insert(PairKey(from: pair.from, to: pair.to)) }
        for pair in pairs {
            let link = Pair(pair.from, pair.to)
            guard let state = links[link], state.up else { continue }
            if cut.contains(PairKey(from: pair.to, to: pair.from)) {
                breakLink(link, reason: "partition \(pair.from)|\(pair.to)")
            } else {
                note("one-way cut \(pair.from)->\(pair.to)")
                schedule(at: nowMs + options.detectionDelay.sample(&random), .breakLink(link, generation: state.generation))
            }
        }
    }

    /// Removes the given cuts; pairs no longer cut either way reconnect after the reconnect delay.
    public func uncut(_ pairs: [(from: Int64, to: Int64)]) {
        for pair in pairs { cut.remove(PairKey(from: pair.from, to: pair.to)) }
        for pair in pairs {
            let link = Pair(pair.from, pair.to)
            guard links[link]?.up != true, (links[link]?.pendingNotices ?? 0) == 0 else { continue }
            scheduleReconnect(link)
        }
    }

    /// Isolates a replica from every other.
    public func isolate(_ id: Int64) {
        for peer in members where peer != id { partition(id, peer) }
    }

    /// Heals every cut; replicas that are up reconnect.
    public func heal() {
        cut.removeAll()
        note("heal")
        for a in members {
            for b in members where b > a {
                let pair = Pair(a, b)
                guard nodes[a]!.up, nodes[b]!.up, links[pair]?.up != true, (links[pair]?.pendingNotices ?? 0) == 0 else { continue }
                if options.reconnectDelay.maxMs == 0 && options.reconnectDelay.spikeProbability == 0 {
                    connect(a, b)
                } else {
                    scheduleReconnect(pair)
                }
            }
        }
    }

    /// Holds every message to and from a replica until `forMs` from now.
    public func clog(_ id: Int64, forMs ms: Int64) {
        nodes[id]!.clogUntilMs = max(nodes[id]!.clogUntilMs, nowMs + ms)
        note("clog n\(id) for \(ms)ms")
    }

    /// Stops a replica from running for `forMs` (its inputs wait; its disk keeps going).
    public func pause(_ id: Int64, forMs ms: Int64) {
        guard nodes[id]!.up else { return }
        nodes[id]!.pausedUntilMs = max(nodes[id]!.pausedUntilMs, nowMs + ms)
        note("pause n\(id) for \(ms)ms")
    }

    /// Makes every fsync of a replica complete no earlier than `forMs` from now.
    public func stallDisk(_ id: Int64, forMs ms: Int64) {
        nodes[id]!.diskStallUntilMs = max(nodes[id]!.diskStallUntilMs, nowMs + ms)
        note("disk stall n\(id) for \(ms)ms")
    }

    /// Breaks the connection between two replicas once (they reconnect after the reconnect delay).
    public func breakConnection(_ a: Int64, _ b: Int64) {
        breakLink(Pair(a, b), reason: "fault")
    }

    /// Ends every clog and pause.
    public func unclogAll() {
        for id in members {
            nodes[id]!.clogUntilMs = 0
            nodes[id]!.diskStallUntilMs = 0
        }
    }

    public var isPartitioned: Bool { !cut.isEmpty }

    public func isLinkUp(_ a: Int64, _ b: Int64) -> Bool { links[Pair(a, b)]?.up ?? false }

    // MARK: - Running

    private func schedule(at atMs: Int64, _ event: Event) {
        queue.push(atMs: max(atMs, nowMs), event)
    }

    /// Runs `action` at `atMs` of virtual time (for clients, workloads and the nemesis).
    public func at(_ atMs: Int64, _ action: @escaping () -> Void) {
        schedule(at: atMs, .call(action))
    }

    /// Runs `action` `ms` from now.
    public func after(_ ms: Int64, _ action: @escaping () -> Void) {
        schedule(at: nowMs + ms, .call(action))
    }

    /// Runs events until virtual time reaches `nowMs + ms`.
    public func run(forMs ms: Int64) {
        let end = nowMs + ms
        while !halted, let first = queue.firstAtMs, first <= end {
            let entry = queue.pop()!
            nowMs = max(nowMs, entry.atMs)
            handle(entry.payload)
        }
        if !halted { nowMs = max(nowMs, end) }
    }

    /// Runs until `condition` holds, checking after every event, for at most `limitMs`.
    @discardableResult
    public func run(untilMs limitMs: Int64 = 10_000, _ condition: (Cluster) -> Bool) -> Bool {
        let end = nowMs + limitMs
        if condition(self) { return true }
        while !halted, let first = queue.firstAtMs, first <= end {
            let entry = queue.pop()!
            nowMs = max(nowMs, entry.atMs)
            handle(entry.payload)
            if condition(self) { return true }
        }
        if !halted { nowMs = max(nowMs, end) }
        return condition(self)
    }

    private func handle(_ event: Event) {
        eventsHandled += 1
        if let target = event.target, let node = nodes[target], node.up, node.pausedUntilMs > nowMs {
            schedule(at: node.pausedUntilMs, event)
            return
        }
        switch event {
        case .deliver(let from, let to, let frame, let generation):
            guard nodes[to]!.up, let link = links[Pair(from, to)], link.up, link.generation == generation else {
                statistics.peerMessagesLost += 1
                return
            }
            stepNode(to, .peerMessage(from: from, decodePeerFrame(frame, from: from, to: to)))
        case .persisted(let id, let through, let incarnation):
            let node = nodes[id]!
            guard node.up, node.incarnation == incarnation else { return }
            node.store.sync()
            statistics.fsyncs += 1
            stepNode(id, .persisted(upTo: node.store.lastZxid, through: through))
        case .snapshotWritten(let id, let incarnation):
            let node = nodes[id]!
            guard node.up, node.incarnation == incarnation else { return }
            let progress: SnapshotProgress
            do { progress = try node.store.continueSnapshot() } catch { preconditionFailure("memory store failed: \(error)") }
            if progress == .completed { statistics.snapshotsWritten += 1 }
            stepNode(id, .snapshotFinished(completed: progress == .completed))
        case .tick(let id, let incarnation, let periodic):
            let node = nodes[id]!
            if !periodic { node.wakes.remove(nowMs) }
            guard node.up, node.incarnation == incarnation else { return }
            stepNode(id, .tick)
            if periodic { schedule(at: nowMs + options.tickMs, .tick(id, incarnation: incarnation, periodic: true)) }
        case .toReplica(let client, let input):
            guard let connection = clients[client], !connection.broken, !connection.replicaKnowsClosed else { return }
            let node = nodes[connection.node]!
            guard node.up, node.incarnation == connection.incarnation else { return }
            if node.pausedUntilMs > nowMs {
                schedule(at: node.pausedUntilMs, event)
                return
            }
            if case .connectionClosed = input { clients[client]!.replicaKnowsClosed = true }
            stepNode(connection.node, input)
        case .toClient(let client, let delivery):
            guard let connection = clients[client], !connection.clientKnowsClosed else { return }
            switch delivery {
            case .frame:
                guard !connection.broken else { return }
            case .closed:
                clients[client]!.clientKnowsClosed = true
                clients[client]!.broken = true
            }
            emit { "c\(client) <- \(describe(delivery))" }
            connection.handler?(delivery)
        case .clientGone(let client, let incarnation):
            guard let connection = clients[client], !connection.replicaKnowsClosed else { return }
            let node = nodes[connection.node]!
            guard node.up, node.incarnation == incarnation else { return }
            if node.pausedUntilMs > nowMs {
                schedule(at: node.pausedUntilMs, event)
                return
            }
            clients[client]!.replicaKnowsClosed = true
            stepNode(connection.node, .connectionClosed(client))
        case .peerLost(let id, let peer, let incarnation):
            let pair = Pair(id, peer)
            links[pair]!.pendingNotices -= 1
            let node = nodes[id]!
            if node.up, node.incarnation == incarnation { stepNode(id, .peerDisconnected(peer)) }
            if links[pair]!.pendingNotices == 0 { scheduleReconnect(pair) }
        case .reconnect(let pair):
            guard let link = links[pair], !link.up, link.pendingNotices == 0, nodes[pair.low]!.up, nodes[pair.high]!.up,
                !isCut(pair)
            else { return }
            connect(pair.low, pair.high)
        case .breakLink(let pair, let generation):
            guard links[pair]?.generation == generation else { return }
            breakLink(pair, reason: "fault")
        case .call(let action):
            action()
        }
    }

    /// Steps a replica and carries out its Ready: the simulator's shell.
    private func stepNode(_ id: Int64, _ input: ReplicaInput) {
        let node = nodes[id]!
        emit { "n\(id) <- \(describe(input))" }
        let ready = node.replica.step(input, nowMs: nowMs)
        statistics.steps += 1
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
            let latency = options.fsyncLatency.map(sample) ?? options.fsyncMs
            let done = max(nowMs + latency, node.lastFsyncMs, node.diskStallUntilMs)
            node.lastFsyncMs = done
            schedule(at: done, .persisted(id, through: ready.storageSequence, incarnation: node.incarnation))
        }
        if let tree = ready.snapshot {
            // After this step's storage, as the server's storage thread queues it: the snapshot
            // covers only what the log already holds.
            do { try node.store.startSnapshot(tree) } catch { preconditionFailure("memory store failed: \(error)") }
            let latency = options.snapshotLatency.map(sample) ?? options.fsyncMs
            schedule(at: max(nowMs + latency, node.diskStallUntilMs), .snapshotWritten(id, incarnation: node.incarnation))
        }
        for outgoing in ready.messages {
            if options.recordsMessages { trace.append((id, outgoing.to, outgoing.message)) }
            sendPeer(from: id, to: outgoing.to, outgoing.message)
        }
        for frame in ready.frames { sendToClient(frame.connection, frame.frame) }
        for (index, client) in ready.close.enumerated() {
            replicaClosed(client, by: id, reason: index < ready.closeReasons.count ? ready.closeReasons[index] : "")
        }
        if let wake = ready.wakeAtMs, wake > nowMs, wake < nowMs + options.tickMs, node.wakes.insert(wake).inserted {
            schedule(at: wake, .tick(id, incarnation: node.incarnation, periodic: false))
        }
        for observer in observers { observer.cluster(self, stepped: id, input: input, ready: ready) }
    }

    /// The message a peer frame carries; a frame that does not decode to exactly one message is
    /// a bug of the codec, and stops the run.
    private func decodePeerFrame(_ frame: ByteBuffer, from: Int64, to: Int64) -> PeerMessage {
        var bytes = frame
        do {
            guard let message = try PeerCodec.decodeFrame(&bytes), bytes.readableBytes == 0 else {
                preconditionFailure("peer frame n\(from)->n\(to) of \(frame.readableBytes) bytes is not one whole message")
            }
            return message
        } catch {
            preconditionFailure("peer frame n\(from)->n\(to) does not decode: \(error)")
        }
    }

    private func sendPeer(from: Int64, to: Int64, _ message: PeerMessage) {
        statistics.peerMessages += 1
        let pair = Pair(from, to)
        guard var link = links[pair], link.up, nodes[to]!.up, !cut.contains(PairKey(from: from, to: to)) else {
            // No connection (or a one-way cut that will break it): the message is lost, and the
            // sender has been or will be told.
            statistics.peerMessagesLost += 1
            return
        }
        if messageFaultsEnabled && random.chance(options.dropProbability) {
            statistics.peerMessagesLost += 1
            breakLink(pair, reason: "message \(from)->\(to) dropped")
            return
        }
        var atMs = nowMs + sample(linkLatency[PairKey(from: from, to: to)]!)
        atMs = max(atMs, nodes[from]!.clogUntilMs, nodes[to]!.clogUntilMs, link.lastDeliveryMs[from] ?? 0)
        var breakAfter = false
        if messageFaultsEnabled && random.chance(options.duplicateProbability) {
            breakAfter = true
        } else if messageFaultsEnabled && random.chance(options.reorderProbability) {
            atMs += 1 + random.int(0...Int64(20))
            breakAfter = true
        }
        link.lastDeliveryMs[from] = atMs
        links[pair] = link
        var frame = ByteBuffer()
        PeerCodec.encode(message, into: &frame)
        statistics.peerBytes += frame.readableBytes
        schedule(at: atMs, .deliver(from: from, to: to, frame, generation: link.generation))
        if breakAfter { schedule(at: atMs, .breakLink(pair, generation: link.generation)) }
    }

    // MARK: - Clients

    private func sample(_ model: LatencyModel) -> Int64 {
        guard !latencySpikesEnabled else { return model.sample(&random) }
        var calm = model
        calm.spikeProbability = 0
        return calm.sample(&random)
    }

    private func clientLatency() -> Int64 {
        options.clientLatency.map(sample) ?? options.messageLatencyMs
    }

    /// Opens a client connection to a replica. Frames and the close arrive through `handler`.
    public func openConnection(to id: Int64, handler: @escaping (ClientDelivery) -> Void) -> ConnectionID {
        let client = nextClient
        nextClient += 1
        let node = nodes[id]!
        clients[client] = ClientConnection(node: id, incarnation: node.incarnation, handler: handler)
        emit { "c\(client) opens to n\(id)" }
        if !node.up {
            // Connection refused.
            clients[client]!.replicaKnowsClosed = true
            clients[client]!.broken = true
            schedule(at: nowMs + clientLatency(), .toClient(client, .closed))
            return client
        }
        clientSend(client, .connectionOpened(client, peerAddress: "10.0.0.\(client % 250 + 1)", peerPort: Int(client % 60_000)))
        return client
    }

    /// A client sends a frame (or its connection's opening) to its replica.
    public func clientSend(_ client: ConnectionID, _ input: ReplicaInput) {
        guard var connection = clients[client], !connection.clientKnowsClosed, !connection.broken else { return }
        statistics.clientFrames += 1
        let node = nodes[connection.node]!
        let atMs = max(nowMs + clientLatency(), connection.lastToReplicaMs, node.clogUntilMs)
        connection.lastToReplicaMs = atMs
        clients[client] = connection
        schedule(at: atMs, .toReplica(client, input))
    }

    /// The client closes its connection: the replica hears of it after what the client sent.
    public func clientClose(_ client: ConnectionID) {
        guard var connection = clients[client], !connection.clientKnowsClosed else { return }
        connection.clientKnowsClosed = true
        emit { "c\(client) closes" }
        if connection.broken || connection.replicaKnowsClosed {
            clients[client] = connection
            return
        }
        let atMs = max(nowMs + clientLatency(), connection.lastToReplicaMs)
        connection.lastToReplicaMs = atMs
        clients[client] = connection
        schedule(at: atMs, .clientGone(client, incarnation: connection.incarnation))
    }

    /// A fault: the client connection breaks; both sides learn after their detection delays.
    public func breakClientConnection(_ client: ConnectionID) {
        guard let connection = clients[client], !connection.broken else { return }
        statistics.clientBreaks += 1
        emit { "c\(client) connection broken" }
        breakClient(client, tellReplica: !connection.replicaKnowsClosed)
    }

    private func breakClient(_ client: ConnectionID, tellReplica: Bool) {
        clients[client]!.broken = true
        let connection = clients[client]!
        if connection.handler == nil {
            closedClients.insert(client)
        } else if !connection.clientKnowsClosed {
            schedule(at: nowMs + options.detectionDelay.sample(&random) + clientLatency(), .toClient(client, .closed))
        }
        if tellReplica {
            schedule(at: nowMs + options.detectionDelay.sample(&random), .clientGone(client, incarnation: connection.incarnation))
        }
    }

    private func sendToClient(_ client: ConnectionID, _ frame: ServerFrame) {
        guard var connection = clients[client] else { return }
        if connection.handler == nil {
            clientFrames[client, default: []].append(frame)
            return
        }
        guard !connection.broken, !connection.clientKnowsClosed, !connection.replicaClosing else { return }
        let atMs = max(nowMs + clientLatency(), connection.lastToClientMs, nodes[connection.node]!.clogUntilMs)
        connection.lastToClientMs = atMs
        clients[client] = connection
        schedule(at: atMs, .toClient(client, .frame(frame)))
    }

    /// The replica closed a connection: the client sees the close after the frames queued
    /// before it, and the replica is told the connection is gone, as the runtime shell does.
    private func replicaClosed(_ client: ConnectionID, by id: Int64, reason: String) {
        guard var connection = clients[client], !connection.replicaClosing else { return }
        emit { "c\(client) closed by n\(id): \(reason)" }
        connection.replicaClosing = true
        if connection.handler == nil {
            closedClients.insert(client)
            connection.broken = true
        } else if !connection.broken && !connection.clientKnowsClosed {
            let atMs = max(nowMs + clientLatency(), connection.lastToClientMs, nodes[connection.node]!.clogUntilMs)
            connection.lastToClientMs = atMs
            schedule(at: atMs, .toClient(client, .closed))
        }
        clients[client] = connection
        if !connection.replicaKnowsClosed {
            schedule(at: nowMs, .clientGone(client, incarnation: connection.incarnation))
        }
    }

    /// Opens a client connection to a replica and sends a ConnectRequest (new session, or resume).
    /// The tests' API: frames are kept in `clientFrames`.
    public func connectClient(to id: Int64, sessionId: Int64 = 0, password: [UInt8]? = nil, timeoutMs: Int32 = 10_000) -> ConnectionID {
        let client = nextClient
        nextClient += 1
        let node = nodes[id]!
        clients[client] = ClientConnection(node: id, incarnation: node.incarnation, handler: nil)
        if !node.up { closedClients.insert(client) }
        let request = ConnectRequest(
            timeoutMs: timeoutMs, sessionId: sessionId, password: password ?? [UInt8](repeating: 0, count: 16))
        schedule(at: nowMs, .toReplica(client, .connectionOpened(client, peerAddress: "127.0.0.1", peerPort: Int(client))))
        schedule(at: nowMs, .toReplica(client, .connect(client, request)))
        return client
    }

    /// Sends a request; returns its xid.
    @discardableResult
    public func send(_ client: ConnectionID, _ request: Request) -> Int32 {
        let xid = (xids[client] ?? 0) + 1
        xids[client] = xid
        schedule(at: nowMs + options.messageLatencyMs, .toReplica(client, .request(client, RequestHeader(xid: xid, type: request.opcode), request)))
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

    public var upMembers: [Int64] { members.filter { nodes[$0]!.up } }

    /// Runs until exactly one leader serves and every running replica serves too.
    @discardableResult
    public func awaitStable(limitMs: Int64 = 10_000) -> Bool {
        run(untilMs: limitMs) { cluster in
            cluster.leaders.count == 1 && cluster.servingCount == cluster.members.filter { cluster.nodes[$0]!.up }.count
        }
    }

    // MARK: - Trace

    private func emit(_ line: () -> String) {
        guard let sink = traceSink else { return }
        sink("\(nowMs) \(line())")
    }

    private func note(_ line: @autoclosure () -> String) {
        emit { "# " + line() }
    }
}

/// Sees everything the cluster does, from outside the replicas: the checkers.
public protocol ClusterObserver: AnyObject {
    func cluster(_ cluster: Cluster, stepped id: Int64, input: ReplicaInput, ready: Ready)
    func cluster(_ cluster: Cluster, crashed id: Int64)
    func cluster(_ cluster: Cluster, restarted id: Int64)
}
