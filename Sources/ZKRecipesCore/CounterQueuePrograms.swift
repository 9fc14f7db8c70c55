import ZKProtocol

/// Increments a `DistributedAtomicLong` over and over: read the value and version, write the
/// value plus one with a versioned setData (badVersion: someone else won, read again), create
/// the node when missing. The optimistic step of ZKRecipes' `DistributedAtomicLong`
/// (`OptimisticWrite.plan`) as a program.
///
/// A write that gets no answer (the connection or the session was lost) may or may not have
/// taken effect; it is reported as unknown and never retried blindly — retrying it with a fresh
/// read could count one increment twice, which is what a retry of the same versioned write
/// cannot do but a new read-and-write can.
public struct CounterIncrementer: CoordinationProgram {
    public typealias Observation = RecipeObservation

    public struct Configuration: Sendable, Hashable {
        public var path: String
        public var thinkMs: ClosedRange<Int64>
        public var seed: UInt64
        public init(path: String, thinkMs: ClosedRange<Int64> = 0...200, seed: UInt64) {
            self.path = path
            self.thinkMs = thinkMs
            self.seed = seed
        }
    }

    enum Phase: Sendable, Hashable {
        case thinking
        case reading
        /// Writing `value` (by setData or create).
        case writing(Int64)
    }

    public let configuration: Configuration
    var phase: Phase = .thinking
    var durations: Durations
    var calls = CallBook<Phase>()
    var connected = false
    /// Read again once connected.
    var readWhenConnected = false
    var pendingTimer: TimerID?
    var nextTimer: TimerID = 1
    /// Increments that took effect.
    public private(set) var confirmed = 0

    public init(_ configuration: Configuration) {
        self.configuration = configuration
        self.durations = Durations(seed: configuration.seed)
    }

    public mutating func handle(_ input: ProgramInput, nowMs: Int64) -> [ProgramAction<RecipeObservation>] {
        var out: [ProgramAction<RecipeObservation>] = []
        switch input {
        case .start:
            read(&out)
        case .session(let event):
            switch event {
            case .connected, .reconnected:
                connected = true
                if readWhenConnected {
                    readWhenConnected = false
                    read(&out)
                }
            case .suspended, .presumedExpired:
                connected = false
            case .expired, .closed:
                connected = false
                if case .writing = phase { out.append(.observe(.incrementUnknown(resource: configuration.path))) }
                calls.reset()
                phase = .thinking
                pendingTimer = nil
                readWhenConnected = true
            }
        case .timer(let id):
            guard id == pendingTimer else { break }
            pendingTimer = nil
            read(&out)
        case .reply(let id, let result):
            guard let asked = calls.close(id) else { break }
            answered(asked, result, &out)
        case .watch:
            break
        }
        return out
    }

    mutating func answered(_ asked: Phase, _ result: Result<Response, ErrorCode>, _ out: inout [ProgramAction<RecipeObservation>]) {
        let path = configuration.path
        switch (asked, result) {
        case (.reading, .success(.getData(let data, let stat))):
            guard let value = CuratorValues.decodeLong(data ?? []) else { return think(&out) }
            write(value + 1, .setData(path: path, data: CuratorValues.encodeLong(value + 1), version: Self.version(stat.version)), &out)
        case (.reading, .failure(.noNode)):
            write(1, .create2(CreateRequest(path: path, data: CuratorValues.encodeLong(1), acl: ACL.openUnsafe, flags: CreateMode.persistent.rawValue)), &out)
        case (.writing(let value), .success):
            confirmed += 1
            out.append(.observe(.incremented(resource: path, value: value)))
            think(&out)
        case (.writing, .failure(.badVersion)), (.writing, .failure(.nodeExists)), (.writing, .failure(.noNode)):
            read(&out)
        case (.writing, .failure(let code)) where Self.unknownOutcome(code):
            out.append(.observe(.incrementUnknown(resource: path)))
            retryLater(&out)
        case (.reading, .failure(let code)) where Self.unknownOutcome(code):
            retryLater(&out)
        default:
            think(&out)
        }
    }

    /// The version a write expects.
    static func version(_ read: Int32) -> Int32 {
        #if MINIZK_BUG_RECIPE_COUNTER_BLIND_SET
        // Planted bug: the write ignores what was read, so two increments from one value both
        // succeed and one is lost.
        return -1
        #else
        return read
        #endif
    }

    static func unknownOutcome(_ code: ErrorCode) -> Bool {
        [.connectionLoss, .operationTimeout, .requestTimeout, .sessionExpired, .sessionMoved, .throttledOp].contains(code)
    }

    mutating func read(_ out: inout [ProgramAction<RecipeObservation>]) {
        guard connected else {
            phase = .thinking
            readWhenConnected = true
            return
        }
        phase = .reading
        out.append(.call(calls.open(.reading), .getData(path: configuration.path, watch: false), watch: false))
    }

    mutating func write(_ value: Int64, _ request: Request, _ out: inout [ProgramAction<RecipeObservation>]) {
        phase = .writing(value)
        out.append(.call(calls.open(.writing(value)), request, watch: false))
    }

    mutating func retryLater(_ out: inout [ProgramAction<RecipeObservation>]) {
        phase = .thinking
        if connected { think(&out) } else { readWhenConnected = true }
    }

    mutating func think(_ out: inout [ProgramAction<RecipeObservation>]) {
        phase = .thinking
        let id = nextTimer
        nextTimer += 1
        pendingTimer = id
        out.append(.timer(id, afterMs: durations.draw(configuration.thinkMs)))
    }
}

/// Puts `count` items into a `DistributedQueue` (Curator's layout: persistent sequential
/// `queue-` nodes under the queue's path, data in `QueueItemCodec`).
public struct QueueProducer: CoordinationProgram {
    public typealias Observation = RecipeObservation

    public let path: String
    public let count: Int
    public let name: String
    var durations: Durations
    let thinkMs: ClosedRange<Int64>
    var calls = CallBook<Int>()
    var connected = false
    var putWhenConnected = false
    var next = 0
    var pendingTimer: TimerID?
    var nextTimer: TimerID = 1

    public init(path: String, count: Int, name: String, thinkMs: ClosedRange<Int64> = 0...300, seed: UInt64) {
        self.path = path
        self.count = count
        self.name = name
        self.thinkMs = thinkMs
        self.durations = Durations(seed: seed)
    }

    public var done: Bool { next >= count && calls.outstanding == 0 }

    public mutating func handle(_ input: ProgramInput, nowMs: Int64) -> [ProgramAction<RecipeObservation>] {
        var out: [ProgramAction<RecipeObservation>] = []
        switch input {
        case .start:
            put(&out)
        case .session(let event):
            switch event {
            case .connected, .reconnected:
                connected = true
                if putWhenConnected {
                    putWhenConnected = false
                    put(&out)
                }
            case .suspended, .presumedExpired:
                connected = false
            case .expired, .closed:
                connected = false
                if calls.outstanding > 0 { out.append(.observe(.produceUnknown(resource: path))) }
                calls.reset()
                pendingTimer = nil
                putWhenConnected = true
            }
        case .timer(let id):
            guard id == pendingTimer else { break }
            pendingTimer = nil
            put(&out)
        case .reply(let id, let result):
            guard calls.close(id) != nil else { break }
            switch result {
            case .success(.create2(let created, _)), .success(.create(let created)):
                out.append(.observe(.produced(resource: path, item: CuratorNames.nodeName(created))))
            case .failure(let code) where CounterIncrementer.unknownOutcome(code):
                out.append(.observe(.produceUnknown(resource: path)))
            default:
                break
            }
            let id = nextTimer
            nextTimer += 1
            pendingTimer = id
            out.append(.timer(id, afterMs: durations.draw(thinkMs)))
        case .watch:
            break
        }
        return out
    }

    mutating func put(_ out: inout [ProgramAction<RecipeObservation>]) {
        guard next < count else { return }
        guard connected else {
            putWhenConnected = true
            return
        }
        let data = QueueItemCodec.encode([Array("\(name)-\(next)".utf8)])
        next += 1
        let request = Request.create2(
            CreateRequest(path: CuratorNames.join(path, CuratorNames.queueItem), data: data, acl: ACL.openUnsafe, flags: CreateMode.persistentSequential.rawValue))
        out.append(.call(calls.open(next), request, watch: false))
    }
}

/// Takes items from a `DistributedQueue` as Curator's consumer does: list the children with a
/// watch, take the first by sequence (read it, delete it: the item is ours when our delete
/// succeeds), and when the queue is empty wait for the watch.
public struct QueueConsumer: CoordinationProgram {
    public typealias Observation = RecipeObservation

    enum Purpose: Sendable, Hashable {
        case list
        case read(String)
        case delete(String, data: [UInt8])
    }

    public let path: String
    var calls = CallBook<Purpose>()
    var watches: Set<CallID> = []
    var connected = false
    /// A call is in flight (one at a time).
    var busy = false
    /// A change was seen while busy: list again when done.
    var dirty = false
    var listWhenConnected = false
    /// Items of the last listing not tried yet, in order.
    var queue: [String] = []

    public init(path: String) { self.path = path }

    public mutating func handle(_ input: ProgramInput, nowMs: Int64) -> [ProgramAction<RecipeObservation>] {
        var out: [ProgramAction<RecipeObservation>] = []
        switch input {
        case .start:
            list(&out)
        case .session(let event):
            switch event {
            case .connected, .reconnected:
                connected = true
                if listWhenConnected {
                    listWhenConnected = false
                    list(&out)
                }
            case .suspended, .presumedExpired:
                connected = false
            case .expired, .closed:
                connected = false
                for purpose in pendingDeletes() { out.append(.observe(.consumeUnknown(resource: path, item: purpose))) }
                calls.reset()
                watches.removeAll()
                busy = false
                listWhenConnected = true
            }
        case .watch(let id, _, _):
            guard watches.remove(id) != nil else { break }
            if busy { dirty = true } else { list(&out) }
        case .timer:
            break
        case .reply(let id, let result):
            guard let purpose = calls.close(id) else { break }
            busy = false
            answered(id, purpose, result, &out)
        }
        return out
    }

    func pendingDeletes() -> [String] {
        calls.purposes.values.compactMap { if case .delete(let item, _) = $0 { return item } else { return nil } }.sorted()
    }

    mutating func answered(_ id: CallID, _ purpose: Purpose, _ result: Result<Response, ErrorCode>, _ out: inout [ProgramAction<RecipeObservation>]) {
        switch (purpose, result) {
        case (.list, .success(.getChildren(let children))):
            watches.insert(id)
            queue = CuratorNames.sorted(children.filter { $0.hasPrefix(CuratorNames.queueItem) }, lockName: CuratorNames.queueItem)
            takeNext(&out)
        case (.list, .failure(.noNode)):
            queue = []
        case (.read(let item), .success(.getData(let data, _))):
            call(.delete(item, data: data ?? []), .delete(path: CuratorNames.join(path, item), version: -1), &out)
        case (.read, .failure(.noNode)), (.delete, .failure(.noNode)):
            takeNext(&out)
        case (.delete(let item, let data), .success):
            out.append(.observe(.consumed(resource: path, item: item, data: data)))
            takeNext(&out)
        case (.delete(let item, _), .failure(let code)) where CounterIncrementer.unknownOutcome(code):
            out.append(.observe(.consumeUnknown(resource: path, item: item)))
            retry(&out)
        case (_, .failure(let code)) where CounterIncrementer.unknownOutcome(code):
            retry(&out)
        default:
            takeNext(&out)
        }
    }

    mutating func retry(_ out: inout [ProgramAction<RecipeObservation>]) {
        queue = []
        if connected { list(&out) } else { listWhenConnected = true }
    }

    mutating func takeNext(_ out: inout [ProgramAction<RecipeObservation>]) {
        if dirty || queue.isEmpty {
            // Empty: the listing's watch wakes us (a change seen meanwhile: list now).
            if dirty { list(&out) }
            return
        }
        let item = queue.removeFirst()
        call(.read(item), .getData(path: CuratorNames.join(path, item), watch: false), &out)
    }

    mutating func list(_ out: inout [ProgramAction<RecipeObservation>]) {
        dirty = false
        guard connected else {
            listWhenConnected = true
            return
        }
        guard !busy else {
            dirty = true
            return
        }
        // A listing with a watch replaces the previous one's (it fires at most once anyway).
        call(.list, .getChildren(path: path, watch: true), &out, watch: true)
    }

    mutating func call(_ purpose: Purpose, _ request: Request, _ out: inout [ProgramAction<RecipeObservation>], watch: Bool = false) {
        busy = true
        out.append(.call(calls.open(purpose), request, watch: watch))
    }
}
