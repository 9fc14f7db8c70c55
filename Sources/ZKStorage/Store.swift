import NIOCore
import ZKCore
import ZKProtocol

/// Durable storage of one replica: transaction log, snapshots and hard state.
///
/// Implementations are used from one thread at a time. `append` returns once the batch is
/// durable (when the store syncs); the caller tells the replica `.persisted(upTo:)` only then.
public protocol ReplicaStore: AnyObject {
    /// Loads the newest snapshot and reads the log after it, verifying checksums and zxid
    /// contiguity. The log is returned unapplied: whether it is committed is Zab's to decide. Throws a `StorageError` naming the file and zxid of anything damaged.
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
