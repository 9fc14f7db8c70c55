import ZKProtocol
import ZKRecipesCore

/// Runs a SparkLite program again, in the same process, after it finishes: at once when its
/// session lives on (a master fenced or presumed expired), or on the next session's `connected`
/// when the session ended. This is what `SparkLite.SparkService` does with a new session per
/// incarnation on sockets; under the simulator a `ProgramClient` keeps one process and opens the
/// new session itself, so the restart lives here.
///
/// Call and timer ids carry the incarnation in their high bits: a reply, watch event or timer of
/// an earlier incarnation is dropped instead of reaching the new program under a reused id.
public struct Incarnations<Program: CoordinationProgram>: CoordinationProgram where Program.Observation == SparkObservation {
    public typealias Observation = SparkObservation

    let make: @Sendable (Int) -> Program
    let complete: @Sendable (Program) -> Bool
    public private(set) var program: Program?
    public private(set) var incarnation = 0
    var sessionLive = false
    var done = false
    static var shift: UInt64 { 40 }
    static var restartDelayMs: Int64 { 20 }

    /// - Parameters:
    ///   - make: the program of each incarnation (1, 2, ...).
    ///   - complete: a finished program that is not to run again (a driver with its result).
    public init(make: @escaping @Sendable (Int) -> Program, complete: @escaping @Sendable (Program) -> Bool = { _ in false }) {
        self.make = make
        self.complete = complete
    }

    /// The program that ran last (running or finished).
    public var last: Program? { program }

    public mutating func handle(_ input: ProgramInput, nowMs: Int64) -> [ProgramAction<SparkObservation>] {
        guard !done else { return [] }
        var out: [ProgramAction<SparkObservation>] = []
        switch input {
        case .start:
            begin(nowMs: nowMs, &out)
        case .session(let event):
            switch event {
            case .connected, .reconnected:
                sessionLive = true
                if program == nil || finished {
                    begin(nowMs: nowMs, &out)
                    forward(.session(.connected), nowMs: nowMs, &out)
                } else {
                    forward(input, nowMs: nowMs, &out)
                }
            case .expired, .closed:
                sessionLive = false
                forward(input, nowMs: nowMs, &out)
            case .suspended, .presumedExpired:
                forward(input, nowMs: nowMs, &out)
            }
        case .reply(let id, let result):
            if let inner = inner(id) { forward(.reply(inner, result), nowMs: nowMs, &out) }
        case .watch(let id, let type, let path):
            if let inner = inner(id) { forward(.watch(inner, type: type, path: path), nowMs: nowMs, &out) }
        case .timer(let id):
            if id == 0 {
                // The restart timer (incarnation bits 0).
                if finished, sessionLive { begin(nowMs: nowMs, &out) }
            } else if let inner = inner(id) {
                forward(.timer(inner), nowMs: nowMs, &out)
            }
        }
        return out
    }

    var finished = false

    func inner(_ id: UInt64) -> UInt64? {
        guard id >> Self.shift == UInt64(incarnation), !finished else { return nil }
        return id & ((1 << Self.shift) - 1)
    }

    func outer(_ id: UInt64) -> UInt64 {
        precondition(id < 1 << Self.shift, "id \(id) overflows the incarnation bits")
        return UInt64(incarnation) << Self.shift | id
    }

    mutating func begin(nowMs: Int64, _ out: inout [ProgramAction<SparkObservation>]) {
        incarnation += 1
        program = make(incarnation)
        finished = false
        forward(.start, nowMs: nowMs, &out)
    }

    mutating func forward(_ input: ProgramInput, nowMs: Int64, _ out: inout [ProgramAction<SparkObservation>]) {
        guard program != nil, !finished else { return }
        for action in program!.handle(input, nowMs: nowMs) {
            switch action {
            case .call(let id, let request, let watch):
                out.append(.call(outer(id), request, watch: watch))
            case .timer(let id, let afterMs):
                out.append(.timer(outer(id), afterMs: afterMs))
            case .observe:
                out.append(action)
            case .finish:
                finished = true
                if complete(program!) {
                    done = true
                    out.append(.finish)
                } else if sessionLive {
                    out.append(.timer(0, afterMs: Self.restartDelayMs))
                }
            }
            if finished { break }
        }
    }
}
