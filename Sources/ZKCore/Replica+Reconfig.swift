import ZKProtocol

// Dynamic reconfiguration, as ZooKeeper 3.5+ offers it.
//
// The ensemble is what the committed `/zookeeper/config` says: its participants vote, its
// observers follow without voting. `reconfig` (opcode 16) is a write: the leader checks it in
// ZooKeeper's order (enabled, not standalone, none in progress, the expected version, the new
// members parse, at least two voters, a quorum of the new voters synced with the leader, WRITE
// on `/zookeeper/config`) and proposes the new text as a change of `/zookeeper/config` — the
// transaction ZooKeeper logs, a setData with version -1, which nothing else produces. From the
// moment it is logged until it is applied, the reconfiguration is *pending*: the leader commits
// only what a quorum of the old voters and a quorum of the new voters hold, and establishes a
// new epoch only with both; elections, too, need a quorum of each configuration that may be in
// force. A replica that restarts from an older snapshot may find several reconfigurations in
// its log without knowing which committed: it requires a quorum of each. Every replica switches
// to the new configuration when it applies the transaction. A leader that is no longer a voter
// then steps down, and followers whose leader is no longer a voter elect again; servers that
// joined (or stayed on) as non-voters go on following whoever leads.

extension Replica {
    /// The configuration a transaction installs, if it is a reconfiguration.
    public static func reconfiguration(_ txn: Transaction) -> EnsembleConfig? {
        guard case .setData(let path, let data, let version) = txn.body, path == Paths.config, version == -1 else { return nil }
        return ensemble(from: data)
    }

    /// The configuration a reconfiguration left in `tree` (none while `/zookeeper/config` still
    /// holds the text the replica was started with, which no transaction wrote).
    static func reconfiguredEnsemble(in tree: DataTree) -> EnsembleConfig? {
        tree.node(Paths.config).flatMap { $0.mzxid > 0 ? ensemble(from: $0.data) : nil }
    }

    static func ensemble(from data: [UInt8]?) -> EnsembleConfig? {
        guard let data, let config = try? EnsembleConfig(parsing: String(decoding: data, as: UTF8.self)), !config.voters.isEmpty else {
            return nil
        }
        return config
    }

    /// Whether `ids` hold a quorum of every configuration that may be in force: the committed one
    /// and every pending one.
    func hasQuorum<S: Sequence<Int64>>(_ ids: S) -> Bool {
        let ids = Set(ids)
        return membership.isQuorum(ids) && pendingReconfigs.allSatisfy { $0.config.isQuorum(ids) }
    }

    /// The highest zxid that may commit, given what each replica holds durably: a quorum of the
    /// committed voters must hold it and, from each pending reconfiguration on, a quorum of its
    /// voters too.
    func committableZxid(_ holdings: [Int64: Zxid]) -> Zxid {
        var candidate = membership.quorumZxid(holdings)
        for pending in pendingReconfigs {
            guard candidate >= pending.zxid else { break }
            candidate = max(pending.zxid - 1, min(candidate, pending.config.quorumZxid(holdings)))
        }
        return candidate
    }

    /// Every server of the known configurations (a later one's entries win).
    var knownServers: [EnsembleConfig.Server] {
        var servers = membership.servers
        for pending in pendingReconfigs { servers.merge(pending.config.servers) { _, new in new } }
        return servers.keys.sorted().map { servers[$0]! }
    }

    /// Finds the reconfigurations among the logged, unapplied transactions.
    mutating func notePendingReconfig() {
        pendingReconfigs = unapplied.compactMap { txn in Self.reconfiguration(txn).map { (txn.zxid, $0) } }
    }

    /// Notes a transaction just logged (by the leader's proposal or a follower's copy).
    mutating func noteLogged(_ txn: Transaction, _ ready: inout Ready) {
        guard let config = Self.reconfiguration(txn) else { return }
        pendingReconfigs.append((txn.zxid, config))
        ready.ensembleServers = knownServers
    }

    /// A committed reconfiguration was applied.
    mutating func adopt(_ next: EnsembleConfig, at zxid: Zxid, _ ready: inout Ready) {
        membership = next
        pendingReconfigs.removeAll { $0.zxid <= zxid }
        ready.ensembleServers = knownServers
        snapshotSchedule.takeSoon()
        electAfterApplying = true
    }

    /// After applying a reconfiguration: a leader that no longer votes, or a follower whose leader
    /// no longer does, looks for the leader of the new configuration.
    var leavesAfterReconfiguration: Bool {
        switch role {
        case .leading: return !membership.isVoter(config.serverId)
        case .following(let follower): return !membership.isVoter(follower.leader)
        case .looking: return false
        }
    }

    /// Leader: checks a reconfig request and makes it a transaction (or an error).
    func prepareReconfig(_ request: ReconfigRequest, authIds: [Id]) -> TransactionBody {
        do throws(ErrorCode) {
            return try checkedReconfig(request, authIds: authIds)
        } catch {
            return .error(error)
        }
    }

    private func checkedReconfig(_ request: ReconfigRequest, authIds: [Id]) throws(ErrorCode) -> TransactionBody {
        guard config.reconfigEnabled else { throw .reconfigDisabled }
        guard case .leading(let leader) = role else { throw .systemError }
        guard pendingReconfigs.isEmpty else { throw .reconfigInProgress }
        let current = membership
        if request.currentConfigId != -1 && request.currentConfigId != current.version { throw .badVersion }
        var next: EnsembleConfig
        do throws(EnsembleConfig.ParseError) {
            if let members = request.newMembers {
                next = try EnsembleConfig(parsing: members)
                guard !next.servers.isEmpty else { throw EnsembleConfig.ParseError("no servers") }
            } else {
                next = try current.changed(joining: request.joiningServers, leaving: request.leavingServers)
            }
        } catch {
            throw .badArguments
        }
        guard next.voters.count >= 2 else { throw .badArguments }
        var synced = leader.serving
        synced.insert(config.serverId)
        guard next.isQuorum(synced) else { throw .newConfigNoQuorum }
        guard let node = prepared.node(Paths.config), ACLs.check(node.acl, .write, authIds: authIds) else { throw .noAuth }
        // The version is the zxid of the transaction: `propose` follows at once with the next one.
        next.version = Zxid.make(epoch: Int32(truncatingIfNeeded: leader.epoch), counter: leader.counter &+ 1)
        return .setData(path: Paths.config, data: Array(next.text.utf8), version: -1)
    }
}
