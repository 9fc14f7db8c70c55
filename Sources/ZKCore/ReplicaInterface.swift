import ZKProtocol

/// Identifies one client connection inside a replica. Watches and auth ids belong to the
/// connection; a session may move from one connection to another.
public typealias ConnectionID = UInt64

/// Settings of one replica. Durations are in milliseconds, limits carry their unit in the name.
public struct ReplicaConfig: Sendable {
    public var serverId: Int64 = 1
    public var tickMs: Int64 = 2000
    /// Defaults to 2 ticks when nil.
    public var minSessionTimeoutMs: Int64? = nil
    /// Defaults to 20 ticks when nil.
    public var maxSessionTimeoutMs: Int64? = nil
    /// `user:base64(sha1(user:password))`; a client whose digest id equals it gets the `super` id.
    public var superDigest: String? = nil
    /// ZooKeeper's `readonlymode.enabled`: a member of an ensemble that has been without a leader
    /// for `readOnlyAfterMs` serves clients that ask for read-only sessions, from its own tree,
    /// and refuses their writes with NOTREADONLY.
    public var readOnlyModeEnabled: Bool = false
    public var readOnlyAfterMs: Int64 = 2000
    /// SASL DIGEST-MD5 users (name → password), as ZooKeeper reads them from the `Server` section
    /// of its JAAS configuration. Empty: SASL is refused with AUTHFAILED.
    public var saslUsers: [String: String] = [:]
    /// ZooKeeper's `zookeeper.extendedTypesEnabled`: TTL nodes.
    public var extendedTypesEnabled: Bool = false
    /// ZooKeeper's `zookeeper.enforceQuota`: the leader refuses creates and setData that exceed a
    /// hard quota limit with QUOTAEXCEEDED and reports soft limits exceeded (`Ready.quotaExceeded`).
    /// Off, quotas are counted (their stats kept) but not checked, as in ZooKeeper.
    public var enforceQuota: Bool = false
    /// How often containers and TTL nodes are checked for removal.
    public var containerCheckIntervalMs: Int64 = 60_000
    /// Requests one connection may have waiting in the pipeline before it is disconnected.
    public var outstandingRequestsPerConnectionMax: Int = 1000
    /// Paths one client connection may watch at once (a path watched for data and children
    /// counts once); 0: no limit, as in ZooKeeper, which has none. A getData, exists,
    /// getChildren or addWatch that would watch one more path is refused with THROTTLEDOP and
    /// not executed; a setWatches that would is refused whole (nothing registered, nothing
    /// fired). Each refusal is reported in `Ready.warnings`.
    public var watchedPathsPerConnectionMax: Int = 0
    /// Client port, reported by `conf`.
    public var clientPort: Int = 2181
    public var dataDir: String = ""
    /// Server ids of the ensemble, this replica's included. One member: standalone.
    public var members: [Int64] = []
    /// Election: how long a replica waits for a better vote once a quorum agrees, and how often
    /// it re-sends unanswered notifications (doubling up to the maximum).
    public var electionFinalizeWaitMs: Int64 = 50
    public var electionResendMinMs: Int64 = 50
    public var electionResendMaxMs: Int64 = 2000
    /// Ticks a follower may take to connect and sync with a leader (ZooKeeper's `initLimit`).
    public var initLimitTicks: Int64 = 10
    /// Ticks a follower may be silent before it is considered gone, and a leader before its
    /// followers give up on it (ZooKeeper's `syncLimit`).
    public var syncLimitTicks: Int64 = 5
    /// Recent transactions kept in memory for DIFF; followers further behind get a SNAP.
    public var logWindowMax: Int = 20_000
    /// Proposals the leader lets be in flight (logged, not yet committed) before it stops
    /// preparing client writes: later writes wait, in arrival order, until commits make room.
    /// Writes of the replica itself (session creation and expiry, container removal) are not held.
    public var proposalsInFlightMax: Int = 10_000
    /// Text of `/zookeeper/config` in an ensemble (ZooKeeper's dynamic config format, see
    /// `EnsembleConfig`); it names voters and observers. Without it every member votes.
    public var ensembleConfigText: String? = nil
    /// ZooKeeper's `reconfigEnabled`: clients (with WRITE on `/zookeeper/config`) may change the
    /// ensemble's members. Off: reconfig answers RECONFIGDISABLED.
    public var reconfigEnabled: Bool = false
    /// Shared by every member: session passwords must check out wherever a client reconnects.
    public var sessionSecret: UInt64 = 0x5EC2_E7A1_1CE0_2181
    /// A snapshot is asked for (`Ready.snapshot`) after this many durably logged transactions,
    /// more exactly after a number drawn each time in [N/2, N] (ZooKeeper's `snapCount`); 0: only
    /// when a reconfiguration asks for one. See `SnapshotSchedule`.
    public var snapshotEveryTransactions: Int = 100_000
    /// Seeds the draws of the snapshot schedule. Give each member its own, so that the members of
    /// an ensemble do not all snapshot at once.
    public var snapshotSeed: UInt64 = 0
    public init() {}

    public var ensembleMembers: [Int64] { members.isEmpty ? [serverId] : members.sorted() }
    public var isStandalone: Bool { ensembleMembers.count == 1 }

    /// The ensemble this replica starts with: `ensembleConfigText` when set (and valid), else
    /// every member a voter.
    public var initialEnsemble: EnsembleConfig {
        if let text = ensembleConfigText, let parsed = try? EnsembleConfig(parsing: text), !parsed.voters.isEmpty { return parsed }
        return EnsembleConfig(voters: ensembleMembers)
    }

    public var sessionTimeoutMsMin: Int64 { minSessionTimeoutMs ?? 2 * tickMs }
    public var sessionTimeoutMsMax: Int64 { maxSessionTimeoutMs ?? 20 * tickMs }
}

/// What the shell feeds the replica.
public enum ReplicaInput: Sendable {
    /// A TCP connection was accepted; `peerAddress` is the client's IP address (for `ip` ACLs and
    /// whoAmI), `peerPort` its port (for `cons`).
    case connectionOpened(ConnectionID, peerAddress: String, peerPort: Int)
    /// The first frame of a connection.
    case connect(ConnectionID, ConnectRequest)
    /// Any later frame.
    case request(ConnectionID, RequestHeader, Request)
    /// The connection is gone (closed by either side); its watches are dropped, its session lives on
    /// until it expires or is resumed elsewhere.
    case connectionClosed(ConnectionID)
    /// Time passed; the shell sends one every tick (and may send more). The current time travels as
    /// the `nowMs` argument of `step`.
    case tick
    /// Every storage operation of every `Ready` up to the one numbered `through` is durable, and
    /// the log ends at `upTo`.
    case persisted(upTo: Zxid, through: UInt64)
    case peerMessage(from: Int64, PeerMessage)
    /// A connection to a peer is up; messages sent to it from now on arrive in order.
    case peerConnected(Int64)
    /// The connection to a peer broke; messages sent to it may have been lost.
    case peerDisconnected(Int64)
    /// The snapshot asked for by `Ready.snapshot` is written (`completed`), or was abandoned
    /// (a TRUNC or a SNAP replaced the history it covered, or it was not newer than the last
    /// one): the next one may be asked for.
    case snapshotFinished(completed: Bool)
}

/// One frame to send to one connection.
public struct OutgoingFrame: Sendable, Hashable {
    public var connection: ConnectionID
    public var frame: ServerFrame
    public init(connection: ConnectionID, frame: ServerFrame) {
        self.connection = connection
        self.frame = frame
    }
}

/// What the shell must do after one `step`:
///
/// 1. **persist**: carry out `storage` in order and make it durable (fsync when the store syncs),
///    then feed `.persisted(upTo: lastLoggedZxid, through: storageSequence)` back into the replica;
///    storage of several Readys may be merged into one durable batch (group commit) as long as
///    their order is kept;
/// 2. **send** `messages` to peers and `frames` to clients, in order per destination
///    (notifications precede the replies that follow them in the list);
/// 3. **close** the connections in `close` once the frames queued before have been flushed;
/// 4. **snapshot**: when `snapshot` is set, write it after the storage of this and every earlier
///    Ready (so that the log it covers is on disk first), drop the log records the snapshots
///    kept no longer need, and step `.snapshotFinished` when done. No other snapshot is asked
///    for meanwhile.
///
/// Messages and frames may leave before the same Ready's storage is durable: nothing in them
/// depends on it. Everything that does — a client's reply to a write, an ACK of a proposal, the
/// ACK of an epoch or of NEWLEADER — is only produced after the replica has been told, through
/// `.persisted`, that what it covers is durable. That is the ordering rule every shell enforces,
/// in one place.
public struct Ready: Sendable {
    public var storage: [StorageOp] = []
    /// Number of this Ready's storage batch (0: no storage).
    public var storageSequence: UInt64 = 0
    public var messages: [PeerOutgoing] = []
    /// When the replica next wants a `.tick`, besides the regular ticks.
    public var wakeAtMs: Int64? = nil
    public var frames: [OutgoingFrame] = []
    /// Every server of the configurations the replica now knows of (the committed one and one
    /// being proposed), when that changed: the shell connects to them.
    public var ensembleServers: [EnsembleConfig.Server]? = nil
    /// Write a snapshot of this tree: the committed tree when the schedule (`SnapshotSchedule`)
    /// found one due, after a durable batch. A reconfiguration makes one due at the next batch,
    /// so that a restart knows the configuration committed without replaying the log (ZooKeeper
    /// writes its dynamic configuration file at that moment).
    public var snapshot: DataTree? = nil
    public var close: [ConnectionID] = []
    /// Reasons for the closes, for the shell's log, index-aligned with `close`.
    public var closeReasons: [String] = []
    /// Quota limits that writes prepared in this step exceeded (only with `enforceQuota`), for
    /// the shell's log; the hard ones were refused with QUOTAEXCEEDED.
    public var quotaExceeded: [QuotaExceeded] = []
    /// Requests refused by a limit in this step (`watchedPathsPerConnectionMax`), worded for the
    /// shell's log at warning.
    public var warnings: [String] = []
    /// Whether the replica serves clients after this step (`Replica.isServing`), given here so
    /// that a shell need not ask the replica after every step.
    public var isServing = false
    public init() {}

    public var isEmpty: Bool {
        storage.isEmpty && frames.isEmpty && close.isEmpty && messages.isEmpty && ensembleServers == nil && snapshot == nil
    }

    /// The transactions `storage` appends, in order.
    public var persist: [Transaction] {
        storage.flatMap { op -> [Transaction] in
            if case .append(let txns) = op { return txns }
            return []
        }
    }

    mutating func send(_ message: PeerMessage, to peer: Int64) {
        messages.append(PeerOutgoing(to: peer, message: message))
    }

    mutating func send(_ frame: ServerFrame, to connection: ConnectionID) {
        frames.append(OutgoingFrame(connection: connection, frame: frame))
    }
    mutating func close(_ connection: ConnectionID, reason: String) {
        close.append(connection)
        closeReasons.append(reason)
    }
}

/// A read-only picture of a replica for the four-letter words and metrics.
public struct ReplicaStatus: Sendable {
    public struct Connection: Sendable {
        public var id: ConnectionID
        public var peerAddress: String
        public var peerPort: Int
        public var sessionId: Int64
        public var sessionTimeoutMs: Int64
        public var outstandingRequests: Int
        public var lastZxid: Int64
        public var watchCount: Int
        public init(
            id: ConnectionID, peerAddress: String, peerPort: Int, sessionId: Int64, sessionTimeoutMs: Int64,
            outstandingRequests: Int, lastZxid: Int64, watchCount: Int
        ) {
            self.id = id
            self.peerAddress = peerAddress
            self.peerPort = peerPort
            self.sessionId = sessionId
            self.sessionTimeoutMs = sessionTimeoutMs
            self.outstandingRequests = outstandingRequests
            self.lastZxid = lastZxid
            self.watchCount = watchCount
        }
    }
    public struct Session: Sendable {
        public var id: Int64
        public var timeoutMs: Int64
        public var expiresAtMs: Int64
        public var ephemerals: [String]
        public init(id: Int64, timeoutMs: Int64, expiresAtMs: Int64, ephemerals: [String]) {
            self.id = id
            self.timeoutMs = timeoutMs
            self.expiresAtMs = expiresAtMs
            self.ephemerals = ephemerals
        }
    }
    public var mode: String = "standalone"
    public var lastZxid: Zxid = 0
    public var nodeCount: Int = 0
    public var approximateDataSize: Int = 0
    public var ephemeralsCount: Int = 0
    public var watchCount: Int = 0
    /// Number of distinct paths with at least one watch.
    public var watchedPathCount: Int = 0
    /// Connections with at least one watch.
    public var watchingConnectionCount: Int = 0
    /// Watched paths per connection, for `wchc` and `wchp`: empty unless asked for
    /// (`Replica.status(watchesByConnection:)`), as listing them costs O(watches).
    public var watchesByConnection: [ConnectionID: [String]] = [:]
    public var connections: [Connection] = []
    public var sessions: [Session] = []
    public var outstandingRequests: Int = 0
    /// Followers connected to this leader, and those in sync and serving.
    public var followers: Int = 0
    public var syncedFollowers: Int = 0
    public var pendingSyncs: Int = 0
    public var currentEpoch: Int64 = 0
    public var serving: Bool = false
    /// The server this replica follows, itself when it leads, -1 while it looks for a leader.
    public var leaderId: Int64 = -1
    /// The committed configuration of an ensemble (nil: standalone), for `conf`.
    public var ensemble: EnsembleConfig? = nil
    /// A digest of the committed tree, equal on replicas that applied the same transactions.
    public var digest: UInt64 = 0
    public init() {}
}
