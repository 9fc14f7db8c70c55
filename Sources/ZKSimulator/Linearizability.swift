import ZKProtocol

/// Linearizability of the clients' history, checked path by path.
///
/// Each znode the workload touches is a versioned register: absent, or present with data, a
/// version and an ephemeral owner. Because the registers are independent (the workload keeps
/// them leaves under parents that never go away), a history is linearizable exactly when each
/// path's sub-history is (Herlihy and Wing's locality), so the search runs per path, which keeps
/// it small. A multi is split into its operations, one per path; that checks less (not the
/// atomicity across paths) but never reports a false violation.
///
/// The search is Wing and Gong's, with Lowe's cache of visited (linearized set, state) pairs: it
/// picks, in invocation order, an operation that may take effect next, applies it to the model,
/// and backtracks when the model's answer differs from what the client saw. It gives up after
/// `budget` steps and says "unknown" rather than hang. It first tries an unanswered operation
/// only where it would change the register (see `check`).
///
/// What "may take effect next" means encodes ZooKeeper's guarantees, which are not plain
/// linearizability:
///
/// - **writes** are linearizable: a write can only take effect after every operation that
///   completed before it was sent;
/// - **reads** are served by whichever replica the client is connected to, from its committed
///   state, which may lag: a read may take effect *before* it was sent (a stale read), but not
///   before the operations of its own session it must see: those answered before it was sent
///   (the client's last zxid keeps it from going back in time, even across a reconnection),
///   and those sent before it on the same connection (FIFO client order);
/// - a write also comes after the earlier writes of its connection (FIFO client order);
/// - an operation whose reply never came may have taken effect at any time after it was sent,
///   or not at all — and not at all, on this path, once an operation that must follow it has
///   taken effect (a multi may have failed on another path);
/// - an ephemeral also goes away when its owner's session ends: a synthetic operation from the
///   session's start to the moment its client learned it was closed (or never, if unknown).
enum Linearizability {
    struct Register: Hashable {
        var present = false
        var data: [UInt8]? = nil
        var version: Int32 = 0
        var owner: Int64 = 0

        var line: String {
            present ? "present \(describe(data: data)) v\(version)\(owner != 0 ? " owner \(hex(owner))" : "")" : "absent"
        }
    }

    enum Action: Hashable {
        case create(data: [UInt8]?, owner: Int64)
        case set(data: [UInt8]?, version: Int32)
        case delete(version: Int32)
        case check(version: Int32)
        case read
        case exists
        case sessionEnd(owner: Int64)
    }

    enum Result: Hashable {
        case ok
        case read(data: [UInt8]?, version: Int32)
        case version(Int32)
        case error(ErrorCode)
        /// Matches any result (an operation known to have happened, with nothing to compare).
        case any
    }

    struct Op {
        var action: Action
        /// A read, which may see a state older than its invocation.
        var relaxed: Bool
        var invoke: UInt64
        /// `UInt64.max` when no reply came.
        var response: UInt64
        /// What the client saw; nil when no reply came (the operation is optional).
        var expected: Result?
        var session: Int64
        var connection: ConnectionIDValue
        /// Operations that must take effect before this one.
        var predecessors: [Int] = []
        /// The history entry, if not synthetic.
        var entry: Int?
        var label: String
    }

    typealias ConnectionIDValue = UInt64

    static let modeledErrors: Set<ErrorCode> = [.noNode, .nodeExists, .badVersion]

    static func step(_ state: Register, _ action: Action) -> (Register, Result) {
        var next = state
        switch action {
        case .create(let data, let owner):
            if state.present { return (state, .error(.nodeExists)) }
            next = Register(present: true, data: data, version: 0, owner: owner)
            return (next, .ok)
        case .set(let data, let version):
            guard state.present else { return (state, .error(.noNode)) }
            guard version == -1 || version == state.version else { return (state, .error(.badVersion)) }
            next.data = data
            next.version = state.version &+ 1
            return (next, .version(next.version))
        case .delete(let version):
            guard state.present else { return (state, .error(.noNode)) }
            guard version == -1 || version == state.version else { return (state, .error(.badVersion)) }
            return (Register(), .ok)
        case .check(let version):
            guard state.present else { return (state, .error(.noNode)) }
            guard version == -1 || version == state.version else { return (state, .error(.badVersion)) }
            return (state, .ok)
        case .read:
            return (state, state.present ? .read(data: state.data, version: state.version) : .error(.noNode))
        case .exists:
            return (state, state.present ? .version(state.version) : .error(.noNode))
        case .sessionEnd(let owner):
            if state.present && state.owner == owner { return (Register(), .any) }
            return (state, .any)
        }
    }

    enum Verdict {
        case linearizable
        case unknown(steps: Int)
        /// The longest linearizable prefix found, the state after it, and the operations that
        /// could not follow it.
        case violation(prefix: [Int], state: Register, stuck: [Int])
    }

    /// Wing–Gong–Lowe search over one path's operations (sorted by invocation).
    ///
    /// Two searches, the second only when the first gave up. The first never tries an
    /// unanswered operation where it would change nothing: each such operation would double the
    /// (linearized set, state) pairs it can visit, so histories with many of them (sessions
    /// that may have ended, compare-and-sets without an answer) are decided in seconds instead
    /// of not at all. Trying such an operation where it changes nothing amounts to deciding
    /// early that it never took effect, which sometimes finds a linearization sooner; the
    /// second search keeps that order (each search is complete: they differ in what they find
    /// first, not in what they accept).
    static func check(_ ops: [Op], budget: Int) -> Verdict {
        let verdict = search(ops, budget: budget, skipUnansweredNoOps: true)
        if case .unknown = verdict { return search(ops, budget: budget, skipUnansweredNoOps: false) }
        return verdict
    }

    private static func search(_ ops: [Op], budget: Int, skipUnansweredNoOps: Bool) -> Verdict {
        let count = ops.count
        let knownCount = ops.filter { $0.expected != nil }.count
        if knownCount == 0 { return .linearizable }
        let words = (count + 63) / 64

        struct Key: Hashable {
            var bits: [UInt64]
            var state: Register
        }
        struct Frame {
            var bits: [UInt64]
            var state: Register
            var doneKnown: Int
            var candidates: [Int]
            var cursor = 0
            var via: Int
        }

        func isDone(_ bits: [UInt64], _ index: Int) -> Bool { bits[index >> 6] & (1 << UInt64(index & 63)) != 0 }

        func candidates(_ bits: [UInt64]) -> [Int] {
            // The two earliest responses among known operations not yet linearized: a write may
            // only go next if it was sent before every one of them (except itself).
            var first = UInt64.max
            var firstIndex = -1
            var second = UInt64.max
            for index in 0..<count where !isDone(bits, index) && ops[index].expected != nil {
                let response = ops[index].response
                if response < first {
                    second = first
                    first = response
                    firstIndex = index
                } else if response < second {
                    second = response
                }
            }
            var result: [Int] = []
            for index in 0..<count where !isDone(bits, index) {
                let op = ops[index]
                if !op.relaxed {
                    let bound = index == firstIndex ? second : first
                    if op.invoke > bound { continue }
                }
                // An unanswered predecessor not linearized yet is one that never took effect (or
                // none on this path: a multi may have failed on another): it is skipped.
                if op.predecessors.allSatisfy({ isDone(bits, $0) || ops[$0].expected == nil }) { result.append(index) }
            }
            return result
        }

        var seen: Set<Key> = []
        let empty = [UInt64](repeating: 0, count: words)
        var stack = [Frame(bits: empty, state: Register(), doneKnown: 0, candidates: candidates(empty), via: -1)]
        var steps = 0
        var best: (prefix: [Int], state: Register, stuck: [Int], known: Int) = ([], Register(), stack[0].candidates, 0)
        while !stack.isEmpty {
            let top = stack.count - 1
            if stack[top].cursor == stack[top].candidates.count {
                stack.removeLast()
                continue
            }
            let index = stack[top].candidates[stack[top].cursor]
            stack[top].cursor += 1
            let op = ops[index]
            let (state, result) = step(stack[top].state, op.action)
            if let expected = op.expected {
                if expected != .any, expected != result { continue }
            } else if skipUnansweredNoOps, state == stack[top].state {
                // An operation without a reply that changes nothing here: taking it now is no
                // better than leaving it out, which it may always be, and no other operation
                // waits for it (an unanswered predecessor counts as done).
                continue
            }
            var bits = stack[top].bits
            bits[index >> 6] |= 1 << UInt64(index & 63)
            for skipped in op.predecessors where ops[skipped].expected == nil { bits[skipped >> 6] |= 1 << UInt64(skipped & 63) }
            let doneKnown = stack[top].doneKnown + (op.expected != nil ? 1 : 0)
            if doneKnown == knownCount { return .linearizable }
            guard seen.insert(Key(bits: bits, state: state)).inserted else { continue }
            steps += 1
            if steps > budget { return .unknown(steps: steps) }
            let next = candidates(bits)
            if doneKnown > best.known {
                best = (stack.dropFirst().map(\.via) + [index], state, next, doneKnown)
            }
            stack.append(Frame(bits: bits, state: state, doneKnown: doneKnown, candidates: next, via: index))
        }
        // The stuck operations: known ones not linearized after the best prefix, earliest
        // response first.
        var stuck = (0..<count).filter { index in ops[index].expected != nil && !best.prefix.contains(index) }
        stuck.sort { ops[$0].response < ops[$1].response }
        return .violation(prefix: best.prefix, state: best.state, stuck: Array(stuck.prefix(4)))
    }
}
