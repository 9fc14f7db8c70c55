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
///         data = consecutive pieces of a snapshot in the grammar of SnapshotCodec.swift,
///         seq = 0, 1, ...; crc = CRC-32C of data
///
/// A snapshot counts only once its `snapshots` row exists with `complete = 1` and `chunks` rows
/// numbered 0 to chunks-1 are present; chunks of a snapshot without that row are the remains of
/// one interrupted by a crash, removed when the store is next opened for writing.
///
/// **Durability.** `write` (a group-commit batch: appends, truncations, hard state, an installed
/// snapshot) is one SQLite transaction; with `forceSync` the connection runs with
/// `synchronous=FULL`, so that is one fsync of the WAL per batch. A torn last write after a crash
/// is an incomplete WAL frame, which SQLite discards on open; a record whose bytes changed
/// afterwards fails its CRC and recovery stops with an error naming the file and zxid.
///
/// **Snapshots** are written a chunk at a time (`startSnapshot`, then `continueSnapshot` once per
/// chunk), each chunk its own SQLite transaction, so that the storage thread writes log batches
/// between them and a large snapshot never holds up the log. Chunk transactions run with
/// `synchronous=NORMAL` (no fsync of their own); the transaction that marks the snapshot complete
/// runs with `synchronous=FULL`, and its fsync of the WAL, an append-only file, also makes every
/// chunk written before it durable. The same transaction drops the `snapshots` rows beyond
/// `snapshotsKept`; their chunks and the log records the oldest kept snapshot covers are deleted
/// afterwards in small pieces (more `continueSnapshot` calls), so that compaction does not hold
/// the log up either.
///
/// **One process at a time.** A store opened for writing holds an exclusive POSIX record lock on
/// `DIR/minizk.lock` for as long as it is open; a second process opening the same directory gets
/// `StorageError.inUse` instead of interleaving its log with the first one's. (`minizk inspect`
/// opens the store read-only and takes no lock: WAL mode lets it read while a server writes.)
public final class SQLiteStore: ReplicaStore {
    public static let fileName = "minizk.sqlite3"
    public static let lockFileName = "minizk.lock"
    static let schemaVersion: Int64 = 1

    public struct Options: Sendable {
        /// ZooKeeper's `forceSync`: fsync every batch. Without it a crash of the machine (not of the
        /// process) may lose the last batches.
        public var forceSync = true
        /// Snapshots kept; log records older than the oldest one are removed.
        public var snapshotsKept = 3
        public var snapshotChunkBytes = 1 << 20
        /// Opens an existing store without changing it (for `minizk inspect`).
        public var readOnly = false
        /// Refuses to create a store: the directory must already hold one. A server opening its
        /// store again after a failure sets it, so that a data directory that went away (a file
        /// system not mounted back yet) is not taken for a new, empty member: that member would
        /// have forgotten what it acknowledged.
        public var mustExist = false
        public init() {}
    }

    /// Counters of what the store wrote, for metrics.
    public struct Statistics: Sendable, Hashable {
        /// SQLite transactions that carried log records, hard state, truncations or installed
        /// snapshots; with `forceSync`, each is one fsync.
        public var durableWrites: Int64 = 0
        public var loggedTransactions: Int64 = 0
        public var loggedBytes: Int64 = 0
        public var snapshotsCompleted: Int64 = 0
        public var snapshotChunksWritten: Int64 = 0
        public var lastSnapshotZxid: Zxid = 0
        public var lastSnapshotBytes: Int64 = 0
        public init() {}
    }

    /// Where the time of the last `recover()` went, in seconds.
    public struct RecoveryTiming: Sendable, Hashable, CustomStringConvertible {
        /// Reading snapshot chunks and checking their CRCs.
        public var readSeconds = 0.0
        /// Decoding the snapshot's nodes.
        public var decodeSeconds = 0.0
        /// Building the tree from the decoded nodes (`DataTree(restoring:)`).
        public var restoreSeconds = 0.0
        /// Reading, checking and decoding the log after the snapshot.
        public var logSeconds = 0.0
        public var snapshotNodes = 0
        public var logTransactions = 0
        public init() {}

        public var description: String {
            String(
                format: "snapshot of %d znodes read in %.2f s, decoded in %.2f s, restored in %.2f s; %d logged transactions read in %.2f s",
                snapshotNodes, readSeconds, decodeSeconds, restoreSeconds, logTransactions, logSeconds)
        }
    }

    /// A snapshot being written a chunk at a time.
    private struct SnapshotInProgress {
        var encoder: SnapshotEncoder
        var zxid: Zxid { encoder.zxid }
        var chunks: Int64 = 0
        var bytes: Int64 = 0
    }

    public let path: String
    public let directory: String
    let options: Options
    let db: SQLiteDatabase
    public private(set) var lastZxid: Zxid = 0
    public private(set) var statistics = Statistics()
    public private(set) var recoveryTiming = RecoveryTiming()
    private var lastSnapshotZxid: Zxid = 0
    private var snapshotInProgress: SnapshotInProgress?
    /// After a snapshot: what older than this zxid is still to be removed.
    private var compactionBelow: Zxid?
    private var synchronousIsFull: Bool
    private var encodeBuffer = ByteBuffer()
    private var statements: [String: SQLiteStatement] = [:]
    private var lockDescriptor: Int32 = -1

    public init(directory: String, options: Options = Options()) throws(StorageError) {
        self.directory = directory
        self.path = (directory as NSString).appendingPathComponent(Self.fileName)
        self.options = options
        if options.readOnly || options.mustExist {
            guard FileManager.default.fileExists(atPath: path) else {
                throw .sqlite(file: path, code: SQLITE_CANTOPEN, message: "no MiniZK store here")
            }
        }
        if !options.readOnly {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw .sqlite(file: directory, code: -1, message: "cannot create directory: \(error)")
            }
            lockDescriptor = try Self.lock((directory as NSString).appendingPathComponent(Self.lockFileName))
        }
        db = try SQLiteDatabase(path: path, readOnly: options.readOnly)
        synchronousIsFull = options.forceSync
        if !options.readOnly {
            try db.execute("PRAGMA journal_mode=WAL")
            try db.execute("PRAGMA synchronous=\(options.forceSync ? "FULL" : "OFF")")
            // Some distributions (Debian's libsqlite3) build SQLite with secure_delete on, which
            // overwrites every freed page: dropping an old snapshot would then rewrite all of it
            // through the WAL, for seconds, in the transaction that completes the new one.
            try db.execute("PRAGMA secure_delete=OFF")
            // The WAL file keeps the size of its largest transaction; cut it back after checkpoints.
            try db.execute("PRAGMA journal_size_limit=\(64 << 20)")
            try db.execute(
                """
                BEGIN;
                CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
                CREATE TABLE IF NOT EXISTS log(zxid INTEGER PRIMARY KEY, record BLOB NOT NULL, crc INTEGER NOT NULL);
                CREATE TABLE IF NOT EXISTS snapshots(zxid INTEGER PRIMARY KEY, chunks INTEGER NOT NULL, bytes INTEGER NOT NULL, complete INTEGER NOT NULL);
                CREATE TABLE IF NOT EXISTS snapshot_chunks(zxid INTEGER NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL, crc INTEGER NOT NULL, PRIMARY KEY(zxid, seq)) WITHOUT ROWID;
                INSERT OR IGNORE INTO meta(key, value) VALUES('schema_version', \(Self.schemaVersion));
                COMMIT;
                """)
        }
        let version = try meta("schema_version") ?? 0
        guard version == Self.schemaVersion else { throw .unsupportedSchema(file: path, version: version) }
    }

    deinit {
        close()
    }

    /// Closes the database and gives up the lock; every later use fails. Closing twice is harmless.
    /// For a server whose store failed: it lets go of its files (so that the file system can be
    /// repaired) before it opens the store again.
    public func close() {
        statements.removeAll()
        db.close()
        if lockDescriptor >= 0 { Glibc.close(lockDescriptor) }
        lockDescriptor = -1
    }

    /// Takes an exclusive record lock on `path`; returns the descriptor that holds it.
    private static func lock(_ path: String) throws(StorageError) -> Int32 {
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw .sqlite(file: path, code: -1, message: "cannot open the lock file: \(String(cString: strerror(errno)))")
        }
        var request = flock()
        request.l_type = Int16(F_WRLCK)
        request.l_whence = Int16(SEEK_SET)
        request.l_start = 0
        request.l_len = 0
        guard fcntl(descriptor, F_SETLK, &request) == 0 else {
            let reason = errno
            Glibc.close(descriptor)
            if reason == EACCES || reason == EAGAIN { throw .inUse(file: path) }
            throw .sqlite(file: path, code: -1, message: "cannot lock: \(String(cString: strerror(reason)))")
        }
        return descriptor
    }

    /// A prepared statement, prepared once per store.
    private func statement(_ sql: String) throws(StorageError) -> SQLiteStatement {
        if let cached = statements[sql] {
            cached.reset()
            return cached
        }
        let prepared = try db.prepare(sql)
        statements[sql] = prepared
        return prepared
    }

    private func meta(_ key: String) throws(StorageError) -> Int64? {
        let select = try statement("SELECT value FROM meta WHERE key = ?")
        defer { select.reset() }
        select.bind(1, key)
        return try select.step() ? select.int64(0) : nil
    }

    private func writeMeta(_ key: String, _ value: Int64) throws(StorageError) {
        let insert = try statement("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)")
        insert.bind(1, key)
        insert.bind(2, value)
        try insert.run()
    }

    /// Runs `body` in one SQLite transaction. `durable` false lets the commit skip its fsync (for
    /// snapshot chunks, made durable by the fsync that completes the snapshot).
    private func inTransaction(durable: Bool = true, _ body: () throws(StorageError) -> Void) throws(StorageError) {
        let wantFull = durable && options.forceSync
        if wantFull != synchronousIsFull {
            try db.execute("PRAGMA synchronous=\(wantFull ? "FULL" : options.forceSync ? "NORMAL" : "OFF")")
            synchronousIsFull = wantFull
        }
        try db.execute("BEGIN IMMEDIATE")
        do {
            try body()
            try db.execute("COMMIT")
        } catch {
            try? db.execute("ROLLBACK")
            throw error
        }
    }

    // MARK: - Writing a group-commit batch

    public func write(_ ops: [StorageOp]) throws(StorageError) {
        guard !ops.isEmpty else { return }
        var last = lastZxid
        var snapshotZxid = lastSnapshotZxid
        var logged: Int64 = 0
        var loggedBytes: Int64 = 0
        var abandonSnapshot = false
        try inTransaction { () throws(StorageError) in
            for op in ops {
                switch op {
                case .append(let transactions):
                    let bytes = try insertLog(transactions, after: last)
                    last = transactions.last?.zxid ?? last
                    logged += Int64(transactions.count)
                    loggedBytes += bytes
                case .truncate(let zxid):
                    precondition(zxid >= snapshotZxid, "truncate after 0x\(String(zxid, radix: 16)) below the snapshot at 0x\(String(snapshotZxid, radix: 16))")
                    let delete = try statement("DELETE FROM log WHERE zxid > ?")
                    delete.bind(1, zxid)
                    try delete.run()
                    last = min(last, zxid)
                    if let running = snapshotInProgress, running.zxid > zxid { abandonSnapshot = true }
                case .installSnapshot(let tree):
                    try db.execute("DELETE FROM log; DELETE FROM snapshot_chunks; DELETE FROM snapshots")
                    try writeWholeSnapshot(tree)
                    snapshotZxid = tree.lastZxid
                    last = tree.lastZxid
                    abandonSnapshot = snapshotInProgress != nil
                case .saveHardState(let state):
                    try writeHardState(state)
                }
            }
        }
        if abandonSnapshot { snapshotInProgress = nil }
        lastZxid = last
        lastSnapshotZxid = snapshotZxid
        statistics.durableWrites += 1
        statistics.loggedTransactions += logged
        statistics.loggedBytes += loggedBytes
    }

    /// Inserts log rows after checking that they continue the log at `previous`; returns the bytes
    /// written.
    private func insertLog(_ transactions: [Transaction], after previous: Zxid) throws(StorageError) -> Int64 {
        let insert = try statement("INSERT INTO log(zxid, record, crc) VALUES(?, ?, ?)")
        var previous = previous
        var bytes: Int64 = 0
        for txn in transactions {
            precondition(previous == 0 || isContiguous(previous, txn.zxid), "log append of 0x\(String(txn.zxid, radix: 16)) after 0x\(String(previous, radix: 16))")
            previous = txn.zxid
            encodeBuffer.clear()
            txn.encode(into: &encodeBuffer)
            bytes += Int64(encodeBuffer.readableBytes)
            try encodeBuffer.withUnsafeReadableBytes { (record) throws(StorageError) in
                insert.bind(1, txn.zxid)
                insert.bind(2, record)
                insert.bind(3, Int64(CRC32C.checksum(record)))
                try insert.run()
            }
        }
        return bytes
    }

    private func writeHardState(_ state: HardState) throws(StorageError) {
        try writeMeta("current_epoch", state.currentEpoch)
        try writeMeta("accepted_epoch", state.acceptedEpoch)
        try writeMeta("last_vote_server", state.lastVoteServer)
        try writeMeta("last_vote_zxid", state.lastVoteZxid)
        try writeMeta("last_vote_epoch", state.lastVoteEpoch)
    }

    public func append(_ transactions: [Transaction]) throws(StorageError) {
        guard !transactions.isEmpty else { return }
        try write([.append(transactions)])
    }

    public func truncate(after zxid: Zxid) throws(StorageError) {
        try write([.truncate(after: zxid)])
    }

    public func installSnapshot(_ tree: DataTree) throws(StorageError) {
        try write([.installSnapshot(tree)])
    }

    public func saveHardState(_ state: HardState) throws(StorageError) {
        try write([.saveHardState(state)])
    }

    // MARK: - Reading the log

    public func transactions(after zxid: Zxid, limit: Int) throws(StorageError) -> [Transaction] {
        var result: [Transaction] = []
        try forEachTransaction(after: zxid, limit: limit) { result.append($0) }
        return result
    }

    /// Calls `body` with each logged transaction after `zxid`, in order, at most `limit`, verified.
    public func forEachTransaction(
        after zxid: Zxid, limit: Int = .max, _ body: (Transaction) throws(StorageError) -> Void
    ) throws(StorageError) {
        let select = try statement("SELECT zxid, record, crc FROM log WHERE zxid > ? ORDER BY zxid LIMIT ?")
        defer { select.reset() }
        select.bind(1, zxid)
        select.bind(2, Int64(min(limit, Int(Int64.max))))
        while try select.step() {
            try body(try readRecord(select))
        }
    }

    /// Decodes and verifies one log row (zxid, record, crc).
    private func readRecord(_ row: SQLiteStatement) throws(StorageError) -> Transaction {
        let zxid = row.int64(0)
        let crc = UInt32(truncatingIfNeeded: row.int64(2))
        return try row.withBlob(1) { (record) throws(StorageError) -> Transaction in
            guard crc == CRC32C.checksum(record) else {
                throw .corruptLogRecord(file: path, zxid: zxid, reason: "checksum mismatch")
            }
            var buffer = ByteBuffer(bytes: record)
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
    }

    // MARK: - Recovery

    public func recover() throws(StorageError) -> RecoveredState {
        recoveryTiming = RecoveryTiming()
        let hard = try readHardState()
        if !options.readOnly {
            // Chunks of a snapshot a crash interrupted.
            try db.execute("DELETE FROM snapshot_chunks WHERE zxid NOT IN (SELECT zxid FROM snapshots WHERE complete = 1)")
        }
        var tree = DataTree()
        var snapshotZxid: Zxid = 0
        if let newest = try snapshotList().last {
            snapshotZxid = newest.zxid
            // The snapshot's blobs are read once, in order: memory-mapped reads of the database
            // file beat SQLite's page cache there. The mapping is dropped right after, or its
            // pages would count in the process's resident memory for as long as it runs.
            try db.execute("PRAGMA mmap_size=\(1 << 30)")
            defer { try? db.execute("PRAGMA mmap_size=0") }
            tree = try loadSnapshot(zxid: newest.zxid, chunks: newest.chunks)
        }
        lastSnapshotZxid = snapshotZxid
        var last = snapshotZxid
        var log: [Transaction] = []
        let logStarted = ContinuousClock.now
        try forEachTransaction(after: snapshotZxid) { (txn) throws(StorageError) in
            guard last == 0 || isContiguous(last, txn.zxid) else { throw .logGap(file: path, expected: last + 1, found: txn.zxid) }
            log.append(txn)
            last = txn.zxid
        }
        recoveryTiming.logSeconds = Self.seconds(since: logStarted)
        recoveryTiming.logTransactions = log.count
        recoveryTiming.snapshotNodes = tree.nodeCount
        lastZxid = last
        return RecoveredState(tree: tree, log: log, hardState: hard)
    }

    func readHardState() throws(StorageError) -> HardState {
        var hard = HardState()
        hard.currentEpoch = try meta("current_epoch") ?? 0
        hard.acceptedEpoch = try meta("accepted_epoch") ?? 0
        hard.lastVoteServer = try meta("last_vote_server") ?? 0
        hard.lastVoteZxid = try meta("last_vote_zxid") ?? 0
        hard.lastVoteEpoch = try meta("last_vote_epoch") ?? 0
        return hard
    }

    /// Complete snapshots, oldest first.
    public func snapshotList() throws(StorageError) -> [(zxid: Zxid, chunks: Int64, bytes: Int64)] {
        let list = try statement("SELECT zxid, chunks, bytes FROM snapshots WHERE complete = 1 ORDER BY zxid")
        defer { list.reset() }
        var snapshots: [(Zxid, Int64, Int64)] = []
        while try list.step() { snapshots.append((list.int64(0), list.int64(1), list.int64(2))) }
        return snapshots
    }

    /// Reads, verifies and decodes the snapshot at `zxid`, a chunk at a time.
    public func loadSnapshot(zxid: Zxid, chunks: Int64) throws(StorageError) -> DataTree {
        let select = try statement("SELECT seq, data, crc FROM snapshot_chunks WHERE zxid = ? ORDER BY seq")
        defer { select.reset() }
        select.bind(1, zxid)
        // The tree is built on a second thread while this one reads, checks and decodes chunks.
        var decoder = SnapshotDecoder(parallel: chunks > 1)
        defer { decoder.abandon() }
        var expected: Int64 = 0
        var decodeTime = Duration.zero
        let started = ContinuousClock.now
        while try select.step() {
            guard select.int64(0) == expected else {
                throw .corruptSnapshot(file: path, zxid: zxid, reason: "chunk \(expected) missing")
            }
            let crc = UInt32(truncatingIfNeeded: select.int64(2))
            try select.withBlob(1) { (data) throws(StorageError) in
                guard crc == CRC32C.checksum(data) else {
                    throw .corruptSnapshot(file: path, zxid: zxid, reason: "checksum mismatch in chunk \(expected)")
                }
                let chunk = ByteBuffer(bytes: data)
                let decodeStarted = ContinuousClock.now
                defer { decodeTime += ContinuousClock.now - decodeStarted }
                do {
                    try decoder.feed(chunk)
                } catch {
                    throw .corruptSnapshot(file: path, zxid: zxid, reason: "chunk \(expected): \(error)")
                }
            }
            expected += 1
        }
        guard expected == chunks else { throw .corruptSnapshot(file: path, zxid: zxid, reason: "\(expected) of \(chunks) chunks present") }
        recoveryTiming.decodeSeconds = Self.seconds(decodeTime)
        recoveryTiming.readSeconds = Self.seconds(since: started) - recoveryTiming.decodeSeconds
        let restoreStarted = ContinuousClock.now
        defer { recoveryTiming.restoreSeconds = Self.seconds(since: restoreStarted) }
        do {
            let tree = try decoder.finish()
            guard tree.lastZxid == zxid else { throw SnapshotCodec.DecodeError.invalid("snapshot holds zxid 0x\(String(tree.lastZxid, radix: 16))") }
            return tree
        } catch {
            throw .corruptSnapshot(file: path, zxid: zxid, reason: "\(error)")
        }
    }

    private static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    private static func seconds(since start: ContinuousClock.Instant) -> Double {
        seconds(ContinuousClock.now - start)
    }

    // MARK: - Snapshots

    public func saveSnapshot(_ tree: DataTree) throws(StorageError) {
        try startSnapshot(tree)
        while try continueSnapshot() == .writing {}
    }

    public func startSnapshot(_ tree: DataTree) throws(StorageError) {
        precondition(
            snapshotInProgress == nil && compactionBelow == nil,
            "a snapshot at 0x\(String(snapshotInProgress?.zxid ?? 0, radix: 16)) is still being written")
        let zxid = tree.lastZxid
        guard zxid > lastSnapshotZxid else { return }
        let clear = try statement("DELETE FROM snapshot_chunks WHERE zxid = ?")
        clear.bind(1, zxid)
        try clear.run()
        snapshotInProgress = SnapshotInProgress(encoder: SnapshotEncoder(tree, chunkBytes: options.snapshotChunkBytes))
    }

    public func continueSnapshot() throws(StorageError) -> SnapshotProgress {
        if let below = compactionBelow {
            return try compactStep(below: below)
        }
        guard var running = snapshotInProgress else { return .idle }
        if let chunk = running.encoder.nextChunk() {
            try inTransaction(durable: false) { () throws(StorageError) in
                try insertChunk(zxid: running.zxid, seq: running.chunks, chunk)
            }
            running.chunks += 1
            running.bytes += Int64(chunk.readableBytes)
            statistics.snapshotChunksWritten += 1
            snapshotInProgress = running
            return .writing
        }
        var oldestKept: Zxid?
        try inTransaction { () throws(StorageError) in
            try markComplete(zxid: running.zxid, chunks: running.chunks, bytes: running.bytes)
            oldestKept = try dropOldSnapshots()
        }
        snapshotInProgress = nil
        lastSnapshotZxid = running.zxid
        statistics.snapshotsCompleted += 1
        statistics.lastSnapshotZxid = running.zxid
        statistics.lastSnapshotBytes = running.bytes
        guard let oldestKept else { return .completed }
        compactionBelow = oldestKept
        return .writing
    }

    /// Whether a snapshot is being written.
    public var isWritingSnapshot: Bool { snapshotInProgress != nil || compactionBelow != nil }

    private func insertChunk(zxid: Zxid, seq: Int64, _ chunk: ByteBuffer) throws(StorageError) {
        let insert = try statement("INSERT INTO snapshot_chunks(zxid, seq, data, crc) VALUES(?, ?, ?, ?)")
        try chunk.withUnsafeReadableBytes { (raw) throws(StorageError) in
            insert.bind(1, zxid)
            insert.bind(2, seq)
            insert.bind(3, raw)
            insert.bind(4, Int64(CRC32C.checksum(raw)))
            try insert.run()
        }
    }

    private func markComplete(zxid: Zxid, chunks: Int64, bytes: Int64) throws(StorageError) {
        let insert = try statement("INSERT OR REPLACE INTO snapshots(zxid, chunks, bytes, complete) VALUES(?, ?, ?, 1)")
        insert.bind(1, zxid)
        insert.bind(2, chunks)
        insert.bind(3, bytes)
        try insert.run()
    }

    /// Drops snapshots beyond the number kept, and the log records the oldest kept one covers.
    /// Drops the `snapshots` rows beyond the number kept, so that they no longer count; returns
    /// the zxid of the oldest snapshot kept when there was something to drop. Their chunks and the
    /// log the oldest kept snapshot covers are removed afterwards, a piece at a time.
    private func dropOldSnapshots() throws(StorageError) -> Zxid? {
        let kept = try statement("SELECT zxid FROM snapshots WHERE complete = 1 ORDER BY zxid DESC LIMIT 1 OFFSET ?")
        kept.bind(1, Int64(max(options.snapshotsKept, 1) - 1))
        guard try kept.step() else {
            kept.reset()
            return nil
        }
        let oldest = kept.int64(0)
        kept.reset()
        let drop = try statement("DELETE FROM snapshots WHERE zxid < ?")
        drop.bind(1, oldest)
        try drop.run()
        return oldest
    }

    /// One piece of compaction after a snapshot: some chunks of dropped snapshots, or some log
    /// records the oldest kept snapshot covers. Each piece is a small transaction without an
    /// fsync of its own, so that log batches go between them; what a crash leaves undone is
    /// redone by the next compaction (orphaned chunks are also removed on open).
    private func compactStep(below oldest: Zxid) throws(StorageError) -> SnapshotProgress {
        var removed: Int32 = 0
        try inTransaction(durable: false) { () throws(StorageError) in
            let chunks = try statement(
                "DELETE FROM snapshot_chunks WHERE (zxid, seq) IN (SELECT zxid, seq FROM snapshot_chunks WHERE zxid < ? LIMIT \(Self.compactionChunksPerStep))")
            chunks.bind(1, oldest)
            try chunks.run()
            removed = db.changes
            guard removed == 0 else { return }
            let log = try statement("DELETE FROM log WHERE zxid IN (SELECT zxid FROM log WHERE zxid <= ? ORDER BY zxid LIMIT \(Self.compactionRecordsPerStep))")
            log.bind(1, oldest)
            try log.run()
            removed = db.changes
        }
        guard removed == 0 else { return .writing }
        compactionBelow = nil
        return .completed
    }

    static let compactionChunksPerStep = 16
    static let compactionRecordsPerStep = 20_000

    /// Writes a whole snapshot inside the caller's transaction (an installed one).
    private func writeWholeSnapshot(_ tree: DataTree) throws(StorageError) {
        var encoder = SnapshotEncoder(tree, chunkBytes: options.snapshotChunkBytes)
        var seq: Int64 = 0
        var bytes: Int64 = 0
        while let chunk = encoder.nextChunk() {
            try insertChunk(zxid: tree.lastZxid, seq: seq, chunk)
            seq += 1
            bytes += Int64(chunk.readableBytes)
        }
        try markComplete(zxid: tree.lastZxid, chunks: seq, bytes: bytes)
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
        let hard = try readHardState()
        let snapshots = try snapshotList()
        let range = try statement("SELECT MIN(zxid), MAX(zxid), COUNT(*) FROM log")
        defer { range.reset() }
        _ = try range.step()
        return Summary(
            hardState: hard, snapshots: snapshots, logFirst: range.isNull(0) ? nil : range.int64(0),
            logLast: range.isNull(1) ? nil : range.int64(1), logCount: range.int64(2))
    }
}
