import ZKCore
import ZKProtocol

/// Checks from outside the replicas that a session's end reaches its connection: once a replica
/// has applied the end of a session (its client closed it, from any connection on any member, or
/// the leader expired it), no connection of that session stays open on that replica.
///
/// It follows the frames and closes each replica produces: a connection belongs to a session
/// from the connect response that gives it one (read-only sessions aside: they live outside the
/// tree) until the replica closes it, the client goes away, or the replica crashes. After every
/// step of a replica, each connection it still holds must belong to a session its tree still
/// has. A client left connected to a dead session is served nothing useful and never learns that
/// its session expired: with ZooKeeper's recipes it would keep a lock or a leadership that
/// another client now holds.
final class SessionChecker: ClusterObserver {
    let verdict: Verdict
    /// Per replica: its open connections that carry a session, and the session.
    private var sessionOf: [Int64: [ConnectionID: Int64]] = [:]

    init(verdict: Verdict) { self.verdict = verdict }

    func cluster(_ cluster: Cluster, stepped id: Int64, input: ReplicaInput, ready: Ready) {
        var held = sessionOf[id] ?? [:]
        if case .connectionClosed(let connection) = input { held[connection] = nil }
        for outgoing in ready.frames {
            if case .connect(let response) = outgoing.frame, response.timeoutMs > 0, response.readOnly != true {
                held[outgoing.connection] = response.sessionId
            }
        }
        for connection in ready.close { held[connection] = nil }
        sessionOf[id] = held
        guard !held.isEmpty, let tree = cluster.nodes[id]?.replica.tree else { return }
        for (connection, session) in held.sorted(by: { $0.key < $1.key }) where tree.sessions[session] == nil {
            verdict.fail(
                "sessions.connection-after-end",
                "n\(id) keeps connection c\(connection) of session \(hex(session)) open after applying its end (at \(hex(tree.lastZxid)))")
            return
        }
    }

    func cluster(_ cluster: Cluster, crashed id: Int64) { sessionOf[id] = nil }

    func cluster(_ cluster: Cluster, restarted id: Int64) { sessionOf[id] = nil }
}
