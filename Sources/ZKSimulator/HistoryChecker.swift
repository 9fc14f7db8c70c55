import ZKCore
import ZKProtocol

/// The checks that read the whole history once the run is over: linearizability per path,
/// sequential znodes, watches, and acknowledged writes against the committed sequence.
struct HistoryChecker {
    let history: History
    let committed: [Zxid: Transaction]
    let committedAt: [Zxid: (at: UInt64, ms: Int64)]
    /// Sessions known to be live at the end (their client is connected and answered).
    let liveSessions: Set<Int64>
    /// Connections still open at the end, whose pending watches must have fired.
    let openConnections: Set<ConnectionID>
    var budget = 200_000

    struct Summary {
        var paths = 0
        var operations = 0
        var unknownPaths: [String] = []
        var readsChecked: Int?
    }

    // MARK: - Linearizability

    /// Splits the history into one register history per path.
    func partitions() -> [String: [Linearizability.Op]] {
        var byPath: [String: [Linearizability.Op]] = [:]
        var pendingSequential: [String: [Linearizability.Op]] = [:]
        var ephemeralOwners: [String: Set<Int64>] = [:]

        func add(_ path: String, _ action: Linearizability.Action, relaxed: Bool, _ entry: HistoryEntry, _ expected: Linearizability.Result?) {
            byPath[path, default: []].append(
                Linearizability.Op(
                    action: action, relaxed: relaxed, invoke: entry.invoke, response: entry.response ?? .max, expected: expected,
                    session: entry.session, connection: entry.connection, entry: entry.id, label: entry.line))
        }

        for entry in history.entries {
            switch entry.operation {
            case .create(let path, let data, let ephemeral, let sequential):
                let action = Linearizability.Action.create(data: data, owner: ephemeral ? entry.session : 0)
                if ephemeral && !sequential { ephemeralOwners[path, default: []].insert(entry.session) }
                if sequential {
                    switch entry.outcome {
                    case .ok(.create(let created)), .ok(.create2(let created, _)):
                        add(created, action, relaxed: false, entry, .ok)
                    case .unknown:
                        pendingSequential[Paths.parent(of: path) ?? "/", default: []].append(
                            Linearizability.Op(
                                action: action, relaxed: false, invoke: entry.invoke, response: .max, expected: nil,
                                session: entry.session, connection: entry.connection, entry: entry.id, label: entry.line))
                    default:
                        break
                    }
                } else if let expected = expected(entry.outcome, for: action) {
                    add(path, action, relaxed: false, entry, expected)
                } else if entry.outcome == .unknown {
                    add(path, action, relaxed: false, entry, nil)
                }
            case .setData, .delete, .check:
                guard let (path, action) = Self.registerAction(entry.operation) else { continue }
                if entry.outcome == .unknown {
                    add(path, action, relaxed: false, entry, nil)
                } else if let expected = expected(entry.outcome, for: action) {
                    add(path, action, relaxed: false, entry, expected)
                }
            case .getData(let path, _):
                if let expected = expected(entry.outcome, for: .read) { add(path, .read, relaxed: true, entry, expected) }
            case .exists(let path, _):
                if let expected = expected(entry.outcome, for: .exists) { add(path, .exists, relaxed: true, entry, expected) }
            case .multi(let subs):
                switch entry.outcome {
                case .unknown:
                    for sub in subs {
                        if let (path, action) = Self.registerAction(sub) { add(path, action, relaxed: false, entry, nil) }
                    }
                case .ok(.multi(let results)) where results.count == subs.count:
                    let failed = results.contains { if case .error = $0 { return true } else { return false } }
                    for (sub, result) in zip(subs, results) {
                        guard let (path, action) = Self.registerAction(sub) else { continue }
                        if failed {
                            // Only the operation that failed says something about its path.
                            if case .error(let code) = result, Linearizability.modeledErrors.contains(code) {
                                add(path, action, relaxed: false, entry, .error(code))
                            }
                        } else if let expected = Self.expected(result, for: action) {
                            add(path, action, relaxed: false, entry, expected)
                        }
                    }
                default:
                    break
                }
            case .getChildren, .sync, .closeSession:
                continue
            }
        }

        // Sequential children whose create was never answered: any such create may be the one
        // that made them.
        for (path, ops) in byPath {
            guard let parent = Paths.parent(of: path), let pending = pendingSequential[parent], !pending.isEmpty else { continue }
            let known = ops.contains { if case .create = $0.action, $0.expected != nil { return true } else { return false } }
            if !known { byPath[path]! += pending }
        }

        // Ephemerals vanish with their owner's session.
        for path in byPath.keys.sorted() {
            guard let owners = ephemeralOwners[path] else { continue }
            for owner in owners.sorted() where !liveSessions.contains(owner) {
                guard let session = history.sessions[owner] else { continue }
                let known = session.closedByClient ? session.end : nil
                byPath[path]!.append(
                    Linearizability.Op(
                        action: .sessionEnd(owner: owner), relaxed: false, invoke: session.start, response: known ?? .max,
                        expected: known != nil ? .any : nil, session: 0, connection: 0, entry: nil,
                        label: "session \(hex(owner)) ends\(known != nil ? " (closed by its client)" : "")"))
            }
        }

        for path in byPath.keys {
            var ops = byPath[path]!
            ops.sort { $0.invoke < $1.invoke }
            // FIFO client order and the session's view of its own history.
            var bySession: [Int64: [Int]] = [:]
            for (index, op) in ops.enumerated() where op.session != 0 { bySession[op.session, default: []].append(index) }
            for (_, indices) in bySession {
                for i in indices {
                    for j in indices where j < i {
                        let a = ops[j]
                        let b = ops[i]
                        let sameConnection = a.connection == b.connection
                        if sameConnection || (b.relaxed && a.response < b.invoke) {
                            ops[i].predecessors.append(j)
                        }
                    }
                }
            }
            byPath[path] = ops
        }
        return byPath
    }

    static func registerAction(_ operation: Operation) -> (String, Linearizability.Action)? {
        switch operation {
        case .create(let path, let data, _, false): return (path, .create(data: data, owner: 0))
        case .setData(let path, let data, let version): return (path, .set(data: data, version: version))
        case .delete(let path, let version): return (path, .delete(version: version))
        case .check(let path, let version): return (path, .check(version: version))
        default: return nil
        }
    }

    func expected(_ outcome: Outcome, for action: Linearizability.Action) -> Linearizability.Result? {
        switch outcome {
        case .unknown:
            return nil
        case .failed(let code):
            return Linearizability.modeledErrors.contains(code) ? .error(code) : nil
        case .ok(let response):
            switch (action, response) {
            case (.create, _), (.delete, _), (.check, _): return .ok
            case (.set, .stat(let stat)): return .version(stat.version)
            case (.read, .getData(let data, let stat)): return .read(data: data, version: stat.version)
            case (.exists, .stat(let stat)): return .version(stat.version)
            default: return nil
            }
        }
    }

    static func expected(_ result: MultiResult, for action: Linearizability.Action) -> Linearizability.Result? {
        switch (action, result) {
        case (.create, .create), (.create, .create2), (.delete, .delete), (.check, .check): return .ok
        case (.set, .setData(let stat)): return .version(stat.version)
        default: return nil
        }
    }

    /// Runs the search on every path; the first violation wins.
    func checkLinearizability(into verdict: Verdict) -> Summary {
        var summary = Summary()
        let partitions = partitions()
        for path in partitions.keys.sorted() {
            let ops = partitions[path]!
            summary.paths += 1
            summary.operations += ops.count
            switch Linearizability.check(ops, budget: budget) {
            case .linearizable:
                continue
            case .unknown:
                summary.unknownPaths.append(path)
            case .violation(let prefix, let state, let stuck):
                let context = Self.violationContext(path: path, ops: ops, prefix: prefix, state: state, stuck: stuck)
                verdict.fail(
                    "linearizability", "the history of \(path) is not linearizable (\(ops.count) operations)", context: context)
                return summary
            }
        }
        return summary
    }

    /// The evidence of a path whose history is not linearizable: the end of the longest
    /// linearization found, the state it leaves, the operations that cannot follow it (with the
    /// same-session operations each must follow), and the operations around them.
    static func violationContext(path: String, ops: [Linearizability.Op], prefix: [Int], state: Linearizability.Register, stuck: [Int]) -> [String] {
        var context = ["path \(path): \(ops.count) operations; the longest linearization found ends with:"]
        for index in prefix.suffix(8) { context.append("  \(ops[index].label)") }
        context.append("  -> state: \(state.line)")
        context.append("none of these can follow it:")
        for index in stuck {
            context.append("  \(ops[index].label)")
            let after = ops[index].predecessors.filter { !prefix.contains($0) }
            if !after.isEmpty {
                context.append("    (must follow, same session: " + after.map { "[\(ops[$0].invoke)] conn \(ops[$0].connection)" }.joined(separator: ", ") + "; this one on conn \(ops[index].connection))")
            }
        }
        context.append("all operations on the path, by invocation:")
        let first = max(0, (stuck.first ?? 0) - 12)
        for op in ops[first..<min(ops.count, first + 30)] { context.append("  \(op.label)") }
        return context
    }

    // MARK: - Sequential znodes

    /// Sequential children get unique numbers that grow in real-time order, and a sequential
    /// create never fails because its name was taken.
    func checkSequential(into verdict: Verdict) {
        var created: [(invoke: UInt64, response: UInt64, number: Int, line: String)] = []
        var names: [String: String] = [:]
        for entry in history.entries {
            guard case .create(_, _, _, true) = entry.operation else { continue }
            switch entry.outcome {
            case .ok(.create(let path)), .ok(.create2(let path, _)):
                if let other = names[path] {
                    verdict.fail("sequential.unique", "two sequential creates got \(path)", context: [other, entry.line])
                    return
                }
                names[path] = entry.line
                let number = Int(path.suffix(10)) ?? -1
                created.append((entry.invoke, entry.response!, number, entry.line))
            case .failed(.nodeExists):
                verdict.fail("sequential.unique", "a sequential create failed with NODEEXISTS", context: [entry.line])
                return
            default:
                break
            }
        }
        let byResponse = created.sorted { $0.response < $1.response }
        var highest: (number: Int, line: String)? = nil
        var next = 0
        for op in created.sorted(by: { $0.invoke < $1.invoke }) {
            while next < byResponse.count && byResponse[next].response < op.invoke {
                if highest == nil || byResponse[next].number > highest!.number { highest = (byResponse[next].number, byResponse[next].line) }
                next += 1
            }
            if let highest, op.number <= highest.number {
                verdict.fail(
                    "sequential.order", "a sequential create sent after another was answered got a lower number",
                    context: [highest.line, op.line])
                return
            }
        }
    }

    // MARK: - Acknowledged writes

    /// Every answered write is the committed transaction at the zxid of its reply.
    func checkAcknowledgedWrites(into verdict: Verdict) {
        for entry in history.entries where entry.operation.isWrite {
            guard let zxid = entry.replyZxid else { continue }
            switch entry.outcome {
            case .ok: break
            case .failed(let code) where Linearizability.modeledErrors.contains(code): break
            default: continue
            }
            guard let txn = committed[zxid] else {
                verdict.fail("zab.acknowledged-write-lost", "a write was answered at \(hex(zxid)), which no replica applied", context: [entry.line])
                return
            }
            guard txn.sessionId == entry.session, txn.cxid == entry.xid else {
                verdict.fail(
                    "zab.acknowledged-write-lost",
                    "a write was answered at \(hex(zxid)), but the committed transaction there is \(describe(txn.body)) of session \(hex(txn.sessionId)) cxid \(txn.cxid)",
                    context: [entry.line])
                return
            }
        }
    }

    // MARK: - Watches

    /// The events a transaction fires, in the order a replica fires them.
    static func triggers(_ body: TransactionBody) -> [(String, EventType)] {
        switch body {
        case .create(let path, _, _, _):
            return [(path, .nodeCreated), (Paths.parent(of: path) ?? "/", .nodeChildrenChanged)]
        case .delete(let path):
            return [(path, .nodeDeleted), (Paths.parent(of: path) ?? "/", .nodeChildrenChanged)]
        case .setData(let path, _, _):
            return [(path, .nodeDataChanged)]
        case .closeSession(let paths):
            return paths.flatMap { [($0, EventType.nodeDeleted), (Paths.parent(of: $0) ?? "/", .nodeChildrenChanged)] }
        case .multi(let bodies):
            return bodies.flatMap(triggers)
        default:
            return []
        }
    }

    /// A watch fires for the first change after it was set, with that change's type, not before
    /// the change is committed, and before its client sees any reply from after the change; a
    /// watch on a connection still open at the end has fired if a change came.
    func checkWatches(into verdict: Verdict) {
        var changes: [String: [(zxid: Zxid, type: EventType)]] = [:]
        for zxid in committed.keys.sorted() {
            for (path, type) in Self.triggers(committed[zxid]!.body) { changes[path, default: []].append((zxid, type)) }
        }
        for watch in history.watches {
            let fitting = (changes[watch.path] ?? []).filter { change in
                change.zxid > watch.zxid && SimClient.fires(change.type, watch.kind)
            }
            var relevant = fitting.first
            var immediate = false
            if watch.reregistered {
                // setWatches2 fires at once what the member finds changed since the relative zxid,
                // judged by the node as it is then: a node changed and then deleted fires
                // nodeDeleted, one deleted and created again nodeDataChanged (its mzxid is newer),
                // one created and deleted again nothing. Such an event comes before the reply to
                // the setWatches2 and must match some change after the relative zxid. A watch the
                // member registered instead is an ordinary watch set at the zxid of that reply.
                let answered = history.repliesByConnection[watch.connection]?.first { $0.at > watch.setAt }
                if let fired = watch.fired, answered.map({ fired.at < $0.at }) ?? true {
                    immediate = true
                    relevant = (changes[watch.path] ?? []).first { change in
                        change.zxid > watch.zxid
                            && (change.type.rawValue == fired.type
                                || (fired.type == EventType.nodeDataChanged.rawValue && change.type == .nodeCreated))
                    }
                } else {
                    relevant = answered.flatMap { answered in fitting.first { $0.zxid > answered.zxid } }
                }
            }
            let label = "client \(watch.client) \(watch.kind) watch on \(watch.path) set at \(hex(watch.zxid)) on connection \(watch.connection)"
            guard let fired = watch.fired else {
                if let relevant, openConnections.contains(watch.connection) {
                    verdict.fail("client.watch", "\(label) never fired, though \(relevant.type) at \(hex(relevant.zxid)) changed it")
                    return
                }
                continue
            }
            let firedType = EventType(rawValue: fired.type).map { "\($0)" } ?? "\(fired.type)"
            guard let relevant else {
                verdict.fail("client.watch", "\(label) fired \(firedType), but nothing changed the path after it was set")
                return
            }
            guard relevant.type.rawValue == fired.type || immediate else {
                verdict.fail("client.watch", "\(label) fired \(firedType), but the first change after it was \(relevant.type) at \(hex(relevant.zxid))")
                return
            }
            if let committedAt = committedAt[relevant.zxid], committedAt.at > fired.at {
                verdict.fail("client.watch", "\(label) fired \(firedType) before \(hex(relevant.zxid)) was committed")
                return
            }
            for reply in history.repliesByConnection[watch.connection] ?? [] where reply.at < fired.at && reply.at > watch.setAt && reply.zxid >= relevant.zxid {
                verdict.fail(
                    "client.watch",
                    "\(label): the client saw a reply at \(hex(reply.zxid)) before the \(firedType) event for \(hex(relevant.zxid))")
                return
            }
        }
    }
}
