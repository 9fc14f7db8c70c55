import NIOCore

// The logged form of a transaction, written in the jute style (big-endian, length-prefixed).
//
//     transaction := zxid:long timeMs:long sessionId:long cxid:int body
//     body        := tag:int fields
//       1 createSession  timeoutMs:long
//       2 closeSession   ephemerals:vector<ustring>
//       3 create         path:ustring data:buffer acl:vector<ACL> kind
//       4 delete         path:ustring
//       5 setData        path:ustring data:buffer version:int
//       6 setACL         path:ustring acl:vector<ACL> version:int
//       7 check          path:ustring
//       8 multi          count:int body{count}        (operations only: tags 3–7, no nesting)
//       9 error          code:int
//      10 failedMulti    codes:vector<int>
//     kind        := 0 persistent | 1 owner:long (ephemeral) | 2 (container) | 3 ttlMs:long
//
// Decoding is as defensive as for client frames: a damaged record throws, never traps.

extension Transaction {
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeJuteLong(zxid)
        buffer.writeJuteLong(timeMs)
        buffer.writeJuteLong(sessionId)
        buffer.writeJuteInt(cxid)
        body.encode(into: &buffer)
    }

    public func encoded() -> ByteBuffer {
        var buffer = ByteBuffer()
        encode(into: &buffer)
        return buffer
    }

    public static func decode(_ buffer: inout ByteBuffer) throws -> Transaction {
        let zxid = try buffer.readJuteLong("transaction zxid")
        let timeMs = try buffer.readJuteLong("transaction time")
        let sessionId = try buffer.readJuteLong("transaction session")
        let cxid = try buffer.readJuteInt("transaction cxid")
        let body = try TransactionBody.decode(&buffer, nested: false)
        return Transaction(zxid: zxid, timeMs: timeMs, sessionId: sessionId, cxid: cxid, body: body)
    }
}

extension TransactionBody {
    public func encode(into buffer: inout ByteBuffer) {
        switch self {
        case .createSession(let timeoutMs):
            buffer.writeJuteInt(1)
            buffer.writeJuteLong(timeoutMs)
        case .closeSession(let ephemerals):
            buffer.writeJuteInt(2)
            buffer.writeJuteVector(ephemerals) { $0.writeJuteString($1) }
        case .create(let path, let data, let acl, let kind):
            buffer.writeJuteInt(3)
            buffer.writeJuteString(path)
            buffer.writeJuteBuffer(data)
            buffer.writeJuteACLs(acl)
            buffer.writeNodeKind(kind)
        case .delete(let path):
            buffer.writeJuteInt(4)
            buffer.writeJuteString(path)
        case .setData(let path, let data, let version):
            buffer.writeJuteInt(5)
            buffer.writeJuteString(path)
            buffer.writeJuteBuffer(data)
            buffer.writeJuteInt(version)
        case .setACL(let path, let acl, let version):
            buffer.writeJuteInt(6)
            buffer.writeJuteString(path)
            buffer.writeJuteACLs(acl)
            buffer.writeJuteInt(version)
        case .check(let path):
            buffer.writeJuteInt(7)
            buffer.writeJuteString(path)
        case .multi(let bodies):
            buffer.writeJuteInt(8)
            buffer.writeJuteInt(Int32(bodies.count))
            for body in bodies { body.encode(into: &buffer) }
        case .error(let code):
            buffer.writeJuteInt(9)
            buffer.writeJuteInt(code.rawValue)
        case .failedMulti(let codes):
            buffer.writeJuteInt(10)
            buffer.writeJuteVector(codes) { $0.writeJuteInt($1.rawValue) }
        }
    }

    static func decode(_ buffer: inout ByteBuffer, nested: Bool) throws -> TransactionBody {
        let tag = try buffer.readJuteInt("transaction tag")
        func path() throws -> String {
            guard let path = try buffer.readJuteString("transaction path") else { throw ProtocolError.invalid(what: "null transaction path") }
            return path
        }
        func code(_ raw: Int32) throws -> ErrorCode {
            guard let code = ErrorCode(rawValue: raw) else { throw ProtocolError.invalid(what: "error code \(raw)") }
            return code
        }
        if nested && !(3...7).contains(tag) { throw ProtocolError.invalid(what: "transaction tag \(tag) inside a multi") }
        switch tag {
        case 1:
            return .createSession(timeoutMs: try buffer.readJuteLong("session timeout"))
        case 2:
            return .closeSession(ephemerals: try buffer.readJuteVector("ephemerals", elementBytesMin: 4) { try $0.readJuteString("ephemeral") ?? "" } ?? [])
        case 3:
            let path = try path()
            let data = try buffer.readJuteBuffer("create data")
            let acl = try buffer.readJuteACLs("create acl") ?? []
            let kind: NodeKind
            switch try buffer.readJuteInt("node kind") {
            case 0: kind = .persistent
            case 1: kind = .ephemeral(owner: try buffer.readJuteLong("ephemeral owner"))
            case 2: kind = .container
            case 3: kind = .ttl(ms: try buffer.readJuteLong("ttl"))
            case let other: throw ProtocolError.invalid(what: "node kind \(other)")
            }
            return .create(path: path, data: data, acl: acl, kind: kind)
        case 4:
            return .delete(path: try path())
        case 5:
            let path = try path()
            let data = try buffer.readJuteBuffer("setData data")
            return .setData(path: path, data: data, version: try buffer.readJuteInt("setData version"))
        case 6:
            let path = try path()
            let acl = try buffer.readJuteACLs("setACL acl") ?? []
            return .setACL(path: path, acl: acl, version: try buffer.readJuteInt("setACL version"))
        case 7:
            return .check(path: try path())
        case 8:
            let count = try buffer.readJuteInt("multi count")
            guard count >= 0, Int(count) <= buffer.readableBytes / 4 else { throw ProtocolError.invalid(what: "multi count \(count)") }
            var bodies: [TransactionBody] = []
            for _ in 0..<count { bodies.append(try decode(&buffer, nested: true)) }
            return .multi(bodies)
        case 9:
            return .error(try code(try buffer.readJuteInt("error code")))
        case 10:
            let raw = try buffer.readJuteVector("multi codes", elementBytesMin: 4) { try $0.readJuteInt("code") } ?? []
            return .failedMulti(try raw.map(code))
        default:
            throw ProtocolError.invalid(what: "transaction tag \(tag)")
        }
    }
}

extension ByteBuffer {
    /// Writes a node kind in the grammar above (shared with the snapshot grammar).
    public mutating func writeNodeKind(_ kind: NodeKind) {
        switch kind {
        case .persistent: writeJuteInt(0)
        case .ephemeral(let owner):
            writeJuteInt(1)
            writeJuteLong(owner)
        case .container: writeJuteInt(2)
        case .ttl(let ms):
            writeJuteInt(3)
            writeJuteLong(ms)
        }
    }
}
