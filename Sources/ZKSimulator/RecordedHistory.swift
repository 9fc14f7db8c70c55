import ZKCore
import ZKProtocol

/// A history recorded outside the simulator, by real clients against real member processes
/// (`minizk chaos-client`), judged by the simulator's own linearizability search.
///
/// The recorder is the caller's: it calls `invoke` just before a request leaves and `respond`
/// just after its answer arrives, under one lock, so the history's logical clock orders every
/// invocation and response as they happened in real time (two never tie). Wall-clock
/// milliseconds are kept beside them for the report only; nothing here reads a clock.
///
/// An operation whose outcome the client cannot know (connection lost, session expired, no
/// answer by the end) is never `respond`ed: it stays open, and the search lets it take effect at
/// any time after it was sent, or never.
///
/// Final reads, made after every fault was healed and every workload client stopped, are judged
/// strictly: unlike ordinary ZooKeeper reads they may not return a state older than their
/// invocation (each is preceded by a `sync` on its member), so a write that was acknowledged and
/// then lost shows as a violation even when nothing read it during the run.
public final class RecordedHistory {
    public let history = History()
    private var finalEntries: Set<Int> = []

    public init() {}

    /// An operation about to be sent; returns its entry id.
    public func invoke(client: Int, session: Int64, connection: ConnectionID, xid: Int32 = 0, _ operation: Operation, wallMs: Int64, final: Bool = false) -> Int {
        let id = history.begin(client: client, session: session, connection: connection, xid: xid, operation, atMs: wallMs)
        if final { finalEntries.insert(id) }
        return id
    }

    /// The answer to entry `id`: a result, or one of the errors the model knows (noNode,
    /// nodeExists, badVersion). Anything else leaves the entry open.
    public func respond(_ id: Int, _ outcome: Outcome, zxid: Zxid = 0, wallMs: Int64) {
        precondition(history.entries[id].response == nil, "entry \(id) answered twice")
        history.end(id, outcome, zxid: zxid, atMs: wallMs)
    }

    /// A session the client just opened: from here on its ephemerals may vanish with it.
    public func sessionStarted(_ id: Int64, client: Int, timeoutMs: Int64) {
        history.sessions[id] = SessionRecord(id: id, client: client, timeoutMs: timeoutMs, start: history.tick())
    }

    /// The client learned its session ended (expired, or closed by the client without knowing
    /// whether the close was answered). The session's end stays optional in the search: its
    /// ephemerals may vanish at any time after it started.
    public func sessionEnded(_ id: Int64) {
        if history.sessions[id]?.end == nil { history.sessions[id]?.end = history.tick() }
    }

    public var entries: [HistoryEntry] { history.entries }

    public struct Report: Sendable {
        public var paths = 0
        public var operations = 0
        /// Paths whose search ran out of budget: neither proved nor refuted.
        public var unknownPaths: [String] = []
        /// The first violation, with the evidence, if there is one.
        public var violation: Violation?
    }

    /// Runs the per-path Wing–Gong–Lowe search of `Linearizability` over the history, with the
    /// register model and ZooKeeper's ordering rules of `HistoryChecker.partitions`.
    public func checkLinearizability(budget: Int) -> Report {
        let checker = HistoryChecker(
            history: history, committed: [:], committedAt: [:], liveSessions: [], openConnections: [], budget: budget)
        var partitions = checker.partitions()
        var report = Report()
        for path in partitions.keys.sorted() {
            for index in partitions[path]!.indices {
                if let entry = partitions[path]![index].entry, finalEntries.contains(entry) { partitions[path]![index].relaxed = false }
            }
            let ops = partitions[path]!
            report.paths += 1
            report.operations += ops.count
            switch Linearizability.check(ops, budget: budget) {
            case .linearizable:
                continue
            case .unknown:
                report.unknownPaths.append(path)
            case .violation(let prefix, let state, let stuck):
                let context = HistoryChecker.violationContext(path: path, ops: ops, prefix: prefix, state: state, stuck: stuck)
                report.violation = Violation(
                    property: "linearizability", detail: "the history of \(path) is not linearizable (\(ops.count) operations)",
                    atMs: 0, context: context)
                return report
            }
        }
        return report
    }
}
