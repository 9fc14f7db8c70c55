import ZKProtocol

/// What the contender programs observe, for their user and for the simulator's checkers.
public enum RecipeObservation: Sendable, Hashable, CustomStringConvertible {
    /// A lock or latch holder's state changed (`resource` is the lock's base path).
    case holder(resource: String, HolderState)
    /// The program leaves its critical section and releases the hold (the delete of its node
    /// goes out now; `.holder(.released)` follows when it is done).
    case releasing(resource: String)
    /// An increment took effect and left the counter at `value`.
    case incremented(resource: String, value: Int64)
    /// An increment's write got no answer: it may or may not have taken effect.
    case incrementUnknown(resource: String)
    /// A queue item was put (`item` is the node's name).
    case produced(resource: String, item: String)
    case produceUnknown(resource: String)
    /// A queue item was taken: this consumer's delete of it succeeded.
    case consumed(resource: String, item: String, data: [UInt8])
    /// The delete of a queue item got no answer: it may have been taken by this consumer.
    case consumeUnknown(resource: String, item: String)

    public var resource: String {
        switch self {
        case .holder(let resource, _), .releasing(let resource), .incremented(let resource, _), .incrementUnknown(let resource), .produced(let resource, _),
            .produceUnknown(let resource), .consumed(let resource, _, _), .consumeUnknown(let resource, _):
            return resource
        }
    }

    public var description: String {
        switch self {
        case .holder(let resource, let state): return "\(resource) \(state)"
        case .releasing(let resource): return "\(resource) releasing"
        case .incremented(let resource, let value): return "\(resource) incremented to \(value)"
        case .incrementUnknown(let resource): return "\(resource) increment unknown"
        case .produced(let resource, let item): return "\(resource) put \(item)"
        case .produceUnknown(let resource): return "\(resource) put unknown"
        case .consumed(let resource, let item, _): return "\(resource) took \(item)"
        case .consumeUnknown(let resource, let item): return "\(resource) take of \(item) unknown"
        }
    }
}

/// Draws durations from a seeded stream.
struct Durations: Sendable {
    var words: SplitMix64
    init(seed: UInt64) { words = SplitMix64(seed: seed) }
    mutating func draw(_ range: ClosedRange<Int64>) -> Int64 {
        range.lowerBound + Int64(words.next() % UInt64(range.upperBound - range.lowerBound + 1))
    }
}

/// A program that takes a lock (or a latch's leadership) over and over: acquire, hold for a
/// while, release, think, acquire again — `LockMachine`, the coordination logic of ZKRecipes'
/// `InterProcessMutex`, `LeaderLatch` and `LeaderSelector`, run as a `CoordinationProgram`.
/// After its session ends it starts over with a fresh machine on the next session.
public struct LockContender: CoordinationProgram {
    public typealias Observation = RecipeObservation

    public struct Configuration: Sendable, Hashable {
        public var lock: LockMachine.Configuration
        public var holdMs: ClosedRange<Int64>
        public var thinkMs: ClosedRange<Int64>
        public var seed: UInt64
        public init(lock: LockMachine.Configuration, holdMs: ClosedRange<Int64> = 20...300, thinkMs: ClosedRange<Int64> = 0...200, seed: UInt64) {
            self.lock = lock
            self.holdMs = holdMs
            self.thinkMs = thinkMs
            self.seed = seed
        }
    }

    /// What a call was made for.
    enum Purpose: Sendable, Hashable {
        case command(LockMachine.Command)
        /// Creating a missing ancestor (as a container) of the node `command` creates.
        case ancestor(String, then: LockMachine.Command)
    }

    public let configuration: Configuration
    public private(set) var machine: LockMachine
    var uuids: SeededUUIDs
    var durations: Durations
    var calls = CallBook<Purpose>()
    /// Watches set by `watchData` calls, by call id.
    var watching: [CallID: String] = [:]
    var connected = false
    /// Failures to feed once connected again (LockRunner waits for the connection likewise).
    var deferred: [LockMachine.Input] = []
    /// The timer that matters now: release (while held) or acquire (while idle); others are stale.
    var pendingTimer: TimerID?
    var nextTimer: TimerID = 1
    /// The session ended: a new machine starts on the next one.
    var needsFreshMachine = false
    /// Completed holds (acquired and released).
    public private(set) var cycles = 0

    public init(_ configuration: Configuration) {
        self.configuration = configuration
        self.machine = LockMachine(configuration.lock)
        self.uuids = SeededUUIDs(seed: configuration.seed)
        self.durations = Durations(seed: configuration.seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    var resource: String { configuration.lock.basePath }

    public mutating func handle(_ input: ProgramInput, nowMs: Int64) -> [ProgramAction<RecipeObservation>] {
        var out: [ProgramAction<RecipeObservation>] = []
        switch input {
        case .start:
            feed(.acquire(uuid: uuids.next()), &out)
        case .session(let event):
            switch event {
            case .connected, .reconnected:
                connected = true
                if needsFreshMachine {
                    needsFreshMachine = false
                    machine = LockMachine(configuration.lock)
                    watching.removeAll()
                    deferred.removeAll()
                    feed(.session(event), &out)
                    feed(.acquire(uuid: uuids.next()), &out)
                    return out
                }
            case .suspended, .presumedExpired:
                connected = false
            case .expired, .closed:
                connected = false
                needsFreshMachine = true
                calls.reset()
                watching.removeAll()
                pendingTimer = nil
            }
            feed(.session(event), &out)
            if connected {
                let waiting = deferred
                deferred.removeAll()
                for input in waiting { feed(input, &out) }
            }
        case .reply(let id, let result):
            guard let purpose = calls.close(id) else { break }
            reply(id, purpose, result, &out)
        case .watch(let id, _, let path):
            guard watching.removeValue(forKey: id) != nil else { break }
            feed(.watchFired(path), &out)
        case .timer(let id):
            guard id == pendingTimer, !needsFreshMachine else { break }
            pendingTimer = nil
            switch machine.phase {
            case .held:
                out.append(.observe(.releasing(resource: resource)))
                feed(.release, &out)
            case .idle: feed(.acquire(uuid: uuids.next()), &out)
            // Still removing a dropped hold's node: try again later.
            case .deleting: schedule(durations.draw(configuration.thinkMs) + 10, &out)
            case .creating, .listing, .waiting, .cleaning: break
            }
        }
        return out
    }

    mutating func reply(_ id: CallID, _ purpose: Purpose, _ result: Result<Response, ErrorCode>, _ out: inout [ProgramAction<RecipeObservation>]) {
        switch purpose {
        case .ancestor(let path, let command):
            switch result {
            case .success, .failure(.nodeExists):
                // Next missing ancestor, or the node itself.
                let ancestors = CuratorNames.ancestors(nodePath(command))
                if let index = ancestors.firstIndex(of: path), index + 1 < ancestors.count {
                    call(.ancestor(ancestors[index + 1], then: command), &out)
                } else {
                    call(.command(command), &out)
                }
            case .failure(let code):
                failed(code, &out)
            }
        case .command(let command):
            switch (command, result) {
            case (.create, .success(.create2(let path, let stat))):
                feed(.created(path: path, stat: stat), &out)
            case (.create, .failure(.noNode)):
                let ancestors = CuratorNames.ancestors(nodePath(command))
                if let first = ancestors.first { call(.ancestor(first, then: command), &out) } else { failed(.noNode, &out) }
            case (.getChildren, .success(.getChildren(let children))):
                feed(.children(children), &out)
            case (.getChildren, .failure(.noNode)):
                feed(.children([]), &out)
            case (.watchData(let path), .success):
                watching[id] = path
                feed(.predecessorExists(path), &out)
            case (.watchData(let path), .failure(.noNode)):
                feed(.predecessorGone(path), &out)
            case (.delete(let path), .success), (.delete(let path), .failure(.noNode)):
                feed(.deleted(path), &out)
            case (_, .failure(let code)):
                failed(code, &out)
            default:
                failed(.marshallingError, &out)
            }
        }
    }

    func nodePath(_ command: LockMachine.Command) -> String {
        if case .create(let path, _, _) = command { return path }
        return "/"
    }

    mutating func failed(_ code: ErrorCode, _ out: inout [ProgramAction<RecipeObservation>]) {
        switch code {
        case .connectionLoss, .operationTimeout, .requestTimeout, .sessionMoved, .throttledOp:
            if connected { feed(.failed(code), &out) } else { deferred.append(.failed(code)) }
        default:
            feed(.failed(code), &out)
        }
    }

    mutating func call(_ purpose: Purpose, _ out: inout [ProgramAction<RecipeObservation>]) {
        let request: Request
        var watch = false
        switch purpose {
        case .ancestor(let path, _):
            request = .createContainer(CreateRequest(path: path, data: [], acl: ACL.openUnsafe, flags: CreateMode.container.rawValue))
        case .command(let command):
            switch command {
            case .create(let path, let data, let mode):
                request = .create2(CreateRequest(path: path, data: data, acl: ACL.openUnsafe, flags: mode.rawValue))
            case .getChildren(let path):
                request = .getChildren(path: path, watch: false)
            case .watchData(let path):
                request = .getData(path: path, watch: true)
                watch = true
            case .delete(let path):
                request = .delete(path: path, version: -1)
            case .report:
                return
            }
        }
        out.append(.call(calls.open(purpose), request, watch: watch))
    }

    mutating func feed(_ input: LockMachine.Input, _ out: inout [ProgramAction<RecipeObservation>]) {
        for command in machine.handle(input) {
            guard case .report(let state) = command else {
                call(.command(command), &out)
                continue
            }
            out.append(.observe(.holder(resource: resource, state)))
            switch state {
            case .held:
                schedule(durations.draw(configuration.holdMs), &out)
            case .released, .idle:
                if case .released = state { cycles += 1 }
                schedule(durations.draw(configuration.thinkMs), &out)
            case .lost:
                // The hold (or attempt) ended without a release: when the machine is idle again
                // and the session lives, try again after thinking.
                if !needsFreshMachine { schedule(durations.draw(configuration.thinkMs), &out) }
            case .waiting, .suspended:
                break
            }
        }
    }

    mutating func schedule(_ ms: Int64, _ out: inout [ProgramAction<RecipeObservation>]) {
        let id = nextTimer
        nextTimer += 1
        pendingTimer = id
        out.append(.timer(id, afterMs: ms))
    }
}
