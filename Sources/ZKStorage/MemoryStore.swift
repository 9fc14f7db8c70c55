import NIOCore
import ZKCore
import ZKProtocol

/// A store in memory with the crash semantics of a disk, for tests and the simulator.
///
/// Appends and hard-state saves land in a volatile tail until `sync` (automatic when
/// `syncsOnAppend`); `crash()` loses the volatile tail and, when asked, leaves the last volatile
/// record torn (its bytes cut short),
/// which recovery detects and drops, as a real log's torn final write is dropped. Records are kept
/// encoded, with their checksums, so damage can be injected and is detected on recovery.
///
/// With `keepsEncoded` false (the in-memory ensembles that tests and `--in-memory` run), records
/// and snapshots are kept as values instead: a snapshot is a copy of the tree, which shares its
/// nodes, rather than the whole tree encoded again each time (that encoding took a fifth of an
/// in-memory ensemble's CPU under write load). Crashes lose the volatile tail all the same; there
/// is nothing to tear or damage.
public final class MemoryStore: ReplicaStore {
    struct Record {
        var zxid: Zxid
        var bytes: [UInt8]
        var crc: UInt32
        /// The transaction itself, when the store does not keep it encoded.
        var value: Transaction? = nil

        /// The transaction, decoded when kept encoded; nil when its bytes do not decode.
        var transaction: Transaction? {
            if let value { return value }
            var buffer = ByteBuffer(bytes: bytes)
            return try? Transaction.decode(&buffer)
        }
    }

    public var syncsOnAppend: Bool
    public let keepsEncoded: Bool
    private var durable: [Record] = []
    private var volatile: [Record] = []
    private var snapshot: (zxid: Zxid, bytes: [UInt8], crc: UInt32)?
    /// The snapshot itself, when the store does not keep it encoded.
    private var snapshotTree: DataTree?
    private var hardState = HardState()
    /// A hard state saved since the last sync: lost in a crash, like the log's volatile tail.
    private var volatileHardState: HardState?
    private var pendingSnapshot: DataTree?
    public private(set) var lastZxid: Zxid = 0
    /// Number of syncs, for group-commit accounting.
    public private(set) var syncCount = 0
    /// Nothing here waits for a disk.
    public var writesAreInstant: Bool { true }

    public init(syncsOnAppend: Bool = true, keepsEncoded: Bool = true) {
        self.syncsOnAppend = syncsOnAppend
        self.keepsEncoded = keepsEncoded
    }

    private static let emptyChecksum = CRC32C.checksum([])

    public func append(_ transactions: [Transaction]) throws(StorageError) {
        for txn in transactions {
            precondition(lastZxid == 0 || isContiguous(lastZxid, txn.zxid), "append of 0x\(String(txn.zxid, radix: 16)) after 0x\(String(lastZxid, radix: 16))")
            if keepsEncoded {
                let bytes = Array(txn.encoded().readableBytesView)
                volatile.append(Record(zxid: txn.zxid, bytes: bytes, crc: CRC32C.checksum(bytes)))
            } else {
                volatile.append(Record(zxid: txn.zxid, bytes: [], crc: Self.emptyChecksum, value: txn))
            }
            lastZxid = txn.zxid
        }
        if syncsOnAppend { sync() }
    }

    /// Makes every appended record durable.
    public func sync() {
        durable.append(contentsOf: volatile)
        volatile.removeAll()
        if let state = volatileHardState { hardState = state }
        volatileHardState = nil
        syncCount += 1
    }

    /// Loses what was not synced; with `tearLastWrite`, the first lost record stays behind torn.
    public func crash(tearLastWrite: Bool = false) {
        if tearLastWrite, var first = volatile.first, first.bytes.count > 1 {
            first.bytes.removeLast(first.bytes.count / 2)
            durable.append(first)
        }
        volatile.removeAll()
        volatileHardState = nil
        // A snapshot being written is lost with the process.
        pendingSnapshot = nil
        lastZxid = durable.last(where: { CRC32C.checksum($0.bytes) == $0.crc })?.zxid ?? snapshot?.zxid ?? 0
    }

    /// Flips one byte of a durable record, to test that recovery notices.
    public func damage(zxid: Zxid) {
        guard let index = durable.firstIndex(where: { $0.zxid == zxid }), !durable[index].bytes.isEmpty else { return }
        durable[index].bytes[durable[index].bytes.count / 2] ^= 0xFF
    }

    public func recover() throws(StorageError) -> RecoveredState {
        var tree = DataTree()
        var snapshotZxid: Zxid = 0
        if let snapshotTree {
            tree = snapshotTree
            snapshotZxid = snapshotTree.lastZxid
        } else if let snapshot {
            guard CRC32C.checksum(snapshot.bytes) == snapshot.crc else {
                throw .corruptSnapshot(file: "memory", zxid: snapshot.zxid, reason: "checksum mismatch")
            }
            var buffer = ByteBuffer(bytes: snapshot.bytes)
            do { tree = try SnapshotCodec.decode(&buffer) } catch {
                throw .corruptSnapshot(file: "memory", zxid: snapshot.zxid, reason: "\(error)")
            }
            snapshotZxid = snapshot.zxid
        }
        // A torn final record is the normal result of a crash mid-write: it is dropped. A damaged
        // record anywhere else is corruption.
        if let last = durable.last, CRC32C.checksum(last.bytes) != last.crc {
            durable.removeLast()
        }
        var last = snapshotZxid
        var log: [Transaction] = []
        for record in durable where record.zxid > snapshotZxid {
            guard CRC32C.checksum(record.bytes) == record.crc else {
                throw .corruptLogRecord(file: "memory", zxid: record.zxid, reason: "checksum mismatch")
            }
            guard let txn = record.transaction, txn.zxid == record.zxid else {
                throw .corruptLogRecord(file: "memory", zxid: record.zxid, reason: "undecodable")
            }
            guard last == 0 || isContiguous(last, txn.zxid) else { throw .logGap(file: "memory", expected: last + 1, found: txn.zxid) }
            log.append(txn)
            last = txn.zxid
        }
        lastZxid = last
        return RecoveredState(tree: tree, log: log, hardState: hardState)
    }

    public func saveSnapshot(_ tree: DataTree) throws(StorageError) {
        guard keepsEncoded else {
            snapshotTree = tree
            snapshot = (tree.lastZxid, [], Self.emptyChecksum)
            durable.removeAll { $0.zxid <= tree.lastZxid }
            return
        }
        var bytes: [UInt8] = []
        SnapshotCodec.encode(tree) { bytes.append(contentsOf: $0.readableBytesView) }
        snapshot = (tree.lastZxid, bytes, CRC32C.checksum(bytes))
        durable.removeAll { $0.zxid <= tree.lastZxid }
        #if MINIZK_BUG_SNAPSHOT_COMPACTS_ONE_TOO_MANY
        // Planted bug: compaction also drops the first record the snapshot does not cover.
        if let first = durable.first, first.zxid > tree.lastZxid { durable.removeFirst() }
        #endif
    }

    public func startSnapshot(_ tree: DataTree) throws(StorageError) {
        guard tree.lastZxid > (snapshot?.zxid ?? 0) else { return }
        pendingSnapshot = tree
    }

    /// Writes the whole snapshot started by `startSnapshot` in one piece.
    public func continueSnapshot() throws(StorageError) -> SnapshotProgress {
        guard let tree = pendingSnapshot else { return .idle }
        pendingSnapshot = nil
        try saveSnapshot(tree)
        return .completed
    }

    public func truncate(after zxid: Zxid) throws(StorageError) {
        if let pending = pendingSnapshot, pending.lastZxid > zxid { pendingSnapshot = nil }
        sync()
        durable.removeAll { $0.zxid > zxid }
        lastZxid = min(lastZxid, zxid)
    }

    public func installSnapshot(_ tree: DataTree) throws(StorageError) {
        pendingSnapshot = nil
        volatile.removeAll()
        durable.removeAll()
        try saveSnapshot(tree)
        lastZxid = tree.lastZxid
    }

    public func saveHardState(_ state: HardState) throws(StorageError) {
        volatileHardState = state
        if syncsOnAppend { sync() }
    }

    /// The zxid of the snapshot held (nil: none yet), for the simulator and tests.
    public var snapshotZxid: Zxid? { snapshot?.zxid }

    /// The zxids of the records held, durable ones first, then the volatile tail: for the
    /// simulator's checkers.
    public var loggedZxids: [Zxid] { (durable + volatile).map(\.zxid) }

    /// The newest zxid that would survive a crash now: the last intact durable record, or the
    /// snapshot.
    public var durableZxid: Zxid {
        durable.last(where: { CRC32C.checksum($0.bytes) == $0.crc })?.zxid ?? snapshot?.zxid ?? 0
    }

    public func transactions(after zxid: Zxid, limit: Int) throws(StorageError) -> [Transaction] {
        var result: [Transaction] = []
        for record in durable + volatile where record.zxid > zxid && result.count < limit {
            guard let txn = record.transaction else {
                throw .corruptLogRecord(file: "memory", zxid: record.zxid, reason: "undecodable")
            }
            result.append(txn)
        }
        return result
    }
}
