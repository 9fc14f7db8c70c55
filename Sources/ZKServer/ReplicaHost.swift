import DequeModule
import Logging
import NIOCore
import ZKCore
import ZKProtocol
import ZKStorage

/// Settings of the runtime shell that the replica does not know about. Limits carry their unit last.
public struct ServerOptions: Sendable {
    /// The largest frame payload a client may send (ZooKeeper's `jute.maxbuffer`). A larger frame
    /// closes that connection.
    public var frameBytesMax: Int = ZKFrameDecoder.defaultFrameBytesMax
    /// Reading from a connection pauses while more reply bytes than this wait to be written to it,
    /// and resumes when fewer than half of them wait.
    public var outboundBytesReadPause: Int = 4 << 20
    /// A connection with more reply bytes than this waiting to be written is closed. Pausing reads
    /// does not bound a connection that never reads its socket: notifications for its watches keep
    /// coming from other sessions' writes.
    public var outboundBytesMax: Int = 16 << 20
    /// Client connections one IP address may hold at once (ZooKeeper's `maxClientCnxns`, default
    /// 60); 0: no limit. A connection beyond it is closed as soon as it is accepted, with a
    /// logged reason; the address's other connections carry on.
    public var connectionsPerClientAddressMax: Int = 60
    /// Client connections in all (ZooKeeper's `zookeeper.maxCnxns`, zoo.cfg `maxCnxns`); 0, the
    /// default as in ZooKeeper: no limit.
    public var connectionsMax: Int = 0
    /// Requests decoded and not yet answered, over all client connections, above which the server
    /// stops reading client sockets until they are answered (ZooKeeper's `globalOutstandingLimit`,
    /// default 1000). Nothing is dropped: unread requests wait in the sockets and TCP pushes back
    /// on the clients. 0: no limit.
    public var outstandingRequestsMax: Int = 1000
    /// Fairness between connections. Each time the event loop looks at its sockets, a
    /// connection reads at most `readBytesPerTurn` bytes (one read), and decodes at most
    /// `requestsPerTurn` requests before the other connections' requests of that look are
    /// decoded; the rest of what it sent waits in its socket for the next look. So a client that
    /// pipelines thousands of requests makes one that sends a single request wait for about one
    /// turn of each busy connection, not for all of its requests (ZooKeeper's selector threads
    /// read one request per connection and look). Larger values read large frames in fewer
    /// system calls (4 KiB: a 1 MB setData takes 250 reads; pipelined 1 MB writes measured 17 %
    /// slower than with 64 KiB reads). 0: no limit (NIO's 16 reads of up to 64 KiB each look).
    public var readBytesPerTurn: Int = 4096
    public var requestsPerTurn: Int = 64
    /// Requests the replica's connections decode together between two looks at the sockets,
    /// beyond which a busy connection waits for the next look: a look then lasts about as long
    /// however many connections pipeline at once, and a client that sends one request waits for
    /// about one such look. Once it is spent, a connection that read decodes one request of what
    /// it read (so that a lone request is never queued behind the busy ones), and each busy
    /// connection goes on, `requestsPerTurn` at a time, in the order they started to wait, once
    /// the loop has looked at its sockets again. 0: no limit (a look then decodes everything the
    /// connections read, `readBytesPerTurn` each).
    public var requestsPerLook: Int = 4096
    /// How long a connection the replica closed may take to flush what was queued before it;
    /// after that it is closed regardless.
    public var closeFlushTimeoutMs: Int64 = 5_000
    /// Bounds of one group-commit batch (one durable write of the log).
    public var groupCommit = GroupCommitLimits()
    /// A snapshot is taken after this many logged transactions, more exactly after a number drawn
    /// each time in [N/2, N] (ZooKeeper's `snapCount`).
    public var snapshotEveryTransactions: Int = 100_000
    /// Seeds the draws of the snapshot schedule; nil draws a seed from the system.
    public var snapshotSeed: UInt64? = nil
    /// When the storage of one event-loop iteration appends at most this many transactions (and
    /// does nothing else) and the storage thread is idle, the event loop writes it itself rather
    /// than hand it over: a lone write then costs two thread wake-ups fewer, which is most of its
    /// latency besides the fsync. Larger batches, and any batch while the thread is busy, go to
    /// the thread (group commit). 0 hands everything to the thread.
    public var writeNowTransactionsMax: Int = 2
    /// The four-letter words answered on the client port (ZooKeeper's `4lw.commands.whitelist`):
    /// by default `srvr` only, as ZooKeeper.
    public var fourLetterWords: FourLetterWordWhitelist = .default
    public init() {}
}

/// The runtime shell of one replica: owns the `Replica` value and drives it from one event loop.
///
/// Every input reaches the replica through `submit` on that loop, and every `Ready` the replica
/// answers with goes through `apply`, the one function that enforces `Ready`'s ordering contract.
/// The client connections of this replica live on the same loop, so a request is decoded, stepped
/// through the replica and answered without any hop between threads; a replica is single-threaded
/// by design, so giving its connections other loops would only add hops.
///
/// Storage runs on a thread of its own (`StorageThread`): `apply` queues each `Ready`'s storage
/// operations there and goes on; the thread makes whatever piled up durable as one batch (group
/// commit) and reports back, and only then is `.persisted` stepped. The exception is a lone small
/// write while the thread is idle (`ServerOptions.writeNowTransactionsMax`): the loop then writes
/// it itself at the end of its iteration, after its messages to peers have left, because two
/// thread wake-ups cost more than the fsync on a small machine.
///
/// The type is `@unchecked Sendable` because it is shared with NIO's `@Sendable` callbacks, but all
/// of its state is touched only on `eventLoop`, which every entry point checks.
final class ReplicaHost: @unchecked Sendable {
    enum State {
        case running
        case stopping
        /// The store could not make a batch durable; nothing more is served.
        case failed(reason: String)
    }

    let eventLoop: any EventLoop
    /// The replica's settings as the four-letter words report them.
    var config: ReplicaConfig
    let options: ServerOptions
    let logger: Logger
    let startedAtMs: Int64

    private var replica: Replica
    private let storage: StorageThread
    private var storageStopped: EventLoopFuture<Void>?
    private var storageStatistics = StorageStatistics()
    /// The Prometheus registry of this replica: counters recorded as things happen.
    let metrics: ServerMetricsRegistry
    /// ZooKeeper's summaries, recorded on the event loop.
    private(set) var summaries = ServerSummaries()
    /// How long recovery took at start.
    let recovery: RecoveryMetrics
    /// Whether the replica served clients after the last step, and since when it did or did not
    /// (wall-clock ms): elections are timed from losing service to serving again.
    private var wasServing = false
    private var responseSizes = ResponseSizeStatistics()
    private var fsyncThresholdExceeded: Int64 = 0
    private var lastSnapshotAtMs: Int64?
    private var servingChangedAtMs: Int64 = 0
    /// Where peer messages go; nil for a standalone replica.
    var peerTransport: (any PeerTransport)?
    private var wakeTask: Scheduled<Void>?
    private var isPeerFlushScheduled = false
    /// Storage of this iteration's steps, handed over (or written) at the end of the iteration.
    private var pendingStorage: [StorageJob] = []
    private var isStorageHandOffScheduled = false
    /// `endOfIteration` is queued on the loop.
    private var isEndOfIterationScheduled = false
    /// Shared with the other replicas on this event loop: which of them may write on it.
    private let loopTurns: LoopStorageTurns
    /// The store does not wait for a disk (`ReplicaStore.writesAreInstant`): every batch is
    /// written on the loop, at the end of the iteration that made it.
    private let storageIsInstant: Bool
    /// Highest storage sequence handed to the storage thread, and highest whose `.persisted` was
    /// stepped (counting what the loop wrote itself). The loop writes storage itself only once
    /// every hand-over was reported: a report of the thread still on its way to the loop must not
    /// arrive after a later one.
    private var handedOverThrough: UInt64 = 0
    private var reportedThrough: UInt64 = 0
    private var wakeAtMs: Int64 = .max
    private let wallClockMs: @Sendable () -> Int64
    private var state = State.running
    private var connections: [ConnectionID: ClientConnectionHandler] = [:]
    /// Open client connections per peer IP address, for `connectionsPerClientAddressMax`.
    private var connectionsPerAddress: [String: Int] = [:]
    /// Rate limit of the quota log: the next line may go out at this wall-clock time.
    private var quotaLogNextAtMs: Int64 = 0
    private var quotaLogSuppressed = 0
    private var nextConnectionID: ConnectionID = 1
    private var statistics = ServerStatistics()
    private var traceMask = FourLetterWordResponder.defaultTraceMask
    private let environment: [EnvironmentEntry]
    private var tickTask: RepeatedTask?
    /// Inputs that arrived while a step was being applied (a write that fails synchronously closes
    /// its channel from inside `apply`). They wait so that steps never nest and the frames of one
    /// `Ready` are all handed out before those of the next.
    private var deferredInputs: [ReplicaInput] = []
    private var isStepping = false
    /// See `beginFlushScope`.
    private var flushScopeDepth = 0
    private var connectionsToFlush: [ClientConnectionHandler] = []
    /// Waiting for the replica to serve clients (a standalone one does once its epoch is durable).
    private var servingWaiters: [EventLoopPromise<Void>] = []
    private var failureCallbacks: [@Sendable (String) -> Void] = []
    /// With a manual clock (tests): time is the clock's, ticks come from `ManualClock.advance`.
    let manualClock: ManualClock?
    private var manualNextTickMs: Int64 = .max
    private var isManualWakeQueued = false
    /// A paused replica (a stalled process, for tests): inputs wait in `heldInputs`, ticks are
    /// skipped, its connections' bytes stay unread.
    private(set) var isPaused = false
    private var heldInputs: [ReplicaInput] = []
    /// Connections waiting to read or to decode what they read, in the order they started to
    /// wait: released first come, first served, so that a newcomer does not wait behind a burst
    /// that arrived later.
    private var withheldReads: Deque<ClientConnectionHandler> = []
    private var withheldReadIDs: Set<ObjectIdentifier> = []
    /// Requests decoded in the current look at the sockets (`ServerOptions.requestsPerLook`), and
    /// whether the task marking the end of the look's reads is queued: the first read after it ran
    /// begins a new look.
    private var decodedInLook = 0
    private var isLookEndQueued = false
    /// Connections that spent their share of a look with requests left undecoded, first come,
    /// first served, and whether the next round of their turns is scheduled.
    private var turnsAfterLook: Deque<ClientConnectionHandler> = []
    private var isTurnRoundScheduled = false
    /// Whether a round of turns is running: a connection whose turn ends then waits for a later
    /// round rather than going on in a task of this loop iteration.
    private var isInTurnRound = false
    /// Looks begun so far (counting from the first read after the loop ran its tasks), and the
    /// look of the last round: a round runs once per look.
    private var looks: UInt64 = 0
    private var lookOfLastRound: UInt64 = 0
    private var isTurnRoundPostponed = false
    /// Requests of every client connection decoded and not yet answered, and whether reading is
    /// throttled because there are more than `outstandingRequestsMax` of them.
    private(set) var outstandingRequests = 0
    private(set) var isThrottled = false
    /// Times reading was throttled (for tests and the log).
    private(set) var throttleCount = 0

    init(
        config: ReplicaConfig, options: ServerOptions, store: any ReplicaStore, recovered: RecoveredState,
        eventLoop: any EventLoop,
        logger: Logger, wallClockMs: @escaping @Sendable () -> Int64 = SystemFacts.wallClockMs,
        manualClock: ManualClock? = nil, metrics: ServerMetricsRegistry = ServerMetricsRegistry(),
        recovery: RecoveryMetrics = RecoveryMetrics()
    ) {
        precondition(config.tickMs > 0, "tickMs must be positive, is \(config.tickMs)")
        // The snapshot schedule is the replica's decision; the shell gives it N and a seed.
        var config = config
        var generator = SystemRandomNumberGenerator()
        config.snapshotEveryTransactions = options.snapshotEveryTransactions
        config.snapshotSeed = options.snapshotSeed ?? generator.next()
        logger.debug("snapshot schedule", metadata: ["every": "\(config.snapshotEveryTransactions)", "seed": "\(config.snapshotSeed)"])
        self.config = config
        self.options = options
        self.eventLoop = eventLoop
        self.logger = logger
        self.manualClock = manualClock
        if let manualClock {
            self.wallClockMs = { @Sendable in manualClock.nowMs }
        } else {
            self.wallClockMs = wallClockMs
        }
        let wallClockMs = self.wallClockMs
        let now = wallClockMs()
        self.startedAtMs = now
        self.servingChangedAtMs = now
        self.metrics = metrics
        self.recovery = recovery
        summaries.dbInitTime.record(Int64(recovery.totalSeconds * 1000))
        summaries.startupSnapLoadTime.record(
            Int64((recovery.snapshotReadSeconds + recovery.snapshotDecodeSeconds + recovery.treeRestoreSeconds) * 1000))
        summaries.startupTxnsLoadTime.record(Int64(recovery.logSeconds * 1000))
        summaries.startupTxnsLoaded.record(Int64(recovery.logTransactions))
        // Every member uses `config.sessionSecret`: a session must check out on any member of the
        // ensemble and after a restart, as ZooKeeper's do.
        self.replica = Replica(config: config, startTimeMs: now, secret: 0, recovered: recovered)
        self.environment = SystemFacts.environment()
        self.storageStatistics.lastSnapshotZxid = recovered.tree.lastZxid
        self.storage = StorageThread(store: store, limits: options.groupCommit)
        self.loopTurns = LoopStorageTurns.forLoop(eventLoop)
        self.storageIsInstant = store.writesAreInstant
    }

    // MARK: - Life cycle

    /// Starts the storage thread and the tick timer. Call on the event loop.
    func start() {
        eventLoop.preconditionInEventLoop()
        loopTurns.join(ObjectIdentifier(self))
        // A member of an ensemble starts by looking for a leader.
        if !config.isStandalone { metrics.lookingCount.increment() }
        storageStopped = storage.start(on: eventLoop) { [weak self, eventLoop] event in
            guard let host = self else { return }
            eventLoop.execute { host.storageEvent(event) }
        }
        if let manualClock {
            manualNextTickMs = wallClockMs() + config.tickMs
            manualClock.register(self)
            submit(.tick)
            return
        }
        let tick = TimeAmount.milliseconds(config.tickMs)
        tickTask = eventLoop.scheduleRepeatedTask(initialDelay: tick, delay: tick) { [self] _ in
            self.submit(.tick)
        }
        // The first step starts the replica (a standalone one is serving right after it).
        submit(.tick)
    }

    /// Stops the timer and closes every connection; the storage thread writes what is queued and
    /// stops. The future completes once all connections are closed and the storage thread is done.
    func stop() -> EventLoopFuture<Void> {
        eventLoop.preconditionInEventLoop()
        if case .running = state { state = .stopping }
        tickTask?.cancel()
        tickTask = nil
        manualClock?.unregister(self)
        isPaused = false
        heldInputs = []
        withheldReads = []
        withheldReadIDs = []
        turnsAfterLook = []
        let closed = connections.values.map { handler in
            handler.closeNow(reason: "server shutting down")
        }
        for job in pendingStorage { handOver(job) }
        pendingStorage = []
        loopTurns.leave(ObjectIdentifier(self))
        storage.stop()
        return EventLoopFuture.andAllComplete(closed + [storageStopped].compactMap { $0 }, on: eventLoop)
    }

    // MARK: - Inputs from connections

    /// Registers a newly accepted connection and tells the replica. Returns nil when the server no
    /// longer accepts connections.
    func connectionOpened(
        _ handler: ClientConnectionHandler, peerAddress: String, peerPort: Int
    ) -> ConnectionStatistics? {
        eventLoop.preconditionInEventLoop()
        switch state {
        case .running:
            break
        case .failed:
            // Only four-letter words are answered (`mntr` says why nothing else is); the handler
            // closes any other connection once it knows.
            break
        case .stopping:
            return nil
        }
        metrics.connectionRequests.increment()
        // ZooKeeper's NIOServerCnxnFactory checks both limits as it accepts, with these messages.
        if options.connectionsMax > 0, connections.count >= options.connectionsMax {
            logger.warning("Too many connections max allowed is \(options.connectionsMax)", metadata: ["peer": "\(peerAddress):\(peerPort)"])
            return nil
        }
        let fromAddress = connectionsPerAddress[peerAddress, default: 0]
        if options.connectionsPerClientAddressMax > 0, fromAddress >= options.connectionsPerClientAddressMax {
            logger.warning("Too many connections from \(peerAddress) - max is \(options.connectionsPerClientAddressMax)")
            return nil
        }
        let id = nextConnectionID
        nextConnectionID += 1
        connections[id] = handler
        connectionsPerAddress[peerAddress] = fromAddress + 1
        submit(.connectionOpened(id, peerAddress: peerAddress, peerPort: peerPort))
        return ConnectionStatistics(
            id: id, peerAddress: peerAddress, peerPort: peerPort, establishedAtMs: wallClockMs())
    }

    /// A frame of a connection was decoded into `input` (`.connect` or `.request`).
    func frameReceived(_ input: ReplicaInput) {
        eventLoop.preconditionInEventLoop()
        statistics.packetsReceived += 1
        guard case .running = state else { return }
        submit(input)
    }

    func connectionClosed(_ id: ConnectionID) {
        eventLoop.preconditionInEventLoop()
        guard let handler = connections.removeValue(forKey: id) else { return }
        let address = handler.statistics.peerAddress
        if let count = connectionsPerAddress[address] {
            connectionsPerAddress[address] = count > 1 ? count - 1 : nil
        }
        submit(.connectionClosed(id))
    }

    /// The text answer to a four-letter word asked on connection `id`. `argument` is the mask of
    /// `stmk`.
    func answer(_ word: FourLetterWord, argument: Int64?) -> String {
        eventLoop.preconditionInEventLoop()
        if case .failed(let reason) = state {
            return FourLetterWordResponder.respondNotServing(to: word, snapshot: snapshot(), storeFailure: reason)
        }
        switch word {
        case .crst:
            for handler in connections.values { handler.statistics.reset() }
        case .srst:
            statistics = ServerStatistics()
        case .stmk:
            if let argument { traceMask = argument }
        default:
            break
        }
        // Listing every watch costs O(watches): only `wchc` and `wchp` pay for it.
        var snapshot = snapshot(watchesByConnection: word == .wchc || word == .wchp)
        // The digest walks the whole tree: only `hash` pays for it.
        if word == .hash { snapshot.status.digest = replica.digest }
        return FourLetterWordResponder.respond(to: word, snapshot: snapshot)
    }

    /// Everything the four-letter words report, as of now; with the watched paths of each
    /// connection when `watchesByConnection` (O(watches)).
    func snapshot(watchesByConnection: Bool = false) -> FourLetterWordSnapshot {
        eventLoop.preconditionInEventLoop()
        var snapshot = FourLetterWordSnapshot(
            status: replica.status(watchesByConnection: watchesByConnection),
            config: config,
            server: statistics,
            connections: connections.keys.sorted().map { connections[$0]!.statistics },
            environment: environment,
            storage: storageStatistics,
            dataDirectoryBytes: SystemFacts.directoryBytes(config.dataDir),
            nowMs: wallClockMs(),
            startedAtMs: startedAtMs,
            openFileDescriptorCount: SystemFacts.openFileDescriptorCount(),
            maxFileDescriptorCount: SystemFacts.maxFileDescriptorCount(),
            traceMask: traceMask
        )
        snapshot.connectionsPerClientAddressMax = options.connectionsPerClientAddressMax
        return snapshot
    }

    /// Everything the metrics and the admin server report, as of now; with the digest of the
    /// committed tree when `digest` (an O(n) walk).
    func operationsSnapshot(digest: Bool, watchesByConnection: Bool = false) -> OperationsSnapshot {
        eventLoop.preconditionInEventLoop()
        var words = snapshot(watchesByConnection: watchesByConnection)
        if digest { words.status.digest = replica.digest }
        return OperationsSnapshot(
            fourLetterWords: words, summaries: summaries, recovery: recovery, responseSizes: responseSizes,
            fsyncThresholdExceeded: fsyncThresholdExceeded, lastSnapshotAtMs: lastSnapshotAtMs)
    }

    /// The committed tree as of now: a copy that shares its nodes with the replica's (O(1)), to be
    /// read off the event loop.
    func committedTree() -> DataTree {
        eventLoop.preconditionInEventLoop()
        return replica.tree
    }

    func replicaStatus() -> ReplicaStatus {
        eventLoop.preconditionInEventLoop()
        var status = replica.status()
        status.digest = replica.digest
        return status
    }

    // MARK: - Stepping the replica

    /// Steps the replica with `input` at the current wall-clock time and applies what it answers.
    func submit(_ input: ReplicaInput) {
        eventLoop.preconditionInEventLoop()
        guard case .running = state else { return }
        beginFlushScope()
        defer { endFlushScope() }
        if isPaused {
            if case .tick = input { return }
            heldInputs.append(input)
            return
        }
        deferredInputs.append(input)
        guard !isStepping else { return }
        isStepping = true
        defer { isStepping = false }
        var index = 0
        // Whether the replica serves after the last step (each `Ready` says; asking the replica
        // would copy it).
        var serving: Bool?
        while index < deferredInputs.count {
            if case .failed = state { break }
            let next = deferredInputs[index]
            index += 1
            let ready = replica.step(next, nowMs: wallClockMs())
            serving = ready.isServing
            apply(ready)
        }
        deferredInputs.removeAll(keepingCapacity: true)
        if let serving {
            if serving != wasServing { servingChanged(to: serving) }
            if !servingWaiters.isEmpty, serving {
                let waiters = servingWaiters
                servingWaiters = []
                for waiter in waiters { waiter.succeed() }
            }
        }
    }

    /// Replies and events written from now until the matching `endFlushScope` leave together:
    /// each connection written to is flushed once, at the end of the outermost scope (the end of
    /// a step batch, or of a read of a connection's requests), rather than in a task queued
    /// behind whatever else the loop has to do.
    func beginFlushScope() {
        flushScopeDepth += 1
    }

    func endFlushScope() {
        flushScopeDepth -= 1
        guard flushScopeDepth == 0, !connectionsToFlush.isEmpty else { return }
        let handlers = connectionsToFlush
        connectionsToFlush = []
        for handler in handlers { handler.flushNow() }
    }

    /// Takes `handler`'s flush for the end of the current scope; false outside any scope.
    func flushAtEndOfScope(_ handler: ClientConnectionHandler) -> Bool {
        guard flushScopeDepth > 0 else { return false }
        connectionsToFlush.append(handler)
        return true
    }

    /// Counts elections as ZooKeeper does: `looking_count` each time a member of an ensemble stops
    /// serving (and once at start), `election_time` from then until it serves again.
    private func servingChanged(to serving: Bool) {
        wasServing = serving
        let nowMs = wallClockMs()
        defer { servingChangedAtMs = nowMs }
        guard !config.isStandalone else { return }
        if serving {
            summaries.electionTime.record(nowMs - servingChangedAtMs)
        } else {
            metrics.lookingCount.increment()
        }
    }

    /// Bytes of one client frame (its length prefix included), for `bytes_received_count`.
    func bytesReceived(_ count: Int) {
        metrics.bytesReceived.increment(by: Int64(count))
    }

    /// Why the store failed, once it has; nil while the replica runs.
    var storeFailure: String? {
        if case .failed(let reason) = state { return reason }
        return nil
    }

    /// Completes once the storage thread has stopped, after `stop()` or a store failure: from
    /// then on nothing touches the store.
    func storageThreadStopped() -> EventLoopFuture<Void> {
        eventLoop.preconditionInEventLoop()
        return storageStopped ?? eventLoop.makeSucceededVoidFuture()
    }

    /// Calls `callback` with the reason once the replica stops serving because its store failed.
    func whenFailed(_ callback: @escaping @Sendable (String) -> Void) {
        eventLoop.preconditionInEventLoop()
        if case .failed(let reason) = state {
            callback(reason)
        } else {
            failureCallbacks.append(callback)
        }
    }

    /// Completes once the replica serves clients; fails if the store fails first.
    func whenServing() -> EventLoopFuture<Void> {
        eventLoop.preconditionInEventLoop()
        if case .failed(let reason) = state {
            return eventLoop.makeFailedFuture(ReplicaHostError.storeFailed(reason))
        }
        if replica.isServing { return eventLoop.makeSucceededVoidFuture() }
        let promise = eventLoop.makePromise(of: Void.self)
        servingWaiters.append(promise)
        return promise.futureResult
    }

    /// Carries out one `Ready`, in the order its contract requires:
    ///
    /// 1. queue `storage` for the storage thread, which makes it durable in order (batched with
    ///    the storage of neighbouring steps) and reports back with `storageEvent`; only then is
    ///    `.persisted` stepped, so nothing that depends on it can leave earlier;
    /// 2. send `messages` to peers and `frames` to clients, in order: all frames of one connection
    ///    are encoded into one buffer, written and flushed once;
    /// 3. close the connections in `close` once what was queued for them is flushed.
    ///
    /// Messages and frames leave before the storage of their own `Ready` is durable, which the
    /// contract allows: nothing in them depends on it.
    private func apply(_ ready: Ready) {
        if ready.storageSequence > 0 {
            pendingStorage.append(.ready(ops: ready.storage, sequence: ready.storageSequence))
            if !isStorageHandOffScheduled {
                isStorageHandOffScheduled = true
                if !storageIsInstant { loopTurns.pending(ObjectIdentifier(self)) }
                scheduleEndOfIteration()
            }
        }
        if let peerTransport, !ready.messages.isEmpty {
            for message in ready.messages { peerTransport.send(message, from: config.serverId) }
            // One flush per event-loop iteration: the messages of every step taken in this
            // iteration leave together.
            if !isPeerFlushScheduled {
                isPeerFlushScheduled = true
                scheduleEndOfIteration()
            }
        }
        if let servers = ready.ensembleServers { peerTransport?.updatePeers(servers, of: config.serverId) }
        if let tree = ready.snapshot {
            storageStatistics.snapshotsStarted += 1
            logger.info("taking a snapshot", metadata: ["zxid": "0x\(String(tree.lastZxid, radix: 16))", "nodes": "\(tree.nodeCount)"])
            // Steps not handed over yet (this one's included) go first: jobs reach the thread in
            // order, so the log the snapshot covers is on disk before it.
            for job in pendingStorage { handOver(job) }
            pendingStorage = []
            storage.enqueue(.snapshot(tree))
        }
        if !ready.quotaExceeded.isEmpty { logQuotaExceeded(ready.quotaExceeded) }
        for warning in ready.warnings { logger.warning("\(warning)") }
        send(ready.frames)
        for (index, id) in ready.close.enumerated() {
            let reason = index < ready.closeReasons.count ? ready.closeReasons[index] : "closed by the replica"
            connections[id]?.closeAfterFlush(reason: reason)
        }
        if let wake = ready.wakeAtMs { scheduleWake(at: wake) }
    }

    /// Logs quota limits exceeded, at most one line a second (as ZooKeeper's rate-limited log), so
    /// that a client writing past a soft limit cannot flood the log; the line says how many were
    /// left out since the last one.
    private func logQuotaExceeded(_ exceeded: [QuotaExceeded]) {
        let nowMs = wallClockMs()
        for entry in exceeded {
            guard nowMs >= quotaLogNextAtMs else {
                quotaLogSuppressed += 1
                continue
            }
            var metadata: Logger.Metadata = [:]
            if quotaLogSuppressed > 0 { metadata["suppressed"] = "\(quotaLogSuppressed)" }
            logger.warning("\(entry)", metadata: metadata)
            quotaLogSuppressed = 0
            quotaLogNextAtMs = nowMs + 1000
        }
    }

    /// Runs `endOfIteration` once, after the tasks already queued on the loop.
    private func scheduleEndOfIteration() {
        guard !isEndOfIterationScheduled else { return }
        isEndOfIterationScheduled = true
        eventLoop.execute { [self] in self.endOfIteration() }
    }

    /// What the steps of this iteration left for its end: their peer messages leave together, and
    /// their storage is handed over (or written) as one batch.
    private func endOfIteration() {
        isEndOfIterationScheduled = false
        if isStorageHandOffScheduled { handOffStorage() }
        flushPeerMessagesNow()
    }

    /// Hands the storage of this iteration's steps to the storage thread, or writes it here when it
    /// is one small append, the thread is idle and no other replica of this loop is about to write
    /// (see `ServerOptions.writeNowTransactionsMax` and `LoopStorageTurns`).
    ///
    /// Two passes when other replicas share the loop: the first sends this iteration's peer
    /// messages, so that a replica of this loop they reach steps them (and queues its own
    /// storage) before the second pass decides. A replica alone on its loop, or whose store does
    /// not wait (it takes no turn), decides at once.
    private func handOffStorage() {
        guard writeNowCandidate, !storageIsInstant, !loopTurns.hasOneReplica else {
            finishHandOff()
            return
        }
        flushPeerMessagesNow()
        eventLoop.execute { [self] in self.finishHandOff() }
    }

    /// Sends what this iteration queued for peers now rather than at the end of the iteration.
    private func flushPeerMessagesNow() {
        guard isPeerFlushScheduled, let peerTransport else { return }
        isPeerFlushScheduled = false
        peerTransport.flush(from: config.serverId)
    }

    private func finishHandOff() {
        isStorageHandOffScheduled = false
        // A store that does not wait takes no turn: its write holds nobody up.
        let mayWriteHere = storageIsInstant || loopTurns.decide(ObjectIdentifier(self))
        guard !pendingStorage.isEmpty else { return }
        let jobs = pendingStorage
        pendingStorage = []
        if mayWriteHere, writeNowCandidate(jobs) {
            // What this iteration sends to peers leaves before the loop waits for the disk.
            flushPeerMessagesNow()
            if let event = storage.writeNow(jobs) {
                storageStatistics.batchesWrittenOnLoop += 1
                metrics.batchesOnLoop.increment()
                storageEvent(event)
                return
            }
        }
        for job in jobs { handOver(job) }
    }

    /// Whether the pending storage may be written on the loop rather than by the thread.
    private var writeNowCandidate: Bool { writeNowCandidate(pendingStorage) }

    private func writeNowCandidate(_ jobs: [StorageJob]) -> Bool {
        guard case .running = state, reportedThrough >= handedOverThrough else { return false }
        if storageIsInstant { return true }
        guard options.writeNowTransactionsMax > 0 else { return false }
        return Self.appendedTransactions(jobs) <= options.writeNowTransactionsMax
    }

    private func handOver(_ job: StorageJob) {
        if case .ready(_, let sequence) = job { handedOverThrough = sequence }
        storage.enqueue(job)
    }

    /// Transactions appended by `jobs`, or `Int.max` when they do anything but append.
    private static func appendedTransactions(_ jobs: [StorageJob]) -> Int {
        var count = 0
        for job in jobs {
            guard case .ready(let ops, _) = job else { return .max }
            for op in ops {
                guard case .append(let txns) = op else { return .max }
                count += txns.count
            }
        }
        return count
    }

    /// A result of the storage thread, on the event loop.
    private func storageEvent(_ event: StorageEvent) {
        eventLoop.preconditionInEventLoop()
        switch event {
        case .persisted(let upTo, let through, let steps, let transactions, let writeSeconds, let snapshotSeconds):
            storageStatistics.recordBatch(
                steps: steps, transactions: transactions, writeSeconds: writeSeconds, snapshotSeconds: snapshotSeconds)
            summaries.fsyncTime.record(Int64(writeSeconds * 1000))
            summaries.syncProcessorBatchSize.record(Int64(transactions))
            metrics.recordBatch(
                steps: steps, transactions: transactions, writeSeconds: writeSeconds, snapshotSeconds: snapshotSeconds)
            // ZooKeeper warns when an fsync takes over a second (fsync.warningthresholdms).
            if writeSeconds > Self.slowStorageSeconds { fsyncThresholdExceeded += 1 }
            if writeSeconds > Self.slowStorageSeconds || snapshotSeconds > Self.slowStorageSeconds {
                logger.warning(
                    "slow storage", metadata: [
                        "batch": "\(String(format: "%.3f", writeSeconds)) s", "transactions": "\(transactions)",
                        "snapshotPiece": "\(String(format: "%.3f", snapshotSeconds)) s",
                    ])
            }
            guard !isFailed else { return }
            reportedThrough = max(reportedThrough, through)
            submit(.persisted(upTo: upTo, through: through))
        case .snapshotFinished(let zxid, let completed, let chunks, let seconds):
            if completed {
                summaries.snapshotTime.record(Int64(seconds * 1000))
                lastSnapshotAtMs = wallClockMs()
                metrics.recordSnapshot(seconds: seconds)
                storageStatistics.snapshotsWritten += 1
                storageStatistics.lastSnapshotZxid = zxid
                logger.info(
                    "snapshot written",
                    metadata: ["zxid": "0x\(String(zxid, radix: 16))", "chunks": "\(chunks)", "duration": "\(String(format: "%.2f", seconds)) s"])
            }
            guard !isFailed else { return }
            submit(.snapshotFinished(completed: completed))
        case .failed(let error):
            fail(reason: "transaction store failed: \(error)")
        }
    }

    /// A storage step slower than this is logged as a warning.
    static let slowStorageSeconds = 1.0

    private var isFailed: Bool {
        if case .failed = state { return true }
        return false
    }

    /// Asks for a tick at `atMs` when that is earlier than the regular tick and any wake already
    /// scheduled (elections time out in milliseconds, not ticks).
    private func scheduleWake(at atMs: Int64) {
        guard atMs < wakeAtMs else { return }
        if manualClock != nil {
            if atMs <= wallClockMs() {
                // Due already: a tick right after this step, at the same instant.
                guard !isManualWakeQueued else { return }
                isManualWakeQueued = true
                eventLoop.execute { [self] in
                    self.isManualWakeQueued = false
                    self.submit(.tick)
                }
            } else {
                wakeAtMs = atMs
            }
            return
        }
        let delayMs = max(0, atMs - wallClockMs())
        guard delayMs < config.tickMs else { return }
        wakeTask?.cancel()
        wakeAtMs = atMs
        wakeTask = eventLoop.scheduleTask(in: .milliseconds(delayMs)) { [self] in
            self.wakeAtMs = .max
            self.wakeTask = nil
            self.submit(.tick)
        }
    }

    /// Hands each connection its frames of one `Ready` as one write and one flush.
    private func send(_ frames: [OutgoingFrame]) {
        guard !frames.isEmpty else { return }
        let nowMs = wallClockMs()
        let now = NIODeadline.now()
        // Connections in the order of their first frame; each gets one buffer.
        var order: [ConnectionID] = []
        var buffers: [ByteBuffer] = []
        var slot: [ConnectionID: Int] = [:]
        for outgoing in frames {
            guard let handler = connections[outgoing.connection], handler.isOpen else {
                logger.trace("dropping a frame for a closed connection", metadata: ["connection": "\(outgoing.connection)"])
                continue
            }
            let index: Int
            if let known = slot[outgoing.connection] {
                index = known
            } else {
                index = buffers.count
                slot[outgoing.connection] = index
                order.append(outgoing.connection)
                buffers.append(handler.allocator.buffer(capacity: 256))
            }
            let startIndex = buffers[index].writerIndex
            outgoing.frame.encode(into: &buffers[index])
            responseSizes.record(buffers[index].writerIndex - startIndex)
            statistics.packetsSent += 1
            if let (latencyMs, opcode) = handler.frameSent(outgoing.frame, nowMs: nowMs, now: now) {
                statistics.latency.record(ms: latencyMs)
                switch ServerSummaries.isUpdate(opcode: opcode) {
                case true?: summaries.updateLatency.record(latencyMs)
                case false?: summaries.readLatency.record(latencyMs)
                case nil: break
                }
            }
        }
        var sentBytes = 0
        for (index, id) in order.enumerated() {
            sentBytes += buffers[index].readableBytes
            connections[id]?.write(buffers[index])
        }
        metrics.responseBytes.increment(by: Int64(sentBytes))
    }

    private func fail(reason: String) {
        logger.critical("replica stops serving", metadata: ["reason": "\(reason)"])
        metrics.unrecoverableErrors.increment()
        state = .failed(reason: reason)
        tickTask?.cancel()
        tickTask = nil
        let waiters = servingWaiters
        servingWaiters = []
        for waiter in waiters { waiter.fail(ReplicaHostError.storeFailed(reason)) }
        let callbacks = failureCallbacks
        failureCallbacks = []
        for callback in callbacks { callback(reason) }
        for handler in connections.values {
            _ = handler.closeNow(reason: reason)
        }
        // Peers see this member go at once, rather than when it misses its deadlines.
        peerTransport?.detach(serverId: config.serverId)
        peerTransport = nil
        // Nothing more is written: the thread stops, and the shell may close the store (and
        // release its files) once `storageThreadStopped` completes.
        pendingStorage = []
        loopTurns.leave(ObjectIdentifier(self))
        storage.stop()
    }
}

// MARK: - Hooks for tests (ZKTesting)

extension ReplicaHost {
    /// With a manual clock: when this replica next wants a tick (its regular tick or a wake-up).
    func manualDueMs() -> Int64 {
        eventLoop.preconditionInEventLoop()
        return min(manualNextTickMs, wakeAtMs)
    }

    /// With a manual clock: steps a tick if the regular tick or a wake-up is due at the clock's time.
    func manualFire() {
        eventLoop.preconditionInEventLoop()
        let now = wallClockMs()
        var due = false
        if now >= manualNextTickMs {
            while manualNextTickMs <= now { manualNextTickMs += config.tickMs }
            due = true
        }
        if now >= wakeAtMs {
            wakeAtMs = .max
            due = true
        }
        if due { submit(.tick) }
    }

    /// Nothing waits on this loop for the replica: no step, storage or peer flush on its way.
    var isQuiet: Bool {
        eventLoop.preconditionInEventLoop()
        return deferredInputs.isEmpty && pendingStorage.isEmpty && !isStorageHandOffScheduled && !isPeerFlushScheduled
            && !isManualWakeQueued && reportedThrough >= handedOverThrough
    }

    func pause() {
        eventLoop.preconditionInEventLoop()
        isPaused = true
    }

    /// Steps what arrived while paused, in order, and reads the connections again.
    func resume() {
        eventLoop.preconditionInEventLoop()
        guard isPaused else { return }
        isPaused = false
        let held = heldInputs
        heldInputs = []
        for input in held { submit(input) }
        releaseWithheldReads()
    }

    /// A connection wanted to read while the replica was paused or reading was throttled.
    // MARK: - Turns between looks at the sockets

    /// A connection read from its socket. The first read after the loop ran its tasks begins a
    /// new look; the task queued here runs after the look's reads, before the loop looks again.
    func connectionRead() {
        guard !isLookEndQueued else { return }
        isLookEndQueued = true
        decodedInLook = 0
        looks &+= 1
        eventLoop.assumeIsolated().execute { [self] in isLookEndQueued = false }
    }

    /// Whether the requests decoded in this look reached `requestsPerLook`.
    var isLookSpent: Bool {
        let limit = options.requestsPerLook
        return limit > 0 && decodedInLook >= limit
    }

    func requestDecoded() {
        decodedInLook += 1
    }

    /// `handler` spent its turn with requests left. While the look has requests to spare, its
    /// next turn is a task of this loop iteration; once it is spent (or in a round), the turn
    /// comes after the loop looked at its sockets again (a task scheduled a little later runs
    /// after that look; one queued now would run before it).
    func continueTurnLater(_ handler: ClientConnectionHandler) {
        guard isLookSpent || isInTurnRound else {
            eventLoop.assumeIsolated().execute { handler.nextTurn() }
            return
        }
        turnsAfterLook.append(handler)
        scheduleTurnRound()
    }

    /// One round of the waiting connections' turns, first come, first served, as far as a look's
    /// worth of requests; those still waiting go on in the next round.
    private func turnRound() {
        isTurnRoundScheduled = false
        // A task scheduled a little later can still run before the next look, when the tasks
        // after it took longer: it waits once more, unless no connection reads (all wait).
        if looks == lookOfLastRound, !isTurnRoundPostponed {
            isTurnRoundPostponed = true
            scheduleTurnRound()
            return
        }
        isTurnRoundPostponed = false
        lookOfLastRound = looks
        decodedInLook = 0
        var waiting = turnsAfterLook.count
        beginFlushScope()
        isInTurnRound = true
        while waiting > 0, !isLookSpent, let handler = turnsAfterLook.popFirst() {
            waiting -= 1
            handler.nextTurn()
        }
        isInTurnRound = false
        endFlushScope()
        if !turnsAfterLook.isEmpty { scheduleTurnRound() }
    }

    private func scheduleTurnRound() {
        guard !isTurnRoundScheduled else { return }
        isTurnRoundScheduled = true
        eventLoop.assumeIsolated().scheduleTask(in: .microseconds(500)) { [self] in turnRound() }
    }

    func withholdRead(_ handler: ClientConnectionHandler) {
        eventLoop.preconditionInEventLoop()
        if withheldReadIDs.insert(ObjectIdentifier(handler)).inserted { withheldReads.append(handler) }
    }

    /// Lets the connections that wanted to read (or to decode what they read) do so, in the order
    /// they started to wait, until the replica is paused or reading is throttled again.
    private func releaseWithheldReads() {
        while !isPaused, !isThrottled, let handler = withheldReads.popFirst() {
            withheldReadIDs.remove(ObjectIdentifier(handler))
            handler.readAfterPause()
        }
    }

    /// A connection's count of requests decoded and not yet answered changed by `delta`.
    /// Above `outstandingRequestsMax` in all, no connection reads more (ZooKeeper's throttling by
    /// `globalOutstandingLimit`); at or below it, reading resumes.
    func outstandingRequestsChanged(by delta: Int) {
        outstandingRequests += delta
        let limit = options.outstandingRequestsMax
        guard limit > 0 else { return }
        if !isThrottled, outstandingRequests > limit {
            isThrottled = true
            throttleCount += 1
            logger.debug("throttling clients: more than \(limit) requests outstanding")
        } else if isThrottled, outstandingRequests <= limit {
            isThrottled = false
            logger.debug("throttling ended")
            releaseWithheldReads()
        }
    }

    /// Closes client connections as a network failure would: every one, or those of one session.
    /// Sessions live on. Returns how many were closed.
    func dropConnections(sessionId: Int64?) -> Int {
        eventLoop.preconditionInEventLoop()
        var ids = Array(connections.keys)
        if let sessionId {
            let owned = Set(replica.status().connections.filter { $0.sessionId == sessionId }.map(\.id))
            ids = ids.filter { owned.contains($0) }
        }
        for id in ids { _ = connections[id]?.closeNow(reason: "connection dropped on request") }
        return ids.count
    }

    /// Expires a session through the log if this replica leads; false otherwise.
    func expireSession(_ sessionId: Int64) -> Bool {
        eventLoop.preconditionInEventLoop()
        guard case .running = state, !isPaused, !isStepping, replica.isLeader else { return false }
        guard replica.status().sessions.contains(where: { $0.id == sessionId }) else { return false }
        isStepping = true
        let ready = replica.expireSessionNow(sessionId, nowMs: wallClockMs())
        apply(ready)
        isStepping = false
        // Inputs that arrived while applying.
        if !deferredInputs.isEmpty {
            let pending = deferredInputs
            deferredInputs = []
            for input in pending { submit(input) }
        }
        return true
    }

    func sessionPassword(for sessionId: Int64) -> [UInt8] {
        replica.sessionPassword(for: sessionId)
    }
}

enum ReplicaHostError: Error, CustomStringConvertible {
    case storeFailed(String)

    var description: String {
        switch self {
        case .storeFailed(let reason): return "the replica stopped serving: \(reason)"
        }
    }
}
