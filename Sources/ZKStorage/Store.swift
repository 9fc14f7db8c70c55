import NIOCore
import ZKCore
import ZKProtocol

/// What Zab must remember across restarts besides the log (used once the ensemble lands).
public struct HardState: Sendable, Hashable {
    public var currentEpoch: Int64 = 0
    public var acceptedEpoch: Int64 = 0
    public var lastVoteServer: Int64 = 0
    public var lastVoteZxid: Int64 = 0
    public var lastVoteEpoch: Int64 = 0
    public init() {}
}

/// The state a replica restarts from.
public struct RecoveredState: Sendable {
    public var tree: DataTree
    public var hardState: HardState
    /// Zxid of the snapshot the tree was loaded from (0: none, started from the empty tree).
    public var snapshotZxid: Zxid
    /// Number of log records replayed on top of it.
    public var replayed: Int
}

/// Durable storage of one replica: transaction log, snapshots and hard state.
///
/// Implementations are used from one thread at a time. `append` returns once the batch is
/// durable (when the store syncs); the caller tells the replica `.persisted(upTo:)` only then.
public protocol ReplicaStore: AnyObject {
    /// Loads the newest snapshot and replays the log after it, verifying checksums and zxid
    /// contiguity. Throws a `StorageError` naming the file and zxid of anything damaged.
    func recover() throws(StorageError) -> RecoveredState
    /// Appends a batch of transactions in one durable write.
    func append(_ transactions: [Transaction]) throws(StorageError)
    /// Stores a snapshot of `tree` (taken at `tree.lastZxid`), then drops snapshots beyond the
    /// number kept and log records older than the oldest kept snapshot.
    func saveSnapshot(_ tree: DataTree) throws(StorageError)
    /// Removes every log record after `zxid` (Zab's TRUNC), atomically.
    func truncate(after zxid: Zxid) throws(StorageError)
    /// Replaces everything with a snapshot received from a leader (Zab's SNAP), atomically.
    func installSnapshot(_ tree: DataTree) throws(StorageError)
    func saveHardState(_ state: HardState) throws(StorageError)
    /// Logged transactions with zxid > `zxid`, in order, at most `limit`.
    func transactions(after zxid: Zxid, limit: Int) throws(StorageError) -> [Transaction]
    /// Last logged zxid (or snapshot zxid when the log after it is empty).
    var lastZxid: Zxid { get }
}

/// Zxids in a log must follow each other: the next counter within an epoch, or counter 1 of a
/// later epoch.
func isContiguous(_ previous: Zxid, _ next: Zxid) -> Bool {
    if next.epoch == previous.epoch { return next == previous + 1 }
    return next.epoch > previous.epoch && next.counter == 1
}
