import ZKCore
import ZKProtocol

// Counters the runtime shell keeps for the four-letter words.
//
// ZooKeeper counts packets and request latency in its connection layer, not in its data tree, and
// so does MiniZK: the replica does not know when bytes reach or leave a socket. Latency is measured
// from the moment a request frame is decoded to the moment its reply frame is handed to the socket,
// in whole milliseconds as ZooKeeper reports it.

/// Minimum, average and maximum of a series of latencies, as `srvr`, `mntr` and `cons` print them.
public struct LatencyStatistics: Sendable, Hashable {
    public private(set) var count: Int64 = 0
    public private(set) var totalMs: Int64 = 0
    public private(set) var minMs: Int64 = 0
    public private(set) var maxMs: Int64 = 0

    public init() {}

    public mutating func record(ms: Int64) {
        let ms = max(0, ms)
        minMs = count == 0 ? ms : min(minMs, ms)
        maxMs = max(maxMs, ms)
        totalMs &+= ms
        count += 1
    }

    public var averageMs: Double { count == 0 ? 0 : Double(totalMs) / Double(count) }
}

/// Server-wide counters: what `srvr`, `stat` and `mntr` report and `srst` resets.
public struct ServerStatistics: Sendable, Hashable {
    public var packetsReceived: Int64 = 0
    public var packetsSent: Int64 = 0
    public var latency = LatencyStatistics()
    public init() {}
}

/// Counters of one client connection: what `cons` reports and `crst` resets.
public struct ConnectionStatistics: Sendable, Hashable {
    public var id: ConnectionID
    public var peerAddress: String
    public var peerPort: Int
    /// Wall-clock milliseconds when the connection was accepted.
    public var establishedAtMs: Int64
    public var packetsReceived: Int64 = 0
    public var packetsSent: Int64 = 0
    public var latency = LatencyStatistics()
    /// ZooKeeper's four-letter abbreviation of the last operation answered ("NA" before any).
    public var lastOperation: String = "NA"
    /// The xid of the last request received, -1 before any.
    public var lastCxid: Int64 = -1
    /// The zxid of the last reply sent.
    public var lastZxid: Int64 = -1
    public var lastResponseAtMs: Int64 = 0
    public var lastLatencyMs: Int64 = 0
    /// Whether the shell currently reads from this connection (ZooKeeper prints the selector's
    /// interest set, 1 when reading and 0 when not).
    public var isReading: Bool = true
    /// Requests received whose reply has not been sent.
    public var queuedRequests: Int = 0

    public init(id: ConnectionID, peerAddress: String, peerPort: Int, establishedAtMs: Int64) {
        self.id = id
        self.peerAddress = peerAddress
        self.peerPort = peerPort
        self.establishedAtMs = establishedAtMs
    }

    /// Forgets everything `crst` resets: counters and latencies, not the identity of the connection.
    public mutating func reset() {
        packetsReceived = 0
        packetsSent = 0
        latency = LatencyStatistics()
        lastOperation = "NA"
        lastCxid = -1
        lastZxid = -1
        lastResponseAtMs = 0
        lastLatencyMs = 0
    }
}

/// ZooKeeper's short names of operations, as `cons` shows them in `lop=`.
enum OperationAbbreviation {
    static func of(opcode: Int32) -> String {
        switch OpCode(rawValue: opcode) {
        case .create, .create2, .createContainer, .createTTL: return "CREA"
        case .delete, .deleteContainer: return "DELE"
        case .exists: return "EXIS"
        case .getData: return "GETD"
        case .setData: return "SETD"
        case .getACL: return "GACL"
        case .setACL: return "SACL"
        case .getChildren: return "GETC"
        case .getChildren2: return "GETC"
        case .sync: return "SYNC"
        case .ping: return "PING"
        case .check: return "CHEC"
        case .multi: return "MULT"
        case .multiRead: return "MLTR"
        case .reconfig: return "RECO"
        case .checkWatches: return "CHKW"
        case .removeWatches: return "REMW"
        case .auth: return "AUTH"
        case .setWatches, .setWatches2: return "SETW"
        case .sasl: return "SASL"
        case .getEphemerals: return "GETE"
        case .getAllChildrenNumber: return "GETACN"
        case .addWatch: return "ADDW"
        case .whoAmI: return "HOMI"
        case .closeSession: return "CLOS"
        case .createSession: return "SESS"
        case .notification, .error, .none: return "UNKN"
        }
    }
}

/// What the storage thread did, as `mntr` reports it.
public struct StorageStatistics: Sendable, Hashable {
    /// Durable writes of the log (group-commit batches); with forceSync each is one fsync.
    public var fsyncBatches: Int64 = 0
    /// Those of them the event loop wrote itself (a lone small append while the storage thread
    /// was idle).
    public var batchesWrittenOnLoop: Int64 = 0
    /// Transactions made durable.
    public var loggedTransactions: Int64 = 0
    /// Steps (Readys) whose storage was made durable.
    public var persistedSteps: Int64 = 0
    /// The most transactions one batch carried.
    public var batchTransactionsMax: Int64 = 0
    public var snapshotsStarted: Int64 = 0
    public var snapshotsWritten: Int64 = 0
    /// The zxid of the newest complete snapshot (the one recovered from, until a new one is written).
    public var lastSnapshotZxid: Int64 = 0
    /// The longest durable write of one batch, in milliseconds.
    public var batchWriteMsMax: Int64 = 0
    /// The longest a snapshot piece (a chunk, or the completing transaction) held a batch up.
    public var snapshotPieceMsMax: Int64 = 0
    public init() {}

    mutating func recordBatch(steps: Int, transactions: Int, writeSeconds: Double = 0, snapshotSeconds: Double = 0) {
        fsyncBatches += 1
        persistedSteps += Int64(steps)
        loggedTransactions += Int64(transactions)
        batchTransactionsMax = max(batchTransactionsMax, Int64(transactions))
        batchWriteMsMax = max(batchWriteMsMax, Int64(writeSeconds * 1000))
        snapshotPieceMsMax = max(snapshotPieceMsMax, Int64(snapshotSeconds * 1000))
    }
}
