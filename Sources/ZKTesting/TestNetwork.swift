import NIOConcurrencyHelpers
import ZKCore
import ZKServer

/// The peer transport of a `TestEnsemble`: replicas in one process hand each other messages
/// directly (as `InProcessNetwork` does), and links between them can be cut and restored.
///
/// Cutting a link is what a firewall that resets connections does: both replicas hear at once
/// that the connection broke (`.peerDisconnected`), messages queued on it are lost, and nothing
/// passes until the link is restored, when both hear `.peerConnected` again, as a transport that
/// redials would report. (The simulator's partitions behave the same way.)
final class TestNetwork: PeerTransport, @unchecked Sendable {
    private struct Link: Hashable {
        var low: Int64
        var high: Int64
        init(_ a: Int64, _ b: Int64) {
            low = min(a, b)
            high = max(a, b)
        }
    }

    private let lock = NIOLock()
    private var members: [Int64: @Sendable ([ReplicaInput]) -> Void] = [:]
    private var pending: [Int64: [Int64: [ReplicaInput]]] = [:]
    private var cut: Set<Link> = []

    init() {}

    func attach(serverId: Int64, deliver: @escaping @Sendable ([ReplicaInput]) -> Void) {
        let reachable: [(Int64, @Sendable ([ReplicaInput]) -> Void)] = lock.withLock {
            let others = members.filter { !cut.contains(Link($0.key, serverId)) }.map { ($0.key, $0.value) }
            members[serverId] = deliver
            return others
        }
        for (peer, peerDeliver) in reachable.sorted(by: { $0.0 < $1.0 }) {
            peerDeliver([.peerConnected(serverId)])
            deliver([.peerConnected(peer)])
        }
    }

    func send(_ outgoing: PeerOutgoing, from serverId: Int64) {
        lock.withLock {
            guard members[serverId] != nil, members[outgoing.to] != nil, !cut.contains(Link(serverId, outgoing.to)) else { return }
            pending[serverId, default: [:]][outgoing.to, default: []].append(.peerMessage(from: serverId, outgoing.message))
        }
    }

    func flush(from serverId: Int64) {
        let batches: [(@Sendable ([ReplicaInput]) -> Void, [ReplicaInput])] = lock.withLock {
            guard let queued = pending.removeValue(forKey: serverId) else { return [] }
            return queued.sorted(by: { $0.key < $1.key }).compactMap { target, inputs in
                members[target].map { ($0, inputs) }
            }
        }
        for (deliver, inputs) in batches { deliver(inputs) }
    }

    func detach(serverId: Int64) {
        let others: [@Sendable ([ReplicaInput]) -> Void] = lock.withLock {
            members[serverId] = nil
            pending[serverId] = nil
            for key in pending.keys { pending[key]?[serverId] = nil }
            return members.filter { !cut.contains(Link($0.key, serverId)) }.map(\.value)
        }
        for deliver in others { deliver([.peerDisconnected(serverId)]) }
    }

    /// Makes `groups` the only groups whose members reach each other: every link between two
    /// different groups is cut, every link inside a group is restored. Members named in no group
    /// are cut off from everyone.
    func partition(_ groups: [[Int64]], allMembers: [Int64]) {
        var groupOf: [Int64: Int] = [:]
        for (index, group) in groups.enumerated() { for id in group { groupOf[id] = index } }
        var wanted: Set<Link> = []
        for a in allMembers {
            for b in allMembers where a < b {
                if groupOf[a] == nil || groupOf[a] != groupOf[b] { wanted.insert(Link(a, b)) }
            }
        }
        setCut(wanted)
    }

    /// Restores every link.
    func heal() { setCut([]) }

    private func setCut(_ wanted: Set<Link>) {
        let notices: [(@Sendable ([ReplicaInput]) -> Void, ReplicaInput)] = lock.withLock {
            var notices: [(@Sendable ([ReplicaInput]) -> Void, ReplicaInput)] = []
            let broken = wanted.subtracting(cut)
            let restored = cut.subtracting(wanted)
            cut = wanted
            for link in broken.sorted(by: { ($0.low, $0.high) < ($1.low, $1.high) }) {
                pending[link.low]?[link.high] = nil
                pending[link.high]?[link.low] = nil
                if let low = members[link.low], let high = members[link.high] {
                    notices.append((low, .peerDisconnected(link.high)))
                    notices.append((high, .peerDisconnected(link.low)))
                }
            }
            for link in restored.sorted(by: { ($0.low, $0.high) < ($1.low, $1.high) }) {
                if let low = members[link.low], let high = members[link.high] {
                    notices.append((low, .peerConnected(link.high)))
                    notices.append((high, .peerConnected(link.low)))
                }
            }
            return notices
        }
        for (deliver, input) in notices { deliver([input]) }
    }

    /// The links cut now, as pairs (low id, high id).
    var cutLinks: [(Int64, Int64)] {
        lock.withLock { cut.map { ($0.low, $0.high) }.sorted { $0 < $1 } }
    }
}
