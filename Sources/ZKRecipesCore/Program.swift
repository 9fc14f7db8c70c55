import ZKProtocol

/// Names a call a program makes; its reply (and the event of the watch it set) come back with it.
public typealias CallID = UInt64
/// Names a timer a program asks for.
public typealias TimerID = UInt64

/// What a program asks of the shell that runs it.
public enum ProgramAction<Observation: Sendable & Hashable>: Sendable, Hashable {
    /// Make this ZooKeeper call; its result comes back as `.reply(id, ...)`. With `watch` (for
    /// getData, exists, getChildren and getChildren2), a one-shot watch is set with it; its
    /// event comes back as `.watch(id, ...)` when it fires.
    case call(CallID, Request, watch: Bool)
    /// Wake the program with `.timer(id)` after this many milliseconds (of the shell's clock:
    /// real time under NIO, virtual time under the simulator).
    case timer(TimerID, afterMs: Int64)
    /// Something the program did or learned, for its user and for the simulator's checkers.
    case observe(Observation)
    /// The program has finished: the shell stops feeding it (and may close the session).
    case finish
}

/// What a shell gives a program.
public enum ProgramInput: Sendable, Hashable {
    /// The program starts (once, before anything else; the session may not be connected yet:
    /// calls made now are queued by the session).
    case start
    case reply(CallID, Result<Response, ErrorCode>)
    /// The one-shot watch set by call `id` fired.
    case watch(CallID, type: EventType, path: String)
    case session(SessionEvent)
    case timer(TimerID)
}

/// A coordination program as a deterministic state machine over one ZooKeeper session: it reads
/// no clock and no random source (time arrives as timers, randomness through its own seeded
/// generator), makes calls only through the actions it returns, and learns everything through
/// its inputs. `ZKRecipes.ProgramRunner` runs one on a `ZooKeeperClient`; the simulator runs the
/// same value on a `ClientSession` over simulated members, under crashes, partitions and expiry.
///
/// `nowMs` is the shell's clock at the input, for programs that keep deadlines; a program must
/// not use it for anything a timer could do instead.
public protocol CoordinationProgram: Sendable {
    associatedtype Observation: Sendable & Hashable
    mutating func handle(_ input: ProgramInput, nowMs: Int64) -> [ProgramAction<Observation>]
}

/// Hands out call and timer ids, and remembers which call a reply answers.
public struct CallBook<Purpose: Sendable>: Sendable {
    public private(set) var next: CallID = 1
    var purposes: [CallID: Purpose] = [:]
    public init() {}

    /// A new id for a call made for `purpose`.
    public mutating func open(_ purpose: Purpose) -> CallID {
        let id = next
        next += 1
        purposes[id] = purpose
        return id
    }

    /// The purpose of call `id`, which is answered now (nil: not ours, or already answered).
    public mutating func close(_ id: CallID) -> Purpose? { purposes.removeValue(forKey: id) }

    /// The purpose of call `id` without answering it (for watch events).
    public func peek(_ id: CallID) -> Purpose? { purposes[id] }

    /// Forgets every call (after the session ended: their replies will not come).
    public mutating func reset() { purposes.removeAll() }

    public var outstanding: Int { purposes.count }
}
