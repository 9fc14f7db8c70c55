import XCTest
import ZKProtocol

@testable import ZKCore

/// Drives one replica the way a shell does, with a store that makes everything durable at once,
/// and records every frame per connection.
struct ReplicaHarness {
    var replica: Replica
    var nowMs: Int64 = 1_000_000
    var frames: [ConnectionID: [ServerFrame]] = [:]
    var closed: Set<ConnectionID> = []
    var log: [Transaction] = []
    var nextConnection: ConnectionID = 1
    var xids: [ConnectionID: Int32] = [:]
    /// Every quota limit the replica reported exceeded, in order.
    var quotaExceeded: [QuotaExceeded] = []
    /// Every warning the replica reported for the log, in order.
    var warnings: [String] = []

    init(_ configure: (inout ReplicaConfig) -> Void = { _ in }) {
        var config = ReplicaConfig()
        config.tickMs = 200
        configure(&config)
        replica = Replica(config: config, startTimeMs: 1_000_000, secret: 42)
        step(.tick)
    }

    mutating func step(_ input: ReplicaInput) {
        var ready = replica.step(input, nowMs: nowMs)
        while true {
            for frame in ready.frames { frames[frame.connection, default: []].append(frame.frame) }
            closed.formUnion(ready.close)
            quotaExceeded.append(contentsOf: ready.quotaExceeded)
            warnings.append(contentsOf: ready.warnings)
            guard ready.storageSequence > 0 else { break }
            log.append(contentsOf: ready.persist)
            ready = replica.step(.persisted(upTo: log.last?.zxid ?? 0, through: ready.storageSequence), nowMs: nowMs)
        }
    }

    /// Opens a connection and a new session; returns the connection id.
    mutating func connect(timeoutMs: Int32 = 4000) -> ConnectionID {
        let id = nextConnection
        nextConnection += 1
        step(.connectionOpened(id, peerAddress: "127.0.0.1", peerPort: 40000 + Int(id)))
        step(.connect(id, ConnectRequest(timeoutMs: timeoutMs)))
        return id
    }

    func sessionId(_ id: ConnectionID) -> Int64 {
        for frame in frames[id] ?? [] {
            if case .connect(let response) = frame { return response.sessionId }
        }
        return 0
    }

    /// Sends a request and returns the reply to it (the last reply with its xid).
    @discardableResult
    mutating func send(_ id: ConnectionID, _ request: Request) -> (ErrorCode, Response) {
        let xid = (xids[id] ?? 0) + 1
        xids[id] = xid
        step(.request(id, RequestHeader(xid: xid, type: request.opcode), request))
        let expected: Int32
        switch request {
        case .ping: expected = SpecialXid.ping
        default: expected = xid
        }
        for frame in (frames[id] ?? []).reversed() {
            if case .reply(let header, let response) = frame, header.xid == expected {
                return (ErrorCode(rawValue: header.err) ?? .systemError, response)
            }
        }
        return (.systemError, .empty)
    }

    /// Notifications received by a connection, in order.
    func events(_ id: ConnectionID) -> [WatcherEvent] {
        (frames[id] ?? []).compactMap { frame in
            if case .notification(_, let event) = frame { return event }
            return nil
        }
    }

    mutating func create(_ id: ConnectionID, _ path: String, _ data: String = "", mode: CreateMode = .persistent, acl: [ACL] = ACL.openUnsafe) -> (ErrorCode, Response) {
        send(id, .create(CreateRequest(path: path, data: Array(data.utf8), acl: acl, flags: mode.rawValue)))
    }

    mutating func stat(_ id: ConnectionID, _ path: String) -> Stat? {
        if case (.ok, .stat(let stat)) = send(id, .exists(path: path, watch: false)) { return stat }
        return nil
    }

    mutating func advance(ms: Int64) {
        let end = nowMs + ms
        while nowMs < end {
            nowMs += replica.config.tickMs
            step(.tick)
        }
    }
}
