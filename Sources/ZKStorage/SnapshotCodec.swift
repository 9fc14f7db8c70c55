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
// Children are not stored: they follow from the paths. Equal ACL lists are shared again on load,
// so a million nodes with the same ACL hold one copy of it.

public enum SnapshotCodec {
    static let magic: Int32 = 0x4D5A_4B53
    static let version: Int32 = 1

    /// Encodes the tree, calling `emit` with each full chunk of about `chunkBytes` bytes.
    public static func encode(_ tree: DataTree, chunkBytes: Int = 1 << 20, emit: (ByteBuffer) throws -> Void) rethrows {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(chunkBytes + 4096)
        buffer.writeJuteInt(magic)
        buffer.writeJuteInt(version)
        buffer.writeJuteLong(tree.lastZxid)
        buffer.writeJuteInt(Int32(tree.sessions.count))
        for (id, timeout) in tree.sessions.sorted(by: { $0.key < $1.key }) {
            buffer.writeJuteLong(id)
            buffer.writeJuteLong(timeout)
        }
        buffer.writeJuteLong(Int64(tree.nodes.count))
        for (path, node) in tree.nodes {
            buffer.writeJuteString(path)
            buffer.writeJuteBuffer(node.data)
            buffer.writeJuteACLs(node.acl)
            buffer.writeJuteLong(node.czxid)
            buffer.writeJuteLong(node.mzxid)
            buffer.writeJuteLong(node.ctime)
            buffer.writeJuteLong(node.mtime)
            buffer.writeJuteInt(node.version)
            buffer.writeJuteInt(node.aversion)
            buffer.writeJuteInt(node.childCreates)
            buffer.writeJuteLong(node.pzxid)
            switch node.kind {
            case .persistent: buffer.writeJuteInt(0)
            case .ephemeral(let owner):
                buffer.writeJuteInt(1)
                buffer.writeJuteLong(owner)
            case .container: buffer.writeJuteInt(2)
            case .ttl(let ms):
                buffer.writeJuteInt(3)
                buffer.writeJuteLong(ms)
            }
            if buffer.readableBytes >= chunkBytes {
                try emit(buffer)
                buffer.clear()
            }
        }
        if buffer.readableBytes > 0 { try emit(buffer) }
    }

    public enum DecodeError: Error { case invalid(String) }

    /// Decodes a snapshot from its concatenated chunks.
    public static func decode(_ buffer: inout ByteBuffer) throws -> DataTree {
        guard try buffer.readJuteInt("magic") == magic else { throw DecodeError.invalid("not a MiniZK snapshot") }
        let version = try buffer.readJuteInt("version")
        guard version == Self.version else { throw DecodeError.invalid("snapshot version \(version)") }
        let zxid = try buffer.readJuteLong("zxid")
        let sessionCount = try buffer.readJuteInt("session count")
        guard sessionCount >= 0, Int(sessionCount) <= buffer.readableBytes / 16 else { throw DecodeError.invalid("session count \(sessionCount)") }
        var sessions: [(id: Int64, timeoutMs: Int64)] = []
        for _ in 0..<sessionCount {
            sessions.append((try buffer.readJuteLong("session id"), try buffer.readJuteLong("session timeout")))
        }
        let nodeCount = try buffer.readJuteLong("node count")
        guard nodeCount >= 1, nodeCount <= Int64(buffer.readableBytes / 50) else { throw DecodeError.invalid("node count \(nodeCount)") }
        var nodes: [(path: String, node: DataNode)] = []
        nodes.reserveCapacity(Int(nodeCount))
        var aclCache: [[ACL]: [ACL]] = [:]
        for _ in 0..<nodeCount {
            guard let path = try buffer.readJuteString("path") else { throw DecodeError.invalid("null path") }
            let data = try buffer.readJuteBuffer("data")
            let readACL = try buffer.readJuteACLs("acl") ?? []
            let acl: [ACL]
            if let shared = aclCache[readACL] { acl = shared } else { aclCache[readACL] = readACL; acl = readACL }
            let czxid = try buffer.readJuteLong("czxid")
            let mzxid = try buffer.readJuteLong("mzxid")
            let ctime = try buffer.readJuteLong("ctime")
            let mtime = try buffer.readJuteLong("mtime")
            let version = try buffer.readJuteInt("version")
            let aversion = try buffer.readJuteInt("aversion")
            let childCreates = try buffer.readJuteInt("childCreates")
            let pzxid = try buffer.readJuteLong("pzxid")
            let kind: NodeKind
            switch try buffer.readJuteInt("kind") {
            case 0: kind = .persistent
            case 1: kind = .ephemeral(owner: try buffer.readJuteLong("owner"))
            case 2: kind = .container
            case 3: kind = .ttl(ms: try buffer.readJuteLong("ttl"))
            case let other: throw DecodeError.invalid("node kind \(other)")
            }
            nodes.append(
                (path, DataNode(
                    data: data, acl: acl, czxid: czxid, mzxid: mzxid, ctime: ctime, mtime: mtime, version: version,
                    aversion: aversion, childCreates: childCreates, pzxid: pzxid, kind: kind, children: [])))
        }
        guard buffer.readableBytes == 0 else { throw DecodeError.invalid("\(buffer.readableBytes) bytes after the last node") }
        guard let tree = DataTree(restoring: nodes, sessions: sessions, lastZxid: zxid) else {
            throw DecodeError.invalid("nodes do not form a tree")
        }
        return tree
    }
}
