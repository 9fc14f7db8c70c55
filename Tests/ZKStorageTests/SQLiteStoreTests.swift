import Foundation
import NIOCore
import XCTest
import ZKCore
import ZKProtocol

@testable import ZKStorage

final class SQLiteStoreTests: XCTestCase {
    var directory: String!

    override func setUp() {
        directory = NSTemporaryDirectory() + "minizk-store-\(UUID().uuidString)"
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func makeTransactions(_ range: ClosedRange<Int64>) -> [Transaction] {
        range.map { zxid in
            let body: TransactionBody
            switch zxid {
            case 1: body = .createSession(timeoutMs: 4000)
            case 2: body = .create(path: "/a", data: Array("x".utf8), acl: ACL.openUnsafe, kind: .persistent)
            case 3: body = .create(path: "/a/e", data: nil, acl: ACL.openUnsafe, kind: .ephemeral(owner: 7))
            default: body = .setData(path: "/a", data: Array("v\(zxid)".utf8), version: Int32(zxid - 3))
            }
            return Transaction(zxid: zxid, timeMs: 1000 + zxid, sessionId: 7, cxid: Int32(zxid), body: body)
        }
    }

    /// The snapshot with the recovered log applied.
    func applied(_ recovered: RecoveredState) -> DataTree {
        var tree = recovered.tree
        var triggers: [WatchTrigger] = []
        for txn in recovered.log { tree.apply(txn, triggers: &triggers) }
        return tree
    }

    /// Applies transactions to a fresh tree, the reference the store's recovery must reproduce.
    func reference(_ txns: [Transaction]) -> DataTree {
        var tree = DataTree()
        var triggers: [WatchTrigger] = []
        for txn in txns { tree.apply(txn, triggers: &triggers) }
        return tree
    }

    func testRecoveryReplaysTheLog() throws {
        let txns = makeTransactions(1...20)
        do {
            let store = try SQLiteStore(directory: directory)
            try store.append(Array(txns[0..<5]))
            try store.append(Array(txns[5...]))
        }
        let store = try SQLiteStore(directory: directory)
        let recovered = try store.recover()
        XCTAssertEqual(recovered.log.count, 20)
        XCTAssertEqual(recovered.lastZxid, 20)
        XCTAssertTrue(applied(recovered).sameNodes(as: reference(txns)))
        XCTAssertEqual(applied(recovered).sessions, reference(txns).sessions)
        XCTAssertEqual(store.lastZxid, 20)
    }

    func testSnapshotPlusLogRecoversAndOldLogIsCompacted() throws {
        let txns = makeTransactions(1...30)
        do {
            var options = SQLiteStore.Options()
            options.snapshotsKept = 1
            options.snapshotChunkBytes = 64
            let store = try SQLiteStore(directory: directory, options: options)
            try store.append(Array(txns[0..<10]))
            try store.saveSnapshot(reference(Array(txns[0..<10])))
            try store.append(Array(txns[10..<20]))
            try store.saveSnapshot(reference(Array(txns[0..<20])))
            try store.append(Array(txns[20...]))
            let summary = try store.summary()
            XCTAssertEqual(summary.snapshots.map(\.zxid), [20])
            XCTAssertEqual(summary.logFirst, 21, "records covered by the oldest kept snapshot are gone")
        }
        let recovered = try SQLiteStore(directory: directory).recover()
        XCTAssertEqual(recovered.tree.lastZxid, 20)
        XCTAssertEqual(recovered.log.count, 10)
        XCTAssertTrue(applied(recovered).sameNodes(as: reference(txns)))
        XCTAssertEqual(applied(recovered).ephemerals(of: 7), ["/a/e"])
    }

    func testTruncateAfterRemovesTheSuffix() throws {
        let store = try SQLiteStore(directory: directory)
        try store.append(makeTransactions(1...10))
        try store.truncate(after: 6)
        XCTAssertEqual(store.lastZxid, 6)
        let recovered = try SQLiteStore(directory: directory).recover()
        XCTAssertEqual(recovered.lastZxid, 6)
        try store.append(makeTransactions(7...8))
        XCTAssertEqual(try store.transactions(after: 5, limit: 10).map(\.zxid), [6, 7, 8])
    }

    func testInstallSnapshotReplacesEverything() throws {
        let store = try SQLiteStore(directory: directory)
        try store.append(makeTransactions(1...10))
        let other = reference(makeTransactions(1...4))
        try store.installSnapshot(other)
        let recovered = try SQLiteStore(directory: directory).recover()
        XCTAssertEqual(recovered.tree.lastZxid, 4)
        XCTAssertEqual(recovered.log.count, 0)
        XCTAssertTrue(recovered.tree.sameNodes(as: other))
    }

    /// A store opened again after a failure must be the one that was there: `mustExist` refuses
    /// an empty directory (and creates nothing in it); `close()` may be called twice, and the
    /// store opens again after it.
    func testMustExistRefusesAMissingStoreAndCloseReleasesTheLock() throws {
        var again = SQLiteStore.Options()
        again.mustExist = true
        XCTAssertThrowsError(try SQLiteStore(directory: directory, options: again)) { error in
            XCTAssertTrue("\(error)".contains("no MiniZK store here"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory), "a refused open created the directory")
        let store = try SQLiteStore(directory: directory)
        try store.append(makeTransactions(1...3))
        store.close()
        store.close()
        let reopened = try SQLiteStore(directory: directory, options: again)
        XCTAssertEqual(try reopened.recover().log.count, 3)
    }

    func testHardStateSurvivesRestart() throws {
        var hard = HardState()
        hard.currentEpoch = 3
        hard.acceptedEpoch = 4
        hard.lastVoteServer = 2
        try SQLiteStore(directory: directory).saveHardState(hard)
        XCTAssertEqual(try SQLiteStore(directory: directory).recover().hardState, hard)
    }

    func testOneWriteCarriesAppendsHardStateAndTruncateInOrder() throws {
        let store = try SQLiteStore(directory: directory)
        var hard = HardState()
        hard.currentEpoch = 5
        let txns = makeTransactions(1...8)
        try store.write([.append(Array(txns[0..<6])), .saveHardState(hard), .truncate(after: 4), .append(Array(txns[4..<8]))])
        XCTAssertEqual(store.statistics.durableWrites, 1, "one SQLite transaction")
        XCTAssertEqual(store.lastZxid, 8)
        let recovered = try SQLiteStore(directory: directory).recover()
        XCTAssertEqual(recovered.hardState, hard)
        XCTAssertEqual(recovered.log.map(\.zxid), Array(1...8))
        XCTAssertTrue(applied(recovered).sameNodes(as: reference(txns)))
    }

    /// A snapshot written a chunk at a time, with log appends between the chunks, recovers to the
    /// same tree; until its last chunk it does not count.
    func testSnapshotChunksInterleaveWithAppends() throws {
        var options = SQLiteStore.Options()
        options.snapshotChunkBytes = 40
        options.snapshotsKept = 1
        let store = try SQLiteStore(directory: directory, options: options)
        let txns = makeTransactions(1...40)
        try store.append(Array(txns[0..<20]))
        try store.startSnapshot(reference(Array(txns[0..<20])))
        var next = 20
        var progress = SnapshotProgress.writing
        var chunks = 0
        while progress == .writing {
            if next < 40 {
                try store.append([txns[next]])
                next += 1
            }
            if chunks == 2 {
                XCTAssertEqual(try SQLiteStore(directory: directory).summary().snapshots.count, 0, "not complete yet")
            }
            progress = try store.continueSnapshot()
            chunks += 1
        }
        XCTAssertEqual(progress, .completed)
        XCTAssertGreaterThan(chunks, 3)
        if next < 40 { try store.append(Array(txns[next...])) }
        let summary = try store.summary()
        XCTAssertEqual(summary.snapshots.map(\.zxid), [20])
        XCTAssertEqual(summary.logFirst, 21, "the log the snapshot covers is gone")
        let recovered = try SQLiteStore(directory: directory).recover()
        XCTAssertEqual(recovered.tree.lastZxid, 20)
        XCTAssertTrue(applied(recovered).sameNodes(as: reference(txns)))
    }

    /// Dropping older snapshots and the log they cover happens in pieces after the new snapshot
    /// counts, not in the transaction that completes it.
    func testCompactionAfterASnapshotComesInPieces() throws {
        var options = SQLiteStore.Options()
        options.snapshotChunkBytes = 40
        options.snapshotsKept = 1
        let store = try SQLiteStore(directory: directory, options: options)
        let txns = makeTransactions(1...30)
        try store.append(Array(txns[0..<10]))
        try store.saveSnapshot(reference(Array(txns[0..<10])))
        try store.append(Array(txns[10...]))
        XCTAssertGreaterThan(try chunkCount(), 0)
        try store.startSnapshot(reference(txns))
        var progress = SnapshotProgress.writing
        var sawCompleteButNotCompacted = false
        while progress == .writing {
            progress = try store.continueSnapshot()
            let summary = try store.summary()
            if summary.snapshots.map(\.zxid) == [30], try chunkCount() > 0 || summary.logCount > 0 {
                sawCompleteButNotCompacted = true
            }
        }
        XCTAssertEqual(progress, .completed)
        XCTAssertTrue(sawCompleteButNotCompacted, "the new snapshot counted before the old one was gone")
        let summary = try store.summary()
        XCTAssertEqual(summary.snapshots.map(\.zxid), [30])
        XCTAssertEqual(summary.logCount, 0)
        let recovered = try SQLiteStore(directory: directory).recover()
        XCTAssertTrue(applied(recovered).sameNodes(as: reference(txns)))
    }

    func chunkCount(belowZxid zxid: Int64 = 30) throws -> Int64 {
        let db = try SQLiteDatabase(path: directory + "/" + SQLiteStore.fileName)
        let count = try db.prepare("SELECT COUNT(*) FROM snapshot_chunks WHERE zxid < \(zxid)")
        _ = try count.step()
        return count.int64(0)
    }

    func testAnInterruptedSnapshotIsIgnoredThenCleanedUp() throws {
        var options = SQLiteStore.Options()
        options.snapshotChunkBytes = 40
        let txns = makeTransactions(1...10)
        do {
            let store = try SQLiteStore(directory: directory, options: options)
            try store.append(txns)
            try store.startSnapshot(reference(txns))
            XCTAssertEqual(try store.continueSnapshot(), .writing)
            XCTAssertEqual(try store.continueSnapshot(), .writing)
        }
        let store = try SQLiteStore(directory: directory, options: options)
        let recovered = try store.recover()
        XCTAssertEqual(recovered.tree.lastZxid, 0, "the incomplete snapshot is not used")
        XCTAssertEqual(recovered.log.count, 10)
        let db = try SQLiteDatabase(path: directory + "/" + SQLiteStore.fileName)
        let count = try db.prepare("SELECT COUNT(*) FROM snapshot_chunks")
        XCTAssertTrue(try count.step())
        XCTAssertEqual(count.int64(0), 0, "its chunks are removed on open")
    }

    func testTruncateBelowASnapshotBeingWrittenAbandonsIt() throws {
        let store = try SQLiteStore(directory: directory)
        let txns = makeTransactions(1...10)
        try store.append(txns)
        try store.startSnapshot(reference(txns))
        try store.truncate(after: 6)
        XCTAssertEqual(try store.continueSnapshot(), .idle)
        XCTAssertTrue(try store.summary().snapshots.isEmpty)
    }

    func testReadOnlyStoreRefusesAMissingDirectory() {
        var options = SQLiteStore.Options()
        options.readOnly = true
        XCTAssertThrowsError(try SQLiteStore(directory: directory + "/missing", options: options))
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/missing"))
    }

    // MARK: - Damage

    func rawExecute(_ sql: String) throws {
        let db = try SQLiteDatabase(path: directory + "/" + SQLiteStore.fileName)
        try db.execute(sql)
    }

    func testFlippedLogRecordByteIsReportedWithItsZxid() throws {
        try SQLiteStore(directory: directory).append(makeTransactions(1...10))
        try rawExecute("UPDATE log SET record = CAST(zeroblob(length(record)) AS BLOB) WHERE zxid = 7")
        XCTAssertThrowsError(try SQLiteStore(directory: directory).recover()) { error in
            XCTAssertEqual(error as? StorageError, .corruptLogRecord(file: directory + "/minizk.sqlite3", zxid: 7, reason: "checksum mismatch"))
            XCTAssertTrue("\(error)".contains("zxid 0x7"))
        }
    }

    func testMissingLogRecordIsAGap() throws {
        try SQLiteStore(directory: directory).append(makeTransactions(1...10))
        try rawExecute("DELETE FROM log WHERE zxid = 4")
        XCTAssertThrowsError(try SQLiteStore(directory: directory).recover()) { error in
            guard case .logGap(_, let expected, let found)? = error as? StorageError else { return XCTFail("\(error)") }
            XCTAssertEqual(expected, 4)
            XCTAssertEqual(found, 5)
        }
    }

    func testDamagedSnapshotChunkIsReported() throws {
        var options = SQLiteStore.Options()
        options.snapshotChunkBytes = 32
        let store = try SQLiteStore(directory: directory, options: options)
        let txns = makeTransactions(1...10)
        try store.append(txns)
        try store.saveSnapshot(reference(txns))
        try rawExecute("UPDATE snapshot_chunks SET data = X'00112233' WHERE seq = 1")
        XCTAssertThrowsError(try SQLiteStore(directory: directory).recover()) { error in
            guard case .corruptSnapshot(_, let zxid, let reason)? = error as? StorageError else { return XCTFail("\(error)") }
            XCTAssertEqual(zxid, 10)
            XCTAssertTrue(reason.contains("chunk 1"), reason)
        }
    }

    func testTruncatedDatabaseFileIsRefused() throws {
        let store = try SQLiteStore(directory: directory)
        try store.append(makeTransactions(1...200))
        store.db.close()
        let file = directory + "/" + SQLiteStore.fileName
        // Checkpoint the WAL into the main file first, so truncating the file destroys pages.
        try rawExecute("PRAGMA wal_checkpoint(TRUNCATE)")
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: file))
        try handle.truncate(atOffset: 4096 + 100)
        try handle.close()
        XCTAssertThrowsError(try SQLiteStore(directory: directory).recover()) { error in
            XCTAssertTrue("\(error)".contains(file), "\(error)")
        }
    }

    func testTransactionCodecRoundTripsEveryBody() throws {
        let bodies: [TransactionBody] = [
            .createSession(timeoutMs: 30000), .closeSession(ephemerals: ["/a", "/b"]),
            .create(path: "/c", data: nil, acl: ACL.creatorAll, kind: .ttl(ms: 99)),
            .create(path: "/d", data: [], acl: ACL.openUnsafe, kind: .container), .delete(path: "/c"),
            .setData(path: "/d", data: [1, 2], version: 4), .setACL(path: "/d", acl: ACL.readUnsafe, version: 2),
            .check(path: "/d"), .multi([.delete(path: "/x"), .check(path: "/y")]), .error(.noNode),
            .failedMulti([.ok, .badVersion, .runtimeInconsistency]),
            // A character outside the BMP (written as Java does, two surrogates) reads back whole,
            // so a replica that received it, or restarted, holds what the leader holds.
            .setACL(path: "/d", acl: [ACL(perms: .read, id: Id(scheme: "sasl", id: "u\u{1F600}v\u{1E000}"))], version: 3),
        ]
        for (index, body) in bodies.enumerated() {
            let txn = Transaction(zxid: Int64(index + 1), timeMs: 5, sessionId: 6, cxid: 7, body: body)
            var buffer = txn.encoded()
            XCTAssertEqual(try Transaction.decode(&buffer), txn)
            XCTAssertEqual(buffer.readableBytes, 0)
            var bytes = txn.encoded()
            for cut in 0..<bytes.readableBytes {
                var truncated = bytes.getSlice(at: bytes.readerIndex, length: cut)!
                XCTAssertThrowsError(try Transaction.decode(&truncated))
            }
            _ = bytes.readBytes(length: 0)
        }
    }
}

final class MemoryStoreTests: XCTestCase {
    func applied(_ recovered: RecoveredState) -> DataTree {
        var tree = recovered.tree
        var triggers: [WatchTrigger] = []
        for txn in recovered.log { tree.apply(txn, triggers: &triggers) }
        return tree
    }

    func txn(_ zxid: Int64) -> Transaction {
        Transaction(zxid: zxid, timeMs: 0, sessionId: 0, cxid: 0, body: .create(path: "/n\(zxid)", data: [1, 2, 3], acl: ACL.openUnsafe, kind: .persistent))
    }

    func testCrashLosesWhatWasNotSyncedAndDropsATornTail() throws {
        let store = MemoryStore(syncsOnAppend: false)
        try store.append([txn(1), txn(2)])
        store.sync()
        try store.append([txn(3), txn(4)])
        store.crash(tearLastWrite: true)
        let recovered = try store.recover()
        XCTAssertEqual(recovered.lastZxid, 2)
        XCTAssertNil(applied(recovered).node("/n3"))
        try store.append([txn(3)])
        store.sync()
        XCTAssertEqual(try store.recover().lastZxid, 3, "the torn record was truncated, the log continues")
    }

    func testDamageInsideTheLogIsAnError() throws {
        let store = MemoryStore()
        try store.append([txn(1), txn(2), txn(3)])
        store.damage(zxid: 2)
        XCTAssertThrowsError(try store.recover()) { error in
            XCTAssertEqual(error as? StorageError, .corruptLogRecord(file: "memory", zxid: 2, reason: "checksum mismatch"))
        }
    }

    /// Kept as values (the in-memory ensembles): the same recovery as kept encoded — snapshot,
    /// the log after it, a crash losing the unsynced tail — without encoding anything.
    func testAStoreOfValuesRecoversAsAnEncodedOne() throws {
        for keepsEncoded in [true, false] {
            let store = MemoryStore(syncsOnAppend: false, keepsEncoded: keepsEncoded)
            try store.append([txn(1), txn(2), txn(3)])
            store.sync()
            var tree = DataTree()
            for zxid: Int64 in 1...2 {
                var triggers: [WatchTrigger] = []
                _ = tree.apply(txn(zxid), triggers: &triggers)
            }
            try store.saveSnapshot(tree)
            try store.append([txn(4)])
            store.sync()
            try store.append([txn(5)])
            store.crash(tearLastWrite: true)
            let recovered = try store.recover()
            XCTAssertEqual(recovered.tree.lastZxid, 2, "keepsEncoded \(keepsEncoded)")
            XCTAssertEqual(recovered.log.map(\.zxid), [3, 4], "keepsEncoded \(keepsEncoded)")
            XCTAssertNotNil(applied(recovered).node("/n4"))
            XCTAssertEqual(try store.transactions(after: 2, limit: 10).map(\.zxid), [3, 4])
        }
    }
}
