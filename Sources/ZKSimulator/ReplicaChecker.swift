import ZKCore
import ZKProtocol
import ZKStorage

/// A broken property: what, where, and the evidence.
public struct Violation: Sendable, CustomStringConvertible {
    public var property: String
    public var detail: String
    public var atMs: Int64
    /// The history or state around the violation, one line each.
    public var context: [String]

    public var description: String { "\(property): \(detail)" }
}

/// Collects the first violation of a run and stops the cluster there: everything after a broken
/// invariant is noise.
public final class Verdict {
    public private(set) var first: Violation?
    unowned let cluster: Cluster

    init(cluster: Cluster) { self.cluster = cluster }

    func fail(_ property: String, _ detail: String, context: [String] = []) {
        guard first == nil else { return }
        first = Violation(property: property, detail: detail, atMs: cluster.nowMs, context: context)
        cluster.halted = true
    }

    var failed: Bool { first != nil }
}

/// Checks Zab's properties from outside the replicas, after every step:
///
/// - **agreement and total order** (every replica's applied sequence is a prefix of one
///   sequence): the transaction a replica applies at a zxid is the one every other replica
///   applied there, and the zxid that follows a given one is the same everywhere;
/// - **contiguity**: applied zxids follow each other (next counter, or counter 1 of a later
///   epoch), and so do the zxids in every replica's log;
/// - **durability of commits**: the moment a transaction is first applied anywhere (committed),
///   a quorum holds it durably — in records that survive a crash now, not in an unsynced tail —
///   a quorum of the voters in force before it and, for a reconfiguration, of its new voters too;
/// - **one established leader per epoch**;
/// - **no regression**: a replica's applied state never goes back, except by restarting from
///   what its disk kept, which must itself be a committed state;
/// - **equal trees at equal zxids**, and **ephemerals only of live sessions**, at checkpoints.
final class ReplicaChecker: ClusterObserver {
    let verdict: Verdict
    /// Voters of the configuration in force, following the committed reconfigurations.
    private var voters: [Int64]
    /// Every committed transaction, by zxid.
    private(set) var committed: [Zxid: Transaction] = [:]
    /// When each was first applied: (logical time, virtual ms).
    private(set) var committedAt: [Zxid: (at: UInt64, ms: Int64)] = [:]
    /// When each session's end (its close, or its expiry by the leader) was committed.
    private(set) var sessionEnds: [Int64: (at: UInt64, ms: Int64)] = [:]
    /// The zxid applied after each zxid (0: the empty state).
    private var successor: [Zxid: Zxid] = [:]
    private var lastApplied: [Int64: Zxid] = [:]
    /// What each replica logged and has not applied yet, from the storage of its Readys: lets
    /// the checker follow transactions applied in one step beyond the replica's DIFF window.
    private var logged: [Int64: [Transaction]] = [:]
    private var wasLeader: [Int64: Bool] = [:]
    private(set) var leaderOfEpoch: [Int64: Int64] = [:]
    private var digestAt: [Zxid: (digest: UInt64, node: Int64)] = [:]
    /// The zxid each replica's tree was at when last digested: a digest walks the whole tree,
    /// so a replica that did not move is not digested again.
    private var digested: [Int64: Zxid] = [:]
    private(set) var maxCommitted: Zxid = 0
    /// Jumps that could not be followed transaction by transaction (a SNAP, or more applied in
    /// one step than the DIFF window holds).
    private(set) var unverifiedJumps = 0

    init(verdict: Verdict, voters: [Int64]) {
        self.verdict = verdict
        self.voters = voters
    }

    func cluster(_ cluster: Cluster, stepped id: Int64, input: ReplicaInput, ready: Ready) {
        for op in ready.storage {
            switch op {
            case .append(let txns): logged[id, default: []] += txns
            case .truncate(let zxid): logged[id]?.removeAll { $0.zxid > zxid }
            case .installSnapshot: logged[id] = []
            case .saveHardState: break
            }
        }
        let replica = cluster.replica(id)
        let now = replica.tree.lastZxid
        let previous = lastApplied[id] ?? 0
        if now != previous {
            if now < previous {
                verdict.fail("zab.applied-regressed", "n\(id) applied state went back from \(hex(previous)) to \(hex(now)) on \(describe(input))")
                return
            }
            var txns = replica.appliedTransactions(after: previous) ?? []
            let fromLog = (logged[id] ?? []).filter { $0.zxid > previous && $0.zxid <= now }
            if txns.last?.zxid != now || txns.first.map({ $0.zxid }) != fromLog.first?.zxid {
                // Beyond the DIFF window: what the replica logged, if it covers the whole step.
                txns = fromLog
            }
            logged[id]?.removeAll { $0.zxid <= now }
            if let first = txns.first, txns.last?.zxid == now, previous == 0 || isContiguous(previous, first.zxid) {
                var before = previous
                for txn in txns {
                    applied(txn, after: before, by: id, cluster)
                    if verdict.failed { return }
                    before = txn.zxid
                }
            } else {
                // A SNAP: the state jumped to a committed tree the replica did not apply itself.
                unverifiedJumps += 1
                if now > maxCommitted { maxCommitted = now }
            }
            lastApplied[id] = now
        }
        let leading = replica.isLeader
        if leading && wasLeader[id] != true {
            let epoch = replica.status().currentEpoch
            if let other = leaderOfEpoch[epoch], other != id {
                verdict.fail("zab.one-leader-per-epoch", "n\(id) established itself as leader of epoch \(epoch), which n\(other) already led")
                return
            }
            leaderOfEpoch[epoch] = id
        }
        wasLeader[id] = leading
    }

    private func applied(_ txn: Transaction, after previous: Zxid, by id: Int64, _ cluster: Cluster) {
        if previous != 0 || txn.zxid.counter != 1 {
            guard isContiguous(previous, txn.zxid) else {
                verdict.fail("zab.zxid-contiguity", "n\(id) applied \(hex(txn.zxid)) right after \(hex(previous))")
                return
            }
        }
        if let known = committed[txn.zxid] {
            guard known == txn else {
                verdict.fail(
                    "zab.agreement",
                    "n\(id) applied \(describe(txn.body)) (session \(hex(txn.sessionId)) cxid \(txn.cxid)) at \(hex(txn.zxid)), where another replica applied \(describe(known.body)) (session \(hex(known.sessionId)) cxid \(known.cxid))"
                )
                return
            }
        } else {
            committed[txn.zxid] = txn
            committedAt[txn.zxid] = (cluster.eventsHandled, cluster.nowMs)
            if case .closeSession = txn.body, sessionEnds[txn.sessionId] == nil {
                sessionEnds[txn.sessionId] = (cluster.eventsHandled, cluster.nowMs)
            }
            if txn.zxid > maxCommitted {
                maxCommitted = txn.zxid
                checkDurableOnQuorum(txn.zxid, of: voters, by: id, cluster)
                if let next = Replica.reconfiguration(txn) {
                    checkDurableOnQuorum(txn.zxid, of: next.voters, by: id, cluster)
                    voters = next.voters
                }
            }
        }
        if let next = successor[previous] {
            guard next == txn.zxid else {
                verdict.fail(
                    "zab.total-order",
                    "after \(hex(previous)) n\(id) applied \(hex(txn.zxid)) but another replica applied \(hex(next)): the committed sequences diverge (a committed transaction was lost or reordered)"
                )
                return
            }
        } else {
            successor[previous] = txn.zxid
        }
    }

    /// A transaction is committed once a quorum acknowledged it, and a replica acknowledges
    /// only what is durable: so when it is first applied, a quorum must hold it on disk.
    private func checkDurableOnQuorum(_ zxid: Zxid, of voters: [Int64], by id: Int64, _ cluster: Cluster) {
        let holders = voters.filter { cluster.store($0).durableZxid >= zxid }
        let quorum = voters.count / 2 + 1
        if holders.count < quorum {
            let state = cluster.members.map { "n\($0): durable \(hex(cluster.store($0).durableZxid)) logged \(hex(cluster.store($0).lastZxid))\(cluster.isUp($0) ? "" : " (down)")" }
            verdict.fail(
                "zab.commit-durable-on-quorum",
                "n\(id) applied \(hex(zxid)) as committed while only \(holders.count) of the voters \(voters) (\(holders.map { "n\($0)" })) hold it durably (quorum \(quorum))",
                context: state)
        }
    }

    func cluster(_ cluster: Cluster, crashed id: Int64) {
        checkLog(id, cluster)
        wasLeader[id] = false
    }

    func cluster(_ cluster: Cluster, restarted id: Int64) {
        digested[id] = nil
        let replica = cluster.replica(id)
        let restored = replica.tree.lastZxid
        if restored != 0 && committed[restored] == nil && restored <= maxCommitted && unverifiedJumps == 0 {
            verdict.fail("zab.recovered-state", "n\(id) restarted from a snapshot at \(hex(restored)), which was never committed")
            return
        }
        lastApplied[id] = restored
        wasLeader[id] = false
        logged[id] = (try? cluster.store(id).transactions(after: restored, limit: .max)) ?? []
        checkLog(id, cluster)
    }

    /// Zxids in a log follow each other.
    func checkLog(_ id: Int64, _ cluster: Cluster) {
        let zxids = cluster.store(id).loggedZxids
        for (a, b) in zip(zxids, zxids.dropFirst()) where !isContiguous(a, b) {
            verdict.fail("zab.log-contiguity", "n\(id)'s log holds \(hex(b)) right after \(hex(a))")
            return
        }
    }

    /// Equal trees at equal zxids, and no ephemeral outliving its session. A digest walks the
    /// whole tree, so only replicas that can be compared are digested: those at the zxid of
    /// another replica now, or of a digest taken before.
    func checkpoint(_ cluster: Cluster) {
        let up = cluster.upMembers
        var atZxid: [Zxid: Int] = [:]
        for id in up { atZxid[cluster.replica(id).tree.lastZxid, default: 0] += 1 }
        for id in up {
            let replica = cluster.replica(id)
            let tree = replica.tree
            for (owner, paths) in tree.ephemerals where tree.sessions[owner] == nil {
                let nodes = paths.sorted().map { path in
                    "\(path): \(tree.node(path).map { "\($0.kind) czxid \(hex($0.czxid))" } ?? "missing")"
                }
                verdict.fail(
                    "session.ephemerals", "n\(id) at \(hex(tree.lastZxid)) holds ephemerals \(paths.sorted()) of session \(hex(owner)), which is not live",
                    context: nodes + ["live sessions: \(tree.sessions.keys.sorted().map(hex))"])
                return
            }
            guard digested[id] != tree.lastZxid, atZxid[tree.lastZxid]! > 1 || digestAt[tree.lastZxid] != nil else { continue }
            digested[id] = tree.lastZxid
            let digest = replica.digest
            if let known = digestAt[tree.lastZxid] {
                if known.digest != digest {
                    verdict.fail(
                        "replica.digest", "n\(id) and n\(known.node) applied up to \(hex(tree.lastZxid)) but their trees differ")
                    return
                }
            } else {
                digestAt[tree.lastZxid] = (digest, id)
            }
        }
    }

    private func isContiguous(_ previous: Zxid, _ next: Zxid) -> Bool {
        if next.epoch == previous.epoch { return next == previous + 1 }
        return next.epoch > previous.epoch && next.counter == 1
    }

    /// The committed transactions in zxid order.
    var sequence: [Transaction] { committed.keys.sorted().map { committed[$0]! } }
}
