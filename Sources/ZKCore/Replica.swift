import DequeModule
import ZKProtocol

/// One MiniZK replica: a member of a Zab ensemble (of one, when standalone) that serves clients.
///
/// The replica is a deterministic state machine. The shell feeds it `ReplicaInput`s with the
/// current time and carries out the `Ready` it returns; it reads no clock, draws no randomness and
/// does no I/O. It composes:
///
/// - the **client pipeline**, ZooKeeper's without its threads: a write is prepared against the
///   *prepared* tree (committed plus outstanding proposals) on the leader, or forwarded to the
///   leader by a follower; it is logged, acknowledged by a quorum, committed and applied in zxid
///   order on every replica; the replica whose client asked replies. Replies to one connection
///   leave in request order, reads included, and the notifications a write causes precede its
///   reply;
/// - **Zab** (see `Replica+Zab.swift`): fast leader election, discovery, synchronisation and
///   broadcast;
/// - **sessions** (owned by the leader, which expires them through the log) and **watches**
///   (local to the replica a client is connected to).
///
/// Deliberate differences from ZooKeeper 3.8, each documented in `docs/protocol.md`: an unknown
/// opcode gets an UNIMPLEMENTED reply but the connection stays open; SASL is refused with
/// AUTHFAILED unless users are configured; a standalone replica also runs Zab (with a quorum of
/// one), so its zxids carry an epoch.
public struct Replica: Sendable {
    public let config: ReplicaConfig
    /// The committed state that reads see.
    public internal(set) var tree: DataTree
    /// Leader: the committed state plus every outstanding proposal, what writes are checked against.
    var prepared: DataTree
    /// Recently applied transactions, kept for DIFF.
    var applied: Deque<Transaction> = []
    /// Logged transactions not applied yet (not known to be committed, or not reached yet).
    var unapplied: Deque<Transaction> = []
    /// The zxid before the first transaction held in memory.
    var logBase: Zxid
    var commitZxid: Zxid
    /// The log is durable up to here.
    var persistedZxid: Zxid
    var hard: HardState
    var role: Role
    var booted = false
    var round: Int64 = 0
    /// Counts the times this replica became a follower; names each discovery.
    var discoveries: UInt64 = 0
    var watches = WatchTable()
    /// Connections this step closed: their watches go together at the end of the step
    /// (`WatchTable.removeConnections`), after no notification reaches them (they are closing).
    var watchesLeaving: [ConnectionID] = []
    var connections: [ConnectionID: Connection] = [:]
    var sessions: [Int64: SessionState] = [:]
    /// Read-only sessions (read-only mode): local to this replica, never in the log, ended when
    /// the replica stops looking for a leader.
    var readOnlySessions: [Int64: SessionState] = [:]
    /// When the replica last started looking for a leader.
    var lookingSinceMs: Int64 = 0
    var nextSessionId: Int64
    let secret: UInt64
    /// SASL challenges issued, part of every nonce.
    var saslChallenges: UInt64 = 0
    var nowMs: Int64
    var nextContainerCheckMs: Int64
    var nextTickMs: Int64
    var storageSequence: UInt64 = 0
    var durableThrough: UInt64 = 0
    var awaitingDurable: Deque<(sequence: UInt64, action: DurableAction)> = []
    /// Transactions appended by each storage batch not yet durable, for the snapshot schedule.
    var appendedBySequence: Deque<(sequence: UInt64, transactions: Int)> = []
    /// When to ask the shell for a snapshot (`Ready.snapshot`).
    var snapshotSchedule: SnapshotSchedule
    var nextBarrierToken: UInt64 = 1
    /// Follower: the connections whose resumed session waits for the leader's word, by session,
    /// in arrival order (a connection closed meanwhile is skipped when the word comes).
    var pendingRevalidations: [Int64: [ConnectionID]] = [:]
    var connectedPeers: Set<Int64> = []
    /// FOLLOWERINFO that arrived while this replica was still electing.
    var earlyFollowerInfo: [Int64: (acceptedEpoch: Int64, lastZxid: Zxid)] = [:]
    /// The ensemble as the committed `/zookeeper/config` describes it.
    var membership: EnsembleConfig
    /// Reconfigurations that are logged but not applied, in zxid order. A leader proposes one
    /// at a time, but a replica that restarts from a snapshot older than some it applied before
    /// finds several in its log and cannot tell which of them committed.
    var pendingReconfigs: [(zxid: Zxid, config: EnsembleConfig)] = []
    /// Set when applying a reconfiguration made this replica's leader (or this leader) stop
    /// being a voter: the replica elects again once the commit is through.
    var electAfterApplying = false

    struct Connection {
        var peerAddress: String
        var peerPort: Int
        var sessionId: Int64?
        var authIds: [Id]
        var queue: Deque<Queued> = []
        var lastZxid: Zxid = 0
        /// A close was requested; nothing more is read from this connection.
        var closing = false
        /// The nonce of the SASL challenge this connection was sent and has not answered yet.
        var saslNonce: String?
    }

    /// What a connection waits for, in request order. A write is matched to its committed
    /// transaction by session id and cxid, so the same queue serves a leader, which prepared the
    /// write itself, and a follower, which forwarded it.
    enum Queued {
        case connect(ConnectRequest)
        /// A follower's client resuming a session, until the leader says whether it may.
        case revalidating(ConnectRequest)
        /// A follower's client resuming a session the leader found valid, created so recently
        /// that its creation is not applied here yet: the connect is answered once it is, so that
        /// a replica serves only sessions its tree holds.
        case awaitingCreation(ConnectRequest)
        case write(RequestHeader, Request)
        case read(RequestHeader, Request)
        /// A follower's `sync`, waiting for the leader's barrier.
        case barrier(RequestHeader, Request, token: UInt64)
    }

    struct SessionState {
        var timeoutMs: Int64
        var expiresAtMs: Int64
        var closing = false
        var connection: ConnectionID?
    }

    /// Something to do once a storage batch is durable.
    enum DurableAction {
        /// Each action names the leadership (by its epoch) or the follower's discovery it
        /// belongs to, so that a write that outlives it (the replica timed out and started
        /// again) does nothing to the next one.
        case leaderEpochAccepted(epoch: Int64)
        case leaderEpochCurrent(epoch: Int64)
        case followerEpochAccepted(leader: Int64, discovery: UInt64)
        case followerSynced(leader: Int64, epoch: Int64, discovery: UInt64)
    }

    /// cxid of transactions the replica starts itself (session expiry, container reaping); no
    /// client request carries it.
    static let internalCxid = Int32.min

    /// - Parameters:
    ///   - startTimeMs: wall-clock time at start, used only to make session ids unique across
    ///     restarts, as ZooKeeper does.
    ///   - secret: seeds session passwords (ignored in favour of `config.sessionSecret` when 0).
    ///   - recovered: the snapshot and log read back from storage.
    public init(config: ReplicaConfig, startTimeMs: Int64, secret: UInt64 = 0, recovered: RecoveredState = RecoveredState()) {
        self.config = config
        self.secret = secret == 0 ? config.sessionSecret : secret
        var tree = recovered.tree
        // A reconfiguration in the snapshot (the config node changed by a transaction) wins over
        // the configuration the replica was started with.
        let reconfigured = Self.reconfiguredEnsemble(in: tree)
        if reconfigured == nil, let text = config.ensembleConfigText { tree.setConfigData(Array(text.utf8)) }
        let membership = reconfigured ?? config.initialEnsemble
        self.membership = membership
        self.tree = tree
        self.prepared = tree
        self.unapplied = Deque(recovered.log)
        self.logBase = tree.lastZxid
        self.commitZxid = tree.lastZxid
        self.persistedZxid = recovered.lastZxid
        self.hard = recovered.hardState
        self.snapshotSchedule = SnapshotSchedule(
            everyTransactions: config.snapshotEveryTransactions, seed: config.snapshotSeed, alreadyLogged: recovered.log.count)
        self.nowMs = startTimeMs
        self.nextTickMs = startTimeMs
        self.nextContainerCheckMs = startTimeMs + config.containerCheckIntervalMs
        let timeBits = Int64(bitPattern: (UInt64(bitPattern: startTimeMs) << 24) >> 8)
        self.nextSessionId = (config.serverId << 56) | timeBits
        self.role = .looking(
            LeaderElection(
                me: config.serverId, voterSets: [membership.voters], round: 0,
                vote: Vote(leader: config.serverId, zxid: recovered.lastZxid, epoch: recovered.hardState.currentEpoch),
                nowMs: startTimeMs, finalizeWaitMs: config.electionFinalizeWaitMs, resendMinMs: config.electionResendMinMs,
                resendMaxMs: config.electionResendMaxMs))
        notePendingReconfig()
    }

    var lastLoggedZxid: Zxid { unapplied.last?.zxid ?? applied.last?.zxid ?? logBase }

    /// Every other server of the known configurations: who hears this replica's election.
    var others: [Int64] {
        var ids = Set(membership.ids)
        for pending in pendingReconfigs { ids.formUnion(pending.config.ids) }
        ids.remove(config.serverId)
        return ids.sorted()
    }

    /// Whether clients are served: an established leader, or a follower that is up to date.
    public var isServing: Bool {
        switch role {
        case .leading(let leader): return leader.established
        case .following(let follower): return follower.phase == .broadcast
        case .looking: return false
        }
    }

    public var isLeader: Bool {
        if case .leading(let leader) = role { return leader.established }
        return false
    }

    // MARK: - Step

    public mutating func step(_ input: ReplicaInput, nowMs: Int64) -> Ready {
        if nowMs > self.nowMs { self.nowMs = nowMs }
        var ready = Ready()
        if !booted {
            booted = true
            startElection(&ready)
        }
        switch input {
        case .connectionOpened(let id, let address, let port):
            precondition(connections[id] == nil, "connection \(id) opened twice")
            connections[id] = Connection(
                peerAddress: address, peerPort: port, sessionId: nil, authIds: [Id(scheme: "ip", id: address)])
        case .connect(let id, let request):
            onConnect(id, request, &ready)
        case .request(let id, let header, let request):
            onRequest(id, header, request, &ready)
        case .connectionClosed(let id):
            dropConnection(id)
        case .tick:
            onTick(&ready)
        case .persisted(let zxid, let through):
            onPersisted(upTo: zxid, through: through, &ready)
        case .peerMessage(let from, let message):
            onPeerMessage(from: from, message, &ready)
        case .peerConnected(let peer):
            onPeerConnected(peer, &ready)
        case .peerDisconnected(let peer):
            onPeerDisconnected(peer, &ready)
        case .snapshotFinished:
            snapshotSchedule.snapshotWritten()
        }
        if electAfterApplying {
            electAfterApplying = false
            if leavesAfterReconfiguration { startElection(&ready) }
        }
        if !readOnlySessions.isEmpty, !isLooking { endReadOnlySessions(Array(readOnlySessions.keys), reason: "read-only mode ended", &ready) }
        if !watchesLeaving.isEmpty {
            watches.removeConnections(watchesLeaving)
            watchesLeaving.removeAll()
        }
        ready.wakeAtMs = wakeAtMs
        ready.isServing = isServing
        return ready
    }

    /// Adds a storage operation to this step's batch, merging consecutive appends.
    mutating func store(_ op: StorageOp, _ ready: inout Ready, then action: DurableAction? = nil) {
        if ready.storageSequence == 0 {
            storageSequence += 1
            ready.storageSequence = storageSequence
        }
        if case .append(let more) = op {
            if let last = appendedBySequence.last, last.sequence == ready.storageSequence {
                appendedBySequence[appendedBySequence.count - 1].transactions += more.count
            } else {
                appendedBySequence.append((ready.storageSequence, more.count))
            }
        }
        if case .append(let more) = op, case .append(let txns)? = ready.storage.last {
            ready.storage[ready.storage.count - 1] = .append(txns + more)
        } else {
            ready.storage.append(op)
        }
        if let action { awaitingDurable.append((ready.storageSequence, action)) }
    }

    private mutating func onPersisted(upTo zxid: Zxid, through: UInt64, _ ready: inout Ready) {
        durableThrough = max(durableThrough, through)
        persistedZxid = zxid
        while let first = awaitingDurable.first, first.sequence <= durableThrough {
            awaitingDurable.removeFirst()
            onDurable(first.action, &ready)
        }
        afterPersisted(&ready)
        var durable = 0
        while let first = appendedBySequence.first, first.sequence <= durableThrough {
            appendedBySequence.removeFirst()
            durable += first.transactions
        }
        if snapshotSchedule.logged(durable) {
            // The committed tree: a snapshot never holds a transaction that is not committed.
            ready.snapshot = tree
        }
    }

    // MARK: - Connections and sessions

    private mutating func onConnect(_ id: ConnectionID, _ request: ConnectRequest, _ ready: inout Ready) {
        guard var connection = connections[id], !connection.closing else { return }
        guard connection.sessionId == nil else {
            closeConnection(id, reason: "second connect request on one connection", &ready)
            return
        }
        if request.lastZxidSeen > tree.lastZxid {
            closeConnection(id, reason: "client has seen zxid 0x\(String(request.lastZxidSeen, radix: 16)), newer than ours", &ready)
            return
        }
        let timeoutMs = min(max(Int64(request.timeoutMs), config.sessionTimeoutMsMin), config.sessionTimeoutMsMax)
        guard isServing else {
            if servesReadOnly, request.readOnly == true {
                connectReadOnly(id, request, timeoutMs: timeoutMs, &ready)
            } else {
                closeConnection(id, reason: "not serving: no leader yet", &ready)
            }
            return
        }
        if request.sessionId == 0 {
            let sessionId = allocateSessionId()
            sessions[sessionId] = SessionState(timeoutMs: timeoutMs, expiresAtMs: expiry(timeoutMs), connection: id)
            connection.sessionId = sessionId
            connection.queue.append(.connect(request))
            connections[id] = connection
            if isLeader {
                propose(.createSession(timeoutMs: timeoutMs), sessionId: sessionId, cxid: 0, &ready)
            } else {
                forwardToLeader(.createSession(sessionId: sessionId, timeoutMs: timeoutMs), &ready)
            }
            return
        }
        let sessionId = request.sessionId
        // A leader knows every session and which it is closing; a follower asks it (below).
        let alive = isLeader ? tree.sessions[sessionId] != nil && !(sessions[sessionId]?.closing ?? false) : !(sessions[sessionId]?.closing ?? false)
        guard alive, request.password == password(for: sessionId) else {
            ready.send(.connect(.expired(readOnly: request.readOnly)), to: id)
            closeConnection(id, reason: "session 0x\(String(sessionId, radix: 16)) is expired or unknown", &ready)
            return
        }
        // Only a client that proves the session's password takes it over, as in ZooKeeper
        // (checkPasswd before the old connection is let go): one that knows the id alone must not
        // disconnect the session's connection.
        if let previous = sessions[sessionId]?.connection, previous != id, connections[previous] != nil {
            closeConnection(previous, reason: "session 0x\(String(sessionId, radix: 16)) moved to another connection", &ready)
        }
        var session = sessions[sessionId] ?? SessionState(timeoutMs: timeoutMs, expiresAtMs: 0)
        session.timeoutMs = timeoutMs
        session.expiresAtMs = expiry(timeoutMs)
        session.connection = id
        sessions[sessionId] = session
        connection.sessionId = sessionId
        if !isLeader {
            // The session may be expiring on the leader at this moment (its close proposed, not yet
            // committed here): the connect waits for the leader's word, and the connection's
            // requests wait behind it.
            connection.queue.append(.revalidating(request))
            connections[id] = connection
            pendingRevalidations[sessionId, default: []].append(id)
            forwardRevalidation(sessionId: sessionId, timeoutMs: timeoutMs, &ready)
            return
        }
        touched(sessionId)
        connections[id] = connection
        ready.send(connectResponse(sessionId: sessionId, timeoutMs: timeoutMs, request: request), to: id)
    }

    /// Follower: the leader's word on a session a client resumes here. Every connection of that
    /// session waiting for it is answered: connected, or expired and closed.
    mutating func completeRevalidation(sessionId: Int64, valid: Bool, _ ready: inout Ready) {
        for id in pendingRevalidations.removeValue(forKey: sessionId) ?? [] {
            guard let connection = connections[id], !connection.closing, connection.sessionId == sessionId,
                case .revalidating(let request)? = connection.queue.first
            else { continue }
            connections[id]!.queue.removeFirst()
            guard valid, var session = sessions[sessionId], session.connection == id else {
                if sessions[sessionId]?.connection == id { sessions[sessionId] = nil }
                ready.send(.connect(.expired(readOnly: request.readOnly)), to: id)
                closeConnection(id, reason: "session 0x\(String(sessionId, radix: 16)) is expired or unknown (leader)", &ready)
                continue
            }
            session.expiresAtMs = expiry(session.timeoutMs)
            sessions[sessionId] = session
            if tree.sessions[sessionId] == nil {
                connections[id]!.queue.prepend(.awaitingCreation(request))
                continue
            }
            ready.send(connectResponse(sessionId: sessionId, timeoutMs: session.timeoutMs, request: request), to: id)
            drain(id, &ready)
        }
    }

    // MARK: - Read-only mode

    var isLooking: Bool {
        if case .looking = role { return true }
        return false
    }

    /// Whether read-only clients are served now: read-only mode is on, this is a member of an
    /// ensemble, and it has been looking for a leader for `readOnlyAfterMs`.
    public var servesReadOnly: Bool {
        config.readOnlyModeEnabled && !config.isStandalone && isLooking && nowMs - lookingSinceMs >= config.readOnlyAfterMs
    }

    /// A read-only client while there is no leader: a session of this replica alone. A client that
    /// resumes a session this replica does not hold as read-only is told it expired.
    private mutating func connectReadOnly(_ id: ConnectionID, _ request: ConnectRequest, timeoutMs: Int64, _ ready: inout Ready) {
        var sessionId = request.sessionId
        if sessionId == 0 {
            sessionId = allocateSessionId()
        } else {
            guard readOnlySessions[sessionId] != nil, request.password == password(for: sessionId) else {
                ready.send(.connect(.expired(readOnly: request.readOnly)), to: id)
                closeConnection(id, reason: "session 0x\(String(sessionId, radix: 16)) is not a read-only session here", &ready)
                return
            }
            if let previous = readOnlySessions[sessionId]?.connection, previous != id, connections[previous] != nil {
                closeConnection(previous, reason: "session 0x\(String(sessionId, radix: 16)) moved to another connection", &ready)
            }
        }
        readOnlySessions[sessionId] = SessionState(timeoutMs: timeoutMs, expiresAtMs: expiry(timeoutMs), connection: id)
        connections[id]?.sessionId = sessionId
        ready.send(connectResponse(sessionId: sessionId, timeoutMs: timeoutMs, request: request, readOnly: true), to: id)
    }

    /// A request of a read-only session: reads are answered from this replica's tree, writes (and
    /// sync, which needs a leader) get NOTREADONLY, closeSession ends the session.
    private mutating func onReadOnlyRequest(_ id: ConnectionID, _ sessionId: Int64, _ header: RequestHeader, _ request: Request, _ ready: inout Ready) {
        if let timeoutMs = readOnlySessions[sessionId]?.timeoutMs {
            let expiresAtMs = expiry(timeoutMs)
            readOnlySessions[sessionId]?.expiresAtMs = expiresAtMs
        }
        switch request {
        case .closeSession:
            readOnlySessions[sessionId] = nil
            reply(id, xid: header.xid, zxid: tree.lastZxid, err: .ok, .empty, &ready)
            closeConnection(id, reason: "read-only session closed", &ready)
        case .sync:
            reply(id, xid: header.xid, zxid: tree.lastZxid, err: .notReadOnly, .empty, &ready)
        default:
            if Prepare.isWrite(request) {
                reply(id, xid: header.xid, zxid: tree.lastZxid, err: .notReadOnly, .empty, &ready)
            } else {
                answer(id, header, request, &ready)
            }
        }
    }

    /// Read-only sessions that timed out are closed (no ping kept them alive).
    mutating func expireReadOnlySessions(_ ready: inout Ready) {
        let expired = readOnlySessions.filter { $0.value.expiresAtMs <= nowMs }.keys
        endReadOnlySessions(expired, reason: "read-only session expired", &ready)
    }

    /// Removes read-only sessions and closes the connections that still hold them. When the
    /// replica has a leader again (or is one) all of them end: their clients reconnect to get a
    /// session of the ensemble, as ZooKeeper's read-only server closes them when it stops.
    private mutating func endReadOnlySessions<S: Sequence<Int64>>(_ sessionIds: S, reason: String, _ ready: inout Ready) {
        for sessionId in sessionIds.sorted() {
            guard let connection = readOnlySessions.removeValue(forKey: sessionId)?.connection,
                connections[connection]?.sessionId == sessionId
            else { continue }
            closeConnection(connection, reason: reason, &ready)
        }
    }

    /// The response in the client's form: the read-only byte only when the request had one.
    func connectResponse(sessionId: Int64, timeoutMs: Int64, request: ConnectRequest, readOnly: Bool = false) -> ServerFrame {
        .connect(
            ConnectResponse(
                timeoutMs: Int32(clamping: timeoutMs), sessionId: sessionId, password: password(for: sessionId),
                readOnly: request.readOnly.map { _ in readOnly }))
    }

    private mutating func allocateSessionId() -> Int64 {
        repeat { nextSessionId &+= 1 } while nextSessionId == 0 || nextSessionId == .min || sessions[nextSessionId] != nil
            || tree.sessions[nextSessionId] != nil || readOnlySessions[nextSessionId] != nil
        return nextSessionId
    }

    /// Session expiry is bucketed on tick boundaries, as in ZooKeeper.
    func expiry(_ timeoutMs: Int64) -> Int64 {
        let deadline = nowMs + timeoutMs
        let tick = max(config.tickMs, 1)
        return (deadline / tick + 1) * tick
    }

    /// 16 password bytes derived from the session id and the ensemble's secret.
    func password(for sessionId: Int64) -> [UInt8] {
        var words = SplitMix64(seed: secret ^ UInt64(bitPattern: sessionId) ^ 0xB341_5C00)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16)
        for _ in 0..<2 {
            let z = words.next()
            for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: z >> UInt64(shift))) }
        }
        return bytes
    }

    mutating func closeConnection(_ id: ConnectionID, reason: String, _ ready: inout Ready) {
        guard connections[id] != nil, !connections[id]!.closing else { return }
        connections[id]!.closing = true
        connections[id]!.queue.removeAll()
        watchesLeaving.append(id)
        ready.close(id, reason: reason)
    }

    /// Closes every client connection: the replica stopped serving.
    mutating func closeAllConnections(reason: String, _ ready: inout Ready) {
        for id in connections.keys.sorted() { closeConnection(id, reason: reason, &ready) }
    }

    private mutating func dropConnection(_ id: ConnectionID) {
        guard let connection = connections.removeValue(forKey: id) else { return }
        watches.removeConnection(id)
        if let sessionId = connection.sessionId, sessions[sessionId]?.connection == id {
            sessions[sessionId]?.connection = nil
        }
    }

    /// Re-arms a session's expiry: directly on the leader, through the next ping on a follower.
    mutating func touched(_ sessionId: Int64) {
        guard var session = sessions[sessionId], !session.closing else { return }
        session.expiresAtMs = expiry(session.timeoutMs)
        sessions[sessionId] = session
        modifyFollower { $0.touched.insert(sessionId) }
    }

    // MARK: - Requests

    private mutating func onRequest(_ id: ConnectionID, _ header: RequestHeader, _ request: Request, _ ready: inout Ready) {
        var request = request
        var wellFormed = true
        if case .multi(let ops) = request {
            if let normalized = Prepare.multiOperations(ops) { request = .multi(normalized) } else { wellFormed = false }
        }
        // Only what is needed is read out of the connection: a copy of it held while its queue is
        // appended to would make the append copy the whole queue.
        guard let (closing, session, authIds, queueCount) = connections[id].map({ ($0.closing, $0.sessionId, $0.authIds, $0.queue.count) }),
            !closing
        else { return }
        guard let sessionId = session else {
            closeConnection(id, reason: "request before connect", &ready)
            return
        }
        if !readOnlySessions.isEmpty, readOnlySessions[sessionId] != nil {
            onReadOnlyRequest(id, sessionId, header, request, &ready)
            return
        }
        touched(sessionId)
        if queueCount >= config.outstandingRequestsPerConnectionMax {
            closeConnection(id, reason: "more than \(config.outstandingRequestsPerConnectionMax) outstanding requests", &ready)
            return
        }
        if queueCount > 0, case .auth(_, let scheme, let auth) = request,
            let ids = ACLs.authenticate(scheme: scheme, auth: auth, peerAddress: connections[id]!.peerAddress, superDigest: config.superDigest)
        {
            // The identity changes on receipt, as in ZooKeeper, which handles auth as soon as it
            // reads it: writes sent after it carry it even while earlier requests (the session's
            // creation) still wait. Its reply keeps its place in the queue.
            addAuthIds(ids, to: id)
        }
        let isClosing = sessions[sessionId]?.closing ?? true
        if (Prepare.isWrite(request) || isReconfigWrite(request)) && !isClosing && wellFormed {
            connections[id]!.queue.append(.write(header, request))
            if case .closeSession = request { sessions[sessionId]?.closing = true }
            if isLeader {
                submitWrite(sessionId: sessionId, header: header, request: request, authIds: authIds, &ready)
            } else {
                forwardToLeader(.request(sessionId: sessionId, header: header, request: request, authIds: authIds), &ready)
            }
        } else if case .sync = request, !isLeader, !isClosing {
            let token = nextBarrierToken
            nextBarrierToken += 1
            connections[id]!.queue.append(.barrier(header, request, token: token))
            forwardBarrier(token, &ready)
        } else if queueCount == 0 || plantedBugReadsPastOwnWrites {
            answer(id, header, request, &ready)
        } else {
            connections[id]!.queue.append(.read(header, request))
        }
    }

    mutating func addAuthIds(_ ids: [Id], to id: ConnectionID) {
        for newId in ids where !connections[id]!.authIds.contains(newId) { connections[id]!.authIds.append(newId) }
    }

    /// A reconfig goes through the log when reconfiguration is on in an ensemble; otherwise it is
    /// answered at once (RECONFIGDISABLED, or UNIMPLEMENTED on a standalone server, as ZooKeeper).
    private func isReconfigWrite(_ request: Request) -> Bool {
        guard case .reconfig = request else { return false }
        return config.reconfigEnabled && !config.isStandalone
    }

    /// Leader: turns a write, local or forwarded, into a proposal.
    mutating func prepareAndPropose(sessionId: Int64, header: RequestHeader, request: Request, authIds: [Id], _ ready: inout Ready) {
        let body: TransactionBody
        if sessions[sessionId] == nil && tree.sessions[sessionId] == nil && !isPendingSession(sessionId) {
            body = .error(.sessionExpired)
        } else if case .reconfig(let reconfig) = request {
            body = prepareReconfig(reconfig, authIds: authIds)
        } else {
            let context = PrepareContext(
                sessionId: sessionId, authIds: authIds, extendedTypesEnabled: config.extendedTypesEnabled,
                enforceQuota: config.enforceQuota)
            body = Prepare.write(request, tree: prepared, context: context, quotaExceeded: &ready.quotaExceeded)
        }
        propose(body, sessionId: sessionId, cxid: header.xid, &ready)
    }

    /// Planted bug MINIZK_BUG_FOLLOWER_READ_BEFORE_OWN_WRITE: a follower answers a read at once,
    /// ahead of the session's earlier writes still on their way.
    private var plantedBugReadsPastOwnWrites: Bool {
        #if MINIZK_BUG_FOLLOWER_READ_BEFORE_OWN_WRITE
        return !isLeader
        #else
        return false
        #endif
    }

    private func isPendingSession(_ sessionId: Int64) -> Bool { prepared.sessions[sessionId] != nil }

    // MARK: - Commit

    /// Applies every logged transaction up to the commit point, in zxid order.
    mutating func applyCommitted(_ ready: inout Ready) {
        // When this catches up with everything logged (always on a follower, which never
        // prepares), the prepared tree becomes the committed one again below. Let go of it first:
        // while it shares nodes with the committed tree, every change copies the nodes it touches.
        if let first = unapplied.first, first.zxid <= commitZxid, !isLeader || unapplied.last!.zxid <= commitZxid {
            prepared = Self.placeholderTree
        }
        while let next = unapplied.first, next.zxid <= commitZxid {
            unapplied.removeFirst()
            apply(next, &ready)
            applied.append(next)
            if applied.count > config.logWindowMax {
                logBase = applied.removeFirst().zxid
            }
        }
        // With nothing outstanding the prepared tree equals the committed one: share it, so the
        // replica holds one tree rather than two built side by side (a follower never prepares).
        if unapplied.isEmpty || !isLeader { prepared = tree }
    }

    /// Stands in for the prepared tree while `applyCommitted` catches up (see there).
    private static let placeholderTree = DataTree()

    /// Applies a committed transaction: watches fire first, then the local client that asked
    /// for it, if any, gets its reply.
    private mutating func apply(_ txn: Transaction, _ ready: inout Ready) {
        #if MINIZK_BUG_SKIP_SESSION_CLOSE
        // Planted bug: the highest replica applies a session's close as a no-op.
        var txn = txn
        if case .closeSession = txn.body, config.serverId == config.ensembleMembers.last { txn.body = .check(path: "/") }
        #endif
        var triggers: [WatchTrigger] = []
        let outcome = tree.apply(txn, triggers: &triggers)
        if let next = Self.reconfiguration(txn) { adopt(next, at: txn.zxid, &ready) }
        for trigger in triggers {
            for connection in watches.fire(trigger) {
                // A watch fires (one-shot ones are used up) but only a connection that may read
                // the node hears of it, as in ZooKeeper (CVE-2024-23944).
                guard let watcher = connections[connection], !watcher.closing,
                    ACLs.check(trigger.acl, .read, authIds: watcher.authIds)
                else { continue }
                ready.send(.notification(zxid: -1, WatcherEvent(trigger.type, path: trigger.path)), to: connection)
            }
        }
        var owner = sessions[txn.sessionId]?.connection
        if case .closeSession = txn.body {
            owner = sessions.removeValue(forKey: txn.sessionId)?.connection
            // The session is over on this replica: its connection here closes now, whoever ended
            // it (the leader expiring it, or a close sent through another connection or member),
            // so that its client reconnects and learns the session expired. Only the connection
            // that asked for the close keeps it long enough for the reply.
            if let owner, !Self.waitsForClose(connections[owner], txn) {
                let how = txn.cxid == Self.internalCxid ? "expired" : "closed through another connection"
                closeConnection(owner, reason: "session 0x\(String(txn.sessionId, radix: 16)) \(how)", &ready)
                return
            }
        }
        guard let id = owner, connections[id]?.closing == false, txn.cxid != Self.internalCxid else { return }
        switch connections[id]?.queue.first {
        case .connect(let request)?:
            guard case .createSession = txn.body else { break }
            connections[id]!.queue.removeFirst()
            let timeoutMs = sessions[txn.sessionId]?.timeoutMs ?? 0
            ready.send(connectResponse(sessionId: txn.sessionId, timeoutMs: timeoutMs, request: request), to: id)
        case .awaitingCreation(let request)?:
            guard case .createSession = txn.body else { break }
            connections[id]!.queue.removeFirst()
            let timeoutMs = sessions[txn.sessionId]?.timeoutMs ?? 0
            ready.send(connectResponse(sessionId: txn.sessionId, timeoutMs: timeoutMs, request: request), to: id)
        case .write(let header, let request)? where header.xid == txn.cxid:
            connections[id]!.queue.removeFirst()
            let (err, response) = Self.writeResponse(request, outcome, txn.body)
            reply(id, xid: header.xid, zxid: txn.zxid, err: err, response, &ready)
            if case .closeSession = request {
                closeConnection(id, reason: "session closed by client", &ready)
                return
            }
        default:
            // A transaction of this session that no request on this connection waits for: a
            // write forwarded from a connection the session has since left.
            return
        }
        drain(id, &ready)
    }

    /// Whether `connection` is the one whose closeSession request `txn` answers.
    private static func waitsForClose(_ connection: Connection?, _ txn: Transaction) -> Bool {
        #if MINIZK_BUG_KEEP_CONNECTION_OF_CLOSED_SESSION
        // Planted bug: a close that did not come from this replica's connection leaves it open
        // (the connection stays, answering SESSIONEXPIRED, and its client never learns).
        if txn.cxid != internalCxid { return true }
        #endif
        guard txn.cxid != internalCxid, case .write(let header, .closeSession)? = connection?.queue.first else { return false }
        return header.xid == txn.cxid
    }

    /// Answers the requests waiting at the head of a connection's queue, up to its next write
    /// or barrier.
    mutating func drain(_ id: ConnectionID, _ ready: inout Ready) {
        while connections[id]?.closing == false, case .read(let header, let request)? = connections[id]?.queue.first {
            connections[id]!.queue.removeFirst()
            answer(id, header, request, &ready)
        }
    }

    private static func writeResponse(_ request: Request, _ outcome: ApplyOutcome, _ body: TransactionBody) -> (ErrorCode, Response) {
        switch (request, outcome) {
        case (_, .failed(let code)):
            return (code, .empty)
        case (.reconfig, .dataSet(let stat)):
            guard case .setData(_, let data, _) = body else { return (.ok, .empty) }
            return (.ok, .getData(data: data, stat: stat))
        case (.create, .created(let path, _)):
            return (.ok, .create(path: path))
        case (.create2, .created(let path, let stat)), (.createContainer, .created(let path, let stat)),
            (.createTTL, .created(let path, let stat)):
            return (.ok, .create2(path: path, stat: stat))
        case (.setData, .dataSet(let stat)), (.setACL, .aclSet(let stat)):
            return (.ok, .stat(stat))
        case (.multi, .failedMulti(let codes)):
            return (.ok, .multi(codes.map { .error($0) }))
        case (.multi(let ops), .multi(let outcomes)):
            return (.ok, .multi(zip(ops, outcomes).map(multiResult)))
        default:
            return (.ok, .empty)
        }
    }

    /// A multi answers a plain create with a path only (kazoo parses nothing else); containers and
    /// TTL nodes get path and Stat (`Prepare.multiOperations` decides which is which).
    private static func multiResult(_ op: Request, _ outcome: ApplyOutcome) -> MultiResult {
        switch (op, outcome) {
        case (.create, .created(let path, _)), (.create2, .created(let path, _)):
            return .create(path: path)
        case (_, .created(let path, let stat)):
            return .create2(path: path, stat: stat)
        case (_, .deleted):
            return .delete
        case (_, .dataSet(let stat)):
            return .setData(stat: stat)
        default:
            return .check
        }
    }

    mutating func reply(_ id: ConnectionID, xid: Int32, zxid: Zxid, err: ErrorCode, _ response: Response, _ ready: inout Ready) {
        ready.send(.reply(ReplyHeader(xid: xid, zxid: zxid, err: err.rawValue), err == .ok ? response : .empty), to: id)
        if zxid > 0 { connections[id]?.lastZxid = zxid }
    }

    // MARK: - Time

    private mutating func onTick(_ ready: inout Ready) {
        if nowMs >= nextTickMs {
            // On the tick grid, where session deadlines fall (`expiry`): a session expires at
            // its boundary, as ZooKeeper's session tracker wakes for it, not up to a tick later.
            let tick = max(config.tickMs, 1)
            nextTickMs = (nowMs / tick + 1) * tick
            onZabTick(&ready)
        }
        onElectionTick(&ready)
        if !readOnlySessions.isEmpty { expireReadOnlySessions(&ready) }
        guard isLeader else { return }
        let expired = sessions.filter { !$0.value.closing && $0.value.expiresAtMs <= nowMs }.keys.sorted()
        for sessionId in expired {
            sessions[sessionId]!.closing = true
            let ephemerals = Array(prepared.ephemerals(of: sessionId)).sorted()
            propose(.closeSession(ephemerals: ephemerals), sessionId: sessionId, cxid: Self.internalCxid, &ready)
        }
        if nowMs >= nextContainerCheckMs {
            nextContainerCheckMs = nowMs + config.containerCheckIntervalMs
            reapContainersAndTTLNodes(&ready)
        }
    }

    /// Deletes containers that had children and lost them all, and TTL nodes without children
    /// whose TTL has run out since their last change.
    private mutating func reapContainersAndTTLNodes(_ ready: inout Ready) {
        var doomed: [String] = []
        for path in tree.containers {
            if let node = prepared.node(path), node.children.isEmpty, node.childCreates > 0 { doomed.append(path) }
        }
        for path in tree.ttlNodes {
            if let node = prepared.node(path), node.children.isEmpty, case .ttl(let ttl) = node.kind, nowMs - node.mtime > ttl {
                doomed.append(path)
            }
        }
        for path in doomed.sorted() {
            propose(.delete(path: path), sessionId: 0, cxid: Self.internalCxid, &ready)
        }
    }

    private var wakeAtMs: Int64 {
        var wake = nextTickMs
        if case .looking(let election) = role { wake = min(wake, election.wakeAtMs) }
        return wake
    }

    // MARK: - Status

    public func status(watchesByConnection: Bool = false) -> ReplicaStatus {
        var status = ReplicaStatus()
        switch role {
        case .leading: status.mode = config.isStandalone ? "standalone" : "leader"
        case .following: status.mode = membership.servers[config.serverId]?.role == .observer ? "observer" : "follower"
        case .looking: status.mode = servesReadOnly ? "read-only" : "looking"
        }
        status.serving = isServing
        switch role {
        case .leading: status.leaderId = config.serverId
        case .following(let follower): status.leaderId = follower.leader
        case .looking: status.leaderId = -1
        }
        status.ensemble = config.isStandalone ? nil : membership
        status.currentEpoch = hard.currentEpoch
        status.lastZxid = tree.lastZxid
        status.nodeCount = tree.nodeCount
        status.approximateDataSize = tree.dataBytes
        status.ephemeralsCount = tree.ephemeralCount
        status.watchCount = watches.count
        status.watchedPathCount = watches.watchedPaths
        status.watchingConnectionCount = watches.watchingConnections
        if watchesByConnection { status.watchesByConnection = watches.connectionsWatching }
        status.outstandingRequests = unapplied.count
        if case .leading(let leader) = role {
            status.followers = leader.forwarding.count
            status.syncedFollowers = leader.serving.count
            status.pendingSyncs = leader.barriers.count
        }
        status.connections = connections.keys.sorted().compactMap { id in
            guard let connection = connections[id], !connection.closing else { return nil }
            return ReplicaStatus.Connection(
                id: id, peerAddress: connection.peerAddress, peerPort: connection.peerPort,
                sessionId: connection.sessionId ?? 0,
                sessionTimeoutMs: connection.sessionId.flatMap { sessions[$0]?.timeoutMs } ?? 0,
                outstandingRequests: connection.queue.count, lastZxid: connection.lastZxid,
                watchCount: watches.entries(of: id))
        }
        status.sessions = tree.sessions.keys.sorted().map { id in
            ReplicaStatus.Session(
                id: id, timeoutMs: tree.sessions[id] ?? 0, expiresAtMs: sessions[id]?.expiresAtMs ?? 0,
                ephemerals: tree.ephemerals(of: id).sorted())
        }
        return status
    }

    /// The digest of the committed tree (an O(n) walk; for tests, `hash` and checkers).
    public var digest: UInt64 { tree.digest }
}
