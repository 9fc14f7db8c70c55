import NIOCore

// Jute: ZooKeeper's serialization, as it appears on the client port.
//
// Grammar (all integers big-endian two's complement, no padding, no alignment):
//
//   int        = 4 bytes
//   long       = 8 bytes
//   boolean    = 1 byte                 written as exactly 0x00 / 0x01; any non-zero reads as true
//   buffer     = int n, n bytes         n = -1 is null, n = 0 is empty
//   ustring    = int n, n bytes UTF-8   n = -1 is null
//   vector<T>  = int n, n × T           n = -1 is null
//   record     = its fields in declaration order, nothing before or after
//
//   Id            = ustring scheme, ustring id
//   ACL           = int perms, Id id
//   Stat          = long czxid, long mzxid, long ctime, long mtime, int version, int cversion,
//                   int aversion, long ephemeralOwner, int dataLength, int numChildren,
//                   long pzxid                                            (always 68 bytes)
//   ClientInfo    = ustring authScheme, ustring user
//   WatcherEvent  = int type, int state, ustring path
//   MultiHeader   = int type, boolean done, int err
//   RequestHeader = int xid, int type
//   ReplyHeader   = int xid, long zxid, int err
//
// Reading rules, so that hostile bytes can never trap or make us allocate more than the payload:
// every read first checks the readable bytes; a length or count is checked against what is left
// (negative other than -1 → `ProtocolError.invalid`, more than is left → `.truncated`) before any
// array or string is built; strings are decoded with UTF-8 repair (invalid sequences become
// U+FFFD) rather than rejected. A payload is always one whole frame, so a failed read leaves the
// reader index wherever it stopped: the caller throws the payload away.
//
// Where the value types have no room for null (paths, ACL ids, child lists), null reads as the
// empty string or the empty list; MiniZK then treats the empty path as invalid, as ZooKeeper does.

/// The jute record that frames each operation of a multi request or reply.
public struct MultiHeader: Sendable, Hashable {
    public var type: Int32
    public var done: Bool
    public var err: Int32
    public init(type: Int32, done: Bool, err: Int32) {
        self.type = type
        self.done = done
        self.err = err
    }
    /// Ends every multi request and reply.
    public static let terminator = MultiHeader(type: -1, done: true, err: -1)
}

extension Stat {
    /// Size of a `Stat` record on the wire.
    public static let wireBytes = 68
}

// MARK: - Reading primitives

extension ByteBuffer {
    public mutating func readJuteInt(_ what: String) throws -> Int32 {
        guard let value = self.readInteger(endianness: .big, as: Int32.self) else {
            throw ProtocolError.truncated(what: what)
        }
        return value
    }

    public mutating func readJuteLong(_ what: String) throws -> Int64 {
        guard let value = self.readInteger(endianness: .big, as: Int64.self) else {
            throw ProtocolError.truncated(what: what)
        }
        return value
    }

    public mutating func readJuteBool(_ what: String) throws -> Bool {
        guard let value = self.readInteger(as: UInt8.self) else {
            throw ProtocolError.truncated(what: what)
        }
        return value != 0
    }

    /// Reads a length or count prefix. Returns nil for -1 (null). Every element occupies at least
    /// `elementBytesMin` bytes, so a count that cannot fit in what is left is refused here,
    /// before the caller allocates anything.
    mutating func readJuteCount(_ what: String, elementBytesMin: Int) throws -> Int? {
        let raw = try self.readJuteInt(what)
        if raw == -1 { return nil }
        guard raw >= 0 else { throw ProtocolError.invalid(what: "\(what): length \(raw)") }
        let count = Int(raw)
        if elementBytesMin > 0, count > self.readableBytes / elementBytesMin {
            throw ProtocolError.truncated(what: what)
        }
        return count
    }

    public mutating func readJuteBuffer(_ what: String) throws -> [UInt8]? {
        guard let count = try self.readJuteCount(what, elementBytesMin: 1) else { return nil }
        guard let bytes = self.readBytes(length: count) else { throw ProtocolError.truncated(what: what) }
        return bytes
    }

    public mutating func readJuteString(_ what: String) throws -> String? {
        guard let count = try self.readJuteCount(what, elementBytesMin: 1) else { return nil }
        guard let text = self.readJuteText(length: count) else { throw ProtocolError.truncated(what: what) }
        return text
    }

    /// The next `length` bytes as a jute string's text (UTF-8, where a character outside the
    /// BMP may come as Java writes it: `String(decodingJavaUTF8:)`); nil when fewer are left.
    public mutating func readJuteText(length: Int) -> String? {
        guard let slice = self.readSlice(length: length) else { return nil }
        return slice.withUnsafeReadableBytes { bytes in
            bytes.contains(0xED) ? String(decodingJavaUTF8: bytes) : String(decoding: bytes, as: UTF8.self)
        }
    }

    /// A string where null has no meaning of its own: null reads as "".
    mutating func readJutePath(_ what: String) throws -> String {
        try self.readJuteString(what) ?? ""
    }

    /// Reads `vector<T>`. `elementBytesMin` is the smallest encoding of one element (4 for a
    /// ustring, 68 for a Stat, ...), which bounds the count by the bytes left.
    public mutating func readJuteVector<T>(
        _ what: String, elementBytesMin: Int, _ readElement: (inout ByteBuffer) throws -> T
    ) throws -> [T]? {
        precondition(elementBytesMin >= 1, "a vector element occupies at least one byte, got \(elementBytesMin)")
        guard let count = try self.readJuteCount(what, elementBytesMin: elementBytesMin) else { return nil }
        var elements: [T] = []
        elements.reserveCapacity(count)
        for _ in 0..<count {
            elements.append(try readElement(&self))
        }
        return elements
    }

    mutating func readJuteStrings(_ what: String) throws -> [String]? {
        try self.readJuteVector(what, elementBytesMin: 4) { try $0.readJutePath(what) }
    }
}

// MARK: - Reading records

extension ByteBuffer {
    public mutating func readJuteId() throws -> Id {
        Id(scheme: try self.readJutePath("Id.scheme"), id: try self.readJutePath("Id.id"))
    }

    public mutating func readJuteACL() throws -> ACL {
        let perms = try self.readJuteInt("ACL.perms")
        return ACL(perms: Perms(rawValue: perms), id: try self.readJuteId())
    }

    /// An ACL is at least 12 bytes: perms and two string lengths.
    public mutating func readJuteACLs(_ what: String) throws -> [ACL]? {
        try self.readJuteVector(what, elementBytesMin: 12) { try $0.readJuteACL() }
    }

    public mutating func readJuteStat() throws -> Stat {
        guard self.readableBytes >= Stat.wireBytes else { throw ProtocolError.truncated(what: "Stat") }
        return Stat(
            czxid: try self.readJuteLong("Stat.czxid"),
            mzxid: try self.readJuteLong("Stat.mzxid"),
            ctime: try self.readJuteLong("Stat.ctime"),
            mtime: try self.readJuteLong("Stat.mtime"),
            version: try self.readJuteInt("Stat.version"),
            cversion: try self.readJuteInt("Stat.cversion"),
            aversion: try self.readJuteInt("Stat.aversion"),
            ephemeralOwner: try self.readJuteLong("Stat.ephemeralOwner"),
            dataLength: try self.readJuteInt("Stat.dataLength"),
            numChildren: try self.readJuteInt("Stat.numChildren"),
            pzxid: try self.readJuteLong("Stat.pzxid")
        )
    }

    public mutating func readJuteClientInfo() throws -> ClientInfo {
        ClientInfo(
            authScheme: try self.readJutePath("ClientInfo.authScheme"),
            user: try self.readJutePath("ClientInfo.user")
        )
    }

    public mutating func readJuteWatcherEvent() throws -> WatcherEvent {
        WatcherEvent(
            type: try self.readJuteInt("WatcherEvent.type"),
            state: try self.readJuteInt("WatcherEvent.state"),
            path: try self.readJutePath("WatcherEvent.path")
        )
    }

    public mutating func readJuteMultiHeader() throws -> MultiHeader {
        MultiHeader(
            type: try self.readJuteInt("MultiHeader.type"),
            done: try self.readJuteBool("MultiHeader.done"),
            err: try self.readJuteInt("MultiHeader.err")
        )
    }

    public mutating func readJuteRequestHeader() throws -> RequestHeader {
        RequestHeader(xid: try self.readJuteInt("RequestHeader.xid"), type: try self.readJuteInt("RequestHeader.type"))
    }

    public mutating func readJuteReplyHeader() throws -> ReplyHeader {
        ReplyHeader(
            xid: try self.readJuteInt("ReplyHeader.xid"),
            zxid: try self.readJuteLong("ReplyHeader.zxid"),
            err: try self.readJuteInt("ReplyHeader.err")
        )
    }
}

// MARK: - Writing

extension ByteBuffer {
    public mutating func writeJuteInt(_ value: Int32) {
        self.writeInteger(value, endianness: .big)
    }

    public mutating func writeJuteLong(_ value: Int64) {
        self.writeInteger(value, endianness: .big)
    }

    /// Always exactly 0 or 1: kazoo compares booleans with `== 1`.
    public mutating func writeJuteBool(_ value: Bool) {
        self.writeInteger(value ? UInt8(1) : UInt8(0))
    }

    /// Writes the int32 length of something we are about to encode. Our own values never come
    /// near 2 GiB (frames are limited to 1 MiB), so exceeding it is a programming error.
    mutating func writeJuteLength(_ count: Int) {
        precondition(count <= Int(Int32.max), "jute length \(count) does not fit an int")
        self.writeJuteInt(Int32(count))
    }

    public mutating func writeJuteBuffer(_ bytes: [UInt8]?) {
        guard let bytes else { return self.writeJuteInt(-1) }
        self.writeJuteLength(bytes.count)
        self.writeBytes(bytes)
    }

    public mutating func writeJuteString(_ string: String?) {
        guard let string else { return self.writeJuteInt(-1) }
        // Java writes a character outside the Basic Multilingual Plane as its two UTF-16
        // surrogates, three bytes each (CESU-8); clients of ZooKeeper see those bytes, so MiniZK
        // writes the same (and reads them back as the character: `String(decodingJavaUTF8:)`).
        // Everything else is plain UTF-8.
        if string.utf8.contains(where: { $0 >= 0xF0 }) {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(string.utf8.count + 8)
            for unit in string.utf16 {
                if unit < 0x80 {
                    bytes.append(UInt8(unit))
                } else if unit < 0x800 {
                    bytes.append(0xC0 | UInt8(unit >> 6))
                    bytes.append(0x80 | UInt8(unit & 0x3F))
                } else {
                    bytes.append(0xE0 | UInt8(unit >> 12))
                    bytes.append(0x80 | UInt8((unit >> 6) & 0x3F))
                    bytes.append(0x80 | UInt8(unit & 0x3F))
                }
            }
            self.writeJuteLength(bytes.count)
            self.writeBytes(bytes)
            return
        }
        self.writeJuteLength(string.utf8.count)
        self.writeString(string)
    }

    public mutating func writeJuteVector<T>(_ elements: [T]?, _ writeElement: (inout ByteBuffer, T) -> Void) {
        guard let elements else { return self.writeJuteInt(-1) }
        self.writeJuteLength(elements.count)
        for element in elements {
            writeElement(&self, element)
        }
    }

    mutating func writeJuteStrings(_ strings: [String]) {
        self.writeJuteVector(strings) { $0.writeJuteString($1) }
    }

    public mutating func writeJuteId(_ id: Id) {
        self.writeJuteString(id.scheme)
        self.writeJuteString(id.id)
    }

    public mutating func writeJuteACL(_ acl: ACL) {
        self.writeJuteInt(acl.perms.rawValue)
        self.writeJuteId(acl.id)
    }

    public mutating func writeJuteACLs(_ acls: [ACL]?) {
        self.writeJuteVector(acls) { $0.writeJuteACL($1) }
    }

    public mutating func writeJuteStat(_ stat: Stat) {
        self.writeJuteLong(stat.czxid)
        self.writeJuteLong(stat.mzxid)
        self.writeJuteLong(stat.ctime)
        self.writeJuteLong(stat.mtime)
        self.writeJuteInt(stat.version)
        self.writeJuteInt(stat.cversion)
        self.writeJuteInt(stat.aversion)
        self.writeJuteLong(stat.ephemeralOwner)
        self.writeJuteInt(stat.dataLength)
        self.writeJuteInt(stat.numChildren)
        self.writeJuteLong(stat.pzxid)
    }

    public mutating func writeJuteClientInfo(_ info: ClientInfo) {
        self.writeJuteString(info.authScheme)
        self.writeJuteString(info.user)
    }

    public mutating func writeJuteWatcherEvent(_ event: WatcherEvent) {
        self.writeJuteInt(event.type)
        self.writeJuteInt(event.state)
        self.writeJuteString(event.path)
    }

    public mutating func writeJuteMultiHeader(_ header: MultiHeader) {
        self.writeJuteInt(header.type)
        self.writeJuteBool(header.done)
        self.writeJuteInt(header.err)
    }

    public mutating func writeJuteRequestHeader(_ header: RequestHeader) {
        self.writeJuteInt(header.xid)
        self.writeJuteInt(header.type)
    }

    public mutating func writeJuteReplyHeader(_ header: ReplyHeader) {
        self.writeJuteInt(header.xid)
        self.writeJuteLong(header.zxid)
        self.writeJuteInt(header.err)
    }

    /// Writes a frame: reserves the 4-byte length, lets `body` append the payload, then fills the
    /// length in. The payload is encoded once, straight into `self`.
    public mutating func writeJuteFrame(_ body: (inout ByteBuffer) -> Void) {
        let lengthIndex = self.writerIndex
        self.writeJuteInt(0)
        body(&self)
        let payloadBytes = self.writerIndex - lengthIndex - 4
        precondition(payloadBytes >= 0 && payloadBytes <= Int(Int32.max), "frame payload of \(payloadBytes) bytes")
        self.setInteger(Int32(payloadBytes), at: lengthIndex, endianness: .big)
    }
}

extension String {
    /// UTF-8 as Java's jute writes it: a character outside the Basic Multilingual Plane may come
    /// as its two UTF-16 surrogates, three bytes each (CESU-8), and is read back as that
    /// character, so that a string MiniZK wrote (in a reply, a transaction, a snapshot, a peer
    /// message) reads back equal on every replica and after a restart. Java's own decoder makes
    /// replacement characters of them; anything else malformed (a lone surrogate, a stray byte)
    /// still becomes U+FFFD here too.
    init(decodingJavaUTF8 bytes: UnsafeRawBufferPointer) {
        var fixed: [UInt8] = []
        fixed.reserveCapacity(bytes.count)
        var index = 0
        let count = bytes.count
        while index < count {
            if bytes[index] == 0xED, index + 5 < count,
                (0xA0...0xAF).contains(bytes[index + 1]), (0x80...0xBF).contains(bytes[index + 2]),
                bytes[index + 3] == 0xED,
                (0xB0...0xBF).contains(bytes[index + 4]), (0x80...0xBF).contains(bytes[index + 5])
            {
                let high = (UInt32(bytes[index + 1] & 0x0F) << 6) | UInt32(bytes[index + 2] & 0x3F)
                let low = (UInt32(bytes[index + 4] & 0x0F) << 6) | UInt32(bytes[index + 5] & 0x3F)
                let scalar = 0x10000 + (high << 10) + low
                fixed.append(0xF0 | UInt8(scalar >> 18))
                fixed.append(0x80 | UInt8((scalar >> 12) & 0x3F))
                fixed.append(0x80 | UInt8((scalar >> 6) & 0x3F))
                fixed.append(0x80 | UInt8(scalar & 0x3F))
                index += 6
            } else {
                fixed.append(bytes[index])
                index += 1
            }
        }
        self = String(decoding: fixed, as: UTF8.self)
    }
}
