// Transactions: the replicated, logged form of a write.
//
// A request is *prepared* into a transaction on the leader (validation, ACL and version checks
// against the tree plus outstanding changes). Applying a transaction is deterministic and cannot
// fail: every decision (sequence suffix, ephemeral owner, the ephemerals a closing session owns)
// was made at prepare time and is recorded in the transaction itself.

/// What kind of znode a create makes.
public enum NodeKind: Sendable, Hashable {
    case persistent
    case ephemeral(owner: Int64)
    case container
    case ttl(ms: Int64)

    /// The `ephemeralOwner` clients see: only real ephemerals expose a non-zero owner.
    public var visibleEphemeralOwner: Int64 {
        if case .ephemeral(let owner) = self { return owner }
        return 0
    }
}

public indirect enum TransactionBody: Sendable, Hashable {
    case createSession(timeoutMs: Int64)
    /// Deletes `ephemerals` (children before parents is not needed: ephemerals have no children).
    case closeSession(ephemerals: [String])
    case create(path: String, data: [UInt8]?, acl: [ACL], kind: NodeKind)
    case delete(path: String)
    case setData(path: String, data: [UInt8]?, version: Int32)
    case setACL(path: String, acl: [ACL], version: Int32)
    /// A version check inside a multi; changes nothing.
    case check(path: String)
    case multi([TransactionBody])
    /// A failed write still consumes a zxid, as in ZooKeeper. For a failed multi `results` holds the
    /// per-operation codes.
    case error(ErrorCode)
    case failedMulti([ErrorCode])
}

public struct Transaction: Sendable, Hashable {
    public var zxid: Zxid
    /// Wall-clock milliseconds on the leader when the request was prepared (ctime/mtime).
    public var timeMs: Int64
    public var sessionId: Int64
    public var cxid: Int32
    public var body: TransactionBody
    public init(zxid: Zxid, timeMs: Int64, sessionId: Int64, cxid: Int32, body: TransactionBody) {
        self.zxid = zxid
        self.timeMs = timeMs
        self.sessionId = sessionId
        self.cxid = cxid
        self.body = body
    }
}
