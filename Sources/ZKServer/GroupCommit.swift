import DequeModule
import ZKCore
import ZKProtocol

// Group commit, the way the runtime shell makes the log durable.
//
// The replica hands the shell, with each `Ready`, the storage operations of that step and a
// sequence number. Making each step's operations durable on its own would cost one fsync per
// step: a few thousand writes per second at best. Instead the shell queues them for its storage
// thread, which takes everything that piled up while it was writing the previous batch and makes
// it durable as one SQLite transaction (one fsync), then reports `.persisted(through:)` the
// highest sequence of that batch. Under load the batches grow by themselves; with one request at
// a time each batch is one step, and no time is spent waiting for company. This is ZooKeeper's
// SyncRequestProcessor idea without its thread-per-stage pipeline.
//
// The queue is a plain value so that the batching rules are tested without threads:
// - jobs leave in the order they came; a batch never reorders and never splits a step;
// - consecutive appends, within and across steps, merge into one append;
// - a batch stops before it would exceed `transactionsMax` or `bytesMax` (but always takes at
//   least one step, however large);
// - a snapshot request is a job of its own: everything queued before it is written first, so the
//   snapshot never covers a transaction whose log record is not on disk yet.

/// Bounds of one group-commit batch.
public struct GroupCommitLimits: Sendable, Hashable {
    /// Transactions in one batch (ZooKeeper's SyncRequestProcessor flushes every 1000).
    public var transactionsMax: Int = 2_000
    /// Estimated bytes of the transactions in one batch.
    public var bytesMax: Int = 8 << 20
    public init() {}
    public init(transactionsMax: Int, bytesMax: Int) {
        precondition(transactionsMax > 0 && bytesMax > 0, "group commit limits must be positive: \(transactionsMax), \(bytesMax)")
        self.transactionsMax = transactionsMax
        self.bytesMax = bytesMax
    }
}

/// What the shell queues for its storage thread.
enum StorageJob: Sendable {
    /// The storage operations of one `Ready`.
    case ready(ops: [StorageOp], sequence: UInt64)
    /// Write a snapshot of this committed tree.
    case snapshot(DataTree)
}

/// Operations of several steps to make durable together.
struct GroupCommitBatch: Sendable {
    var ops: [StorageOp] = []
    /// The highest storage sequence in the batch: `.persisted(through:)` once it is durable.
    var through: UInt64 = 0
    var steps = 0
    var transactions = 0
    var bytes = 0
}

enum GroupCommitWork: Sendable {
    case batch(GroupCommitBatch)
    case snapshot(DataTree)
}

struct GroupCommitQueue {
    private struct Entry {
        var job: StorageJob
        var transactions: Int
        var bytes: Int
    }

    private var entries: Deque<Entry> = []
    /// Total estimated bytes waiting, for metrics.
    private(set) var bytesQueued = 0

    var isEmpty: Bool { entries.isEmpty }
    var count: Int { entries.count }

    mutating func enqueue(_ job: StorageJob) {
        var transactions = 0
        var bytes = 0
        if case .ready(let ops, _) = job {
            for op in ops {
                switch op {
                case .append(let txns):
                    transactions += txns.count
                    for txn in txns { bytes += Self.estimatedBytes(txn.body) }
                case .truncate, .saveHardState: bytes += 64
                case .installSnapshot(let tree): bytes += tree.dataBytes + 64 * tree.nodeCount
                }
            }
        }
        entries.append(Entry(job: job, transactions: transactions, bytes: bytes))
        bytesQueued += bytes
    }

    /// The next piece of work: a snapshot, or a batch of as many consecutive steps as the limits
    /// allow (at least one).
    mutating func next(limits: GroupCommitLimits) -> GroupCommitWork? {
        guard let first = entries.first else { return nil }
        if case .snapshot(let tree) = first.job {
            entries.removeFirst()
            return .snapshot(tree)
        }
        var batch = GroupCommitBatch()
        var appends: [Transaction] = []
        while let entry = entries.first, case .ready(let ops, let sequence) = entry.job {
            if batch.steps > 0,
                batch.transactions + entry.transactions > limits.transactionsMax || batch.bytes + entry.bytes > limits.bytesMax
            {
                break
            }
            entries.removeFirst()
            bytesQueued -= entry.bytes
            for op in ops {
                if case .append(let txns) = op {
                    appends.append(contentsOf: txns)
                } else {
                    if !appends.isEmpty {
                        batch.ops.append(.append(appends))
                        appends = []
                    }
                    batch.ops.append(op)
                }
            }
            precondition(sequence > batch.through, "storage sequence \(sequence) after \(batch.through)")
            batch.through = sequence
            batch.steps += 1
            batch.transactions += entry.transactions
            batch.bytes += entry.bytes
        }
        if !appends.isEmpty { batch.ops.append(.append(appends)) }
        return .batch(batch)
    }

    /// A cheap estimate of a transaction's encoded size: its variable parts plus the fixed header.
    static func estimatedBytes(_ body: TransactionBody) -> Int {
        let header = 32
        switch body {
        case .createSession, .error, .check: return header + 16
        case .closeSession(let paths): return header + paths.reduce(0) { $0 + 4 + $1.utf8.count }
        case .create(let path, let data, let acl, _): return header + 24 + path.utf8.count + (data?.count ?? 0) + 32 * acl.count
        case .delete(let path): return header + 4 + path.utf8.count
        case .setData(let path, let data, _): return header + 12 + path.utf8.count + (data?.count ?? 0)
        case .setACL(let path, let acl, _): return header + 12 + path.utf8.count + 32 * acl.count
        case .multi(let bodies): return header + bodies.reduce(0) { $0 + estimatedBytes($1) }
        case .failedMulti(let codes): return header + 4 * codes.count
        }
    }
}
