import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest
import ZKCore
import ZKProtocol
import ZKStorage

@testable import ZKServer

/// The batching rules of group commit, on the queue itself (no threads), then on the storage
/// thread with a store that holds its first write until told to go on.
final class GroupCommitTests: XCTestCase {
    func txn(_ counter: Int32, bytes: Int = 10) -> Transaction {
        Transaction(
            zxid: Zxid.make(epoch: 1, counter: counter), timeMs: 0, sessionId: 1, cxid: counter,
            body: .create(path: "/n\(counter)", data: Array(repeating: 7, count: bytes), acl: ACL.openUnsafe, kind: .persistent))
    }

    func batch(_ work: GroupCommitWork?, file: StaticString = #filePath, line: UInt = #line) -> GroupCommitBatch? {
        guard case .batch(let batch)? = work else {
            XCTFail("expected a batch, got \(String(describing: work))", file: file, line: line)
            return nil
        }
        return batch
    }

    func appended(_ ops: [StorageOp]) -> [[Int32]] {
        ops.map { op in
            if case .append(let txns) = op { return txns.map(\.zxid.counter) }
            return []
        }
    }

    func testConsecutiveAppendsOfSeveralStepsMergeIntoOneAppend() {
        var queue = GroupCommitQueue()
        for counter in Int32(1)...5 {
            queue.enqueue(.ready(ops: [.append([txn(counter)])], sequence: UInt64(counter)))
        }
        guard let batch = batch(queue.next(limits: GroupCommitLimits())) else { return }
        XCTAssertEqual(appended(batch.ops), [[1, 2, 3, 4, 5]])
        XCTAssertEqual(batch.through, 5)
        XCTAssertEqual(batch.steps, 5)
        XCTAssertEqual(batch.transactions, 5)
        XCTAssertTrue(queue.isEmpty)
        XCTAssertNil(queue.next(limits: GroupCommitLimits()))
    }

    func testOtherOperationsStayInPlaceBetweenAppends() {
        var queue = GroupCommitQueue()
        var hard = HardState()
        hard.currentEpoch = 2
        queue.enqueue(.ready(ops: [.append([txn(1)])], sequence: 1))
        queue.enqueue(.ready(ops: [.saveHardState(hard), .append([txn(2)])], sequence: 2))
        queue.enqueue(.ready(ops: [.append([txn(3)]), .truncate(after: Zxid.make(epoch: 1, counter: 2))], sequence: 3))
        queue.enqueue(.ready(ops: [.append([txn(3)])], sequence: 4))
        guard let batch = batch(queue.next(limits: GroupCommitLimits())) else { return }
        XCTAssertEqual(batch.ops.count, 5)
        XCTAssertEqual(appended(batch.ops), [[1], [], [2, 3], [], [3]])
        guard case .saveHardState(let saved) = batch.ops[1], case .truncate(let after) = batch.ops[3] else {
            return XCTFail("operations out of place: \(batch.ops)")
        }
        XCTAssertEqual(saved, hard)
        XCTAssertEqual(after, Zxid.make(epoch: 1, counter: 2))
        XCTAssertEqual(batch.through, 4)
    }

    func testTransactionLimitCutsBetweenStepsButNeverInsideOne() {
        var queue = GroupCommitQueue()
        queue.enqueue(.ready(ops: [.append([txn(1), txn(2), txn(3)])], sequence: 1))
        queue.enqueue(.ready(ops: [.append([txn(4)])], sequence: 2))
        queue.enqueue(.ready(ops: [.append([txn(5)])], sequence: 3))
        let limits = GroupCommitLimits(transactionsMax: 2, bytesMax: 1 << 20)
        guard let first = batch(queue.next(limits: limits)) else { return }
        XCTAssertEqual(appended(first.ops), [[1, 2, 3]], "a step larger than the limit still goes whole")
        XCTAssertEqual(first.through, 1)
        guard let second = batch(queue.next(limits: limits)) else { return }
        XCTAssertEqual(appended(second.ops), [[4, 5]])
        XCTAssertEqual(second.through, 3)
    }

    func testByteLimitCutsBetweenSteps() {
        var queue = GroupCommitQueue()
        for counter in Int32(1)...4 {
            queue.enqueue(.ready(ops: [.append([txn(counter, bytes: 1000)])], sequence: UInt64(counter)))
        }
        let limits = GroupCommitLimits(transactionsMax: 100, bytesMax: 2500)
        XCTAssertEqual(batch(queue.next(limits: limits)).map { appended($0.ops) }, [[1, 2]])
        XCTAssertEqual(batch(queue.next(limits: limits)).map { appended($0.ops) }, [[3, 4]])
    }

    func testASnapshotWaitsForEverythingQueuedBeforeIt() {
        var queue = GroupCommitQueue()
        queue.enqueue(.ready(ops: [.append([txn(1)])], sequence: 1))
        queue.enqueue(.snapshot(DataTree()))
        queue.enqueue(.ready(ops: [.append([txn(2)])], sequence: 2))
        XCTAssertEqual(batch(queue.next(limits: GroupCommitLimits())).map { appended($0.ops) }, [[1]])
        guard case .snapshot? = queue.next(limits: GroupCommitLimits()) else { return XCTFail("expected the snapshot") }
        XCTAssertEqual(batch(queue.next(limits: GroupCommitLimits())).map { appended($0.ops) }, [[2]])
    }

    // MARK: - Snapshot schedule

    func testSnapshotThresholdsAreDrawnInHalfToFullIntervalAndRepeatWithTheSeed() {
        var first = SnapshotSchedule(everyTransactions: 1000, seed: 42)
        var second = SnapshotSchedule(everyTransactions: 1000, seed: 42)
        var thresholds: [Int] = []
        for _ in 0..<50 {
            XCTAssertEqual(first.threshold, second.threshold)
            XCTAssertTrue((500...1000).contains(first.threshold), "\(first.threshold)")
            thresholds.append(first.threshold)
            XCTAssertTrue(first.logged(first.threshold))
            XCTAssertTrue(second.logged(second.threshold))
            first.snapshotWritten()
            second.snapshotWritten()
        }
        XCTAssertGreaterThan(Set(thresholds).count, 10, "thresholds vary")
        XCTAssertNotEqual(SnapshotSchedule(everyTransactions: 1000, seed: 43).threshold, SnapshotSchedule(everyTransactions: 1000, seed: 42).threshold)
    }

    func testNoSecondSnapshotWhileOneIsBeingWritten() {
        var schedule = SnapshotSchedule(everyTransactions: 10, seed: 1)
        XCTAssertFalse(schedule.logged(schedule.threshold - 1))
        XCTAssertTrue(schedule.logged(1))
        XCTAssertFalse(schedule.logged(100), "the first is still in flight")
        schedule.snapshotWritten()
        XCTAssertTrue(schedule.logged(schedule.threshold), "counting went on meanwhile")
    }

    /// A reconfiguration asks for a snapshot at the next durable batch (after the one in flight).
    func testASnapshotAskedForComesWithTheNextBatch() {
        var schedule = SnapshotSchedule(everyTransactions: 100_000, seed: 1)
        XCTAssertFalse(schedule.logged(1))
        schedule.takeSoon()
        XCTAssertTrue(schedule.logged(0))
        XCTAssertFalse(schedule.logged(1), "one at a time")
        schedule.takeSoon()
        XCTAssertFalse(schedule.logged(1), "the first is still being written")
        schedule.snapshotWritten()
        XCTAssertTrue(schedule.logged(1))
        XCTAssertFalse(schedule.logged(1), "then the usual interval again")
    }

    // MARK: - The storage thread

    /// While the first batch is being written, the steps that arrive pile up and go as one batch.
    func testStepsQueuedDuringAWriteBecomeOneBatch() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let store = GatedStore()
        let thread = StorageThread(store: store, limits: GroupCommitLimits())
        let events = NIOLockedValueBox<[StorageEvent]>([])
        let eventLoop = group.next()
        let stopped = thread.start(on: eventLoop) { event in events.withLockedValue { $0.append(event) } }
        thread.enqueue(.ready(ops: [.append([txn(1)])], sequence: 1))
        store.waitUntilWriting()
        for counter in Int32(2)...6 {
            thread.enqueue(.ready(ops: [.append([txn(counter)])], sequence: UInt64(counter)))
        }
        store.open()
        thread.stop()
        try await stopped.get()
        XCTAssertEqual(store.batches, [[1], [2, 3, 4, 5, 6]])
        let persisted = events.withLockedValue { $0 }.compactMap { event -> UInt64? in
            if case .persisted(let upTo, let through, _, _, _, _) = event {
                XCTAssertEqual(upTo, Zxid.make(epoch: 1, counter: Int32(through)))
                return through
            }
            return nil
        }
        XCTAssertEqual(persisted, [1, 6])
        try await group.shutdownGracefully()
    }

    func testWriteNowOnlyWhileTheThreadIsIdle() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let store = GatedStore()
        let thread = StorageThread(store: store, limits: GroupCommitLimits())
        let events = NIOLockedValueBox<[StorageEvent]>([])
        let stopped = thread.start(on: group.next()) { event in events.withLockedValue { $0.append(event) } }
        // Busy: the thread holds a batch at the gate, so nothing is written beside it.
        thread.enqueue(.ready(ops: [.append([txn(1)])], sequence: 1))
        store.waitUntilWriting()
        XCTAssertNil(thread.writeNow([.ready(ops: [.append([txn(2)])], sequence: 2)]))
        thread.enqueue(.ready(ops: [.append([txn(2)])], sequence: 2))
        store.open()
        // Idle once both are written: the caller writes, and hears what the thread would have said.
        var now: StorageEvent?
        for _ in 0..<500 where now == nil {
            now = thread.writeNow([.ready(ops: [.append([txn(3)])], sequence: 3), .ready(ops: [.append([txn(4)])], sequence: 4)])
            if now == nil { try await Task.sleep(nanoseconds: 2_000_000) }
        }
        guard case .persisted(let upTo, let through, let steps, let transactions, _, _)? = now else {
            return XCTFail("no write now: \(String(describing: now))")
        }
        XCTAssertEqual(upTo, Zxid.make(epoch: 1, counter: 4))
        XCTAssertEqual(through, 4)
        XCTAssertEqual(steps, 2)
        XCTAssertEqual(transactions, 2)
        thread.stop()
        try await stopped.get()
        XCTAssertEqual(store.batches.flatMap { $0 }, [1, 2, 3, 4])
        XCTAssertNil(thread.writeNow([.ready(ops: [.append([txn(5)])], sequence: 5)]), "stopped")
        try await group.shutdownGracefully()
    }

    func testAFailedWriteIsReportedAndNothingMoreIsWritten() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let store = GatedStore()
        store.failAfter = 1
        store.open()
        let thread = StorageThread(store: store, limits: GroupCommitLimits(transactionsMax: 1, bytesMax: 1 << 20))
        let events = NIOLockedValueBox<[StorageEvent]>([])
        let stopped = thread.start(on: group.next()) { event in events.withLockedValue { $0.append(event) } }
        for counter in Int32(1)...3 {
            thread.enqueue(.ready(ops: [.append([txn(counter)])], sequence: UInt64(counter)))
        }
        try await stopped.get()
        XCTAssertEqual(store.batches, [[1]])
        let kinds = events.withLockedValue { $0 }.map { event -> String in
            switch event {
            case .persisted: return "persisted"
            case .snapshotFinished: return "snapshot"
            case .failed: return "failed"
            }
        }
        XCTAssertEqual(kinds, ["persisted", "failed"])
        try await group.shutdownGracefully()
    }
}

/// A store whose writes wait at a gate, so a test can queue work while one is under way.
private final class GatedStore: ReplicaStore, @unchecked Sendable {
    private let lock = ConditionLock(value: 0)  // 0 closed, 1 open
    private let state = NIOLockedValueBox<(writing: Bool, batches: [[Int32]])>((false, []))
    private let writing = ConditionLock(value: 0)
    var failAfter = Int.max
    private(set) var lastZxid: Zxid = 0

    var batches: [[Int32]] { state.withLockedValue { $0.batches } }

    func open() {
        lock.lock()
        lock.unlock(withValue: 1)
    }

    func waitUntilWriting() {
        writing.lock(whenValue: 1)
        writing.unlock()
    }

    func write(_ ops: [StorageOp]) throws(StorageError) {
        writing.lock()
        writing.unlock(withValue: 1)
        lock.lock(whenValue: 1)
        lock.unlock()
        let count = state.withLockedValue { $0.batches.count }
        guard count < failAfter else { throw .sqlite(file: "gated", code: 13, message: "disk full") }
        var counters: [Int32] = []
        for case .append(let txns) in ops {
            counters += txns.map(\.zxid.counter)
            lastZxid = txns.last?.zxid ?? lastZxid
        }
        state.withLockedValue { $0.batches.append(counters) }
    }

    func recover() throws(StorageError) -> RecoveredState { RecoveredState() }
    func append(_ transactions: [Transaction]) throws(StorageError) { try write([.append(transactions)]) }
    func saveSnapshot(_ tree: DataTree) throws(StorageError) {}
    func truncate(after zxid: Zxid) throws(StorageError) {}
    func installSnapshot(_ tree: DataTree) throws(StorageError) {}
    func saveHardState(_ state: HardState) throws(StorageError) {}
    func transactions(after zxid: Zxid, limit: Int) throws(StorageError) -> [Transaction] { [] }
}
