import Foundation
import HashTreeCollections
import NIOCore
import ZKCore
import ZKProtocol

// A snapshot is the tree and the session table at one zxid, as one byte stream cut into chunks.
//
//     snapshot := magic:int(0x4D5A4B53 "MZKS") version:int(1) zxid:long
//                 sessionCount:int (id:long timeoutMs:long){sessionCount}
//                 nodeCount:long node{nodeCount}
//     node     := path:ustring data:buffer acl:vector<ACL>
//                 czxid:long mzxid:long ctime:long mtime:long version:int aversion:int
//                 childCreates:int pzxid:long kind
//     kind     := 0 | 1 owner:long | 2 | 3 ttlMs:long      (as in the transaction grammar)
//
// Integers are big-endian, as everywhere in jute. Children are not stored: they follow from the
// paths. MiniZK writes the nodes in a pre-order (each node after its parent and before anything
// outside its own subtree), which lets recovery build each child map in one pass; the decoder
// accepts any order and sorts one that is not a pre-order first.
//
// The encoder cuts the stream after a whole node once a chunk holds at least `chunkBytes`, so
// chunks written by MiniZK end on node boundaries; the decoder does not rely on it and carries a
// node cut in two over to the next chunk. Both are incremental: the encoder hands out one chunk
// at a time, so the storage thread can write log batches between the chunks of a large
// snapshot, and the decoder takes one chunk at a time, so recovery never holds the whole encoded
// snapshot in memory.
//
// Equal ACL lists are shared again on load (consecutive nodes with byte-identical ACLs get the
// same array), so a million nodes with the same ACL hold one copy of it.

public enum SnapshotCodec {
    static let magic: Int32 = 0x4D5A_4B53
    static let version: Int32 = 1
    /// The smallest encoding of one node: empty path length, null data, null ACL, eight fixed
    /// fields and a kind.
    static let nodeBytesMin = 4 + 4 + 4 + 5 * 8 + 3 * 4 + 4
    /// No single path, datum or ACL text in a snapshot is longer; a longer length is damage.
    static let fieldBytesMax = 64 << 20

    /// Encodes the tree, calling `emit` with each chunk of about `chunkBytes` bytes.
    public static func encode(_ tree: DataTree, chunkBytes: Int = 1 << 20, emit: (ByteBuffer) throws -> Void) rethrows {
        var encoder = SnapshotEncoder(tree, chunkBytes: chunkBytes)
        while let chunk = encoder.nextChunk() { try emit(chunk) }
    }

    public enum DecodeError: Error, Sendable, CustomStringConvertible {
        case invalid(String)
        public var description: String {
            switch self {
            case .invalid(let reason): return reason
            }
        }
    }

    /// Decodes a snapshot from its concatenated chunks.
    public static func decode(_ buffer: inout ByteBuffer) throws -> DataTree {
        var decoder = SnapshotDecoder()
        try decoder.feed(buffer)
        buffer.moveReaderIndex(to: buffer.writerIndex)
        return try decoder.finish()
    }
}

/// Encodes a tree one chunk at a time. Holding the encoder holds the tree, an immutable value:
/// the replica goes on changing its own copy meanwhile.
public struct SnapshotEncoder {
    public let zxid: Zxid
    public let nodeCount: Int
    private let tree: DataTree
    private var iterator: NodeIterator
    private let chunkBytes: Int
    private var headerWritten = false
    private var finished = false
    private var lastACL: [ACL] = []
    private var lastACLBytes = ByteBuffer()

    public init(_ tree: DataTree, chunkBytes: Int = 1 << 20) {
        precondition(chunkBytes > 0, "chunkBytes must be positive, is \(chunkBytes)")
        self.tree = tree
        self.zxid = tree.lastZxid
        self.nodeCount = tree.nodeCount
        self.iterator = tree.makeNodeIterator()
        self.chunkBytes = chunkBytes
        lastACLBytes.writeJuteACLs(lastACL)
    }

    /// The next chunk, or nil once the whole snapshot was handed out.
    public mutating func nextChunk() -> ByteBuffer? {
        guard !finished else { return nil }
        var buffer = ByteBuffer()
        buffer.reserveCapacity(chunkBytes + 4096)
        if !headerWritten {
            headerWritten = true
            buffer.writeJuteInt(SnapshotCodec.magic)
            buffer.writeJuteInt(SnapshotCodec.version)
            buffer.writeJuteLong(tree.lastZxid)
            buffer.writeJuteInt(Int32(tree.sessions.count))
            for (id, timeout) in tree.sessions.sorted(by: { $0.key < $1.key }) {
                buffer.writeJuteLong(id)
                buffer.writeJuteLong(timeout)
            }
            buffer.writeJuteLong(Int64(nodeCount))
        }
        while buffer.readableBytes < chunkBytes {
            guard let (path, node) = iterator.next() else {
                finished = true
                break
            }
            write(path, node, into: &buffer)
        }
        return buffer
    }

    private mutating func write(_ path: String, _ node: DataNode, into buffer: inout ByteBuffer) {
        buffer.writeJuteString(path)
        node.withData { data in
            if let data {
                buffer.writeInteger(Int32(data.count), endianness: .big)
                buffer.writeBytes(data)
            } else {
                buffer.writeInteger(Int32(-1), endianness: .big)
            }
        }
        if node.acl != lastACL {
            lastACL = node.acl
            lastACLBytes.clear()
            lastACLBytes.writeJuteACLs(node.acl)
        }
        buffer.writeImmutableBuffer(lastACLBytes)
        buffer.writeJuteLong(node.czxid)
        buffer.writeJuteLong(node.mzxid)
        buffer.writeJuteLong(node.ctime)
        buffer.writeJuteLong(node.mtime)
        buffer.writeJuteInt(node.version)
        buffer.writeJuteInt(node.aversion)
        buffer.writeJuteInt(node.childCreates)
        buffer.writeJuteLong(node.pzxid)
        buffer.writeNodeKind(node.kind)
    }
}

/// Decodes a snapshot fed one chunk at a time; `finish` builds the tree.
public struct SnapshotDecoder {
    private enum Failure: Error {
        /// The rest of the item is in the next chunk.
        case short
        case invalid(String)
    }

    private enum Phase {
        case header
        case nodes(remaining: Int64)
    }

    private var phase = Phase.header
    /// Bytes fed and not decoded yet: the start of a node cut by a chunk boundary.
    private var pending = ByteBuffer()
    private var zxid: Zxid = 0
    private var sessions: [(id: Int64, timeoutMs: Int64)] = []
    /// Builds the tree as the nodes come, on the decoder's thread or on a thread of its own.
    private let builder: BackgroundTreeBuilder?
    private var localBuilder = DataTreeBuilder()
    private var batch: [DataTreeBuilder.Entry] = []
    private var entries = DataTreeBuilder.EntryMaker()
    private static let batchNodes = 2048
    /// Distinct ACL lists seen, most recently used first, with their encoding.
    private var aclCache: [(bytes: [UInt8], acl: [ACL])] = []
    private static let aclCacheMax = 32

    /// With `parallel`, the tree is built on a second thread while this one reads and decodes
    /// (recovery of a large snapshot then takes about the longer of the two, not their sum).
    public init(parallel: Bool = false) {
        builder = parallel ? BackgroundTreeBuilder() : nil
    }

    /// Stops the second thread of a decoder that will not be finished.
    public func abandon() { builder?.abandon() }

    private mutating func deliver(_ path: String, _ node: DataNode) {
        guard let builder else { return localBuilder.add(path: path, node: node) }
        if batch.isEmpty { batch.reserveCapacity(Self.batchNodes) }
        batch.append(entries.entry(path: path, node: node))
        if batch.count >= Self.batchNodes {
            builder.submit(batch)
            batch = []
        }
    }

    /// Decodes every whole item in `chunk` (and what an earlier chunk left over).
    public mutating func feed(_ chunk: ByteBuffer) throws {
        if pending.readableBytes == 0 {
            pending = chunk
        } else {
            var chunk = chunk
            pending.writeBuffer(&chunk)
        }
        do {
            try decodeAvailable()
        } catch .invalid(let reason) {
            throw SnapshotCodec.DecodeError.invalid(reason)
        } catch {
            preconditionFailure("a short read escaped the snapshot decoder")
        }
        if pending.readableBytes == 0 {
            pending = ByteBuffer()
        } else {
            pending.discardReadBytes()
        }
    }

    /// The tree, once every chunk was fed.
    public mutating func finish() throws -> DataTree {
        guard case .nodes(let remaining) = phase else { throw SnapshotCodec.DecodeError.invalid("truncated in the header") }
        guard remaining == 0 else { throw SnapshotCodec.DecodeError.invalid("truncated: \(remaining) nodes missing") }
        guard pending.readableBytes == 0 else {
            throw SnapshotCodec.DecodeError.invalid("\(pending.readableBytes) bytes after the last node")
        }
        let restored: DataTree?
        if let builder {
            if !batch.isEmpty { builder.submit(batch) }
            batch = []
            restored = builder.finish(sessions: sessions, lastZxid: zxid)
        } else {
            restored = localBuilder.finish(sessions: sessions, lastZxid: zxid)
            localBuilder = DataTreeBuilder()
        }
        guard let tree = restored else { throw SnapshotCodec.DecodeError.invalid("nodes do not form a tree") }
        return tree
    }

    private mutating func decodeAvailable() throws(Failure) {
        if case .header = phase {
            var cursor = pending
            do {
                try decodeHeader(&cursor)
            } catch .short {
                return
            }
            pending = cursor
        }
        guard case .nodes(var remaining) = phase else { return }
        // Decode straight from a local buffer (rewound when a node is cut short), rather than
        // from a copy per node: a million nodes make every retain count.
        var buffer = pending
        pending = ByteBuffer()
        defer {
            phase = .nodes(remaining: remaining)
            pending = buffer
        }
        while remaining > 0, buffer.readableBytes > 0 {
            let start = buffer.readerIndex
            let node: (path: String, node: DataNode)
            do {
                node = try decodeNode(&buffer)
            } catch .short {
                buffer.moveReaderIndex(to: start)
                return
            }
            deliver(node.path, node.node)
            remaining -= 1
        }
        if remaining == 0, buffer.readableBytes > 0 {
            throw .invalid("\(buffer.readableBytes) bytes after the last node")
        }
    }

    private mutating func decodeHeader(_ buffer: inout ByteBuffer) throws(Failure) {
        guard try int(&buffer) == SnapshotCodec.magic else { throw .invalid("not a MiniZK snapshot") }
        let version = try int(&buffer)
        guard version == SnapshotCodec.version else { throw .invalid("snapshot version \(version)") }
        let zxid = try long(&buffer)
        let sessionCount = try int(&buffer)
        guard sessionCount >= 0 else { throw .invalid("session count \(sessionCount)") }
        guard buffer.readableBytes >= Int(sessionCount) * 16 + 8 else { throw .short }
        var sessions: [(id: Int64, timeoutMs: Int64)] = []
        sessions.reserveCapacity(Int(sessionCount))
        for _ in 0..<sessionCount {
            sessions.append((try long(&buffer), try long(&buffer)))
        }
        let nodeCount = try long(&buffer)
        guard nodeCount >= 1, nodeCount <= Int64(Int32.max) else { throw .invalid("node count \(nodeCount)") }
        self.zxid = zxid
        self.sessions = sessions
        phase = .nodes(remaining: nodeCount)
    }

    private mutating func decodeNode(_ buffer: inout ByteBuffer) throws(Failure) -> (String, DataNode) {
        guard let path = try string(&buffer) else { throw .invalid("null path") }
        // The data is copied once, straight from the chunk into the node's own storage.
        let dataCount = try length(&buffer)
        let dataStart = buffer.readerIndex
        buffer.moveReaderIndex(forwardBy: dataCount ?? 0)
        let acl = try acls(&buffer)

        guard buffer.readableBytes >= 5 * 8 + 3 * 4 + 4 else { throw .short }
        let czxid = try long(&buffer)
        let mzxid = try long(&buffer)
        let ctime = try long(&buffer)
        let mtime = try long(&buffer)
        let version = try int(&buffer)
        let aversion = try int(&buffer)
        let childCreates = try int(&buffer)
        let pzxid = try long(&buffer)
        let kind: NodeKind
        switch try int(&buffer) {
        case 0: kind = .persistent
        case 1: kind = .ephemeral(owner: try long(&buffer))
        case 2: kind = .container
        case 3: kind = .ttl(ms: try long(&buffer))
        case let other: throw .invalid("node \(path): kind \(other)")
        }
        let node = buffer.withVeryUnsafeBytes { storage in
            DataNode(
                copying: dataCount.map { UnsafeRawBufferPointer(rebasing: storage[dataStart..<dataStart + $0]) }, acl: acl,
                czxid: czxid, mzxid: mzxid, ctime: ctime, mtime: mtime, version: version, aversion: aversion,
                childCreates: childCreates, pzxid: pzxid, kind: kind)
        }
        return (path, node)
    }

    // MARK: Fields: nil from a reader is jute's null, a short buffer throws `.short`.

    private func int(_ buffer: inout ByteBuffer) throws(Failure) -> Int32 {
        guard let value = buffer.readInteger(endianness: .big, as: Int32.self) else { throw .short }
        return value
    }

    private func long(_ buffer: inout ByteBuffer) throws(Failure) -> Int64 {
        guard let value = buffer.readInteger(endianness: .big, as: Int64.self) else { throw .short }
        return value
    }

    private func length(_ buffer: inout ByteBuffer) throws(Failure) -> Int? {
        let count = try int(&buffer)
        if count == -1 { return nil }
        guard count >= 0, Int(count) <= SnapshotCodec.fieldBytesMax else { throw .invalid("length \(count)") }
        guard buffer.readableBytes >= Int(count) else { throw .short }
        return Int(count)
    }

    private func string(_ buffer: inout ByteBuffer) throws(Failure) -> String? {
        guard let count = try length(&buffer) else { return nil }
        // Written by `writeJuteString`, so read as a jute string (a character outside the BMP
        // comes as two surrogates).
        guard let text = buffer.readJuteText(length: count) else { throw .short }
        return text
    }

    /// Reads an ACL list, handing back an array read before when the bytes are the same: the
    /// ACL lists of a tree are few, and each node then holds a reference to a shared one.
    private mutating func acls(_ buffer: inout ByteBuffer) throws(Failure) -> [ACL] {
        let hit = buffer.withUnsafeReadableBytes { raw -> Int? in
            aclCache.firstIndex { cached in
                raw.count >= cached.bytes.count && cached.bytes.withUnsafeBytes { $0.elementsEqual(raw.prefix(cached.bytes.count)) }
            }
        }
        if let index = hit {
            let cached = aclCache[index]
            buffer.moveReaderIndex(forwardBy: cached.bytes.count)
            if index > 0 { aclCache.swapAt(0, index) }
            return cached.acl
        }
        let before = buffer
        let count = try int(&buffer)
        var list: [ACL] = []
        if count != -1 {
            guard count >= 0, count <= 1 << 20 else { throw .invalid("ACL count \(count)") }
            list.reserveCapacity(min(Int(count), buffer.readableBytes / 12))
            for _ in 0..<count {
                let perms = try int(&buffer)
                let scheme = try string(&buffer) ?? ""
                let id = try string(&buffer) ?? ""
                list.append(ACL(perms: Perms(rawValue: perms), id: Id(scheme: scheme, id: id)))
            }
        }
        let bytes = before.getBytes(at: before.readerIndex, length: buffer.readerIndex - before.readerIndex)!
        if aclCache.count >= Self.aclCacheMax { aclCache.removeLast() }
        aclCache.insert((bytes, list), at: 0)
        return list
    }
}

/// A `DataTreeBuilder` on a thread of its own, fed batches of nodes through a short queue.
final class BackgroundTreeBuilder: @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [[DataTreeBuilder.Entry]] = []
    private var closed = false
    private var stopped = false
    private var builder = DataTreeBuilder()
    private static let queuedBatchesMax = 16

    init() {
        let thread = Thread { [self] in run() }
        thread.name = "minizk-restore"
        thread.start()
    }

    func submit(_ batch: [DataTreeBuilder.Entry]) {
        condition.lock()
        while queue.count >= Self.queuedBatchesMax && !stopped { condition.wait() }
        queue.append(batch)
        condition.broadcast()
        condition.unlock()
    }

    /// Waits for every batch to be placed and builds the tree.
    func finish(sessions: [(id: Int64, timeoutMs: Int64)], lastZxid: Zxid) -> DataTree? {
        condition.lock()
        closed = true
        condition.broadcast()
        while !stopped { condition.wait() }
        condition.unlock()
        return builder.finish(sessions: sessions, lastZxid: lastZxid)
    }

    /// Drops what is queued and lets the thread end.
    func abandon() {
        condition.lock()
        queue = []
        closed = true
        condition.broadcast()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while queue.isEmpty && !closed { condition.wait() }
            if queue.isEmpty {
                stopped = true
                condition.broadcast()
                condition.unlock()
                return
            }
            var batch = queue.removeFirst()
            condition.broadcast()
            condition.unlock()
            for index in batch.indices { builder.add(&batch[index]) }
        }
    }
}
