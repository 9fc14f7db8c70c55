import NIOCore
import ZKCore
import ZKProtocol

/// Durable storage of one replica: transaction log, snapshots and hard state.
///
/// Implementations are used from one thread at a time (the runtime shell gives the store a thread
/// of its own). `write` and `append` return once what they wrote is durable (when the store
/// syncs); the caller tells the replica `.persisted(upTo:)` only then.
public protocol ReplicaStore: AnyObject {
    /// Loads the newest snapshot and reads the log after it, verifying checksums and zxid
    /// contiguity. The log is returned unapplied: whether it is committed is Zab's to decide.
    /// Throws a `StorageError` naming the file and zxid of anything damaged.
    func recover() throws(StorageError) -> RecoveredState
    /// Appends a batch of transactions in one durable write.
    func append(_ transactions: [Transaction]) throws(StorageError)
    /// Carries out `ops` in order as one durable write where the store can: one SQLite
    /// transaction and one fsync for a whole group-commit batch. Either every op is durable when
    /// it returns, or it throws.
    func write(_ ops: [StorageOp]) throws(StorageError)
    /// Stores a snapshot of `tree` (taken at `tree.lastZxid`), then drops snapshots beyond the
    /// number kept and log records older than the oldest kept snapshot.
    func saveSnapshot(_ tree: DataTree) throws(StorageError)
    /// Starts writing a snapshot of `tree` piece by piece, so that log writes can go between the
    /// pieces; `continueSnapshot` writes the pieces. A snapshot that is not newer than the last
    /// one is not started.
    func startSnapshot(_ tree: DataTree) throws(StorageError)
    /// Writes the next piece of the snapshot under way.
    func continueSnapshot() throws(StorageError) -> SnapshotProgress
    /// Removes every log record after `zxid` (Zab's TRUNC), atomically.
    func truncate(after zxid: Zxid) throws(StorageError)
    /// Replaces everything with a snapshot received from a leader (Zab's SNAP), atomically.
    func installSnapshot(_ tree: DataTree) throws(StorageError)
    func saveHardState(_ state: HardState) throws(StorageError)
    /// Logged transactions with zxid > `zxid`, in order, at most `limit`.
    func transactions(after zxid: Zxid, limit: Int) throws(StorageError) -> [Transaction]
    /// Last logged zxid (or snapshot zxid when the log after it is empty).
    var lastZxid: Zxid { get }
    /// Whether a write returns at once, with no disk to wait for (a store in memory): the runtime
    /// shell then writes every batch on the replica's event loop instead of handing it to a
    /// storage thread, which would cost two thread wake-ups a batch for nothing.
    var writesAreInstant: Bool { get }
}

extension ReplicaStore {
    public var writesAreInstant: Bool { false }

    /// One call per operation; a store that can make several durable at once does better.
    public func write(_ ops: [StorageOp]) throws(StorageError) {
        for op in ops {
            switch op {
            case .append(let transactions): try append(transactions)
            case .truncate(let zxid): try truncate(after: zxid)
            case .installSnapshot(let tree): try installSnapshot(tree)
            case .saveHardState(let state): try saveHardState(state)
            }
        }
    }

    /// Writes the whole snapshot at once.
    public func startSnapshot(_ tree: DataTree) throws(StorageError) {
        try saveSnapshot(tree)
    }

    public func continueSnapshot() throws(StorageError) -> SnapshotProgress { .idle }
}

/// Where a snapshot written piece by piece stands after `continueSnapshot`.
public enum SnapshotProgress: Sendable, Hashable {
    /// More pieces to write.
    case writing
    /// The last piece was written: the snapshot is durable and complete, snapshots beyond the
    /// number kept and the log they covered are gone.
    case completed
    /// No snapshot is under way: none was started (it would not have been newer than the last
    /// one), or it was abandoned because a truncate or an installed snapshot made it obsolete.
    case idle
}

/// Zxids in a log must follow each other: the next counter within an epoch, or counter 1 of a
/// later epoch.
func isContiguous(_ previous: Zxid, _ next: Zxid) -> Bool {
    if next.epoch == previous.epoch { return next == previous + 1 }
    return next.epoch > previous.epoch && next.counter == 1
}
