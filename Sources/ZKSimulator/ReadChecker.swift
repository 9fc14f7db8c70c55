import ZKCore
import ZKProtocol

/// Every read answered at zxid Z returns the committed state at Z.
///
/// A reply carries the zxid of the state the replica answered from (its last applied
/// transaction). The checker replays the committed sequence (as the replicas applied it, agreed
/// by `ReplicaChecker`) into its own small model of the tree — paths, data, versions and
/// children, nothing else — and compares every answered getData, exists and getChildren with the
/// model at the read's zxid. This is stronger than the linearizability search for reads (which
/// only knows what clients saw) and covers getChildren, which that search leaves out; it trusts
/// the zxid in the reply, which the other checks keep honest (zxids never go back in a session,
/// writes are the committed transactions at the zxids of their replies).
struct ReadChecker {
    struct Node {
        var data: [UInt8]?
        var version: Int32
    }

    private var nodes: [String: Node] = [:]
    private var children: [String: Set<String>] = [:]

    /// Runs the check; the first read that differs is a violation. Returns the number of reads
    /// checked, or nil when the committed sequence has a gap (a jump no replica made one
    /// transaction at a time), in which case nothing is checked.
    static func check(history: History, committed: [Zxid: Transaction], into verdict: Verdict) -> Int? {
        let zxids = committed.keys.sorted()
        for (a, b) in zip(zxids, zxids.dropFirst()) where !Self.follows(a, b) { return nil }
        if let first = zxids.first, first.counter != 1 { return nil }
        var reads = history.entries.filter { entry in
            guard let zxid = entry.replyZxid, zxid > 0 else { return false }
            switch (entry.operation, entry.outcome) {
            case (.getData, .ok), (.getData, .failed(.noNode)), (.exists, .ok), (.exists, .failed(.noNode)),
                (.getChildren, .ok), (.getChildren, .failed(.noNode)):
                return true
            default:
                return false
            }
        }
        reads.sort { $0.replyZxid! < $1.replyZxid! }
        var model = ReadChecker()
        var next = 0
        for read in reads {
            let at = read.replyZxid!
            while next < zxids.count && zxids[next] <= at {
                model.apply(committed[zxids[next]]!.body, sessionId: committed[zxids[next]]!.sessionId)
                next += 1
            }
            if next == 0 || zxids[next - 1] != at {
                verdict.fail("read.committed-state", "a read was answered at \(hex(at)), which is not a committed zxid", context: [read.line])
                return reads.count
            }
            if let problem = model.differs(read) {
                verdict.fail(
                    "read.committed-state", "a read answered at \(hex(at)) does not show the committed state there: \(problem)",
                    context: [read.line])
                return reads.count
            }
        }
        return reads.count
    }

    static func follows(_ previous: Zxid, _ next: Zxid) -> Bool {
        if next.epoch == previous.epoch { return next == previous + 1 }
        return next.epoch > previous.epoch && next.counter == 1
    }

    mutating func apply(_ body: TransactionBody, sessionId: Int64) {
        switch body {
        case .create(let path, let data, _, _):
            nodes[path] = Node(data: data, version: 0)
            if let parent = Paths.parent(of: path) { children[parent, default: []].insert(Paths.name(of: path)) }
        case .delete(let path):
            remove(path)
        case .setData(let path, let data, let version):
            nodes[path] = Node(data: data, version: version)
        case .closeSession(let paths):
            for path in paths { remove(path) }
        case .multi(let bodies):
            for body in bodies { apply(body, sessionId: sessionId) }
        case .createSession, .setACL, .check, .error, .failedMulti:
            break
        }
    }

    private mutating func remove(_ path: String) {
        nodes[path] = nil
        if let parent = Paths.parent(of: path) { children[parent]?.remove(Paths.name(of: path)) }
    }

    /// Nodes the workload does not create (the setup's parents are created through the log
    /// too; `/` and `/zookeeper` are not): reads of them are not checked.
    private func known(_ path: String) -> Bool { path.count > 1 && !path.hasPrefix("/zookeeper") }

    func differs(_ read: HistoryEntry) -> String? {
        switch (read.operation, read.outcome) {
        case (.getData(let path, _), .ok(.getData(let data, let stat))):
            guard known(path) else { return nil }
            guard let node = nodes[path] else { return "\(path) does not exist there" }
            if node.data != data || node.version != stat.version {
                return "\(path) is \(describe(data: node.data)) v\(node.version) there"
            }
        case (.getData(let path, _), .failed(.noNode)), (.exists(let path, _), .failed(.noNode)),
            (.getChildren(let path, _), .failed(.noNode)):
            guard known(path) else { return nil }
            if let node = nodes[path] { return "\(path) exists there (v\(node.version))" }
        case (.exists(let path, _), .ok(.stat(let stat))):
            guard known(path) else { return nil }
            guard let node = nodes[path] else { return "\(path) does not exist there" }
            if node.version != stat.version { return "\(path) is at v\(node.version) there" }
        case (.getChildren(let path, _), .ok(.getChildren(let names))):
            guard known(path) else { return nil }
            guard nodes[path] != nil else { return "\(path) does not exist there" }
            let expected = (children[path] ?? []).sorted()
            if expected != names.sorted() { return "\(path) has children \(expected) there, not \(names.sorted())" }
        default:
            return nil
        }
        return nil
    }
}
