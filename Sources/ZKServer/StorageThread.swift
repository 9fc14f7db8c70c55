import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ZKCore
import ZKProtocol
import ZKStorage

/// What the storage thread reports back to the replica's event loop.
enum StorageEvent: Sendable {
    /// A batch is durable: every step up to storage sequence `through`; the log ends at `upTo`.
    /// `writeSeconds` is how long the durable write took; `snapshotSeconds` how long the snapshot
    /// piece written just before it held the batch up (0 without a snapshot under way).
    case persisted(upTo: Zxid, through: UInt64, steps: Int, transactions: Int, writeSeconds: Double, snapshotSeconds: Double)
    /// A snapshot was written completely, or abandoned because the log it covered was replaced.
    case snapshotFinished(zxid: Zxid, completed: Bool, chunks: Int, seconds: Double)
    /// The store failed; nothing more is written.
    case failed(StorageError)
}

/// The one thread that touches a replica's store.
///
/// The event loop must never wait for a disk, so the shell hands every storage job to this
/// thread through a queue guarded by a condition lock, and the thread hands its results back with
/// `deliver` (which hops to the event loop). Jobs are carried out strictly in the order they were
/// queued (see `GroupCommitQueue` for how steps are batched). Between two batches the thread
/// writes one chunk of the snapshot under way, if any, so a snapshot of a large tree proceeds
/// while the log keeps being written.
///
/// After a store failure the thread reports it once and stops: what follows in the queue depends
/// on what failed, and a replica that cannot make its log durable must stop serving.
final class StorageThread: @unchecked Sendable {
    private static let idle = 0
    private static let workWaiting = 1

    private let store: any ReplicaStore
    private let limits: GroupCommitLimits
    private let pool = NIOThreadPool(numberOfThreads: 1)

    // Guarded by `condition`.
    private let condition = ConditionLock(value: StorageThread.idle)
    private var queue = GroupCommitQueue()
    private var stopRequested = false
    /// The store is in use: by this thread (a batch or a snapshot under way) or by `writeNow`.
    private var storeBusy = false
    private var writingNow = false

    // Touched only on the storage thread.
    private var snapshotZxid: Zxid?
    private var snapshotChunks = 0
    private var snapshotStarted = ContinuousClock.now
    /// Time the last snapshot piece took, reported with the next batch it held up.
    private var snapshotPieceSeconds = 0.0

    init(store: any ReplicaStore, limits: GroupCommitLimits) {
        self.store = store
        self.limits = limits
    }

    /// Starts the thread; the future completes once it has stopped (after `stop`, or a failure).
    ///
    /// - Parameter deliver: called on the storage thread with each result, in order; it must hand
    ///   the event over to the replica's event loop.
    func start(on eventLoop: any EventLoop, deliver: @escaping @Sendable (StorageEvent) -> Void) -> EventLoopFuture<Void> {
        pool.start()
        let finished = pool.runIfActive(eventLoop: eventLoop) { [self] in
            self.run(deliver: deliver)
        }
        return finished.always { [pool] _ in
            pool.shutdownGracefully { _ in }
        }
    }

    /// Queues a job. Returns at once.
    func enqueue(_ job: StorageJob) {
        condition.lock()
        queue.enqueue(job)
        condition.unlock(withValue: Self.workWaiting)
    }

    /// Writes `jobs` on the caller's thread when this thread has nothing to do (nothing queued,
    /// no batch or snapshot under way), and returns what the thread would have reported; nil,
    /// without writing anything, when it is busy. The caller must be the only one that queues
    /// jobs, so nothing can be queued while it writes.
    func writeNow(_ jobs: [StorageJob]) -> StorageEvent? {
        condition.lock()
        guard !storeBusy, queue.isEmpty, !stopRequested else {
            condition.unlock()
            return nil
        }
        storeBusy = true
        writingNow = true
        condition.unlock()
        // The jobs become one batch by the same rules as on the thread, without its limits.
        var steps = GroupCommitQueue()
        for job in jobs { steps.enqueue(job) }
        guard case .batch(let batch)? = steps.next(limits: GroupCommitLimits(transactionsMax: .max, bytesMax: .max)) else {
            preconditionFailure("only steps are written now")
        }
        let event: StorageEvent
        do {
            event = try write(batch, snapshotSeconds: 0)
        } catch {
            event = .failed(error)
        }
        condition.lock()
        storeBusy = false
        writingNow = false
        condition.unlock()
        return event
    }

    /// Makes one batch durable and says so as the thread reports it.
    private func write(_ batch: GroupCommitBatch, snapshotSeconds: Double) throws(StorageError) -> StorageEvent {
        let started = ContinuousClock.now
        try store.write(batch.ops)
        return .persisted(
            upTo: store.lastZxid, through: batch.through, steps: batch.steps, transactions: batch.transactions,
            writeSeconds: Self.seconds(since: started), snapshotSeconds: snapshotSeconds)
    }

    /// Asks the thread to finish what is queued and stop; a snapshot under way is abandoned (it
    /// is not marked complete, so recovery ignores it).
    func stop() {
        condition.lock()
        stopRequested = true
        condition.unlock(withValue: Self.workWaiting)
    }

    /// Jobs waiting and their estimated bytes, for metrics.
    var backlog: (jobs: Int, bytes: Int) {
        condition.lock()
        defer { condition.unlock() }
        return (queue.count, queue.bytesQueued)
    }

    private func run(deliver: @Sendable (StorageEvent) -> Void) {
        while true {
            // While a snapshot is being written there is always something to do; otherwise sleep
            // until a job or a stop arrives.
            if snapshotZxid == nil {
                condition.lock(whenValue: Self.workWaiting)
            } else {
                condition.lock()
            }
            precondition(!writingNow, "the storage thread woke while the event loop wrote")
            let work = queue.next(limits: limits)
            let stopping = stopRequested && work == nil
            storeBusy = work != nil || snapshotZxid != nil
            condition.unlock(withValue: queue.isEmpty && !stopRequested ? Self.idle : Self.workWaiting)
            if stopping { return }
            defer {
                // A snapshot under way keeps the store busy between its pieces.
                condition.lock()
                storeBusy = snapshotZxid != nil
                condition.unlock()
            }
            do {
                switch work {
                case .batch(let batch):
                    deliver(try write(batch, snapshotSeconds: snapshotPieceSeconds))
                    snapshotPieceSeconds = 0
                case .snapshot(let tree):
                    try startSnapshot(tree)
                case nil:
                    break
                }
                if snapshotZxid != nil { try continueSnapshot(deliver: deliver) }
            } catch {
                deliver(.failed(error))
                return
            }
        }
    }

    private func startSnapshot(_ tree: DataTree) throws(StorageError) {
        precondition(snapshotZxid == nil, "a snapshot was queued while one at 0x\(String(snapshotZxid ?? 0, radix: 16)) is being written")
        snapshotStarted = ContinuousClock.now
        try store.startSnapshot(tree)
        snapshotZxid = tree.lastZxid
        snapshotChunks = 0
    }

    private static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    private func continueSnapshot(deliver: @Sendable (StorageEvent) -> Void) throws(StorageError) {
        guard let zxid = snapshotZxid else { return }
        let started = ContinuousClock.now
        let progress = try store.continueSnapshot()
        snapshotPieceSeconds = max(snapshotPieceSeconds, Self.seconds(since: started))
        if progress == .writing {
            snapshotChunks += 1
            return
        }
        snapshotZxid = nil
        // The tree the snapshot held is gone, and with it every node the replica has replaced
        // since: give that memory back to the system.
        SystemFacts.releaseFreeMemory()
        deliver(
            .snapshotFinished(
                zxid: zxid, completed: progress == .completed, chunks: snapshotChunks, seconds: Self.seconds(since: snapshotStarted)))
    }
}
