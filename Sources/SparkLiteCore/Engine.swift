import ZKProtocol
import ZKRecipesCore

/// The call bookkeeping SparkLite's programs share: ids for calls and timers, the purpose of each,
/// the purpose of each watch, and the retry of a call whose outcome the connection lost.
///
/// A call that fails with connectionLoss (or a timeout) is made again after `retryDelayMs`, with
/// the same purpose: every SparkLite write is idempotent by construction (create-if-absent with
/// a fixed name, versioned setData, delete of a fixed name), and each purpose's reply handler
/// treats nodeExists/noNode from a retried write as the first attempt having succeeded.
struct Engine<Purpose: Sendable, Timer: Sendable>: Sendable {
    enum TimerUse: Sendable {
        case retry(Purpose, Request, watch: Bool)
        case timer(Timer)
    }

    var book = CallBook<Purpose>()
    var watches: [CallID: Purpose] = [:]
    var requests: [CallID: (Request, Bool)] = [:]
    var timers: [TimerID: TimerUse] = [:]
    var nextTimer: TimerID = 1
    var actions: [ProgramAction<SparkObservation>] = []
    static var retryDelayMs: Int64 { 50 }

    mutating func call(_ purpose: Purpose, _ request: Request, watch: Bool = false) {
        let id = book.open(purpose)
        requests[id] = (request, watch)
        if watch { watches[id] = purpose }
        actions.append(.call(id, request, watch: watch))
    }

    mutating func timer(_ what: Timer, afterMs: Int64) {
        let id = nextTimer
        nextTimer += 1
        timers[id] = .timer(what)
        actions.append(.timer(id, afterMs: afterMs))
    }

    mutating func observe(_ observation: SparkObservation) { actions.append(.observe(observation)) }

    mutating func finish() { actions.append(.finish) }

    /// Takes the actions made so far.
    mutating func drain() -> [ProgramAction<SparkObservation>] {
        defer { actions.removeAll() }
        return actions
    }

    /// What a reply answers: nil when the call is not ours or was retried (the engine has already
    /// scheduled the retry).
    mutating func reply(_ id: CallID, _ result: Result<Response, ErrorCode>) -> (Purpose, Result<Response, ErrorCode>)? {
        guard let purpose = book.close(id) else { return nil }
        let (request, watch) = requests.removeValue(forKey: id) ?? (.ping, false)
        if case .failure(let code) = result, Self.isTransient(code) {
            watches[id] = nil
            let timer = nextTimer
            nextTimer += 1
            timers[timer] = .retry(purpose, request, watch: watch)
            actions.append(.timer(timer, afterMs: Self.retryDelayMs))
            return nil
        }
        if case .failure = result { watches[id] = nil }
        return (purpose, result)
    }

    /// A watch event's purpose (the watch is one-shot: forgotten now).
    mutating func watchFired(_ id: CallID) -> Purpose? { watches.removeValue(forKey: id) }

    /// A timer's use; retries are re-sent here and return nil.
    mutating func timerFired(_ id: TimerID) -> Timer? {
        switch timers.removeValue(forKey: id) {
        case .retry(let purpose, let request, let watch)?:
            call(purpose, request, watch: watch)
            return nil
        case .timer(let what)?:
            return what
        case nil:
            return nil
        }
    }

    static func isTransient(_ code: ErrorCode) -> Bool {
        code == .connectionLoss || code == .operationTimeout || code == .requestTimeout || code == .sessionMoved || code == .throttledOp
    }

    // MARK: - Requests

    static func create(_ path: String, _ data: [UInt8], _ mode: CreateMode = .persistent) -> Request {
        .create2(CreateRequest(path: path, data: data, acl: ACL.openUnsafe, flags: mode.rawValue))
    }

    /// A create inside a multi (ZooKeeper answers it with the path only).
    static func createPlain(_ path: String, _ data: [UInt8]) -> Request {
        .create(CreateRequest(path: path, data: data, acl: ACL.openUnsafe, flags: CreateMode.persistent.rawValue))
    }

    /// The outcome of a multi: its results, or the code of the operation that failed.
    static func multiOutcome(_ result: Result<Response, ErrorCode>) -> Result<[MultiResult], ErrorCode> {
        switch result {
        case .failure(let code):
            return .failure(code)
        case .success(.multi(let results)):
            let codes = results.compactMap { result -> ErrorCode? in
                if case .error(let code) = result { return code } else { return nil }
            }
            if let failing = codes.first(where: { $0 != .ok && $0 != .runtimeInconsistency }) ?? codes.first(where: { $0 != .ok }) {
                return .failure(failing)
            }
            return .success(results)
        case .success:
            return .failure(.marshallingError)
        }
    }
}

/// Makes sure of the persistent skeleton, one create at a time (the runner may reorder calls
/// made together, and a child's create needs its parent).
struct Skeleton: Sendable {
    let nodes: [(path: String, data: [UInt8])]
    var next = 0
    init(_ layout: SparkLayout, extra: [String] = []) {
        nodes = layout.skeleton + extra.map { ($0, []) }
    }
    var done: Bool { next >= nodes.count }
    var current: Request { Engine<Int, Int>.create(nodes[next].path, nodes[next].data) }
}
