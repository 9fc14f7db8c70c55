import NIOCore

// Client → server payloads (each is the inside of one frame; see `Jute.swift` for the types).
//
//   ConnectRequest = int protocolVersion, long lastZxidSeen, int timeOut, long sessionId,
//                    buffer passwd, [boolean readOnly]
//   Request        = RequestHeader(int xid, int type), body(type)
//
//   body(1 create | 15 create2 | 19 createContainer)
//                          = ustring path, buffer data, vector<ACL> acl, int flags
//   body(21 createTTL)     = ustring path, buffer data, vector<ACL> acl, int flags, long ttl
//   body(2 delete | 13 check)                   = ustring path, int version
//   body(3 exists | 4 getData | 8 getChildren | 12 getChildren2)
//                                               = ustring path, boolean watch
//   body(5 setData)        = ustring path, buffer data, int version
//   body(6 getACL | 9 sync | 103 getEphemerals | 104 getAllChildrenNumber) = ustring path
//   body(7 setACL)         = ustring path, vector<ACL> acl, int version
//   body(11 ping | 107 whoAmI | -11 closeSession) = nothing
//   body(14 multi | 22 multiRead)
//                          = { MultiHeader(type, done = false, err) body(type) }*
//                            MultiHeader(type, done = true, err)
//   body(16 reconfig)      = ustring joining, ustring leaving, ustring newMembers, long curConfigId
//   body(17 checkWatches | 18 removeWatches)    = ustring path, int watcherType
//   body(20 deleteContainer) = the path's UTF-8 bytes filling the rest of the payload
//   body(100 auth)         = int type, ustring scheme, buffer auth
//   body(101 setWatches)   = long relativeZxid, vector<ustring> data, exist, child
//   body(105 setWatches2)  = long relativeZxid, vector<ustring> data, exist, child, persistent,
//                            persistentRecursive
//   body(102 sasl)         = buffer token
//   body(106 addWatch)     = ustring path, int mode
//
// Choices where ZooKeeper leaves room:
// * The readOnly byte of ConnectRequest is optional (clients before 3.4 omit it); its absence
//   gives `readOnly == nil` so the server can echo the client's format in its answer.
// * Bytes after a complete record are ignored, as ZooKeeper's server ignores them.
// * A null path (or scheme, prefix, watch path) reads as "", which every operation rejects as an
//   invalid path; a null passwd or auth buffer reads as empty. Null data and null ACL lists stay
//   nil because ZooKeeper keeps them distinct.
// * Any opcode we do not know, including the server-internal ones (0, -10, -1), decodes to
//   `.unknown(opcode:)`; the server answers UNIMPLEMENTED.
// * Inside a multi or multiRead, all nine operation types that ZooKeeper's MultiOperationRecord
//   knows (1, 15, 19, 21, 2, 5, 13, 4, 8) are decoded whichever of the two opcodes carries them:
//   deciding that reads and writes were mixed is the server's job (MARSHALLINGERROR). Any other
//   type cannot be skipped, since its record layout is unknown, so decoding stops there, the rest
//   of the payload is dropped and the list ends with `.unknown(opcode: type)`. Each operation consumes at least its 9-byte
//   MultiHeader, so the number of operations is bounded by the payload size.
// * deleteContainer is only sent by ZooKeeper's own container reaper. Up to 3.8 its body is the
//   bare path bytes; 3.9 made it a length-prefixed buffer. We encode the 3.8 form. We decode the
//   3.9 form too when the first four bytes are exactly the length of what follows them and the
//   payload does not start with '/': a real path starts with '/', so the two cannot be confused
//   for any valid path. A string that does not start with '/' is encoded in the 3.9 form, so that
//   decoding gives it back (the fuzzer found a bare one whose first bytes read as a length).

enum RequestCodec {
    /// The operation types a multi or multiRead record may carry.
    static let multiOperationTypes: Set<Int32> = [
        OpCode.create.rawValue, OpCode.create2.rawValue, OpCode.createContainer.rawValue,
        OpCode.createTTL.rawValue, OpCode.delete.rawValue, OpCode.setData.rawValue,
        OpCode.check.rawValue, OpCode.getData.rawValue, OpCode.getChildren.rawValue,
    ]

    // MARK: Decoding

    static func decodeConnectRequest(_ payload: inout ByteBuffer) throws -> ConnectRequest {
        let protocolVersion = try payload.readJuteInt("ConnectRequest.protocolVersion")
        let lastZxidSeen = try payload.readJuteLong("ConnectRequest.lastZxidSeen")
        let timeoutMs = try payload.readJuteInt("ConnectRequest.timeOut")
        let sessionId = try payload.readJuteLong("ConnectRequest.sessionId")
        let password = try payload.readJuteBuffer("ConnectRequest.passwd") ?? []
        var readOnly: Bool? = nil
        if payload.readableBytes > 0 { readOnly = try payload.readJuteBool("ConnectRequest.readOnly") }
        return ConnectRequest(
            protocolVersion: protocolVersion, lastZxidSeen: lastZxidSeen, timeoutMs: timeoutMs,
            sessionId: sessionId, password: password, readOnly: readOnly
        )
    }

    /// Opcodes whose record starts with the path.
    static let pathFirstOpcodes: Set<Int32> = Set(
        [
            OpCode.create, .create2, .createContainer, .createTTL, .delete, .exists, .getData, .setData, .getACL,
            .setACL, .getChildren, .getChildren2, .sync, .check, .checkWatches, .removeWatches,
            .getAllChildrenNumber, .addWatch,
        ].map(\.rawValue))

    static func decodeRequest(_ payload: inout ByteBuffer) throws -> (RequestHeader, Request) {
        let header = try payload.readJuteRequestHeader()
        // A request with a null path is told apart (`Request.nullPath`): ZooKeeper answers most of
        // them MARSHALLINGERROR, a few otherwise (getEphemerals is not among them: its null
        // prefix means every ephemeral).
        if pathFirstOpcodes.contains(header.type), payload.getInteger(at: payload.readerIndex, as: Int32.self) == -1 {
            // The record is read whole all the same (a truncated one is malformed, as anywhere).
            _ = try self.decodeBody(opcode: header.type, from: &payload)
            return (header, .nullPath(opcode: header.type))
        }
        return (header, try self.decodeBody(opcode: header.type, from: &payload))
    }

    static func decodeBody(opcode: Int32, from payload: inout ByteBuffer) throws -> Request {
        guard let known = OpCode(rawValue: opcode) else { return .unknown(opcode: opcode) }
        switch known {
        case .create: return .create(try self.decodeCreate(&payload, ttl: false))
        case .create2: return .create2(try self.decodeCreate(&payload, ttl: false))
        case .createContainer: return .createContainer(try self.decodeCreate(&payload, ttl: false))
        case .createTTL: return .createTTL(try self.decodeCreate(&payload, ttl: true))
        case .delete:
            return .delete(path: try payload.readJutePath("DeleteRequest.path"), version: try payload.readJuteInt("DeleteRequest.version"))
        case .check:
            return .check(path: try payload.readJutePath("CheckVersionRequest.path"), version: try payload.readJuteInt("CheckVersionRequest.version"))
        case .exists:
            return .exists(path: try payload.readJutePath("ExistsRequest.path"), watch: try payload.readJuteBool("ExistsRequest.watch"))
        case .getData:
            return .getData(path: try payload.readJutePath("GetDataRequest.path"), watch: try payload.readJuteBool("GetDataRequest.watch"))
        case .getChildren:
            return .getChildren(path: try payload.readJutePath("GetChildrenRequest.path"), watch: try payload.readJuteBool("GetChildrenRequest.watch"))
        case .getChildren2:
            return .getChildren2(path: try payload.readJutePath("GetChildren2Request.path"), watch: try payload.readJuteBool("GetChildren2Request.watch"))
        case .setData:
            return .setData(
                path: try payload.readJutePath("SetDataRequest.path"),
                data: try payload.readJuteBuffer("SetDataRequest.data"),
                version: try payload.readJuteInt("SetDataRequest.version")
            )
        case .getACL: return .getACL(path: try payload.readJutePath("GetACLRequest.path"))
        case .sync: return .sync(path: try payload.readJutePath("SyncRequest.path"))
        case .getEphemerals: return .getEphemerals(prefixPath: try payload.readJutePath("GetEphemeralsRequest.prefixPath"))
        case .getAllChildrenNumber: return .getAllChildrenNumber(path: try payload.readJutePath("GetAllChildrenNumberRequest.path"))
        case .setACL:
            return .setACL(
                path: try payload.readJutePath("SetACLRequest.path"),
                acl: try payload.readJuteACLs("SetACLRequest.acl"),
                version: try payload.readJuteInt("SetACLRequest.version")
            )
        case .ping: return .ping
        case .whoAmI: return .whoAmI
        case .closeSession: return .closeSession
        case .multi: return .multi(try self.decodeMultiOperations(&payload))
        case .multiRead: return .multiRead(try self.decodeMultiOperations(&payload))
        case .reconfig:
            return .reconfig(
                ReconfigRequest(
                    joiningServers: try payload.readJuteString("ReconfigRequest.joiningServers"),
                    leavingServers: try payload.readJuteString("ReconfigRequest.leavingServers"),
                    newMembers: try payload.readJuteString("ReconfigRequest.newMembers"),
                    currentConfigId: try payload.readJuteLong("ReconfigRequest.curConfigId")
                )
            )
        case .checkWatches:
            return .checkWatches(path: try payload.readJutePath("CheckWatchesRequest.path"), type: try payload.readJuteInt("CheckWatchesRequest.type"))
        case .removeWatches:
            return .removeWatches(path: try payload.readJutePath("RemoveWatchesRequest.path"), type: try payload.readJuteInt("RemoveWatchesRequest.type"))
        case .addWatch:
            return .addWatch(path: try payload.readJutePath("AddWatchRequest.path"), mode: try payload.readJuteInt("AddWatchRequest.mode"))
        case .deleteContainer: return .deleteContainer(path: self.decodeDeleteContainerPath(&payload))
        case .auth:
            return .auth(
                type: try payload.readJuteInt("AuthPacket.type"),
                scheme: try payload.readJutePath("AuthPacket.scheme"),
                auth: try payload.readJuteBuffer("AuthPacket.auth") ?? []
            )
        case .setWatches: return .setWatches(try self.decodeSetWatches(&payload, persistentLists: false))
        case .setWatches2: return .setWatches2(try self.decodeSetWatches(&payload, persistentLists: true))
        case .sasl: return .sasl(token: try payload.readJuteBuffer("GetSASLRequest.token"))
        case .notification, .createSession, .error: return .unknown(opcode: opcode)
        }
    }

    static func decodeCreate(_ payload: inout ByteBuffer, ttl hasTTL: Bool) throws -> CreateRequest {
        let path = try payload.readJutePath("CreateRequest.path")
        let data = try payload.readJuteBuffer("CreateRequest.data")
        let acl = try payload.readJuteACLs("CreateRequest.acl")
        let flags = try payload.readJuteInt("CreateRequest.flags")
        let ttl: Int64? = hasTTL ? try payload.readJuteLong("CreateTTLRequest.ttl") : nil
        return CreateRequest(path: path, data: data, acl: acl, flags: flags, ttl: ttl)
    }

    static func decodeSetWatches(_ payload: inout ByteBuffer, persistentLists: Bool) throws -> SetWatchesRequest {
        var request = SetWatchesRequest(relativeZxid: try payload.readJuteLong("SetWatches.relativeZxid"))
        request.dataWatches = try payload.readJuteStrings("SetWatches.dataWatches") ?? []
        request.existWatches = try payload.readJuteStrings("SetWatches.existWatches") ?? []
        request.childWatches = try payload.readJuteStrings("SetWatches.childWatches") ?? []
        if persistentLists {
            request.persistentWatches = try payload.readJuteStrings("SetWatches2.persistentWatches") ?? []
            request.persistentRecursiveWatches = try payload.readJuteStrings("SetWatches2.persistentRecursiveWatches") ?? []
        }
        return request
    }

    static func decodeMultiOperations(_ payload: inout ByteBuffer) throws -> [Request] {
        var operations: [Request] = []
        // Every pass consumes a 9-byte MultiHeader or throws, so this loop runs at most
        // payload/9 times.
        while true {
            let header = try payload.readJuteMultiHeader()
            if header.done { break }
            guard self.multiOperationTypes.contains(header.type) else {
                // The record's layout is unknown, so nothing after it can be found: skip the rest.
                operations.append(.unknown(opcode: header.type))
                payload.moveReaderIndex(to: payload.writerIndex)
                break
            }
            // A null path inside a multi or multiRead makes ZooKeeper fail the whole request
            // (MARSHALLINGERROR); the operation is read past and marked.
            let nullPath = pathFirstOpcodes.contains(header.type) && payload.getInteger(at: payload.readerIndex, as: Int32.self) == -1
            let operation = try self.decodeBody(opcode: header.type, from: &payload)
            operations.append(nullPath ? .nullPath(opcode: header.type) : operation)
        }
        return operations
    }

    static func decodeDeleteContainerPath(_ payload: inout ByteBuffer) -> String {
        let readable = payload.readableBytes
        if readable >= 4,
            let first = payload.getInteger(at: payload.readerIndex, as: UInt8.self), first != UInt8(ascii: "/"),
            let length = payload.getInteger(at: payload.readerIndex, endianness: .big, as: Int32.self),
            Int(length) == readable - 4
        {
            payload.moveReaderIndex(forwardBy: 4)
        }
        return payload.readJuteText(length: payload.readableBytes) ?? ""
    }

    // MARK: Encoding (the client side)

    static func encode(_ request: ConnectRequest, into buffer: inout ByteBuffer) {
        buffer.writeJuteFrame { payload in
            payload.writeJuteInt(request.protocolVersion)
            payload.writeJuteLong(request.lastZxidSeen)
            payload.writeJuteInt(request.timeoutMs)
            payload.writeJuteLong(request.sessionId)
            payload.writeJuteBuffer(request.password)
            if let readOnly = request.readOnly { payload.writeJuteBool(readOnly) }
        }
    }

    static func encode(xid: Int32, _ request: Request, into buffer: inout ByteBuffer) {
        buffer.writeJuteFrame { payload in
            payload.writeJuteRequestHeader(RequestHeader(xid: xid, type: request.opcode))
            self.encodeBody(request, into: &payload)
        }
    }

    /// A whole record with a null path and neutral fields after it, so that a null-path operation
    /// inside a multi (a follower forwards it to its leader) decodes back to the same
    /// `.nullPath` with the operations after it intact.
    static func encodeNullPathBody(opcode: Int32, into payload: inout ByteBuffer) {
        payload.writeJuteString(nil)
        switch OpCode(rawValue: opcode) {
        case .create?, .create2?, .createContainer?, .createTTL?:
            payload.writeJuteBuffer(nil)
            payload.writeJuteACLs(nil)
            payload.writeJuteInt(0)
            if opcode == OpCode.createTTL.rawValue { payload.writeJuteLong(0) }
        case .delete?, .check?, .checkWatches?, .removeWatches?, .addWatch?:
            payload.writeJuteInt(0)
        case .exists?, .getData?, .getChildren?, .getChildren2?:
            payload.writeJuteBool(false)
        case .setData?:
            payload.writeJuteBuffer(nil)
            payload.writeJuteInt(0)
        case .setACL?:
            payload.writeJuteACLs(nil)
            payload.writeJuteInt(0)
        default:
            break
        }
    }

    static func encodeBody(_ request: Request, into payload: inout ByteBuffer) {
        switch request {
        case .create(let create), .create2(let create), .createContainer(let create):
            self.encodeCreate(create, ttl: false, into: &payload)
        case .createTTL(let create):
            self.encodeCreate(create, ttl: true, into: &payload)
        case .delete(let path, let version), .check(let path, let version):
            payload.writeJuteString(path)
            payload.writeJuteInt(version)
        case .exists(let path, let watch), .getData(let path, let watch), .getChildren(let path, let watch),
            .getChildren2(let path, let watch):
            payload.writeJuteString(path)
            payload.writeJuteBool(watch)
        case .setData(let path, let data, let version):
            payload.writeJuteString(path)
            payload.writeJuteBuffer(data)
            payload.writeJuteInt(version)
        case .getACL(let path), .sync(let path), .getEphemerals(let path), .getAllChildrenNumber(let path):
            payload.writeJuteString(path)
        case .setACL(let path, let acl, let version):
            payload.writeJuteString(path)
            payload.writeJuteACLs(acl)
            payload.writeJuteInt(version)
        case .ping, .whoAmI, .closeSession, .unknown:
            break
        case .nullPath(let opcode):
            self.encodeNullPathBody(opcode: opcode, into: &payload)
        case .multi(let operations), .multiRead(let operations):
            for operation in operations {
                payload.writeJuteMultiHeader(MultiHeader(type: operation.opcode, done: false, err: -1))
                self.encodeBody(operation, into: &payload)
            }
            payload.writeJuteMultiHeader(.terminator)
        case .reconfig(let reconfig):
            payload.writeJuteString(reconfig.joiningServers)
            payload.writeJuteString(reconfig.leavingServers)
            payload.writeJuteString(reconfig.newMembers)
            payload.writeJuteLong(reconfig.currentConfigId)
        case .checkWatches(let path, let type), .removeWatches(let path, let type), .addWatch(let path, let type):
            payload.writeJuteString(path)
            payload.writeJuteInt(type)
        case .deleteContainer(let path):
            if path.hasPrefix("/") {
                payload.writeString(path)
            } else {
                // Not a valid path, so not one ZooKeeper's reaper sends; the bare form could read
                // back as the 3.9 form (its first bytes taken for a length), so use that form.
                payload.writeJuteString(path)
            }
        case .auth(let type, let scheme, let auth):
            payload.writeJuteInt(type)
            payload.writeJuteString(scheme)
            payload.writeJuteBuffer(auth)
        case .setWatches(let watches):
            self.encodeSetWatches(watches, persistentLists: false, into: &payload)
        case .setWatches2(let watches):
            self.encodeSetWatches(watches, persistentLists: true, into: &payload)
        case .sasl(let token):
            payload.writeJuteBuffer(token)
        }
    }

    static func encodeCreate(_ create: CreateRequest, ttl hasTTL: Bool, into payload: inout ByteBuffer) {
        payload.writeJuteString(create.path)
        payload.writeJuteBuffer(create.data)
        payload.writeJuteACLs(create.acl)
        payload.writeJuteInt(create.flags)
        // ZooKeeper's own "no TTL" value is -1.
        if hasTTL { payload.writeJuteLong(create.ttl ?? -1) }
    }

    static func encodeSetWatches(_ watches: SetWatchesRequest, persistentLists: Bool, into payload: inout ByteBuffer) {
        payload.writeJuteLong(watches.relativeZxid)
        payload.writeJuteStrings(watches.dataWatches)
        payload.writeJuteStrings(watches.existWatches)
        payload.writeJuteStrings(watches.childWatches)
        if persistentLists {
            payload.writeJuteStrings(watches.persistentWatches)
            payload.writeJuteStrings(watches.persistentRecursiveWatches)
        }
    }
}
