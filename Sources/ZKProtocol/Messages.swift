// The records that travel between a ZooKeeper client and server, as typed values.
//
// `Request` is what a client frame decodes to after its `RequestHeader`; `Response` is the body
// that follows a `ReplyHeader` whose `err` is 0. Nullable jute strings and buffers are Swift
// optionals where ZooKeeper keeps null distinct from empty (data, ACL lists); paths decode a null
// string as the empty string, which every operation then treats as an invalid path.

/// The first frame a client sends (no request header).
public struct ConnectRequest: Sendable, Hashable {
    public var protocolVersion: Int32
    public var lastZxidSeen: Int64
    public var timeoutMs: Int32
    public var sessionId: Int64
    public var password: [UInt8]
    /// `nil` when the client did not send the optional trailing byte (clients older than 3.4).
    public var readOnly: Bool?
    public init(
        protocolVersion: Int32 = 0, lastZxidSeen: Int64 = 0, timeoutMs: Int32, sessionId: Int64 = 0,
        password: [UInt8] = [UInt8](repeating: 0, count: 16), readOnly: Bool? = false
    ) {
        self.protocolVersion = protocolVersion
        self.lastZxidSeen = lastZxidSeen
        self.timeoutMs = timeoutMs
        self.sessionId = sessionId
        self.password = password
        self.readOnly = readOnly
    }
}

/// The first frame a server sends (no reply header). `timeoutMs <= 0` tells the client its
/// session is expired or unknown.
public struct ConnectResponse: Sendable, Hashable {
    public var protocolVersion: Int32
    public var timeoutMs: Int32
    public var sessionId: Int64
    public var password: [UInt8]
    /// `nil` means "do not send the trailing byte" (echoing a client that did not send one).
    public var readOnly: Bool?
    public init(protocolVersion: Int32 = 0, timeoutMs: Int32, sessionId: Int64, password: [UInt8], readOnly: Bool?) {
        self.protocolVersion = protocolVersion
        self.timeoutMs = timeoutMs
        self.sessionId = sessionId
        self.password = password
        self.readOnly = readOnly
    }
    /// The answer to a connect for an unknown, expired or wrongly authenticated session.
    public static func expired(readOnly: Bool?) -> ConnectResponse {
        ConnectResponse(timeoutMs: 0, sessionId: 0, password: [UInt8](repeating: 0, count: 16), readOnly: readOnly.map { _ in false })
    }
}

public struct RequestHeader: Sendable, Hashable {
    public var xid: Int32
    /// The raw opcode; see `OpCode`.
    public var type: Int32
    public init(xid: Int32, type: Int32) {
        self.xid = xid
        self.type = type
    }
}

public struct ReplyHeader: Sendable, Hashable {
    public var xid: Int32
    public var zxid: Int64
    public var err: Int32
    public init(xid: Int32, zxid: Int64, err: Int32) {
        self.xid = xid
        self.zxid = zxid
        self.err = err
    }
}

/// create, create2, createContainer and createTTL share this record; `ttl` is only on the wire
/// for createTTL.
public struct CreateRequest: Sendable, Hashable {
    public var path: String
    public var data: [UInt8]?
    public var acl: [ACL]?
    public var flags: Int32
    public var ttl: Int64?
    public init(path: String, data: [UInt8]?, acl: [ACL]?, flags: Int32, ttl: Int64? = nil) {
        self.path = path
        self.data = data
        self.acl = acl
        self.flags = flags
        self.ttl = ttl
    }
}

/// setWatches (101) carries the first three lists; setWatches2 (105) all five.
public struct SetWatchesRequest: Sendable, Hashable {
    public var relativeZxid: Int64
    public var dataWatches: [String]
    public var existWatches: [String]
    public var childWatches: [String]
    public var persistentWatches: [String]
    public var persistentRecursiveWatches: [String]
    public init(
        relativeZxid: Int64, dataWatches: [String] = [], existWatches: [String] = [], childWatches: [String] = [],
        persistentWatches: [String] = [], persistentRecursiveWatches: [String] = []
    ) {
        self.relativeZxid = relativeZxid
        self.dataWatches = dataWatches
        self.existWatches = existWatches
        self.childWatches = childWatches
        self.persistentWatches = persistentWatches
        self.persistentRecursiveWatches = persistentRecursiveWatches
    }
}

public struct ReconfigRequest: Sendable, Hashable {
    public var joiningServers: String?
    public var leavingServers: String?
    public var newMembers: String?
    public var currentConfigId: Int64
    public init(joiningServers: String?, leavingServers: String?, newMembers: String?, currentConfigId: Int64) {
        self.joiningServers = joiningServers
        self.leavingServers = leavingServers
        self.newMembers = newMembers
        self.currentConfigId = currentConfigId
    }
}

/// A decoded client request (the part after the `RequestHeader`).
public indirect enum Request: Sendable, Hashable {
    case create(CreateRequest)  // 1
    case create2(CreateRequest)  // 15
    case createContainer(CreateRequest)  // 19
    case createTTL(CreateRequest)  // 21
    case delete(path: String, version: Int32)  // 2
    case exists(path: String, watch: Bool)  // 3
    case getData(path: String, watch: Bool)  // 4
    case setData(path: String, data: [UInt8]?, version: Int32)  // 5
    case getACL(path: String)  // 6
    case setACL(path: String, acl: [ACL]?, version: Int32)  // 7
    case getChildren(path: String, watch: Bool)  // 8
    case sync(path: String)  // 9
    case ping  // 11
    case getChildren2(path: String, watch: Bool)  // 12
    case check(path: String, version: Int32)  // 13
    case multi([Request])  // 14
    case reconfig(ReconfigRequest)  // 16
    case checkWatches(path: String, type: Int32)  // 17
    case removeWatches(path: String, type: Int32)  // 18
    case deleteContainer(path: String)  // 20
    case multiRead([Request])  // 22
    case auth(type: Int32, scheme: String, auth: [UInt8])  // 100
    case setWatches(SetWatchesRequest)  // 101
    case sasl(token: [UInt8]?)  // 102
    case getEphemerals(prefixPath: String)  // 103
    case getAllChildrenNumber(path: String)  // 104
    case setWatches2(SetWatchesRequest)  // 105
    case addWatch(path: String, mode: Int32)  // 106
    case whoAmI  // 107
    case closeSession  // -11
    /// An opcode this codec does not know; the server answers UNIMPLEMENTED.
    case unknown(opcode: Int32)
    /// A request whose path is null: ZooKeeper cannot deserialise it into a usable request and
    /// answers MARSHALLINGERROR.
    case nullPath(opcode: Int32)

    /// The opcode this request travels under.
    public var opcode: Int32 {
        switch self {
        case .create: return OpCode.create.rawValue
        case .create2: return OpCode.create2.rawValue
        case .createContainer: return OpCode.createContainer.rawValue
        case .createTTL: return OpCode.createTTL.rawValue
        case .delete: return OpCode.delete.rawValue
        case .exists: return OpCode.exists.rawValue
        case .getData: return OpCode.getData.rawValue
        case .setData: return OpCode.setData.rawValue
        case .getACL: return OpCode.getACL.rawValue
        case .setACL: return OpCode.setACL.rawValue
        case .getChildren: return OpCode.getChildren.rawValue
        case .sync: return OpCode.sync.rawValue
        case .ping: return OpCode.ping.rawValue
        case .getChildren2: return OpCode.getChildren2.rawValue
        case .check: return OpCode.check.rawValue
        case .multi: return OpCode.multi.rawValue
        case .reconfig: return OpCode.reconfig.rawValue
        case .checkWatches: return OpCode.checkWatches.rawValue
        case .removeWatches: return OpCode.removeWatches.rawValue
        case .deleteContainer: return OpCode.deleteContainer.rawValue
        case .multiRead: return OpCode.multiRead.rawValue
        case .auth: return OpCode.auth.rawValue
        case .setWatches: return OpCode.setWatches.rawValue
        case .sasl: return OpCode.sasl.rawValue
        case .getEphemerals: return OpCode.getEphemerals.rawValue
        case .getAllChildrenNumber: return OpCode.getAllChildrenNumber.rawValue
        case .setWatches2: return OpCode.setWatches2.rawValue
        case .addWatch: return OpCode.addWatch.rawValue
        case .whoAmI: return OpCode.whoAmI.rawValue
        case .closeSession: return OpCode.closeSession.rawValue
        case .unknown(let opcode): return opcode
        case .nullPath(let opcode): return opcode
        }
    }
}

/// One entry of a multi / multiRead reply.
public enum MultiResult: Sendable, Hashable {
    case create(path: String)  // header type 1
    case create2(path: String, stat: Stat)  // header type 15
    case delete  // 2
    case setData(stat: Stat)  // 5
    case check  // 13
    case getData(data: [UInt8]?, stat: Stat)  // 4
    case getChildren(children: [String])  // 8
    case error(ErrorCode)  // -1, header err = body err
}

/// The body of a successful reply. Which case a client expects is fixed by the request's opcode.
public enum Response: Sendable, Hashable {
    /// No body: delete, sync-less ops, setWatches, checkWatches, removeWatches, auth, ping, close.
    case empty
    case create(path: String)
    case create2(path: String, stat: Stat)
    /// exists, setData, setACL.
    case stat(Stat)
    /// getData, and reconfig (the new config and the Stat of /zookeeper/config).
    case getData(data: [UInt8]?, stat: Stat)
    case getACL(acl: [ACL], stat: Stat)
    case getChildren(children: [String])
    case getChildren2(children: [String], stat: Stat)
    case sync(path: String)
    case multi([MultiResult])
    case sasl(token: [UInt8]?)
    case getEphemerals(paths: [String])
    case getAllChildrenNumber(Int32)
    case whoAmI([ClientInfo])
    /// addWatch answers with an ErrorResponse record holding 0.
    case errorResponse(Int32)
}

/// A frame a server sends to a client.
public enum ServerFrame: Sendable, Hashable {
    case connect(ConnectResponse)
    /// A reply; `body` is only encoded when `header.err == 0`.
    case reply(ReplyHeader, Response)
    /// A watch notification (xid -1). `zxid` is -1 as ZooKeeper 3.8 sends it.
    case notification(zxid: Int64, WatcherEvent)
}
