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
    /// ZooKeeper's `zookeeper.extendedTypesEnabled`: TTL nodes.
    public var extendedTypesEnabled: Bool = false
    /// How often containers and TTL nodes are checked for removal.
    public var containerCheckIntervalMs: Int64 = 60_000
    /// Requests one connection may have waiting in the pipeline before it is disconnected.
    public var outstandingRequestsPerConnectionMax: Int = 1000
    /// Client port, reported by `conf`.
    public var clientPort: Int = 2181
    public var dataDir: String = ""
    public init() {}

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
    /// Every transaction up to and including this zxid is durable.
    case persisted(upTo: Zxid)
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

/// What the shell must do after one `step`, in this order:
///
/// 1. **persist** every record of `persist`, in order, and make it durable (fsync when the store
///    syncs), then feed `.persisted(upTo:)` with the last zxid back into the replica;
/// 2. **send** `frames`, in order, per connection (frames to one connection never overtake each
///    other; notifications precede the replies that follow them in the list);
/// 3. **close** the connections in `close` once the frames queued before have been flushed.
///
/// Nothing in `frames` ever depends on a record of the same `persist` list being durable: the
/// replica only answers a write after it has been told the write is durable. That is the one
/// ordering rule every shell enforces, in one place.
public struct Ready: Sendable {
    public var persist: [Transaction] = []
    public var frames: [OutgoingFrame] = []
    public var close: [ConnectionID] = []
    /// Reasons for the closes, for the shell's log, index-aligned with `close`.
    public var closeReasons: [String] = []
    public init() {}

    public var isEmpty: Bool { persist.isEmpty && frames.isEmpty && close.isEmpty }

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
    }
    public struct Session: Sendable {
        public var id: Int64
        public var timeoutMs: Int64
        public var expiresAtMs: Int64
        public var ephemerals: [String]
    }
    public var mode: String = "standalone"
    public var lastZxid: Zxid = 0
    public var nodeCount: Int = 0
    public var approximateDataSize: Int = 0
    public var ephemeralsCount: Int = 0
    public var watchCount: Int = 0
    /// Number of distinct paths with at least one watch.
    public var watchedPathCount: Int = 0
    /// Watched paths per connection, for `wchc`.
    public var watchesByConnection: [ConnectionID: [String]] = [:]
    public var connections: [Connection] = []
    public var sessions: [Session] = []
    public var outstandingRequests: Int = 0
    public init() {}
}
