import ZKCore
import ZKProtocol

/// What a client asked, in the checkers' terms. Only the operations the workload issues.
public indirect enum Operation: Sendable, Hashable, CustomStringConvertible {
    case create(path: String, data: [UInt8]?, ephemeral: Bool, sequential: Bool)
    case setData(path: String, data: [UInt8]?, version: Int32)
    case delete(path: String, version: Int32)
    case check(path: String, version: Int32)
    case getData(path: String, watch: Bool)
    case exists(path: String, watch: Bool)
    case getChildren(path: String, watch: Bool)
    case sync(path: String)
    case multi([Operation])
    case closeSession

    public var isWrite: Bool {
        switch self {
        case .create, .setData, .delete, .check, .multi, .closeSession: return true
        case .getData, .exists, .getChildren, .sync: return false
        }
    }

    /// The wire request.
    public var request: Request {
        switch self {
        case .create(let path, let data, let ephemeral, let sequential):
            let flags: Int32 = (ephemeral ? 1 : 0) | (sequential ? 2 : 0)
            return .create(CreateRequest(path: path, data: data, acl: ACL.openUnsafe, flags: flags))
        case .setData(let path, let data, let version): return .setData(path: path, data: data, version: version)
        case .delete(let path, let version): return .delete(path: path, version: version)
        case .check(let path, let version): return .check(path: path, version: version)
        case .getData(let path, let watch): return .getData(path: path, watch: watch)
        case .exists(let path, let watch): return .exists(path: path, watch: watch)
        case .getChildren(let path, let watch): return .getChildren(path: path, watch: watch)
        case .sync(let path): return .sync(path: path)
        case .multi(let ops): return .multi(ops.map(\.request))
        case .closeSession: return .closeSession
        }
    }

    public var description: String {
        switch self {
        case .create(let path, let data, let ephemeral, let sequential):
            return "create\(ephemeral ? "-e" : "")\(sequential ? "-s" : "") \(path) \(describe(data: data))"
        case .setData(let path, let data, let version): return "set \(path) \(describe(data: data)) v\(version)"
        case .delete(let path, let version): return "delete \(path) v\(version)"
        case .check(let path, let version): return "check \(path) v\(version)"
        case .getData(let path, let watch): return "get \(path)\(watch ? " watch" : "")"
        case .exists(let path, let watch): return "exists \(path)\(watch ? " watch" : "")"
        case .getChildren(let path, let watch): return "children \(path)\(watch ? " watch" : "")"
        case .sync(let path): return "sync \(path)"
        case .multi(let ops): return "multi[" + ops.map(\.description).joined(separator: ", ") + "]"
        case .closeSession: return "closeSession"
        }
    }
}

/// How an operation ended, as its client saw it.
public enum Outcome: Sendable, Hashable {
    /// No reply ever came (the connection broke first): it may or may not have taken effect,
    /// at any time after it was sent.
    case unknown
    case ok(Response)
    case failed(ErrorCode)
}

/// One operation of one client: when it was sent and answered, on the history's clock (which
/// ticks at every invocation and response, so two of them never tie and their order is the
/// order in which they happened) and in virtual milliseconds.
public struct HistoryEntry: Sendable {
    public var id: Int
    public var client: Int
    public var session: Int64
    public var connection: ConnectionID
    public var xid: Int32
    public var operation: Operation
    public var invoke: UInt64
    public var invokeMs: Int64
    public var response: UInt64?
    public var responseMs: Int64?
    public var outcome: Outcome
    /// The zxid in the reply header.
    public var replyZxid: Zxid?

    public var line: String {
        let end = response.map { "@\($0)" } ?? "…"
        let result: String
        switch outcome {
        case .unknown: result = "?"
        case .ok(let response): result = "ok \(describe(response))"
        case .failed(let code): result = code.name
        }
        return "[\(invoke)\(end)] c\(client) s\(hex(session)) xid \(xid) \(operation) -> \(result)"
            + (replyZxid.map { " zxid \(hex($0))" } ?? "")
    }
}

/// A session as the checkers see it: from its creation to its end, if the client learned of one.
public struct SessionRecord: Sendable {
    public var id: Int64
    public var client: Int
    public var timeoutMs: Int64
    /// When (history clock) the client learned of the session.
    public var start: UInt64
    /// When (history clock) the client learned it ended, if it did.
    public var end: UInt64?
    /// It ended by the client's own close, answered: committed before `end`.
    public var closedByClient = false
    /// Virtual time the client went silent (stopped pinging), if it did.
    public var abandonedAtMs: Int64?
}

/// A watch a client set, and what became of it.
public struct WatchRecord: Sendable {
    public enum Kind: Sendable { case data, exists, children }
    public var client: Int
    public var connection: ConnectionID
    public var path: String
    public var kind: Kind
    /// The zxid of the reply that set it: the watch sees changes after it.
    public var zxid: Zxid
    /// When it was set and fired, in the cluster's logical time (events handled).
    public var setAt: UInt64
    /// The event that fired it.
    public var fired: (type: Int32, at: UInt64)?
    /// Set again with setWatches2 on a new connection after a reconnect, relative to `zxid`.
    public var reregistered = false
}

/// Everything the clients saw.
public final class History {
    public internal(set) var entries: [HistoryEntry] = []
    public internal(set) var sessions: [Int64: SessionRecord] = [:]
    public internal(set) var watches: [WatchRecord] = []
    /// Per connection, the replies received in order: (logical time, zxid).
    var repliesByConnection: [ConnectionID: [(at: UInt64, zxid: Zxid)]] = [:]

    /// Ticks at every invocation, response and session event.
    public private(set) var clock: UInt64 = 0

    public init() {}

    func tick() -> UInt64 {
        clock += 1
        return clock
    }

    func begin(client: Int, session: Int64, connection: ConnectionID, xid: Int32, _ operation: Operation, atMs: Int64) -> Int {
        let id = entries.count
        let at = tick()
        entries.append(
            HistoryEntry(
                id: id, client: client, session: session, connection: connection, xid: xid, operation: operation,
                invoke: at, invokeMs: atMs, response: nil, responseMs: nil, outcome: .unknown, replyZxid: nil))
        return id
    }

    func end(_ id: Int, _ outcome: Outcome, zxid: Zxid, atMs: Int64) {
        entries[id].outcome = outcome
        entries[id].response = tick()
        entries[id].responseMs = atMs
        entries[id].replyZxid = zxid
    }

    public var completed: Int { entries.filter { $0.response != nil }.count }
}
