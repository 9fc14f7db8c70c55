import ZKProtocol

/// What replicas say to each other: election notifications and the Zab protocol.
///
/// The transport between two replicas delivers messages in order and without loss while the
/// connection lasts (TCP, or the in-process transport); when it breaks, both sides are told
/// (`peerDisconnected`) and a follower cut off from its leader starts a new election. That is why
/// no message carries a sequence number.
///
/// Messages live in ZKCore rather than ZKProtocol because a SNAP carries a `DataTree`; the TCP
/// shell encodes it with the snapshot grammar of ZKStorage.
public enum PeerMessage: Sendable {
    /// Election: a vote, with the sender's round and state.
    case notification(Notification)
    /// Discovery: a follower's accepted epoch and last logged zxid.
    case followerInfo(acceptedEpoch: Int64, lastZxid: Zxid)
    /// Discovery: the epoch the prospective leader proposes.
    case leaderInfo(epoch: Int64)
    /// Discovery: a follower accepted the epoch; its current epoch and last zxid.
    case ackEpoch(currentEpoch: Int64, lastZxid: Zxid)
    /// Synchronisation: what the follower must do to hold the leader's history, then NEWLEADER.
    case sync(SyncPlan)
    /// Synchronisation: the follower holds the history durably and has taken the new epoch.
    case ackNewLeader(epoch: Int64)
    /// Synchronisation: start serving; everything up to `commitZxid` is committed.
    case upToDate(commitZxid: Zxid)
    /// Broadcast.
    case propose(Transaction)
    /// Broadcast: every proposal up to `zxid` is durable at the sender (cumulative).
    case ack(Zxid)
    /// Broadcast: every proposal up to `zxid` is committed (cumulative).
    case commit(Zxid)
    /// A follower hands a write to the leader.
    case forward(ForwardedWrite)
    /// Heartbeat. From a follower it carries the sessions its clients touched since the last one.
    case ping(touchedSessions: [Int64])
    /// `sync` on a follower: answer `barrierDone` once everything proposed before is committed.
    case barrier(token: UInt64)
    case barrierDone(token: UInt64)
    /// A follower's client resumes a session: may it? The leader alone knows whether the session
    /// is being closed (it expires sessions and orders every close), so a follower asks before it
    /// answers the connect, as ZooKeeper's learners do.
    case revalidate(sessionId: Int64, timeoutMs: Int64)
    /// The leader's answer; when `valid`, the session's expiry starts again from now. Sent on the
    /// same ordered channel as proposals and commits: a session found valid has no close proposed
    /// before this answer.
    case revalidated(sessionId: Int64, valid: Bool)
}

/// How a follower reaches the leader's history.
public struct SyncPlan: Sendable {
    public enum Kind: Sendable {
        /// The follower's log is a prefix of the leader's: append `transactions`.
        case diff
        /// The follower has a suffix the leader does not: drop everything after `zxid`, then
        /// append `transactions`.
        case trunc(after: Zxid)
        /// The follower is too far behind: replace its state with the leader's committed tree,
        /// then append `transactions`.
        case snap(DataTree)
    }
    public var kind: Kind
    public var transactions: [Transaction]
    /// The new epoch; NEWLEADER.
    public var epoch: Int64
    public init(kind: Kind, transactions: [Transaction], epoch: Int64) {
        self.kind = kind
        self.transactions = transactions
        self.epoch = epoch
    }
}

/// A write a follower received from one of its clients.
public enum ForwardedWrite: Sendable, Hashable {
    case createSession(sessionId: Int64, timeoutMs: Int64)
    case request(sessionId: Int64, header: RequestHeader, request: Request, authIds: [Id])
}

/// Zab's durable state besides the log.
public struct HardState: Sendable, Hashable {
    public var currentEpoch: Int64 = 0
    public var acceptedEpoch: Int64 = 0
    public var lastVoteServer: Int64 = 0
    public var lastVoteZxid: Int64 = 0
    public var lastVoteEpoch: Int64 = 0
    public init() {}
}

/// The state a replica restarts from: the newest snapshot (committed state) and the logged
/// transactions after it, which may or may not have been committed and so are not applied yet.
public struct RecoveredState: Sendable {
    public var tree: DataTree
    public var log: [Transaction]
    public var hardState: HardState
    public init(tree: DataTree = DataTree(), log: [Transaction] = [], hardState: HardState = HardState()) {
        self.tree = tree
        self.log = log
        self.hardState = hardState
    }
    public var lastZxid: Zxid { log.last?.zxid ?? tree.lastZxid }
}

/// One storage operation. A `Ready`'s operations are carried out in order and made durable
/// before the shell reports `.persisted`.
public enum StorageOp: Sendable {
    case append([Transaction])
    case truncate(after: Zxid)
    case installSnapshot(DataTree)
    case saveHardState(HardState)
}

/// One message to one peer.
public struct PeerOutgoing: Sendable {
    public var to: Int64
    public var message: PeerMessage
}
