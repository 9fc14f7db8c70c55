import Logging
import NIOCore
import ZKCore
import ZKProtocol

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
    /// How long a connection the replica closed may take to flush what was queued before it;
    /// after that it is closed regardless.
    public var closeFlushTimeoutMs: Int64 = 5_000
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
    private let store: any TransactionStore
    private let wallClockMs: @Sendable () -> Int64
    private var state = State.running
    private var connections: [ConnectionID: ClientConnectionHandler] = [:]
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

    init(
        config: ReplicaConfig, options: ServerOptions, store: any TransactionStore, eventLoop: any EventLoop,
        logger: Logger, wallClockMs: @escaping @Sendable () -> Int64 = SystemFacts.wallClockMs
    ) {
        precondition(config.tickMs > 0, "tickMs must be positive, is \(config.tickMs)")
        self.config = config
        self.options = options
        self.store = store
        self.eventLoop = eventLoop
        self.logger = logger
        self.wallClockMs = wallClockMs
        let now = wallClockMs()
        self.startedAtMs = now
        var generator = SystemRandomNumberGenerator()
        self.replica = Replica(config: config, startTimeMs: now, secret: generator.next())
        self.environment = SystemFacts.environment()
    }

    // MARK: - Life cycle

    /// Starts the tick timer. Call on the event loop.
    func start() {
        eventLoop.preconditionInEventLoop()
        let tick = TimeAmount.milliseconds(config.tickMs)
        tickTask = eventLoop.scheduleRepeatedTask(initialDelay: tick, delay: tick) { [self] _ in
            self.submit(.tick)
        }
    }

    /// Stops the timer and closes every connection; the future completes once all are closed.
    func stop() -> EventLoopFuture<Void> {
        eventLoop.preconditionInEventLoop()
        if case .running = state { state = .stopping }
        tickTask?.cancel()
        tickTask = nil
        let closed = connections.values.map { handler in
            handler.closeNow(reason: "server shutting down")
        }
        return EventLoopFuture.andAllComplete(closed, on: eventLoop)
    }

    // MARK: - Inputs from connections

    /// Registers a newly accepted connection and tells the replica. Returns nil when the server no
    /// longer accepts connections.
    func connectionOpened(
        _ handler: ClientConnectionHandler, peerAddress: String, peerPort: Int
    ) -> ConnectionStatistics? {
        eventLoop.preconditionInEventLoop()
        guard case .running = state else { return nil }
        let id = nextConnectionID
        nextConnectionID += 1
        connections[id] = handler
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
        guard connections.removeValue(forKey: id) != nil else { return }
        submit(.connectionClosed(id))
    }

    /// The text answer to a four-letter word asked on connection `id`. `argument` is the mask of
    /// `stmk`.
    func answer(_ word: FourLetterWord, argument: Int64?) -> String {
        eventLoop.preconditionInEventLoop()
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
        return FourLetterWordResponder.respond(to: word, snapshot: snapshot())
    }

    /// Everything the four-letter words report, as of now.
    func snapshot() -> FourLetterWordSnapshot {
        eventLoop.preconditionInEventLoop()
        return FourLetterWordSnapshot(
            status: replica.status(),
            config: config,
            server: statistics,
            connections: connections.keys.sorted().map { connections[$0]!.statistics },
            environment: environment,
            nowMs: wallClockMs(),
            startedAtMs: startedAtMs,
            openFileDescriptorCount: SystemFacts.openFileDescriptorCount(),
            maxFileDescriptorCount: SystemFacts.maxFileDescriptorCount(),
            traceMask: traceMask
        )
    }

    // MARK: - Stepping the replica

    /// Steps the replica with `input` at the current wall-clock time and applies what it answers.
    func submit(_ input: ReplicaInput) {
        eventLoop.preconditionInEventLoop()
        if case .failed = state { return }
        deferredInputs.append(input)
        guard !isStepping else { return }
        isStepping = true
        defer { isStepping = false }
        var index = 0
        while index < deferredInputs.count {
            if case .failed = state { break }
            let next = deferredInputs[index]
            index += 1
            let ready = replica.step(next, nowMs: wallClockMs())
            apply(ready)
        }
        deferredInputs.removeAll(keepingCapacity: true)
    }

    /// Carries out one `Ready`, in the order its contract requires:
    ///
    /// 1. persist `persist` and wait until it is durable;
    /// 2. send `frames`, in order: all frames of one connection are encoded into one buffer, written
    ///    and flushed once;
    /// 3. close the connections in `close` once what was queued for them is flushed;
    /// 4. tell the replica `.persisted(upTo:)` the last durable zxid, and carry out its answer the
    ///    same way.
    ///
    /// Step 4 comes after 2 and 3 rather than straight after 1: the frames of this `Ready` never
    /// depend on its own `persist` (the contract says so), and handing them out first keeps them
    /// ahead of the replies the `.persisted` step releases. It is also the order an asynchronous
    /// store will produce, where durability is reported later as its own input.
    private func apply(_ first: Ready) {
        var ready = first
        while true {
            var durableZxid: Zxid?
            if !ready.persist.isEmpty {
                do {
                    durableZxid = try store.append(ready.persist)
                } catch {
                    fail(reason: "transaction store failed: \(error)")
                    return
                }
                let last = ready.persist[ready.persist.count - 1].zxid
                precondition(
                    durableZxid == last,
                    "store reported 0x\(String(durableZxid ?? -1, radix: 16)) durable, batch ends at 0x\(String(last, radix: 16))"
                )
            }
            send(ready.frames)
            for (index, id) in ready.close.enumerated() {
                let reason = index < ready.closeReasons.count ? ready.closeReasons[index] : "closed by the replica"
                connections[id]?.closeAfterFlush(reason: reason)
            }
            guard let durableZxid else { return }
            ready = replica.step(.persisted(upTo: durableZxid), nowMs: wallClockMs())
        }
    }

    /// Hands each connection its frames of one `Ready` as one write and one flush.
    private func send(_ frames: [OutgoingFrame]) {
        guard !frames.isEmpty else { return }
        let nowMs = wallClockMs()
        let now = NIODeadline.now()
        // Connections in the order of their first frame; each gets one buffer.
        var order: [ConnectionID] = []
        var buffers: [ConnectionID: ByteBuffer] = [:]
        for outgoing in frames {
            guard let handler = connections[outgoing.connection], handler.isOpen else {
                logger.trace("dropping a frame for a closed connection", metadata: ["connection": "\(outgoing.connection)"])
                continue
            }
            if buffers[outgoing.connection] == nil {
                order.append(outgoing.connection)
                buffers[outgoing.connection] = handler.allocator.buffer(capacity: 256)
            }
            outgoing.frame.encode(into: &buffers[outgoing.connection]!)
            statistics.packetsSent += 1
            if let latencyMs = handler.frameSent(outgoing.frame, nowMs: nowMs, now: now) {
                statistics.latency.record(ms: latencyMs)
            }
        }
        for id in order {
            connections[id]?.write(buffers[id]!)
        }
    }

    private func fail(reason: String) {
        logger.critical("replica stops serving", metadata: ["reason": "\(reason)"])
        state = .failed(reason: reason)
        tickTask?.cancel()
        tickTask = nil
        for handler in connections.values {
            _ = handler.closeNow(reason: reason)
        }
    }
}
