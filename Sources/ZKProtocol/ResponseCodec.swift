import NIOCore

// Server → client payloads (each is the inside of one frame; see `Jute.swift` for the types).
//
//   ConnectResponse = int protocolVersion, int timeOut, long sessionId, buffer passwd,
//                     [boolean readOnly]
//   Notification    = ReplyHeader(xid = -1, zxid, err = 0), WatcherEvent
//   Reply           = ReplyHeader(int xid, long zxid, int err), [body]   body only when err == 0
//
//   The body is fixed by the opcode of the request being answered:
//
//   opcode                                  Response case           body
//   1 create                                .create                 ustring path
//   15 create2, 19 createContainer, 21 createTTL
//                                           .create2                ustring path, Stat
//   3 exists, 5 setData, 7 setACL           .stat                   Stat
//   4 getData, 16 reconfig                  .getData                buffer data, Stat
//   6 getACL                                .getACL                 vector<ACL>, Stat
//   8 getChildren                           .getChildren            vector<ustring>
//   12 getChildren2                         .getChildren2           vector<ustring>, Stat
//   9 sync                                  .sync                   ustring path
//   14 multi, 22 multiRead                  .multi                  MultiReply
//   102 sasl                                .sasl                   buffer token
//   103 getEphemerals                       .getEphemerals          vector<ustring>
//   104 getAllChildrenNumber                .getAllChildrenNumber   int
//   106 addWatch                            .errorResponse          int (ErrorResponse, always 0)
//   107 whoAmI                              .whoAmI                 vector<ClientInfo>
//   anything else (delete, ping, check, watches ops, auth, setWatches, closeSession, ...)
//                                           .empty                  nothing
//
//   MultiReply = { MultiHeader(type, done = false, err) result(type) }* MultiHeader(-1, true, -1)
//   result(1 create)  = ustring path          result(15 create2) = ustring path, Stat
//   result(2 delete)  = nothing               result(13 check)   = nothing
//   result(5 setData) = Stat                  result(4 getData)  = buffer data, Stat
//   result(8 getChildren) = vector<ustring>   result(-1 error)   = int err   (header err = err)
//
// Choices:
// * The ConnectResponse readOnly byte is written only when `readOnly` is not nil, so a server can
//   echo the client's format (what ZooKeeper 3.4–3.8 and 3.9.3+ do). The decoder accepts both.
// * The frame length is written by reserving four bytes and filling them in afterwards, so each
//   payload is encoded exactly once.
// * Unlike the request decoder, the reply decoder is strict: bytes left after a body throw
//   `trailingBytes`. It serves MiniZK's own client and tests, where leftover bytes mean an
//   encoder bug. A reply with err != 0 ignores whatever follows its header, because ZooKeeper
//   sends an empty MultiResponse after a failed multiRead header.
// * A top-level check (13) is answered with no body. ZooKeeper has no working answer to copy:
//   3.8.0 tries to send a SetDataResponse holding a null Stat and drops the connection instead
//   (observed), and 3.9.3+ refuses the opcode with UNIMPLEMENTED.
// * Replies with xid -2 (ping) and -4 (auth) have no body whatever opcode the caller believes it
//   is answering: ZooKeeper clients match them by xid, not through their pending queue.

enum ResponseCodec {
    // MARK: Encoding (the server side)

    static func encode(_ frame: ServerFrame, into buffer: inout ByteBuffer) {
        buffer.writeJuteFrame { payload in
            switch frame {
            case .connect(let response):
                payload.writeJuteInt(response.protocolVersion)
                payload.writeJuteInt(response.timeoutMs)
                payload.writeJuteLong(response.sessionId)
                payload.writeJuteBuffer(response.password)
                if let readOnly = response.readOnly { payload.writeJuteBool(readOnly) }
            case .reply(let header, let body):
                payload.writeJuteReplyHeader(header)
                if header.err == 0 { self.encodeBody(body, into: &payload) }
            case .notification(let zxid, let event):
                payload.writeJuteReplyHeader(ReplyHeader(xid: SpecialXid.notification, zxid: zxid, err: 0))
                payload.writeJuteWatcherEvent(event)
            }
        }
    }

    static func encodeBody(_ body: Response, into payload: inout ByteBuffer) {
        switch body {
        case .empty:
            break
        case .create(let path), .sync(let path):
            payload.writeJuteString(path)
        case .create2(let path, let stat):
            payload.writeJuteString(path)
            payload.writeJuteStat(stat)
        case .stat(let stat):
            payload.writeJuteStat(stat)
        case .getData(let data, let stat):
            payload.writeJuteBuffer(data)
            payload.writeJuteStat(stat)
        case .getACL(let acl, let stat):
            payload.writeJuteACLs(acl)
            payload.writeJuteStat(stat)
        case .getChildren(let children), .getEphemerals(let children):
            payload.writeJuteStrings(children)
        case .getChildren2(let children, let stat):
            payload.writeJuteStrings(children)
            payload.writeJuteStat(stat)
        case .multi(let results):
            for result in results { self.encodeMultiResult(result, into: &payload) }
            payload.writeJuteMultiHeader(.terminator)
        case .sasl(let token):
            payload.writeJuteBuffer(token)
        case .getAllChildrenNumber(let number), .errorResponse(let number):
            payload.writeJuteInt(number)
        case .whoAmI(let identities):
            payload.writeJuteVector(identities) { $0.writeJuteClientInfo($1) }
        }
    }

    static func encodeMultiResult(_ result: MultiResult, into payload: inout ByteBuffer) {
        switch result {
        case .create(let path):
            payload.writeJuteMultiHeader(MultiHeader(type: OpCode.create.rawValue, done: false, err: 0))
            payload.writeJuteString(path)
        case .create2(let path, let stat):
            payload.writeJuteMultiHeader(MultiHeader(type: OpCode.create2.rawValue, done: false, err: 0))
            payload.writeJuteString(path)
            payload.writeJuteStat(stat)
        case .delete:
            payload.writeJuteMultiHeader(MultiHeader(type: OpCode.delete.rawValue, done: false, err: 0))
        case .check:
            payload.writeJuteMultiHeader(MultiHeader(type: OpCode.check.rawValue, done: false, err: 0))
        case .setData(let stat):
            payload.writeJuteMultiHeader(MultiHeader(type: OpCode.setData.rawValue, done: false, err: 0))
            payload.writeJuteStat(stat)
        case .getData(let data, let stat):
            payload.writeJuteMultiHeader(MultiHeader(type: OpCode.getData.rawValue, done: false, err: 0))
            payload.writeJuteBuffer(data)
            payload.writeJuteStat(stat)
        case .getChildren(let children):
            payload.writeJuteMultiHeader(MultiHeader(type: OpCode.getChildren.rawValue, done: false, err: 0))
            payload.writeJuteStrings(children)
        case .error(let code):
            payload.writeJuteMultiHeader(MultiHeader(type: OpCode.error.rawValue, done: false, err: code.rawValue))
            payload.writeJuteInt(code.rawValue)
        }
    }

    // MARK: Decoding (the client side)

    static func decodeConnectResponse(_ payload: inout ByteBuffer) throws -> ConnectResponse {
        let protocolVersion = try payload.readJuteInt("ConnectResponse.protocolVersion")
        let timeoutMs = try payload.readJuteInt("ConnectResponse.timeOut")
        let sessionId = try payload.readJuteLong("ConnectResponse.sessionId")
        let password = try payload.readJuteBuffer("ConnectResponse.passwd") ?? []
        var readOnly: Bool? = nil
        if payload.readableBytes > 0 { readOnly = try payload.readJuteBool("ConnectResponse.readOnly") }
        try self.expectEnd(payload)
        return ConnectResponse(
            protocolVersion: protocolVersion, timeoutMs: timeoutMs, sessionId: sessionId, password: password,
            readOnly: readOnly
        )
    }

    static func decodeReply(_ payload: inout ByteBuffer, opcode: Int32) throws -> ServerFrame {
        let header = try payload.readJuteReplyHeader()
        if header.xid == SpecialXid.notification {
            let event = try payload.readJuteWatcherEvent()
            try self.expectEnd(payload)
            return .notification(zxid: header.zxid, event)
        }
        guard header.err == 0 else { return .reply(header, .empty) }
        let body: Response
        switch header.xid {
        case SpecialXid.ping, SpecialXid.auth: body = .empty
        default: body = try self.decodeBody(opcode: opcode, from: &payload)
        }
        try self.expectEnd(payload)
        return .reply(header, body)
    }

    static func decodeBody(opcode: Int32, from payload: inout ByteBuffer) throws -> Response {
        guard let known = OpCode(rawValue: opcode) else { return .empty }
        switch known {
        case .create:
            return .create(path: try payload.readJutePath("CreateResponse.path"))
        case .create2, .createContainer, .createTTL:
            return .create2(path: try payload.readJutePath("Create2Response.path"), stat: try payload.readJuteStat())
        case .exists, .setData, .setACL:
            return .stat(try payload.readJuteStat())
        case .getData, .reconfig:
            return .getData(data: try payload.readJuteBuffer("GetDataResponse.data"), stat: try payload.readJuteStat())
        case .getACL:
            return .getACL(acl: try payload.readJuteACLs("GetACLResponse.acl") ?? [], stat: try payload.readJuteStat())
        case .getChildren:
            return .getChildren(children: try payload.readJuteStrings("GetChildrenResponse.children") ?? [])
        case .getChildren2:
            return .getChildren2(
                children: try payload.readJuteStrings("GetChildren2Response.children") ?? [],
                stat: try payload.readJuteStat()
            )
        case .sync:
            return .sync(path: try payload.readJutePath("SyncResponse.path"))
        case .multi, .multiRead:
            return .multi(try self.decodeMultiResults(&payload))
        case .sasl:
            return .sasl(token: try payload.readJuteBuffer("SetSASLResponse.token"))
        case .getEphemerals:
            return .getEphemerals(paths: try payload.readJuteStrings("GetEphemeralsResponse.ephemerals") ?? [])
        case .getAllChildrenNumber:
            return .getAllChildrenNumber(try payload.readJuteInt("GetAllChildrenNumberResponse.totalNumber"))
        case .addWatch:
            return .errorResponse(try payload.readJuteInt("ErrorResponse.err"))
        case .whoAmI:
            let identities = try payload.readJuteVector("WhoAmIResponse.clientInfo", elementBytesMin: 8) {
                try $0.readJuteClientInfo()
            }
            return .whoAmI(identities ?? [])
        case .notification, .delete, .ping, .check, .checkWatches, .removeWatches, .deleteContainer, .auth,
            .setWatches, .setWatches2, .createSession, .closeSession, .error:
            return .empty
        }
    }

    static func decodeMultiResults(_ payload: inout ByteBuffer) throws -> [MultiResult] {
        var results: [MultiResult] = []
        // Every pass consumes a 9-byte MultiHeader or throws, so the loop is bounded by the payload.
        while true {
            let header = try payload.readJuteMultiHeader()
            if header.done { break }
            results.append(try self.decodeMultiResult(type: header.type, from: &payload))
        }
        return results
    }

    static func decodeMultiResult(type: Int32, from payload: inout ByteBuffer) throws -> MultiResult {
        switch OpCode(rawValue: type) {
        case .create: return .create(path: try payload.readJutePath("CreateResponse.path"))
        case .create2: return .create2(path: try payload.readJutePath("Create2Response.path"), stat: try payload.readJuteStat())
        case .delete: return .delete
        case .check: return .check
        case .setData: return .setData(stat: try payload.readJuteStat())
        case .getData: return .getData(data: try payload.readJuteBuffer("GetDataResponse.data"), stat: try payload.readJuteStat())
        case .getChildren: return .getChildren(children: try payload.readJuteStrings("GetChildrenResponse.children") ?? [])
        case .error:
            let raw = try payload.readJuteInt("ErrorResponse.err")
            guard let code = ErrorCode(rawValue: raw) else { throw ProtocolError.invalid(what: "multi error code \(raw)") }
            return .error(code)
        default:
            throw ProtocolError.invalid(what: "multi result type \(type)")
        }
    }

    static func expectEnd(_ payload: ByteBuffer) throws {
        guard payload.readableBytes == 0 else { throw ProtocolError.trailingBytes(count: payload.readableBytes) }
    }
}
