import CSQLite
import Foundation
import NIOCore
import ZKCore
import ZKProtocol

/// A replica's durable state in one SQLite database (`DIR/minizk.sqlite3`), in WAL mode.
///
/// Schema, version 1:
///
///     meta(key TEXT PRIMARY KEY, value INTEGER)
///         schema_version, current_epoch, accepted_epoch, last_vote_server, last_vote_zxid,
///         last_vote_epoch
///     log(zxid INTEGER PRIMARY KEY, record BLOB, crc INTEGER)
///         record = a Transaction in the grammar of TransactionCodec.swift; crc = CRC-32C of it
///     snapshots(zxid INTEGER PRIMARY KEY, chunks INTEGER, bytes INTEGER, complete INTEGER)
///     snapshot_chunks(zxid INTEGER, seq INTEGER, data BLOB, crc INTEGER, PRIMARY KEY(zxid, seq))
///         data = consecutive pieces of a snapshot in the grammar of SnapshotCodec.swift
///
/// One `append` is one SQLite transaction: with `synchronous=FULL` that is one fsync of the WAL
/// per batch (group commit happens in the shell, which batches whatever arrived while the previous
/// append ran). A torn last write after a crash is an incomplete WAL frame, which SQLite discards
/// on open; a record whose bytes changed afterwards fails its CRC and recovery stops with an error
/// naming the zxid.
public final class SQLiteStore: ReplicaStore {
    public static let fileName = "minizk.sqlite3"
    static let schemaVersion: Int64 = 1

    public struct Options: Sendable {
        /// ZooKeeper's `forceSync`: fsync every batch. Off only for tests.
        public var forceSync = true
        /// Snapshots kept; log records older than the oldest one are removed.
        public var snapshotsKept = 3
        public var snapshotChunkBytes = 1 << 20
        public init() {}
    }

    public let path: String
    let options: Options
    let db: SQLiteDatabase
    private let insertLog: SQLiteStatement
    private let setMeta: SQLiteStatement
    public private(set) var lastZxid: Zxid = 0
    private var lastSnapshotZxid: Zxid = 0

    public init(directory: String, options: Options = Options()) throws(StorageError) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw .sqlite(file: directory, code: -1, message: "cannot create directory: \(error)")
        }
        self.path = (directory as NSString).appendingPathComponent(Self.fileName)
        self.options = options
        db = try SQLiteDatabase(path: path)
        try db.execute("PRAGMA journal_mode=WAL")
        try db.execute("PRAGMA synchronous=\(options.forceSync ? "FULL" : "OFF")")
        try db.execute(
            """
            CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS log(zxid INTEGER PRIMARY KEY, record BLOB NOT NULL, crc INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS snapshots(zxid INTEGER PRIMARY KEY, chunks INTEGER NOT NULL, bytes INTEGER NOT NULL, complete INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS snapshot_chunks(zxid INTEGER NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL, crc INTEGER NOT NULL, PRIMARY KEY(zxid, seq)) WITHOUT ROWID;
            INSERT OR IGNORE INTO meta(key, value) VALUES('schema_version', \(Self.schemaVersion));
            """)
        insertLog = try db.prepare("INSERT INTO log(zxid, record, crc) VALUES(?, ?, ?)")
        setMeta = try db.prepare("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)")
        let version = try meta("schema_version") ?? 0
        guard version == Self.schemaVersion else { throw .unsupportedSchema(file: path, version: version) }
    }

    private func meta(_ key: String) throws(StorageError) -> Int64? {
        let statement = try db.prepare("SELECT value FROM meta WHERE key = '\(key)'")
        return try statement.step() ? statement.int64(0) : nil
    }

    private func writeMeta(_ key: String, _ value: Int64) throws(StorageError) {
        _ = key.withCString { text in
            sqlite3_bind_text(setMeta.statement, 1, text, -1, unsafeBitCast(-1, to: sqlite3_destructor_type.self))
        }
        setMeta.bind(2, value)
        try setMeta.run()
    }

    private func inTransaction(_ body: () throws(StorageError) -> Void) throws(StorageError) {
        try db.execute("BEGIN IMMEDIATE")
        do {
            try body()
            try db.execute("COMMIT")
        } catch {
            try? db.execute("ROLLBACK")
            throw error
        }
    }

    // MARK: - Log

    public func append(_ transactions: [Transaction]) throws(StorageError) {
        guard !transactions.isEmpty else { return }
        var previous = lastZxid
        for txn in transactions {
            precondition(previous == 0 || isContiguous(previous, txn.zxid), "log append of 0x\(String(txn.zxid, radix: 16)) after 0x\(String(previous, radix: 16))")
            previous = txn.zxid
        }
        var buffer = ByteBuffer()
        try inTransaction { () throws(StorageError) in
            for txn in transactions {
                buffer.clear()
                txn.encode(into: &buffer)
                try buffer.withUnsafeReadableBytes { (bytes) throws(StorageError) in
                    insertLog.bind(1, txn.zxid)
                    insertLog.bind(2, bytes)
                    insertLog.bind(3, Int64(CRC32C.checksum(bytes)))
                    try insertLog.run()
                }
            }
        }
        lastZxid = previous
    }

    public func transactions(after zxid: Zxid, limit: Int) throws(StorageError) -> [Transaction] {
        let statement = try db.prepare("SELECT zxid, record, crc FROM log WHERE zxid > ? ORDER BY zxid LIMIT ?")
        statement.bind(1, zxid)
        statement.bind(2, Int64(limit))
        var result: [Transaction] = []
        while try statement.step() {
            result.append(try readRecord(statement))
        }
        return result
    }

    /// Decodes and verifies one log row (zxid, record, crc).
    private func readRecord(_ statement: SQLiteStatement) throws(StorageError) -> Transaction {
        let zxid = statement.int64(0)
        let bytes = statement.blob(1)
        guard UInt32(truncatingIfNeeded: statement.int64(2)) == CRC32C.checksum(bytes) else {
            throw .corruptLogRecord(file: path, zxid: zxid, reason: "checksum mismatch")
        }
        var buffer = ByteBuffer(bytes: bytes)
        let txn: Transaction
        do {
            txn = try Transaction.decode(&buffer)
        } catch {
            throw .corruptLogRecord(file: path, zxid: zxid, reason: "undecodable: \(error)")
        }
        guard txn.zxid == zxid, buffer.readableBytes == 0 else {
            throw .corruptLogRecord(file: path, zxid: zxid, reason: "record holds zxid 0x\(String(txn.zxid, radix: 16))")
        }
        return txn
    }

    // MARK: - Recovery

    public func recover() throws(StorageError) -> RecoveredState {
        var hard = HardState()
        hard.currentEpoch = try meta("current_epoch") ?? 0
        hard.acceptedEpoch = try meta("accepted_epoch") ?? 0
        hard.lastVoteServer = try meta("last_vote_server") ?? 0
        hard.lastVoteZxid = try meta("last_vote_zxid") ?? 0
        hard.lastVoteEpoch = try meta("last_vote_epoch") ?? 0
        var tree = DataTree()
        var snapshotZxid: Zxid = 0
        let newest = try db.prepare("SELECT zxid, chunks FROM snapshots WHERE complete = 1 ORDER BY zxid DESC LIMIT 1")
        if try newest.step() {
            snapshotZxid = newest.int64(0)
            tree = try loadSnapshot(zxid: snapshotZxid, chunks: newest.int64(1))
        }
        lastSnapshotZxid = snapshotZxid
        var last = snapshotZxid
        var replayed = 0
        let rows = try db.prepare("SELECT zxid, record, crc FROM log WHERE zxid > ? ORDER BY zxid")
        rows.bind(1, snapshotZxid)
        var triggers: [WatchTrigger] = []
        while try rows.step() {
            let txn = try readRecord(rows)
            guard last == 0 || isContiguous(last, txn.zxid) else { throw .logGap(file: path, expected: last + 1, found: txn.zxid) }
            tree.apply(txn, triggers: &triggers)
            triggers.removeAll(keepingCapacity: true)
            last = txn.zxid
            replayed += 1
        }
        lastZxid = last
        return RecoveredState(tree: tree, hardState: hard, snapshotZxid: snapshotZxid, replayed: replayed)
    }

    private func loadSnapshot(zxid: Zxid, chunks: Int64) throws(StorageError) -> DataTree {
        let statement = try db.prepare("SELECT seq, data, crc FROM snapshot_chunks WHERE zxid = ? ORDER BY seq")
        statement.bind(1, zxid)
        var buffer = ByteBuffer()
        var expected: Int64 = 0
        while try statement.step() {
            let data = statement.blob(1)
            guard statement.int64(0) == expected else {
                throw .corruptSnapshot(file: path, zxid: zxid, reason: "chunk \(expected) missing")
            }
            guard UInt32(truncatingIfNeeded: statement.int64(2)) == CRC32C.checksum(data) else {
                throw .corruptSnapshot(file: path, zxid: zxid, reason: "checksum mismatch in chunk \(expected)")
            }
            buffer.writeBytes(data)
            expected += 1
        }
        guard expected == chunks else { throw .corruptSnapshot(file: path, zxid: zxid, reason: "\(expected) of \(chunks) chunks present") }
        do {
            let tree = try SnapshotCodec.decode(&buffer)
            guard tree.lastZxid == zxid else { throw SnapshotCodec.DecodeError.invalid("snapshot holds zxid 0x\(String(tree.lastZxid, radix: 16))") }
            return tree
        } catch {
            throw .corruptSnapshot(file: path, zxid: zxid, reason: "\(error)")
        }
    }

    // MARK: - Snapshots

    public func saveSnapshot(_ tree: DataTree) throws(StorageError) {
        let zxid = tree.lastZxid
        guard zxid > lastSnapshotZxid else { return }
        try writeSnapshotRows(tree)
        try inTransaction { () throws(StorageError) in
            let kept = try db.prepare("SELECT zxid FROM snapshots WHERE complete = 1 ORDER BY zxid DESC LIMIT 1 OFFSET ?")
            kept.bind(1, Int64(max(options.snapshotsKept, 1) - 1))
            if try kept.step() {
                let oldest = kept.int64(0)
                try db.execute("DELETE FROM snapshot_chunks WHERE zxid < \(oldest)")
                try db.execute("DELETE FROM snapshots WHERE zxid < \(oldest)")
                try db.execute("DELETE FROM log WHERE zxid <= \(oldest)")
            }
        }
        lastSnapshotZxid = zxid
    }

    /// Writes a snapshot's chunks, one SQLite transaction per chunk so log appends can go between
    /// them, then marks it complete. An incomplete snapshot is ignored by recovery.
    private func writeSnapshotRows(_ tree: DataTree) throws(StorageError) {
        let zxid = tree.lastZxid
        try db.execute("DELETE FROM snapshot_chunks WHERE zxid = \(zxid); DELETE FROM snapshots WHERE zxid = \(zxid)")
        let insert = try db.prepare("INSERT INTO snapshot_chunks(zxid, seq, data, crc) VALUES(?, ?, ?, ?)")
        var seq: Int64 = 0
        var bytes: Int64 = 0
        do {
            try SnapshotCodec.encode(tree, chunkBytes: options.snapshotChunkBytes) { chunk in
                try chunk.withUnsafeReadableBytes { raw in
                    insert.bind(1, zxid)
                    insert.bind(2, seq)
                    insert.bind(3, raw)
                    insert.bind(4, Int64(CRC32C.checksum(raw)))
                    try insert.run()
                }
                seq += 1
                bytes += Int64(chunk.readableBytes)
            }
        } catch let error as StorageError {
            throw error
        } catch {
            throw .sqlite(file: path, code: -1, message: "\(error)")
        }
        try db.execute("INSERT INTO snapshots(zxid, chunks, bytes, complete) VALUES(\(zxid), \(seq), \(bytes), 1)")
    }

    public func truncate(after zxid: Zxid) throws(StorageError) {
        precondition(zxid >= lastSnapshotZxid, "truncate below the snapshot at 0x\(String(lastSnapshotZxid, radix: 16))")
        try db.execute("DELETE FROM log WHERE zxid > \(zxid)")
        lastZxid = min(lastZxid, zxid)
    }

    public func installSnapshot(_ tree: DataTree) throws(StorageError) {
        try inTransaction { () throws(StorageError) in
            try db.execute("DELETE FROM log; DELETE FROM snapshot_chunks; DELETE FROM snapshots")
        }
        lastSnapshotZxid = 0
        try writeSnapshotRows(tree)
        lastSnapshotZxid = tree.lastZxid
        lastZxid = tree.lastZxid
    }

    public func saveHardState(_ state: HardState) throws(StorageError) {
        try inTransaction { () throws(StorageError) in
            try writeMeta("current_epoch", state.currentEpoch)
            try writeMeta("accepted_epoch", state.acceptedEpoch)
            try writeMeta("last_vote_server", state.lastVoteServer)
            try writeMeta("last_vote_zxid", state.lastVoteZxid)
            try writeMeta("last_vote_epoch", state.lastVoteEpoch)
        }
    }

    // MARK: - Inspection

    public struct Summary: Sendable {
        public var hardState: HardState
        public var snapshots: [(zxid: Zxid, chunks: Int64, bytes: Int64)]
        public var logFirst: Zxid?
        public var logLast: Zxid?
        public var logCount: Int64
    }

    public func summary() throws(StorageError) -> Summary {
        var hard = HardState()
        hard.currentEpoch = try meta("current_epoch") ?? 0
        hard.acceptedEpoch = try meta("accepted_epoch") ?? 0
        hard.lastVoteServer = try meta("last_vote_server") ?? 0
        hard.lastVoteZxid = try meta("last_vote_zxid") ?? 0
        hard.lastVoteEpoch = try meta("last_vote_epoch") ?? 0
        var snapshots: [(Zxid, Int64, Int64)] = []
        let list = try db.prepare("SELECT zxid, chunks, bytes FROM snapshots WHERE complete = 1 ORDER BY zxid")
        while try list.step() { snapshots.append((list.int64(0), list.int64(1), list.int64(2))) }
        let range = try db.prepare("SELECT MIN(zxid), MAX(zxid), COUNT(*) FROM log")
        _ = try range.step()
        return Summary(
            hardState: hard, snapshots: snapshots, logFirst: range.isNull(0) ? nil : range.int64(0),
            logLast: range.isNull(1) ? nil : range.int64(1), logCount: range.int64(2))
    }
}
