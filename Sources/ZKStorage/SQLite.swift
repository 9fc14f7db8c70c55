import CSQLite

/// A failure of the durable store. Every case names the file, and the zxid where one is involved,
/// so an operator knows what is damaged.
public enum StorageError: Error, Sendable, CustomStringConvertible, Equatable {
    case sqlite(file: String, code: Int32, message: String)
    case corruptLogRecord(file: String, zxid: Int64, reason: String)
    case corruptSnapshot(file: String, zxid: Int64, reason: String)
    case logGap(file: String, expected: Int64, found: Int64)
    case unsupportedSchema(file: String, version: Int64)
    /// Another process holds the store's lock file.
    case inUse(file: String)

    public var description: String {
        switch self {
        case .sqlite(let file, let code, let message): return "\(file): SQLite error \(code): \(message)"
        case .corruptLogRecord(let file, let zxid, let reason):
            return "\(file): damaged log record at zxid 0x\(String(zxid, radix: 16)): \(reason)"
        case .corruptSnapshot(let file, let zxid, let reason):
            return "\(file): damaged snapshot at zxid 0x\(String(zxid, radix: 16)): \(reason)"
        case .logGap(let file, let expected, let found):
            return "\(file): log is not contiguous: expected zxid 0x\(String(expected, radix: 16)), found 0x\(String(found, radix: 16))"
        case .unsupportedSchema(let file, let version): return "\(file): unsupported schema version \(version)"
        case .inUse(let file): return "\(file): the store is in use by another MiniZK process"
        }
    }

    /// Whether the error says that stored state is damaged (as opposed to unreadable for
    /// another reason: a lock, a permission, a full disk).
    public var isDamage: Bool {
        switch self {
        case .corruptLogRecord, .corruptSnapshot, .logGap: return true
        case .sqlite(_, let code, _): return code == SQLITE_CORRUPT || code == SQLITE_NOTADB
        case .unsupportedSchema, .inUse: return false
        }
    }
}

/// A thin owner of one SQLite connection. Not thread-safe: one store, one thread.
final class SQLiteDatabase {
    let path: String
    private(set) var handle: OpaquePointer?

    init(path: String, readOnly: Bool = false) throws(StorageError) {
        self.path = path
        var db: OpaquePointer?
        let flags = (readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close(db)
            throw .sqlite(file: path, code: rc, message: message)
        }
        handle = db
    }

    deinit { close() }

    func close() {
        if let handle { sqlite3_close_v2(handle) }
        handle = nil
    }

    func error(_ rc: Int32) -> StorageError {
        .sqlite(file: path, code: rc, message: handle.map { String(cString: sqlite3_errmsg($0)) } ?? "closed")
    }

    func execute(_ sql: String) throws(StorageError) {
        var message: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &message)
        if rc != SQLITE_OK {
            let text = message.map { String(cString: $0) } ?? "unknown"
            sqlite3_free(message)
            throw .sqlite(file: path, code: rc, message: "\(text) in: \(sql)")
        }
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE.
    var changes: Int32 { sqlite3_changes(handle) }

    func prepare(_ sql: String) throws(StorageError) -> SQLiteStatement {
        var statement: OpaquePointer?
        let rc = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard rc == SQLITE_OK, let statement else { throw error(rc) }
        return SQLiteStatement(database: self, statement: statement)
    }
}

/// A prepared statement, reset after every use.
final class SQLiteStatement {
    unowned let database: SQLiteDatabase
    let statement: OpaquePointer

    init(database: SQLiteDatabase, statement: OpaquePointer) {
        self.database = database
        self.statement = statement
    }

    deinit { sqlite3_finalize(statement) }

    func bind(_ index: Int32, _ value: Int64) {
        sqlite3_bind_int64(statement, index, value)
    }

    func bind(_ index: Int32, _ bytes: UnsafeRawBufferPointer) {
        // SQLITE_TRANSIENT: SQLite copies the bytes before returning.
        sqlite3_bind_blob(statement, index, bytes.baseAddress, Int32(bytes.count), unsafeBitCast(-1, to: sqlite3_destructor_type.self))
    }

    func bind(_ index: Int32, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { bind(index, $0) }
    }

    func bind(_ index: Int32, _ text: String) {
        _ = text.withCString { pointer in
            // SQLITE_TRANSIENT: SQLite copies the text before returning.
            sqlite3_bind_text(statement, index, pointer, -1, unsafeBitCast(-1, to: sqlite3_destructor_type.self))
        }
    }

    /// Steps once: true when a row is available.
    func step() throws(StorageError) -> Bool {
        let rc = sqlite3_step(statement)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw database.error(rc)
        }
    }

    /// Runs a statement that returns no rows, then resets it.
    func run() throws(StorageError) {
        defer { reset() }
        _ = try step()
    }

    func reset() {
        sqlite3_reset(statement)
        sqlite3_clear_bindings(statement)
    }

    func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(statement, column) }

    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(statement, column) == SQLITE_NULL }

    /// Lends the bytes of a blob column without copying them; valid only inside `body`.
    func withBlob<Result>(_ column: Int32, _ body: (UnsafeRawBufferPointer) throws(StorageError) -> Result) throws(StorageError) -> Result {
        let base = sqlite3_column_blob(statement, column)
        let count = Int(sqlite3_column_bytes(statement, column))
        return try body(UnsafeRawBufferPointer(start: count > 0 ? base : nil, count: count))
    }

    func blob(_ column: Int32) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(statement, column))
        guard count > 0, let base = sqlite3_column_blob(statement, column) else { return [] }
        return [UInt8](UnsafeRawBufferPointer(start: base, count: count))
    }
}

/// CRC-32C (Castagnoli), the checksum of every log record and snapshot chunk.
///
/// Computed eight bytes at a time with eight tables ("slicing by 8"): recovery checks every byte
/// of the newest snapshot, and this is several times faster than a byte at a time.
public enum CRC32C {
    private static let tables: [UInt32] = {
        var tables = [UInt32](repeating: 0, count: 8 * 256)
        for index in 0..<256 {
            var crc = UInt32(index)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
            tables[index] = crc
        }
        for index in 0..<256 {
            for slice in 1..<8 {
                let previous = tables[(slice - 1) * 256 + index]
                tables[slice * 256 + index] = tables[Int(previous & 0xFF)] ^ (previous >> 8)
            }
        }
        return tables
    }()

    public static func checksum<Bytes: Sequence>(_ bytes: Bytes, seed: UInt32 = 0) -> UInt32 where Bytes.Element == UInt8 {
        let contiguous = bytes.withContiguousStorageIfAvailable { update(~seed, UnsafeRawBufferPointer($0)) }
        if let contiguous { return ~contiguous }
        let array = Array(bytes)
        return ~array.withUnsafeBytes { update(~seed, $0) }
    }

    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        ~update(~0, bytes)
    }

    /// Continues a CRC over more bytes (`crc` is the running, inverted value).
    static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc = crc
        guard let base = bytes.baseAddress else { return crc }
        let count = bytes.count
        var offset = 0
        tables.withUnsafeBufferPointer { table in
            while count - offset >= 8 {
                let low = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) ^ crc
                let high = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))
                crc = table[7 * 256 + Int(low & 0xFF)] ^ table[6 * 256 + Int((low >> 8) & 0xFF)]
                    ^ table[5 * 256 + Int((low >> 16) & 0xFF)] ^ table[4 * 256 + Int(low >> 24)]
                    ^ table[3 * 256 + Int(high & 0xFF)] ^ table[2 * 256 + Int((high >> 8) & 0xFF)]
                    ^ table[1 * 256 + Int((high >> 16) & 0xFF)] ^ table[Int(high >> 24)]
                offset += 8
            }
            while offset < count {
                crc = table[Int((crc ^ UInt32(base.load(fromByteOffset: offset, as: UInt8.self))) & 0xFF)] ^ (crc >> 8)
                offset += 1
            }
        }
        return crc
    }
}
