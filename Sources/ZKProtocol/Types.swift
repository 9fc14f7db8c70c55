// Value types of the ZooKeeper client protocol shared by every MiniZK target.
//
// These are plain data: no I/O and no encoding logic lives here (see `Jute*.swift` for the
// wire forms). Names follow ZooKeeper's own vocabulary so that a reader of `zookeeper.jute`
// finds the same fields in the same order.

/// A ZooKeeper transaction id: the epoch in the high 32 bits, a counter in the low 32 bits.
public typealias Zxid = Int64

extension Zxid {
    /// Builds a zxid from an epoch and a counter, as Zab numbers its proposals.
    public static func make(epoch: Int32, counter: Int32) -> Zxid {
        (Int64(epoch) << 32) | Int64(UInt32(bitPattern: counter))
    }
    public var epoch: Int32 { Int32(truncatingIfNeeded: self >> 32) }
    public var counter: Int32 { Int32(truncatingIfNeeded: self & 0xFFFF_FFFF) }
}

/// Every error code a ZooKeeper server or client can report (`KeeperException.Code`).
public enum ErrorCode: Int32, Sendable, Hashable, CaseIterable, Error {
    case ok = 0
    case systemError = -1
    case runtimeInconsistency = -2
    case dataInconsistency = -3
    case connectionLoss = -4
    case marshallingError = -5
    case unimplemented = -6
    case operationTimeout = -7
    case badArguments = -8
    case unknownSession = -12
    case newConfigNoQuorum = -13
    case reconfigInProgress = -14
    case apiError = -100
    case noNode = -101
    case noAuth = -102
    case badVersion = -103
    case noChildrenForEphemerals = -108
    case nodeExists = -110
    case notEmpty = -111
    case sessionExpired = -112
    case invalidCallback = -113
    case invalidACL = -114
    case authFailed = -115
    case sessionMoved = -118
    case notReadOnly = -119
    case ephemeralOnLocalSession = -120
    case noWatcher = -121
    case requestTimeout = -122
    case reconfigDisabled = -123
    case sessionClosedRequireSaslAuth = -124
    case quotaExceeded = -125
    case throttledOp = -127

    /// ZooKeeper's upper-case name of the code, as kazoo and the Java client print it.
    public var name: String {
        switch self {
        case .ok: return "OK"
        case .systemError: return "SYSTEMERROR"
        case .runtimeInconsistency: return "RUNTIMEINCONSISTENCY"
        case .dataInconsistency: return "DATAINCONSISTENCY"
        case .connectionLoss: return "CONNECTIONLOSS"
        case .marshallingError: return "MARSHALLINGERROR"
        case .unimplemented: return "UNIMPLEMENTED"
        case .operationTimeout: return "OPERATIONTIMEOUT"
        case .badArguments: return "BADARGUMENTS"
        case .unknownSession: return "UNKNOWNSESSION"
        case .newConfigNoQuorum: return "NEWCONFIGNOQUORUM"
        case .reconfigInProgress: return "RECONFIGINPROGRESS"
        case .apiError: return "APIERROR"
        case .noNode: return "NONODE"
        case .noAuth: return "NOAUTH"
        case .badVersion: return "BADVERSION"
        case .noChildrenForEphemerals: return "NOCHILDRENFOREPHEMERALS"
        case .nodeExists: return "NODEEXISTS"
        case .notEmpty: return "NOTEMPTY"
        case .sessionExpired: return "SESSIONEXPIRED"
        case .invalidCallback: return "INVALIDCALLBACK"
        case .invalidACL: return "INVALIDACL"
        case .authFailed: return "AUTHFAILED"
        case .sessionMoved: return "SESSIONMOVED"
        case .notReadOnly: return "NOTREADONLY"
        case .ephemeralOnLocalSession: return "EPHEMERALONLOCALSESSION"
        case .noWatcher: return "NOWATCHER"
        case .requestTimeout: return "REQUESTTIMEOUT"
        case .reconfigDisabled: return "RECONFIGDISABLED"
        case .sessionClosedRequireSaslAuth: return "SESSIONCLOSEDREQUIRESASLAUTH"
        case .quotaExceeded: return "QUOTAEXCEEDED"
        case .throttledOp: return "THROTTLEDOP"
        }
    }
}

/// Request types (`ZooDefs.OpCode`). Unknown values are kept as raw numbers by the decoder.
public enum OpCode: Int32, Sendable, Hashable, CaseIterable {
    case notification = 0
    case create = 1
    case delete = 2
    case exists = 3
    case getData = 4
    case setData = 5
    case getACL = 6
    case setACL = 7
    case getChildren = 8
    case sync = 9
    case ping = 11
    case getChildren2 = 12
    case check = 13
    case multi = 14
    case create2 = 15
    case reconfig = 16
    case checkWatches = 17
    case removeWatches = 18
    case createContainer = 19
    case deleteContainer = 20
    case createTTL = 21
    case multiRead = 22
    case auth = 100
    case setWatches = 101
    case sasl = 102
    case getEphemerals = 103
    case getAllChildrenNumber = 104
    case setWatches2 = 105
    case addWatch = 106
    case whoAmI = 107
    case createSession = -10
    case closeSession = -11
    case error = -1
}

/// The xids with a fixed meaning.
public enum SpecialXid {
    public static let notification: Int32 = -1
    public static let ping: Int32 = -2
    public static let auth: Int32 = -4
    public static let setWatches: Int32 = -8
}

/// ACL permission bits.
public struct Perms: OptionSet, Sendable, Hashable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public static let read = Perms(rawValue: 1)
    public static let write = Perms(rawValue: 2)
    public static let create = Perms(rawValue: 4)
    public static let delete = Perms(rawValue: 8)
    public static let admin = Perms(rawValue: 16)
    public static let all = Perms(rawValue: 31)

    /// The letters zkCli prints (`ZKUtil.getPermString`): c, d, r, w, a, in that order.
    public var letters: String {
        var text = ""
        if contains(.create) { text += "c" }
        if contains(.delete) { text += "d" }
        if contains(.read) { text += "r" }
        if contains(.write) { text += "w" }
        if contains(.admin) { text += "a" }
        return text
    }
}

/// An identity: a scheme (`world`, `auth`, `digest`, `ip`, `super`, ...) and an id within it.
public struct Id: Sendable, Hashable {
    public var scheme: String
    public var id: String
    public init(scheme: String, id: String) {
        self.scheme = scheme
        self.id = id
    }
    public static let anyone = Id(scheme: "world", id: "anyone")
}

/// One ACL entry: permissions granted to an identity.
public struct ACL: Sendable, Hashable {
    public var perms: Perms
    public var id: Id
    public init(perms: Perms, id: Id) {
        self.perms = perms
        self.id = id
    }
    public static let openUnsafe: [ACL] = [ACL(perms: .all, id: .anyone)]
    public static let readUnsafe: [ACL] = [ACL(perms: .read, id: .anyone)]
    public static let creatorAll: [ACL] = [ACL(perms: .all, id: Id(scheme: "auth", id: ""))]
}

/// The metadata of a znode, field for field as ZooKeeper sends it (68 bytes on the wire).
public struct Stat: Sendable, Hashable {
    public var czxid: Int64 = 0
    public var mzxid: Int64 = 0
    public var ctime: Int64 = 0
    public var mtime: Int64 = 0
    public var version: Int32 = 0
    public var cversion: Int32 = 0
    public var aversion: Int32 = 0
    public var ephemeralOwner: Int64 = 0
    public var dataLength: Int32 = 0
    public var numChildren: Int32 = 0
    public var pzxid: Int64 = 0
    public init() {}
    public init(
        czxid: Int64, mzxid: Int64, ctime: Int64, mtime: Int64, version: Int32, cversion: Int32,
        aversion: Int32, ephemeralOwner: Int64, dataLength: Int32, numChildren: Int32, pzxid: Int64
    ) {
        self.czxid = czxid
        self.mzxid = mzxid
        self.ctime = ctime
        self.mtime = mtime
        self.version = version
        self.cversion = cversion
        self.aversion = aversion
        self.ephemeralOwner = ephemeralOwner
        self.dataLength = dataLength
        self.numChildren = numChildren
        self.pzxid = pzxid
    }
}

/// The `flags` of a create request. An enumeration, not a bit mask.
public enum CreateMode: Int32, Sendable, Hashable, CaseIterable {
    case persistent = 0
    case ephemeral = 1
    case persistentSequential = 2
    case ephemeralSequential = 3
    case container = 4
    case persistentWithTTL = 5
    case persistentSequentialWithTTL = 6

    public var isEphemeral: Bool { self == .ephemeral || self == .ephemeralSequential }
    public var isSequential: Bool {
        self == .persistentSequential || self == .ephemeralSequential || self == .persistentSequentialWithTTL
    }
    public var isTTL: Bool { self == .persistentWithTTL || self == .persistentSequentialWithTTL }
    public var isContainer: Bool { self == .container }
}

/// Watch event types (`Watcher.Event.EventType`). Only 1...4 ever cross the wire.
public enum EventType: Int32, Sendable, Hashable {
    case none = -1
    case nodeCreated = 1
    case nodeDeleted = 2
    case nodeDataChanged = 3
    case nodeChildrenChanged = 4
    case dataWatchRemoved = 5
    case childWatchRemoved = 6
    case persistentWatchRemoved = 7
}

/// Connection states (`Watcher.Event.KeeperState`). Servers only ever send `syncConnected`.
public enum KeeperState: Int32, Sendable, Hashable {
    case unknown = -1
    case disconnected = 0
    case noSyncConnected = 1
    case syncConnected = 3
    case authFailed = 4
    case connectedReadOnly = 5
    case saslAuthenticated = 6
    case closed = 7
    case expired = -112
}

/// The body of a notification (xid -1).
public struct WatcherEvent: Sendable, Hashable {
    public var type: Int32
    public var state: Int32
    public var path: String
    public init(type: Int32, state: Int32, path: String) {
        self.type = type
        self.state = state
        self.path = path
    }
    public init(_ type: EventType, path: String) {
        self.init(type: type.rawValue, state: KeeperState.syncConnected.rawValue, path: path)
    }
}

/// `type` of checkWatches / removeWatches.
public enum WatcherType: Int32, Sendable, Hashable {
    case children = 1
    case data = 2
    case any = 3
    case persistent = 4
    case persistentRecursive = 5
}

/// `mode` of addWatch.
public enum AddWatchMode: Int32, Sendable, Hashable {
    case persistent = 0
    case persistentRecursive = 1
}

/// One identity reported by whoAmI.
public struct ClientInfo: Sendable, Hashable {
    public var authScheme: String
    public var user: String
    public init(authScheme: String, user: String) {
        self.authScheme = authScheme
        self.user = user
    }
}
