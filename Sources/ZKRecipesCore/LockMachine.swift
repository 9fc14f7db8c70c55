import ZKProtocol

/// What a recipe learns about its session. `presumedExpired` is not a ZooKeeper state: the
/// driver sends it when the connection has been down for a whole session timeout, after which the
/// ensemble has certainly expired the session (the client only hears so when it reconnects).
public enum SessionEvent: Sendable, Hashable {
    case connected
    case suspended
    case reconnected
    case presumedExpired
    case expired
    case closed
}

/// How a holder treats a lost connection.
public enum ConnectionPolicy: Sendable, Hashable {
    /// A suspended connection keeps the hold (reported `.suspended`, then `.held` again on
    /// reconnection); it is dropped when the session expires, or has been disconnected for a whole
    /// session timeout (`presumedExpired`). MiniZK's default.
    case keepUntilExpired
    /// Curator's `StandardConnectionStateErrorPolicy`: `suspended` already loses the hold (the
    /// node is deleted on reconnection).
    case dropOnSuspend
}

/// Why a hold (or an attempt) ended other than by `release`.
public enum LossReason: Sendable, Hashable {
    /// The session expired or was closed: its ephemeral nodes are gone.
    case sessionExpired
    /// The connection was suspended under `.dropOnSuspend`, or for a whole session timeout.
    case connectionSuspended
    /// The node was deleted by someone else while held.
    case nodeDeleted
    /// The server refused an operation with this code.
    case error(ErrorCode)
}

/// Identifies one hold, increasing across holders of the same lock: `sequence` is the node's
/// sequence number (increasing under one parent), `czxid` the zxid that created it (increasing
/// across the whole ensemble; 0 when the node was found again after a lost reply rather than
/// created in this reply).
public struct FencingToken: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var sequence: Int64
    public var czxid: Int64
    public var path: String
    public init(sequence: Int64, czxid: Int64, path: String) {
        self.sequence = sequence
        self.czxid = czxid
        self.path = path
    }
    public static func < (lhs: FencingToken, rhs: FencingToken) -> Bool { lhs.sequence < rhs.sequence }
    public var description: String { "\(path)#\(sequence)" }
}

/// The state of a holder (a lock owner, a latch candidate), as reported to the program.
public enum HolderState: Sendable, Hashable, CustomStringConvertible {
    /// Not holding and not trying.
    case idle
    /// Our node is in line behind others.
    case waiting
    /// Held; the token identifies this hold.
    case held(FencingToken)
    /// Held, but the connection is down: the session (and the hold) may still be alive.
    case suspended(FencingToken)
    /// A hold or an attempt ended without `release`.
    case lost(LossReason)
    /// Released by the program.
    case released

    public var isHeld: Bool { if case .held = self { return true } else { return false } }
    public var token: FencingToken? {
        switch self {
        case .held(let token), .suspended(let token): return token
        default: return nil
        }
    }
    public var description: String {
        switch self {
        case .idle: return "idle"
        case .waiting: return "waiting"
        case .held(let token): return "held(\(token))"
        case .suspended(let token): return "suspended(\(token))"
        case .lost(let reason): return "lost(\(reason))"
        case .released: return "released"
        }
    }
}

/// Curator's `LockInternals` + `StandardLockInternalsDriver` as a deterministic state machine:
/// the coordination logic of `InterProcessMutex` (lock name `lock-`), `LeaderLatch` (`latch-`),
/// `LeaderSelector` and, with `maxLeases` > 1, a counting lock.
///
/// To acquire, a holder creates the protected ephemeral sequential node
/// `<base>/_c_<uuid>-<lockName><seq>` (parents as containers), lists the children sorted by
/// sequence, and holds when fewer than `maxLeases` nodes precede its own; otherwise it watches,
/// with `getData`, only the node `maxLeases` places ahead (no herd) and lists again when that
/// node goes. A create whose reply is lost is recovered by finding the node with our prefix.
///
/// The machine makes at most one ZooKeeper call at a time: feed it the result of each `Command`
/// it returns, plus watch events and session events, and perform the commands it returns in order.
public struct LockMachine: Sendable {
    public struct Configuration: Sendable, Hashable {
        public var basePath: String
        public var lockName: String
        public var maxLeases: Int
        /// The data of our node (Curator: the participant id for latches).
        public var data: [UInt8]
        public var policy: ConnectionPolicy
        /// The names whose suffix is the sort key (Curator's read-write lock strips both of its).
        public var sortNames: [String]
        /// A read lock of `InterProcessReadWriteLock`: held while no write-lock node precedes ours;
        /// otherwise watch the first write-lock node ahead.
        public var readerOf: String?

        public init(basePath: String, lockName: String = CuratorNames.lock, maxLeases: Int = 1, data: [UInt8] = [],
                    policy: ConnectionPolicy = .keepUntilExpired) {
            self.basePath = basePath
            self.lockName = lockName
            self.maxLeases = maxLeases
            self.data = data
            self.policy = policy
            self.sortNames = [lockName]
            self.readerOf = nil
        }

        /// The read side of Curator's `InterProcessReadWriteLock` on `basePath`.
        public static func readLock(basePath: String, data: [UInt8] = [], policy: ConnectionPolicy = .keepUntilExpired) -> Configuration {
            var configuration = Configuration(basePath: basePath, lockName: CuratorNames.readLock, maxLeases: .max, data: data, policy: policy)
            configuration.sortNames = [CuratorNames.readLock, CuratorNames.writeLock]
            configuration.readerOf = CuratorNames.writeLock
            return configuration
        }

        /// The write side of Curator's `InterProcessReadWriteLock` on `basePath`: held when first
        /// among readers and writers.
        public static func writeLock(basePath: String, data: [UInt8] = [], policy: ConnectionPolicy = .keepUntilExpired) -> Configuration {
            var configuration = Configuration(basePath: basePath, lockName: CuratorNames.writeLock, data: data, policy: policy)
            configuration.sortNames = [CuratorNames.readLock, CuratorNames.writeLock]
            return configuration
        }
    }

    /// A ZooKeeper call to make (its result comes back as an `Input`) or a state to report.
    public enum Command: Sendable, Hashable {
        /// Create `path` (missing parents as containers); answer `.created` or `.failed`.
        case create(path: String, data: [UInt8], mode: CreateMode)
        /// getChildren; answer `.children` or `.failed`.
        case getChildren(String)
        /// getData with a one-shot watch; answer `.predecessorExists` (and `.watchFired` when the
        /// watch fires), `.predecessorGone` (noNode) or `.failed`.
        case watchData(String)
        /// delete (any version); answer `.deleted` (also on noNode) or `.failed`.
        case delete(String)
        /// The holder state changed.
        case report(HolderState)
    }

    public enum Input: Sendable, Hashable {
        /// Start acquiring (or, while held, re-enter). `uuid` names the protected node.
        case acquire(uuid: String)
        /// Leave one level of a re-entrant hold; the last one deletes the node.
        case release
        /// Stop an attempt (timeout, cancellation): our node, when made, is deleted.
        case cancel
        case created(path: String, stat: Stat)
        case children([String])
        case predecessorExists(String)
        case predecessorGone(String)
        case watchFired(String)
        case deleted(String)
        /// The outstanding call failed.
        case failed(ErrorCode)
        case session(SessionEvent)
    }

    public enum Phase: Sendable, Hashable {
        case idle
        case creating
        case listing
        case waiting(predecessor: String)
        case held
        case deleting
        /// Deleting nodes of ours left behind by creates whose replies were lost (a retried
        /// create and the lost one can both succeed); the listing follows.
        case cleaning([String])
    }

    public let configuration: Configuration
    public private(set) var phase: Phase = .idle
    /// Our node's full path, once known.
    public private(set) var ourPath: String?
    /// Re-entrant depth of the hold (0 when not held).
    public private(set) var holdCount = 0
    /// The last state reported.
    public private(set) var state: HolderState = .idle
    var uuid = ""
    var czxid: Int64 = 0
    /// The program still wants the hold (false after cancel or a drop).
    var wanted = false
    var connected = true
    var retryWhenConnected = false
    var sessionEnded = false
    /// What to report once the node being deleted is gone.
    var afterDelete: HolderState = .released
    /// Creates sent in this attempt (more than one: a create whose reply was lost was sent again).
    var createsThisAttempt = 0
    /// UUIDs of this session's attempts that sent a create more than once: a node of theirs may
    /// still appear (a lost create can commit late) and is deleted when a listing shows it.
    var suspectUUIDs: Set<String> = []

    public init(_ configuration: Configuration) {
        self.configuration = configuration
    }

    var base: String { configuration.basePath }

    public var token: FencingToken? {
        guard let ourPath, let sequence = CuratorNames.sequence(of: ourPath) else { return nil }
        return FencingToken(sequence: sequence, czxid: czxid, path: ourPath)
    }

    public mutating func handle(_ input: Input) -> [Command] {
        var out: [Command] = []
        switch input {
        case .acquire(let uuid):
            if sessionEnded {
                report(.lost(.sessionExpired), &out)
            } else if phase == .held {
                holdCount += 1
            } else if phase == .idle {
                self.uuid = uuid
                createsThisAttempt = 0
                wanted = true
                afterDelete = .released
                report(.waiting, &out)
                create(&out)
            } else if phase != .deleting {
                wanted = true  // an attempt already running (after cancel): keep it
            }
        case .release:
            guard phase == .held else { break }
            holdCount -= 1
            if holdCount == 0 {
                wanted = false
                afterDelete = .released
                phase = .deleting
                if connected { out.append(.delete(ourPath!)) } else { retryWhenConnected = true }
            }
        case .cancel:
            guard phase != .held, phase != .idle, phase != .deleting else { break }
            wanted = false
            afterDelete = .idle
            if case .waiting = phase { deleteOurs(&out) }
        // creating / listing: the outstanding call's answer sees `wanted` false
        case .created(let path, let stat):
            guard phase == .creating else { break }
            ourPath = path
            czxid = stat.czxid
            if wanted { list(&out) } else { deleteOurs(&out) }
        case .children(let children):
            guard phase == .listing else { break }
            examine(children, &out)
        case .predecessorExists:
            break  // wait for the watch
        case .predecessorGone(let path), .watchFired(let path):
            guard case .waiting(let predecessor) = phase, CuratorNames.join(base, predecessor) == path else { break }
            list(&out)
        case .deleted(let path):
            if case .cleaning(var rest) = phase {
                rest.removeAll { CuratorNames.join(base, $0) == path }
                if let next = rest.first {
                    phase = .cleaning(rest)
                    out.append(.delete(CuratorNames.join(base, next)))
                } else {
                    list(&out)
                }
                break
            }
            guard phase == .deleting, path == ourPath else { break }
            finishDelete(&out)
        case .failed(let code):
            failed(code, &out)
        case .session(let event):
            session(event, &out)
        }
        return out
    }

    mutating func report(_ new: HolderState, _ out: inout [Command]) {
        guard new != state else { return }
        state = new
        out.append(.report(new))
    }

    mutating func create(_ out: inout [Command]) {
        phase = .creating
        ourPath = nil
        czxid = 0
        createsThisAttempt += 1
        if createsThisAttempt > 1 { suspectUUIDs.insert(uuid) }
        out.append(.create(path: CuratorNames.protectedPath(base: base, uuid: uuid, name: configuration.lockName),
                           data: configuration.data, mode: .ephemeralSequential))
    }

    mutating func list(_ out: inout [Command]) {
        phase = .listing
        out.append(.getChildren(base))
    }

    mutating func deleteOurs(_ out: inout [Command]) {
        guard let ourPath else {
            phase = .idle
            report(afterDelete, &out)
            return
        }
        phase = .deleting
        if connected { out.append(.delete(ourPath)) } else { retryWhenConnected = true }
    }

    mutating func examine(_ children: [String], _ out: inout [Command]) {
        if ourPath == nil {
            // A create whose reply was lost: find the node by its protected prefix (the
            // lowest, when a retried create and the lost one both made one).
            let prefix = CuratorNames.protectedPrefix(uuid)
            let found = children.filter { $0.hasPrefix(prefix) }
                .min { (CuratorNames.sequence(of: $0) ?? .max) < (CuratorNames.sequence(of: $1) ?? .max) }
            if let found {
                ourPath = CuratorNames.join(base, found)
            } else if wanted {
                create(&out)
                return
            } else {
                phase = .idle
                report(afterDelete, &out)
                return
            }
        }
        guard wanted else { return deleteOurs(&out) }
        // Our own leftovers (a lost create that committed beside its retry) would block everyone
        // behind them until the session ends: delete them first.
        let suspects = suspectUUIDs.map { CuratorNames.protectedPrefix($0) }
        let leftovers = children.filter { child in
            CuratorNames.join(base, child) != ourPath && suspects.contains { child.hasPrefix($0) }
        }.sorted()
        if let first = leftovers.first {
            phase = .cleaning(leftovers)
            out.append(.delete(CuratorNames.join(base, first)))
            return
        }
        let sorted = CuratorNames.sorted(children, lockNames: configuration.sortNames)
        guard let index = sorted.firstIndex(of: CuratorNames.nodeName(ourPath!)) else {
            // Our node is gone (deleted by someone, or the session is being lost): start over,
            // as Curator does on NoNode.
            create(&out)
            return
        }
        if let writeName = configuration.readerOf {
            if let firstWriter = sorted[..<index].firstIndex(where: { $0.contains(writeName) }) {
                phase = .waiting(predecessor: sorted[firstWriter])
                out.append(.watchData(CuratorNames.join(base, sorted[firstWriter])))
            } else {
                phase = .held
                holdCount = 1
                report(.held(token!), &out)
            }
        } else if index < configuration.maxLeases {
            phase = .held
            holdCount = 1
            report(.held(token!), &out)
        } else {
            let predecessor = sorted[index - configuration.maxLeases]
            phase = .waiting(predecessor: predecessor)
            #if MINIZK_BUG_RECIPE_WATCH_PARENT
            // Planted bug: the waiter watches the lock's parent, whose data never changes when
            // the predecessor goes, so it misses its turn.
            out.append(.watchData(base))
            #else
            out.append(.watchData(CuratorNames.join(base, predecessor)))
            #endif
        }
    }

    mutating func retry(_ out: inout [Command]) {
        switch phase {
        case .creating, .listing, .waiting, .cleaning: list(&out)  // finds a node whose create reply was lost
        case .deleting: out.append(.delete(ourPath!))
        case .idle, .held: break
        }
    }

    mutating func failed(_ code: ErrorCode, _ out: inout [Command]) {
        switch code {
        case .connectionLoss, .operationTimeout, .requestTimeout, .sessionMoved, .throttledOp:
            if connected { retry(&out) } else { retryWhenConnected = true }
        case .sessionExpired, .authFailed:
            session(.expired, &out)
        case .noNode where phase == .deleting:
            finishDelete(&out)
        case .noNode where phase != .creating:
            list(&out)
        default:
            // Refused for good (noAuth, bad path, ...): give up, removing our node if we made one.
            wanted = false
            afterDelete = .lost(.error(code))
            if phase == .held { holdCount = 0 }
            deleteOurs(&out)
        }
    }

    mutating func finishDelete(_ out: inout [Command]) {
        ourPath = nil
        holdCount = 0
        phase = .idle
        report(afterDelete, &out)
    }

    mutating func session(_ event: SessionEvent, _ out: inout [Command]) {
        switch event {
        case .connected, .reconnected:
            connected = true
            if phase == .held, let token { report(.held(token), &out) }
            if retryWhenConnected {
                retryWhenConnected = false
                retry(&out)
            }
        case .suspended:
            connected = false
            if phase == .held {
                if configuration.policy == .dropOnSuspend { drop(.connectionSuspended, &out) } else if let token { report(.suspended(token), &out) }
            }
        case .presumedExpired:
            connected = false
            #if MINIZK_BUG_RECIPE_IGNORE_SESSION_LOSS
            // Planted bug: the holder ignores the loss of its session and goes on holding.
            if phase == .held { return }
            #endif
            if phase == .held { drop(.connectionSuspended, &out) }
        case .expired, .closed:
            #if MINIZK_BUG_RECIPE_IGNORE_SESSION_LOSS
            if phase == .held {
                connected = false
                return
            }
            #endif
            // The ensemble has deleted our node with the session: the hold ends now.
            let ending: HolderState?
            switch phase {
            case .idle: ending = nil
            case .deleting: ending = afterDelete == .released ? .released : (state == afterDelete ? nil : afterDelete)
            default: ending = .lost(.sessionExpired)
            }
            connected = false
            sessionEnded = true
            suspectUUIDs.removeAll()
            phase = .idle
            ourPath = nil
            holdCount = 0
            wanted = false
            retryWhenConnected = false
            if let ending { report(ending, &out) }
        }
    }

    /// Gives up a hold at once; the node is deleted when the connection is back.
    mutating func drop(_ reason: LossReason, _ out: inout [Command]) {
        wanted = false
        holdCount = 0
        report(.lost(reason), &out)
        afterDelete = .lost(reason)
        phase = .deleting
        retryWhenConnected = true
    }
}
