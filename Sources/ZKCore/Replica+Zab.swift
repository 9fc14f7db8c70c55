import DequeModule
import ZKProtocol

// Zab, as the replica runs it.
//
// Election (see `LeaderElection`) picks the replica with the newest history. Then:
//
// 1. Discovery. Followers send FOLLOWERINFO (accepted epoch, last zxid). Once a quorum (the
//    leader included) has, the leader picks an epoch above every accepted epoch, persists it as
//    its own accepted epoch and sends LEADERINFO. A follower persists the epoch as accepted
//    (refusing one older than what it accepted) *before* answering ACKEPOCH with its current
//    epoch and last zxid. A leader that learns of a newer history than its own gives up.
// 2. Synchronisation. With a quorum of ACKEPOCHs the leader's log is the epoch's initial history.
//    Each follower gets a plan: DIFF (the transactions it lacks), TRUNC (drop an uncommitted
//    suffix the leader does not have, then DIFF) or SNAP (the leader's committed tree, then
//    DIFF), followed by NEWLEADER. The follower makes all of it durable and takes the epoch as
//    its current one *before* acknowledging NEWLEADER. A quorum of acknowledgements commits the
//    whole initial history; UPTODATE starts service.
// 3. Broadcast. The leader proposes each write with zxid (epoch << 32 | counter) to every synced
//    follower, many in flight; a follower acknowledges (cumulatively) only what is durable; a
//    quorum of acknowledgements commits, in zxid order, and COMMIT tells the followers.
//
// Heartbeats every tick keep both sides honest: a follower that hears nothing from its leader
// for `syncLimit` ticks, or loses the connection to it, and a leader that no longer hears from a
// quorum, go back to election. Followers that join an established leader go through the same
// discovery and synchronisation and are added to the broadcast from the moment their plan is
// sent, so nothing proposed later passes them by.

extension Replica {
    enum Role {
        case looking(LeaderElection)
        case following(FollowerState)
        case leading(LeaderState)

        /// Holds nothing: stands in `role` while a state is changed in place (`modifyLeader`).
        static let vacant = Role.looking(
            LeaderElection(
                me: 0, voterSets: [], round: 0, vote: Vote(leader: 0, zxid: 0, epoch: 0), nowMs: 0, finalizeWaitMs: 0,
                resendMinMs: 0, resendMaxMs: 0))
    }

    /// Changes the leader's state where it lies, returning what `body` returns; nil when not
    /// leading. A `case .leading(var leader) = role` copy shares its collections with `role`, so
    /// each change to one of them copies it whole; here the state is moved out of `role` first.
    /// `body` must not look at `role` (it holds `Role.vacant` meanwhile).
    @discardableResult
    mutating func modifyLeader<Result>(_ body: (inout LeaderState) -> Result) -> Result? {
        guard case .leading(var leader) = role else { return nil }
        role = .vacant
        defer { role = .leading(leader) }
        return body(&leader)
    }

    /// `modifyLeader` for the follower's state.
    @discardableResult
    mutating func modifyFollower<Result>(_ body: (inout FollowerState) -> Result) -> Result? {
        guard case .following(var follower) = role else { return nil }
        role = .vacant
        defer { role = .following(follower) }
        return body(&follower)
    }

    struct FollowerState {
        enum Phase { case discovery, synchronizing, awaitingUpToDate, broadcast }
        var leader: Int64
        var vote: Vote
        var phase: Phase = .discovery
        var epoch: Int64 = 0
        var lastHeardMs: Int64
        var deadlineMs: Int64
        var newLeaderAcked = false
        var ackedZxid: Zxid = 0
        var touched: Set<Int64> = []
        /// Names this discovery (see `DurableAction`).
        var discovery: UInt64 = 0
    }

    struct LeaderState {
        var vote: Vote
        /// The new epoch; 0 until a quorum of followers told their accepted epochs.
        var epoch: Int64 = 0
        var infos: [Int64: (acceptedEpoch: Int64, lastZxid: Zxid)] = [:]
        var epochAcked: [Int64: (currentEpoch: Int64, lastZxid: Zxid)] = [:]
        var syncStarted = false
        /// End of the initial history, committed once a quorum acknowledged NEWLEADER.
        var historyZxid: Zxid = 0
        var newLeaderAcked: Set<Int64> = []
        var established = false
        /// Followers that receive proposals and commits (from their sync plan on).
        var forwarding: Set<Int64> = []
        /// Followers that were told UPTODATE.
        var serving: Set<Int64> = []
        /// Last zxid each follower (and the leader itself) holds durably.
        var acked: [Int64: Zxid] = [:]
        var lastHeardMs: [Int64: Int64] = [:]
        var counter: Int32 = 0
        var barriers: Deque<(zxid: Zxid, peer: Int64, token: UInt64)> = []
        var deadlineMs: Int64
        /// Client writes (local or forwarded) that arrived while `proposalsInFlightMax` proposals
        /// were outstanding, in arrival order; prepared and proposed as commits make room.
        var waitingWrites: Deque<WaitingWrite> = []
    }

    /// What the leader holds back while `proposalsInFlightMax` proposals are outstanding (see
    /// `submitWrite`): client writes, and the barriers (syncs) forwarded after them, which must
    /// not be answered before the writes ahead of them are committed.
    enum WaitingWrite {
        case write(sessionId: Int64, header: RequestHeader, request: Request, authIds: [Id])
        case barrier(peer: Int64, token: UInt64)
    }

    // MARK: - Election

    /// Leaves service (closing every client connection) and starts a new election round.
    mutating func startElection(_ ready: inout Ready) {
        closeAllConnections(reason: "replica is electing a leader", &ready)
        sessions.removeAll()
        pendingRevalidations.removeAll()
        readOnlySessions.removeAll()
        lookingSinceMs = nowMs
        prepared = tree
        round += 1
        // Only voters elect, with a quorum of every configuration that may be in force; a
        // non-voter starts with the least vote, takes up the voters' choice and never counts itself.
        let voterSets = [membership.voters] + pendingReconfigs.map(\.config.voters)
        let vote = voterSets.joined().contains(config.serverId)
            ? Vote(leader: config.serverId, zxid: lastLoggedZxid, epoch: hard.currentEpoch)
            : Vote(leader: config.serverId, zxid: 0, epoch: -1)
        var election = LeaderElection(
            me: config.serverId, voterSets: voterSets, round: round, vote: vote, nowMs: nowMs,
            finalizeWaitMs: config.electionFinalizeWaitMs, resendMinMs: config.electionResendMinMs,
            resendMaxMs: config.electionResendMaxMs)
        let step = election.start(nowMs: nowMs)
        role = .looking(election)
        handle(step, &ready)
    }

    private mutating func handle(_ step: LeaderElection.Step, _ ready: inout Ready) {
        if let broadcast = step.broadcast {
            for peer in others { ready.send(.notification(broadcast), to: peer) }
        }
        for (peer, notification) in step.replies { ready.send(.notification(notification), to: peer) }
        if let decision = step.decision {
            if case .looking(let election) = role { round = election.round }
            if decision.leader == config.serverId { becomeLeader(decision, &ready) } else { becomeFollower(decision, &ready) }
        }
    }

    mutating func onElectionTick(_ ready: inout Ready) {
        guard case .looking(var election) = role else { return }
        let step = election.tick(nowMs: nowMs)
        role = .looking(election)
        handle(step, &ready)
    }

    private mutating func onNotification(from peer: Int64, _ notification: Notification, _ ready: inout Ready) {
        switch role {
        case .looking(var election):
            let step = election.receive(from: peer, notification, nowMs: nowMs)
            role = .looking(election)
            handle(step, &ready)
        case .following(let follower):
            if notification.state == .looking {
                ready.send(.notification(Notification(vote: follower.vote, round: round, state: .following)), to: peer)
            }
        case .leading(let leader):
            if notification.state == .looking {
                ready.send(.notification(Notification(vote: leader.vote, round: round, state: .leading)), to: peer)
            }
        }
    }

    // MARK: - Peers

    mutating func onPeerMessage(from peer: Int64, _ message: PeerMessage, _ ready: inout Ready) {
        // Any server may follow (a joining server is not in the configuration yet); the
        // election counts voters only.
        guard peer != config.serverId else { return }
        if case .notification(let notification) = message {
            onNotification(from: peer, notification, &ready)
            return
        }
        switch role {
        case .looking:
            // A follower that decided before this replica did may already ask for its epoch;
            // keep its request for when (and if) this replica leads. Other Zab traffic belongs to
            // an earlier term.
            if case .followerInfo(let acceptedEpoch, let lastZxid) = message {
                earlyFollowerInfo[peer] = (acceptedEpoch, lastZxid)
            }
            return
        case .following(let follower):
            guard peer == follower.leader else { return }
            let now = nowMs
            modifyFollower { $0.lastHeardMs = now }
            onLeaderMessage(message, &ready)
        case .leading:
            let now = nowMs
            modifyLeader { $0.lastHeardMs[peer] = now }
            onFollowerMessage(from: peer, message, &ready)
        }
    }

    mutating func onPeerConnected(_ peer: Int64, _ ready: inout Ready) {
        connectedPeers.insert(peer)
        switch role {
        case .looking(let election):
            ready.send(.notification(election.notification), to: peer)
        case .following(let follower):
            if peer == follower.leader && follower.phase == .discovery {
                ready.send(.followerInfo(acceptedEpoch: hard.acceptedEpoch, lastZxid: lastLoggedZxid), to: peer)
            }
        case .leading:
            break
        }
    }

    mutating func onPeerDisconnected(_ peer: Int64, _ ready: inout Ready) {
        connectedPeers.remove(peer)
        switch role {
        case .following(let follower) where follower.leader == peer:
            startElection(&ready)
        case .leading(var leader):
            dropFollower(peer, &leader)
            role = .leading(leader)
        default:
            break
        }
    }

    private mutating func dropFollower(_ peer: Int64, _ leader: inout LeaderState) {
        leader.forwarding.remove(peer)
        leader.serving.remove(peer)
        leader.newLeaderAcked.remove(peer)
        leader.acked[peer] = nil
        leader.infos[peer] = nil
        leader.epochAcked[peer] = nil
        leader.lastHeardMs[peer] = nil
    }

    // MARK: - Leader

    private mutating func becomeLeader(_ vote: Vote, _ ready: inout Ready) {
        var leader = LeaderState(vote: vote, deadlineMs: nowMs + config.initLimitTicks * config.tickMs)
        for (peer, info) in earlyFollowerInfo where connectedPeers.contains(peer) {
            leader.infos[peer] = info
            leader.lastHeardMs[peer] = nowMs
        }
        earlyFollowerInfo.removeAll()
        leader.infos[config.serverId] = (hard.acceptedEpoch, lastLoggedZxid)
        role = .leading(leader)
        chooseEpochIfQuorum(&ready)
    }

    private mutating func chooseEpochIfQuorum(_ ready: inout Ready) {
        guard case .leading(var leader) = role, leader.epoch == 0, hasQuorum(leader.infos.keys) else { return }
        leader.epoch = max(leader.infos.values.map(\.acceptedEpoch).max() ?? 0, hard.currentEpoch) + 1
        hard.acceptedEpoch = leader.epoch
        role = .leading(leader)
        store(.saveHardState(hard), &ready, then: .leaderEpochAccepted(epoch: leader.epoch))
        for peer in leader.infos.keys.sorted() where peer != config.serverId {
            ready.send(.leaderInfo(epoch: leader.epoch), to: peer)
        }
    }

    private mutating func onFollowerMessage(from peer: Int64, _ message: PeerMessage, _ ready: inout Ready) {
        if case .ack(let zxid) = message {
            // The commonest message: counted in place.
            let counted = modifyLeader { leader -> Bool in
                guard leader.newLeaderAcked.contains(peer) else { return false }
                leader.acked[peer] = max(leader.acked[peer] ?? 0, zxid)
                return true
            }
            if counted == true { tryCommit(&ready) }
            return
        }
        guard case .leading(var leader) = role else { return }
        switch message {
        case .followerInfo(let acceptedEpoch, let lastZxid):
            dropFollower(peer, &leader)
            leader.lastHeardMs[peer] = nowMs
            leader.infos[peer] = (acceptedEpoch, lastZxid)
            role = .leading(leader)
            if leader.epoch > 0 && acceptedEpoch > leader.epoch {
                // The follower promised a later epoch (to a leader that never established
                // itself): it can never join this epoch. Step down, so that the next discovery
                // picks an epoch above its promise.
                startElection(&ready)
            } else if leader.epoch > 0 {
                ready.send(.leaderInfo(epoch: leader.epoch), to: peer)
            } else {
                chooseEpochIfQuorum(&ready)
            }
        case .ackEpoch(let currentEpoch, let lastZxid):
            guard leader.epoch > 0, leader.infos[peer] != nil else { return }
            if (currentEpoch, lastZxid) > (hard.currentEpoch, lastLoggedZxid) {
                // A follower holds a newer history than this leader: someone else must lead.
                startElection(&ready)
                return
            }
            leader.epochAcked[peer] = (currentEpoch, lastZxid)
            role = .leading(leader)
            if leader.syncStarted { sendSyncPlan(to: peer, lastZxid: lastZxid, &ready) } else { startSyncIfQuorum(&ready) }
        case .ackNewLeader(let epoch):
            guard epoch == leader.epoch, leader.forwarding.contains(peer) else { return }
            // NEWLEADER's acknowledgement counts the follower in; what it holds durably comes
            // with the cumulative ACK that follows. It does not say which sync plan it answers:
            // a follower that started its discovery again on a live link may acknowledge an
            // earlier, shorter plan than the last one sent.
            leader.newLeaderAcked.insert(peer)
            if leader.established {
                leader.serving.insert(peer)
                role = .leading(leader)
                ready.send(.upToDate(commitZxid: commitZxid), to: peer)
                tryCommit(&ready)
            } else {
                role = .leading(leader)
                establishIfQuorum(&ready)
            }
        case .ack:
            preconditionFailure("acknowledgements are counted above")
        case .forward(let write):
            guard leader.established, leader.serving.contains(peer) else { return }
            switch write {
            case .createSession(let sessionId, let timeoutMs):
                sessions[sessionId] = SessionState(timeoutMs: timeoutMs, expiresAtMs: expiry(timeoutMs))
                propose(.createSession(timeoutMs: timeoutMs), sessionId: sessionId, cxid: 0, &ready)
            case .request(let sessionId, let header, let request, let authIds):
                if !leader.waitingWrites.isEmpty {
                    // Behind writes still waiting: wait too, so that this session's writes are
                    // proposed in order; whether its session is still live is decided when it
                    // is prepared (`proposeWaitingWrites`).
                    touched(sessionId)
                    if case .closeSession = request { sessions[sessionId]?.closing = true }
                    submitWrite(sessionId: sessionId, header: header, request: request, authIds: authIds, &ready)
                } else if sessions[sessionId]?.closing == true && !plantedBugPreparesWritesOfClosingSessions {
                    // The session is being closed (expired, or closed by its client): nothing
                    // more of it may reach the tree, least of all an ephemeral that would
                    // outlive it. The follower that forwarded it did not know yet.
                    propose(.error(.sessionExpired), sessionId: sessionId, cxid: header.xid, &ready)
                } else {
                    touched(sessionId)
                    if case .closeSession = request { sessions[sessionId]?.closing = true }
                    submitWrite(sessionId: sessionId, header: header, request: request, authIds: authIds, &ready)
                }
            }
        case .ping(let touchedSessions):
            for sessionId in touchedSessions { touched(sessionId) }
        case .revalidate(let sessionId, let timeoutMs):
            let valid = sessions[sessionId].map { !$0.closing } ?? false
            if valid {
                sessions[sessionId]!.timeoutMs = timeoutMs
                touched(sessionId)
            }
            ready.send(.revalidated(sessionId: sessionId, valid: valid), to: peer)
        case .barrier(let token):
            if !leader.waitingWrites.isEmpty {
                leader.waitingWrites.append(.barrier(peer: peer, token: token))
                role = .leading(leader)
            } else if lastLoggedZxid > commitZxid {
                leader.barriers.append((lastLoggedZxid, peer, token))
                role = .leading(leader)
            } else {
                ready.send(.barrierDone(token: token), to: peer)
            }
        default:
            return
        }
    }

    private mutating func startSyncIfQuorum(_ ready: inout Ready) {
        guard case .leading(var leader) = role, !leader.syncStarted, leader.epochAcked[config.serverId] != nil,
            hasQuorum(leader.epochAcked.keys)
        else { return }
        leader.syncStarted = true
        leader.historyZxid = lastLoggedZxid
        hard.currentEpoch = leader.epoch
        role = .leading(leader)
        store(.saveHardState(hard), &ready, then: .leaderEpochCurrent(epoch: leader.epoch))
        for (peer, info) in leader.epochAcked.sorted(by: { $0.key < $1.key }) where peer != config.serverId {
            sendSyncPlan(to: peer, lastZxid: info.lastZxid, &ready)
        }
    }

    /// Chooses DIFF, TRUNC or SNAP for a follower whose log ends at `followerZxid`.
    func syncPlan(for followerZxid: Zxid, epoch: Int64) -> SyncPlan {
        let last = lastLoggedZxid
        let history = Array(applied) + Array(unapplied)
        if followerZxid == last { return SyncPlan(kind: .diff, transactions: [], epoch: epoch) }
        #if MINIZK_BUG_DIFF_INSTEAD_OF_TRUNC
        if followerZxid > last { return SyncPlan(kind: .diff, transactions: [], epoch: epoch) }  // Planted bug.
        #else
        if followerZxid > last { return SyncPlan(kind: .trunc(after: last), transactions: [], epoch: epoch) }
        #endif
        if followerZxid < logBase {
            return SyncPlan(kind: .snap(tree), transactions: Array(unapplied), epoch: epoch)
        }
        // Index of the first transaction after the follower's last zxid.
        var low = 0
        var high = history.count
        while low < high {
            let mid = (low + high) / 2
            if history[mid].zxid <= followerZxid { low = mid + 1 } else { high = mid }
        }
        let held = followerZxid == logBase || (low > 0 && history[low - 1].zxid == followerZxid)
        if held { return SyncPlan(kind: .diff, transactions: Array(history[low...]), epoch: epoch) }
        // The follower's last transaction is not in the leader's history: it belongs to a suffix
        // that was never committed. Cut back to the last transaction both hold.
        let common = low > 0 ? history[low - 1].zxid : logBase
        #if MINIZK_BUG_DIFF_INSTEAD_OF_TRUNC
        _ = common
        return SyncPlan(kind: .diff, transactions: Array(history[low...]), epoch: epoch)  // Planted bug: keeps the suffix.
        #else
        return SyncPlan(kind: .trunc(after: common), transactions: Array(history[low...]), epoch: epoch)
        #endif
    }

    private mutating func sendSyncPlan(to peer: Int64, lastZxid: Zxid, _ ready: inout Ready) {
        guard case .leading(var leader) = role else { return }
        let plan = syncPlan(for: lastZxid, epoch: leader.epoch)
        leader.forwarding.insert(peer)
        role = .leading(leader)
        ready.send(.sync(plan), to: peer)
    }

    private mutating func establishIfQuorum(_ ready: inout Ready) {
        guard case .leading(var leader) = role, !leader.established, leader.newLeaderAcked.contains(config.serverId),
            hasQuorum(leader.newLeaderAcked)
        else { return }
        leader.established = true
        leader.acked[config.serverId] = persistedZxid
        commitZxid = max(commitZxid, leader.historyZxid)
        applyCommitted(&ready)
        prepared = tree
        for txn in unapplied {
            var ignored: [WatchTrigger] = []
            prepared.apply(txn, triggers: &ignored)
        }
        sessions.removeAll()
        for (id, timeoutMs) in tree.sessions {
            sessions[id] = SessionState(timeoutMs: timeoutMs, expiresAtMs: expiry(timeoutMs))
        }
        for peer in leader.newLeaderAcked.sorted() where peer != config.serverId {
            leader.serving.insert(peer)
            ready.send(.upToDate(commitZxid: commitZxid), to: peer)
        }
        role = .leading(leader)
    }

    /// Leader: logs a transaction and sends it to every synced follower.
    mutating func propose(_ body: TransactionBody, sessionId: Int64, cxid: Int32, _ ready: inout Ready) {
        guard case .leading(let current) = role, current.established else {
            preconditionFailure("propose while not an established leader: \(role)")
        }
        let zxid = modifyLeader { leader -> Zxid in
            leader.counter &+= 1
            precondition(leader.counter > 0, "zxid counter of epoch \(leader.epoch) exhausted")
            return Zxid.make(epoch: Int32(truncatingIfNeeded: leader.epoch), counter: leader.counter)
        }!
        let txn = Transaction(zxid: zxid, timeMs: nowMs, sessionId: sessionId, cxid: cxid, body: body)
        var ignored: [WatchTrigger] = []
        prepared.apply(txn, triggers: &ignored)
        unapplied.append(txn)
        noteLogged(txn, &ready)
        store(.append([txn]), &ready)
        for peer in current.forwarding.sorted() { ready.send(.propose(txn), to: peer) }
    }

    /// Leader: commits up to the highest zxid a quorum holds durably.
    private mutating func tryCommit(_ ready: inout Ready) {
        guard case .leading(var leader) = role, leader.established else { return }
        var holdings = [config.serverId: leader.acked[config.serverId] ?? 0]
        for peer in leader.newLeaderAcked where peer != config.serverId { holdings[peer] = leader.acked[peer] ?? 0 }
        #if MINIZK_BUG_COMMIT_WITHOUT_QUORUM
        let candidate = min(holdings.values.max() ?? 0, lastLoggedZxid)  // Planted bug: the best holder, not a quorum.
        #else
        let candidate = min(committableZxid(holdings), lastLoggedZxid)
        #endif
        guard candidate > commitZxid else { return }
        commitZxid = candidate
        // A barrier is answered right after the commit of what was proposed before it, and
        // before the commit of anything later: a write its client sent after the sync must not
        // be applied on the follower (and seen by the reads queued behind the sync) before the
        // sync is answered.
        var committedTo = Zxid(0)
        while let barrier = leader.barriers.first, barrier.zxid <= commitZxid {
            leader.barriers.removeFirst()
            if barrier.zxid > committedTo {
                committedTo = barrier.zxid
                for peer in leader.forwarding.sorted() { ready.send(.commit(committedTo), to: peer) }
            }
            ready.send(.barrierDone(token: barrier.token), to: barrier.peer)
        }
        if candidate > committedTo {
            for peer in leader.forwarding.sorted() { ready.send(.commit(candidate), to: peer) }
        }
        role = .leading(leader)
        applyCommitted(&ready)
        proposeWaitingWrites(&ready)
    }

    /// Leader: prepares and proposes a client write, or, with `proposalsInFlightMax` proposals
    /// outstanding (or writes already waiting), keeps it waiting until commits make room. Writes
    /// wait in arrival order, so every session's writes are proposed in the order they came.
    mutating func submitWrite(sessionId: Int64, header: RequestHeader, request: Request, authIds: [Id], _ ready: inout Ready) {
        guard case .leading(var leader) = role else { preconditionFailure("submitWrite while not leading: \(role)") }
        guard leader.waitingWrites.isEmpty, unapplied.count < config.proposalsInFlightMax else {
            leader.waitingWrites.append(.write(sessionId: sessionId, header: header, request: request, authIds: authIds))
            role = .leading(leader)
            return
        }
        prepareAndPropose(sessionId: sessionId, header: header, request: request, authIds: authIds, &ready)
    }

    /// Leader: proposes waiting writes while fewer than `proposalsInFlightMax` are outstanding.
    /// A write whose session's close was prepared meanwhile (an expiry, or the client's own close
    /// ahead of it) becomes SESSIONEXPIRED: nothing more of the session may reach the tree.
    private mutating func proposeWaitingWrites(_ ready: inout Ready) {
        while case .leading(var leader) = role, let next = leader.waitingWrites.first {
            switch next {
            case .barrier(let peer, let token):
                leader.waitingWrites.removeFirst()
                if lastLoggedZxid > commitZxid {
                    leader.barriers.append((lastLoggedZxid, peer, token))
                    role = .leading(leader)
                } else {
                    role = .leading(leader)
                    ready.send(.barrierDone(token: token), to: peer)
                }
            case .write(let sessionId, let header, let request, let authIds):
                guard unapplied.count < config.proposalsInFlightMax else { return }
                leader.waitingWrites.removeFirst()
                role = .leading(leader)
                if prepared.sessions[sessionId] == nil {
                    propose(.error(.sessionExpired), sessionId: sessionId, cxid: header.xid, &ready)
                } else {
                    prepareAndPropose(sessionId: sessionId, header: header, request: request, authIds: authIds, &ready)
                }
            }
        }
    }

    // MARK: - Follower

    private mutating func becomeFollower(_ vote: Vote, _ ready: inout Ready) {
        earlyFollowerInfo.removeAll()
        discoveries += 1
        role = .following(
            FollowerState(
                leader: vote.leader, vote: vote, lastHeardMs: nowMs, deadlineMs: nowMs + config.initLimitTicks * config.tickMs,
                discovery: discoveries))
        ready.send(.followerInfo(acceptedEpoch: hard.acceptedEpoch, lastZxid: lastLoggedZxid), to: vote.leader)
    }

    private mutating func onLeaderMessage(_ message: PeerMessage, _ ready: inout Ready) {
        guard case .following(var follower) = role else { return }
        switch message {
        case .leaderInfo(let epoch):
            guard follower.phase == .discovery else { return }
            if epoch < hard.acceptedEpoch {
                startElection(&ready)
                return
            }
            follower.phase = .synchronizing
            follower.epoch = epoch
            role = .following(follower)
            // The epoch is acknowledged once it is durable, also when it was accepted before: an
            // earlier discovery may have recorded it in a write that is not durable yet.
            hard.acceptedEpoch = max(hard.acceptedEpoch, epoch)
            store(.saveHardState(hard), &ready, then: .followerEpochAccepted(leader: follower.leader, discovery: follower.discovery))
        case .sync(let plan):
            guard follower.phase == .synchronizing, plan.epoch == follower.epoch else { return }
            switch plan.kind {
            case .diff:
                break
            case .trunc(let zxid):
                precondition(tree.lastZxid <= zxid, "TRUNC to 0x\(String(zxid, radix: 16)) below the committed 0x\(String(tree.lastZxid, radix: 16))")
                while let last = unapplied.last, last.zxid > zxid { unapplied.removeLast() }
                notePendingReconfig()
                ready.ensembleServers = knownServers
                store(.truncate(after: zxid), &ready)
            case .snap(let snapshot):
                tree = snapshot
                prepared = snapshot
                applied.removeAll()
                unapplied.removeAll()
                logBase = snapshot.lastZxid
                commitZxid = max(commitZxid, snapshot.lastZxid)
                if let reconfigured = Self.reconfiguredEnsemble(in: snapshot) {
                    membership = reconfigured
                    electAfterApplying = true
                }
                pendingReconfigs = []
                ready.ensembleServers = knownServers
                store(.installSnapshot(snapshot), &ready)
            }
            if !plan.transactions.isEmpty {
                guard let first = plan.transactions.first, lastLoggedZxid == 0 || isContiguousZxid(lastLoggedZxid, first.zxid) else {
                    startElection(&ready)
                    return
                }
                unapplied.append(contentsOf: plan.transactions)
                if plan.transactions.contains(where: { Self.reconfiguration($0) != nil }) {
                    notePendingReconfig()
                    ready.ensembleServers = knownServers
                }
                store(.append(plan.transactions), &ready)
            }
            hard.currentEpoch = plan.epoch
            follower.phase = .awaitingUpToDate
            role = .following(follower)
            #if MINIZK_BUG_NEWLEADER_ACK_BEFORE_DURABLE
            store(.saveHardState(hard), &ready)  // Planted bug: NEWLEADER acknowledged before the sync is durable.
            onDurable(.followerSynced(leader: follower.leader, epoch: plan.epoch, discovery: follower.discovery), &ready)
            #else
            store(.saveHardState(hard), &ready, then: .followerSynced(leader: follower.leader, epoch: plan.epoch, discovery: follower.discovery))
            #endif
        case .upToDate(let zxid):
            guard follower.phase == .awaitingUpToDate, follower.newLeaderAcked else { return }
            follower.phase = .broadcast
            role = .following(follower)
            commitZxid = max(commitZxid, zxid)
            applyCommitted(&ready)
        case .propose(let txn):
            guard follower.phase == .awaitingUpToDate || follower.phase == .broadcast else { return }
            guard isContiguousZxid(lastLoggedZxid, txn.zxid) else {
                startElection(&ready)
                return
            }
            unapplied.append(txn)
            noteLogged(txn, &ready)
            store(.append([txn]), &ready)
            #if MINIZK_BUG_ACK_BEFORE_FSYNC
            ready.send(.ack(txn.zxid), to: follower.leader)  // Planted bug: acknowledges what is not durable yet.
            #endif
        case .commit(let zxid):
            commitZxid = max(commitZxid, min(zxid, lastLoggedZxid))
            if follower.phase == .broadcast || follower.newLeaderAcked { applyCommitted(&ready) }
        case .ping:
            ready.send(.ping(touchedSessions: follower.touched.sorted()), to: follower.leader)
            follower.touched.removeAll()
            role = .following(follower)
        case .barrierDone(let token):
            completeBarrier(token, &ready)
        case .revalidated(let sessionId, let valid):
            completeRevalidation(sessionId: sessionId, valid: valid, &ready)
        default:
            return
        }
    }

    /// Planted bug MINIZK_BUG_WRITE_OF_CLOSING_SESSION: the leader prepares a forwarded write of a
    /// session it is closing (the bug the simulator found with seed 133).
    private var plantedBugPreparesWritesOfClosingSessions: Bool {
        #if MINIZK_BUG_WRITE_OF_CLOSING_SESSION
        return true
        #else
        return false
        #endif
    }

    private func isContiguousZxid(_ previous: Zxid, _ next: Zxid) -> Bool {
        if next.epoch == previous.epoch { return next == previous + 1 }
        return next.epoch > previous.epoch && next.counter == 1
    }

    mutating func forwardToLeader(_ write: ForwardedWrite, _ ready: inout Ready) {
        guard case .following(let follower) = role else { return }
        ready.send(.forward(write), to: follower.leader)
    }

    mutating func forwardRevalidation(sessionId: Int64, timeoutMs: Int64, _ ready: inout Ready) {
        guard case .following(let follower) = role else { return }
        ready.send(.revalidate(sessionId: sessionId, timeoutMs: timeoutMs), to: follower.leader)
    }

    mutating func forwardBarrier(_ token: UInt64, _ ready: inout Ready) {
        guard case .following(let follower) = role else { return }
        ready.send(.barrier(token: token), to: follower.leader)
    }

    /// A follower's `sync` is answered once the leader's barrier came back: every write the
    /// leader had proposed before is applied here.
    private mutating func completeBarrier(_ token: UInt64, _ ready: inout Ready) {
        for id in connections.keys.sorted() {
            guard case .barrier(let header, let request, let waiting)? = connections[id]?.queue.first, waiting == token else { continue }
            connections[id]!.queue.removeFirst()
            answer(id, header, request, &ready)
            drain(id, &ready)
            return
        }
    }

    // MARK: - Durability

    mutating func onDurable(_ action: DurableAction, _ ready: inout Ready) {
        switch action {
        case .leaderEpochAccepted(let epoch):
            guard case .leading(var leader) = role, leader.epoch == epoch else { return }
            leader.epochAcked[config.serverId] = (hard.currentEpoch, lastLoggedZxid)
            role = .leading(leader)
            startSyncIfQuorum(&ready)
        case .leaderEpochCurrent(let epoch):
            guard case .leading(var leader) = role, leader.epoch == epoch else { return }
            leader.newLeaderAcked.insert(config.serverId)
            role = .leading(leader)
            establishIfQuorum(&ready)
        case .followerEpochAccepted(let leaderId, let discovery):
            guard case .following(let follower) = role, follower.leader == leaderId, follower.discovery == discovery,
                follower.phase == .synchronizing
            else { return }
            ready.send(.ackEpoch(currentEpoch: hard.currentEpoch, lastZxid: lastLoggedZxid), to: leaderId)
        case .followerSynced(let leaderId, let epoch, let discovery):
            guard case .following(var follower) = role, follower.leader == leaderId, follower.epoch == epoch,
                follower.discovery == discovery
            else { return }
            follower.newLeaderAcked = true
            follower.ackedZxid = persistedZxid
            role = .following(follower)
            ready.send(.ackNewLeader(epoch: epoch), to: leaderId)
            ready.send(.ack(persistedZxid), to: leaderId)
        }
    }

    /// After a storage batch became durable: acknowledge (follower) or count (leader) it.
    mutating func afterPersisted(_ ready: inout Ready) {
        switch role {
        case .following(var follower):
            guard follower.newLeaderAcked, persistedZxid > follower.ackedZxid else { return }
            follower.ackedZxid = persistedZxid
            role = .following(follower)
            ready.send(.ack(persistedZxid), to: follower.leader)
        case .leading:
            let me = config.serverId
            let zxid = persistedZxid
            let counted = modifyLeader { leader -> Bool in
                guard leader.established else { return false }
                leader.acked[me] = zxid
                return true
            }
            if counted == true { tryCommit(&ready) }
        case .looking:
            return
        }
    }

    // MARK: - Heartbeats and limits

    mutating func onZabTick(_ ready: inout Ready) {
        let syncLimitMs = config.syncLimitTicks * config.tickMs
        switch role {
        case .looking:
            return
        case .following(let follower):
            if follower.phase != .broadcast && nowMs > follower.deadlineMs {
                startElection(&ready)
            } else if follower.phase == .discovery {
                // The leader may not have been leading yet when it first heard from us.
                ready.send(.followerInfo(acceptedEpoch: hard.acceptedEpoch, lastZxid: lastLoggedZxid), to: follower.leader)
            } else if nowMs - follower.lastHeardMs > syncLimitMs {
                startElection(&ready)
            }
        case .leading(var leader):
            if !leader.established {
                if nowMs > leader.deadlineMs { startElection(&ready) }
                return
            }
            for peer in leader.forwarding.sorted() {
                if nowMs - (leader.lastHeardMs[peer] ?? nowMs) > syncLimitMs {
                    dropFollower(peer, &leader)
                } else {
                    ready.send(.ping(touchedSessions: []), to: peer)
                }
            }
            role = .leading(leader)
            if !hasQuorum(leader.serving.union([config.serverId])) {
                // Lost the quorum: stop serving rather than accept writes nobody can commit.
                startElection(&ready)
            }
        }
    }
}
