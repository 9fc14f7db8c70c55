import DequeModule
import ZKProtocol

/// One MiniZK replica serving clients: the request pipeline, sessions and watches, with a quorum
/// of one.
///
/// The replica is a deterministic state machine. The shell feeds it `ReplicaInput`s with the
/// current time and carries out the `Ready` it returns; it reads no clock, draws no randomness and
/// does no I/O. The pipeline is ZooKeeper's without its threads:
///
///     prepare (against the prepared tree) → persist (shell) → commit/apply → reply
///
/// Replies to one connection leave in request order, reads included: a read that arrives while
/// an earlier write of the same connection is outstanding waits in that connection's queue and is
/// answered right after the write is applied. Watch notifications a write causes are emitted
/// before the write's own reply.
///
/// Deliberate differences from ZooKeeper 3.8, each documented in `docs/protocol.md`:
/// an unknown opcode gets an UNIMPLEMENTED reply but the connection stays open; SASL is refused
/// with AUTHFAILED; reconfig answers RECONFIGDISABLED.
public struct Replica: Sendable {
    public let config: ReplicaConfig
    /// The committed state that reads see.
    public private(set) var tree = DataTree()
    /// Committed state plus every outstanding transaction: what new writes are checked against.
    private var prepared = DataTree()
    private var watches = WatchTable()
    private var connections: [ConnectionID: Connection] = [:]
    private var sessions: [Int64: SessionState] = [:]
    private var outstanding: Deque<Transaction> = []
    private var lastProposedZxid: Zxid = 0
    private var nextSessionId: Int64
    private let secret: UInt64
    private var nowMs: Int64
    private var nextContainerCheckMs: Int64

    private struct Connection {
        var peerAddress: String
        var peerPort: Int
        var sessionId: Int64?
        var authIds: [Id]
        var queue: Deque<Queued> = []
        var lastZxid: Zxid = 0
        /// A close was requested; nothing more is read from this connection.
        var closing = false
    }

    /// What a connection waits for, in request order. A write is matched to its committed
    /// transaction by session id and cxid, so the same queue serves a leader, which prepared the
    /// write itself, and a follower, which forwarded it.
    private enum Queued {
        case connect(ConnectRequest)
        case write(RequestHeader, Request)
        case read(RequestHeader, Request)
    }

    /// cxid of transactions the replica starts itself (session expiry, container reaping); no
    /// client request carries it.
    static let internalCxid = Int32.min

    private struct SessionState {
        var timeoutMs: Int64
        var expiresAtMs: Int64
        var closing = false
        var connection: ConnectionID?
    }


    /// - Parameters:
    ///   - startTimeMs: wall-clock time at start, used only to make session ids unique across
    ///     restarts, as ZooKeeper does.
    ///   - secret: seeds session passwords.
    ///   - tree: the state recovered from storage; sessions in it get a fresh full timeout.
    public init(config: ReplicaConfig, startTimeMs: Int64, secret: UInt64, tree: DataTree = DataTree()) {
        self.config = config
        self.tree = tree
        self.prepared = tree
        self.lastProposedZxid = tree.lastZxid
        self.secret = secret
        self.nowMs = startTimeMs
        self.nextContainerCheckMs = startTimeMs + config.containerCheckIntervalMs
        let timeBits = Int64(bitPattern: (UInt64(bitPattern: startTimeMs) << 24) >> 8)
        self.nextSessionId = (config.serverId << 56) | timeBits
        if nextSessionId == 0 { nextSessionId = 1 }
        for (id, timeoutMs) in tree.sessions {
            sessions[id] = SessionState(timeoutMs: timeoutMs, expiresAtMs: expiry(timeoutMs))
        }
    }

    // MARK: - Step

    public mutating func step(_ input: ReplicaInput, nowMs: Int64) -> Ready {
        if nowMs > self.nowMs { self.nowMs = nowMs }
        var ready = Ready()
        switch input {
        case .connectionOpened(let id, let address, let port):
            precondition(connections[id] == nil, "connection \(id) opened twice")
            connections[id] = Connection(
                peerAddress: address, peerPort: port, sessionId: nil, authIds: [Id(scheme: "ip", id: address)])
        case .connect(let id, let request):
            onConnect(id, request, &ready)
        case .request(let id, let header, let request):
            onRequest(id, header, request, &ready)
        case .connectionClosed(let id):
            dropConnection(id)
        case .tick:
            onTick(&ready)
        case .persisted(let zxid):
            while let first = outstanding.first, first.zxid <= zxid {
                outstanding.removeFirst()
                commit(first, &ready)
            }
        }
        return ready
    }

    // MARK: - Connections and sessions

    private mutating func onConnect(_ id: ConnectionID, _ request: ConnectRequest, _ ready: inout Ready) {
        guard var connection = connections[id], !connection.closing else { return }
        guard connection.sessionId == nil else {
            closeConnection(id, reason: "second connect request on one connection", &ready)
            return
        }
        if request.lastZxidSeen > tree.lastZxid {
            closeConnection(id, reason: "client has seen zxid 0x\(String(request.lastZxidSeen, radix: 16)), newer than ours", &ready)
            return
        }
        let timeoutMs = min(max(Int64(request.timeoutMs), config.sessionTimeoutMsMin), config.sessionTimeoutMsMax)
        if request.sessionId == 0 {
            let sessionId = allocateSessionId()
            sessions[sessionId] = SessionState(timeoutMs: timeoutMs, expiresAtMs: expiry(timeoutMs), connection: id)
            connection.sessionId = sessionId
            connections[id] = connection
            connections[id]!.queue.append(.connect(request))
            propose(.createSession(timeoutMs: timeoutMs), sessionId: sessionId, cxid: 0, &ready)
            return
        }
        let sessionId = request.sessionId
        if let previous = sessions[sessionId]?.connection, previous != id, connections[previous] != nil {
            closeConnection(previous, reason: "session 0x\(String(sessionId, radix: 16)) moved to another connection", &ready)
        }
        guard var session = sessions[sessionId], !session.closing, request.password == password(for: sessionId) else {
            ready.send(.connect(.expired(readOnly: request.readOnly)), to: id)
            closeConnection(id, reason: "session 0x\(String(sessionId, radix: 16)) is expired or unknown", &ready)
            return
        }
        session.timeoutMs = timeoutMs
        session.expiresAtMs = expiry(timeoutMs)
        session.connection = id
        sessions[sessionId] = session
        connection.sessionId = sessionId
        connections[id] = connection
        ready.send(connectResponse(sessionId: sessionId, timeoutMs: timeoutMs, request: request), to: id)
    }

    private func connectResponse(sessionId: Int64, timeoutMs: Int64, request: ConnectRequest) -> ServerFrame {
        .connect(
            ConnectResponse(
                timeoutMs: Int32(clamping: timeoutMs), sessionId: sessionId, password: password(for: sessionId),
                readOnly: request.readOnly.map { _ in false }))
    }

    private mutating func allocateSessionId() -> Int64 {
        repeat { nextSessionId &+= 1 } while nextSessionId == 0 || nextSessionId == .min || sessions[nextSessionId] != nil
        return nextSessionId
    }

    /// Session expiry is bucketed on tick boundaries, as in ZooKeeper.
    private func expiry(_ timeoutMs: Int64) -> Int64 {
        let deadline = nowMs + timeoutMs
        let tick = max(config.tickMs, 1)
        return (deadline / tick + 1) * tick
    }

    /// 16 password bytes derived from the session id and the replica's secret.
    func password(for sessionId: Int64) -> [UInt8] {
        var state = secret ^ UInt64(bitPattern: sessionId) ^ 0xB341_5C00
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16)
        for _ in 0..<2 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: z >> UInt64(shift))) }
        }
        return bytes
    }

    private mutating func closeConnection(_ id: ConnectionID, reason: String, _ ready: inout Ready) {
        guard connections[id] != nil, !connections[id]!.closing else { return }
        connections[id]!.closing = true
        connections[id]!.queue.removeAll()
        watches.removeConnection(id)
        ready.close(id, reason: reason)
    }

    private mutating func dropConnection(_ id: ConnectionID) {
        guard let connection = connections.removeValue(forKey: id) else { return }
        watches.removeConnection(id)
        if let sessionId = connection.sessionId, sessions[sessionId]?.connection == id {
            sessions[sessionId]?.connection = nil
        }
    }

    // MARK: - Requests

    private mutating func onRequest(_ id: ConnectionID, _ header: RequestHeader, _ request: Request, _ ready: inout Ready) {
        guard let connection = connections[id], !connection.closing else { return }
        guard let sessionId = connection.sessionId else {
            closeConnection(id, reason: "request before connect", &ready)
            return
        }
        if var session = sessions[sessionId], !session.closing {
            session.expiresAtMs = expiry(session.timeoutMs)
            sessions[sessionId] = session
        }
        if connection.queue.count >= config.outstandingRequestsPerConnectionMax {
            closeConnection(id, reason: "more than \(config.outstandingRequestsPerConnectionMax) outstanding requests", &ready)
            return
        }
        let isClosing = sessions[sessionId]?.closing ?? true
        if Prepare.isWrite(request) && !isClosing && isWellFormedWrite(request) {
            let context = PrepareContext(
                sessionId: sessionId, authIds: connection.authIds, extendedTypesEnabled: config.extendedTypesEnabled)
            let body = Prepare.write(request, tree: prepared, context: context)
            if case .closeSession = request { sessions[sessionId]?.closing = true }
            connections[id]!.queue.append(.write(header, request))
            propose(body, sessionId: sessionId, cxid: header.xid, &ready)
        } else if connection.queue.isEmpty {
            answer(id, header, request, &ready)
        } else {
            connections[id]!.queue.append(.read(header, request))
        }
    }

    /// A multi may only hold write operations; anything else is answered MARSHALLINGERROR
    /// without a transaction.
    private func isWellFormedWrite(_ request: Request) -> Bool {
        if case .multi(let ops) = request { return ops.allSatisfy(Prepare.isMultiWriteOp) }
        return true
    }

    private mutating func propose(_ body: TransactionBody, sessionId: Int64, cxid: Int32, _ ready: inout Ready) {
        lastProposedZxid += 1
        let txn = Transaction(zxid: lastProposedZxid, timeMs: nowMs, sessionId: sessionId, cxid: cxid, body: body)
        var ignored: [WatchTrigger] = []
        prepared.apply(txn, triggers: &ignored)
        outstanding.append(txn)
        ready.persist.append(txn)
    }

    // MARK: - Commit

    /// Applies a committed transaction: watches fire first, then the local client that asked
    /// for it, if any, gets its reply.
    private mutating func commit(_ txn: Transaction, _ ready: inout Ready) {
        var triggers: [WatchTrigger] = []
        let outcome = tree.apply(txn, triggers: &triggers)
        for trigger in triggers {
            for connection in watches.fire(trigger) where connections[connection]?.closing == false {
                ready.send(.notification(zxid: -1, WatcherEvent(trigger.type, path: trigger.path)), to: connection)
            }
        }
        var owner = sessions[txn.sessionId]?.connection
        if case .closeSession = txn.body {
            owner = sessions.removeValue(forKey: txn.sessionId)?.connection
            if let owner, txn.cxid == Self.internalCxid {
                closeConnection(owner, reason: "session 0x\(String(txn.sessionId, radix: 16)) expired", &ready)
            }
        }
        guard let id = owner, let connection = connections[id], !connection.closing, txn.cxid != Self.internalCxid else { return }
        switch connection.queue.first {
        case .connect(let request)? where txn.body == .createSession(timeoutMs: sessions[txn.sessionId]?.timeoutMs ?? -1):
            connections[id]!.queue.removeFirst()
            let timeoutMs = sessions[txn.sessionId]?.timeoutMs ?? 0
            ready.send(connectResponse(sessionId: txn.sessionId, timeoutMs: timeoutMs, request: request), to: id)
        case .write(let header, let request)? where header.xid == txn.cxid:
            connections[id]!.queue.removeFirst()
            let (err, response) = Self.writeResponse(request, outcome)
            reply(id, xid: header.xid, zxid: txn.zxid, err: err, response, &ready)
            if case .closeSession = request {
                closeConnection(id, reason: "session closed by client", &ready)
                return
            }
        default:
            preconditionFailure("transaction 0x\(String(txn.zxid, radix: 16)) of session 0x\(String(txn.sessionId, radix: 16)) cxid \(txn.cxid) does not match the head of connection \(id): \(String(describing: connection.queue.first))")
        }
        drain(id, &ready)
    }

    /// Answers the reads waiting at the head of a connection's queue, up to its next write.
    private mutating func drain(_ id: ConnectionID, _ ready: inout Ready) {
        while let connection = connections[id], !connection.closing, case .read(let header, let request)? = connection.queue.first {
            connections[id]!.queue.removeFirst()
            answer(id, header, request, &ready)
        }
    }

    private static func writeResponse(_ request: Request, _ outcome: ApplyOutcome) -> (ErrorCode, Response) {
        switch (request, outcome) {
        case (_, .failed(let code)):
            return (code, .empty)
        case (.create, .created(let path, _)):
            return (.ok, .create(path: path))
        case (.create2, .created(let path, let stat)), (.createContainer, .created(let path, let stat)),
            (.createTTL, .created(let path, let stat)):
            return (.ok, .create2(path: path, stat: stat))
        case (.setData, .dataSet(let stat)), (.setACL, .aclSet(let stat)):
            return (.ok, .stat(stat))
        case (.multi, .failedMulti(let codes)):
            return (.ok, .multi(codes.map { .error($0) }))
        case (.multi(let ops), .multi(let outcomes)):
            return (.ok, .multi(zip(ops, outcomes).map(multiResult)))
        default:
            return (.ok, .empty)
        }
    }

    /// A multi answers a plain create with a path only (kazoo parses nothing else) and, as
    /// ZooKeeper 3.8 does, a create2 inside a multi too; containers and TTL nodes get path and Stat.
    private static func multiResult(_ op: Request, _ outcome: ApplyOutcome) -> MultiResult {
        switch (op, outcome) {
        case (.create, .created(let path, _)), (.create2, .created(let path, _)):
            return .create(path: path)
        case (_, .created(let path, let stat)):
            return .create2(path: path, stat: stat)
        case (_, .deleted):
            return .delete
        case (_, .dataSet(let stat)):
            return .setData(stat: stat)
        default:
            return .check
        }
    }

    private mutating func reply(_ id: ConnectionID, xid: Int32, zxid: Zxid, err: ErrorCode, _ response: Response, _ ready: inout Ready) {
        ready.send(.reply(ReplyHeader(xid: xid, zxid: zxid, err: err.rawValue), err == .ok ? response : .empty), to: id)
        if zxid > 0 { connections[id]?.lastZxid = zxid }
    }

    // MARK: - Reads and session-local requests

    /// Answers a request that does not go through the log, against the committed tree.
    private mutating func answer(_ id: ConnectionID, _ header: RequestHeader, _ request: Request, _ ready: inout Ready) {
        guard let connection = connections[id], let sessionId = connection.sessionId else { return }
        let zxid = tree.lastZxid
        if sessions[sessionId]?.closing ?? true {
            if case .ping = request {} else {
                reply(id, xid: header.xid, zxid: zxid, err: .sessionExpired, .empty, &ready)
                return
            }
        }
        do {
            switch request {
            case .ping:
                reply(id, xid: SpecialXid.ping, zxid: zxid, err: .ok, .empty, &ready)
            case .auth(_, let scheme, let auth):
                guard
                    let ids = ACLs.authenticate(
                        scheme: scheme, auth: auth, peerAddress: connection.peerAddress, superDigest: config.superDigest)
                else {
                    reply(id, xid: SpecialXid.auth, zxid: 0, err: .authFailed, .empty, &ready)
                    closeConnection(id, reason: "authentication with unsupported scheme \(scheme)", &ready)
                    return
                }
                for newId in ids where !connections[id]!.authIds.contains(newId) {
                    connections[id]!.authIds.append(newId)
                }
                reply(id, xid: SpecialXid.auth, zxid: 0, err: .ok, .empty, &ready)
            case .setWatches(let request), .setWatches2(let request):
                setWatches(id, request, &ready)
                reply(id, xid: SpecialXid.setWatches, zxid: zxid, err: .ok, .empty, &ready)
            case .sasl:
                reply(id, xid: header.xid, zxid: 0, err: .authFailed, .empty, &ready)
                closeConnection(id, reason: "SASL authentication is not supported", &ready)
            case .multi:
                // Reached only for a multi holding a non-write operation.
                throw ErrorCode.marshallingError
            case .multiRead(let ops):
                guard ops.allSatisfy(Self.isMultiReadOp) else { throw ErrorCode.marshallingError }
                var results: [MultiResult] = []
                for op in ops {
                    do throws(ErrorCode) {
                        results.append(try read(op, id, connection))
                    } catch {
                        results.append(.error(error))
                    }
                }
                reply(id, xid: header.xid, zxid: zxid, err: .ok, .multi(results), &ready)
            default:
                let response = try answerOne(request, id, sessionId, connection)
                reply(id, xid: header.xid, zxid: zxid, err: .ok, response, &ready)
            }
        } catch {
            reply(id, xid: header.xid, zxid: zxid, err: error as? ErrorCode ?? .systemError, .empty, &ready)
        }
    }

    private static func isMultiReadOp(_ op: Request) -> Bool {
        switch op {
        case .getData, .getChildren: return true
        default: return false
        }
    }

    /// One read inside a multiRead: no watches are set.
    private func read(_ op: Request, _ id: ConnectionID, _ connection: Connection) throws(ErrorCode) -> MultiResult {
        switch op {
        case .getData(let path, _):
            let node = try readable(path, connection)
            return .getData(data: node.data, stat: node.stat)
        case .getChildren(let path, _):
            let node = try readable(path, connection)
            return .getChildren(children: Array(node.children).sorted())
        default:
            throw .marshallingError
        }
    }

    private func readable(_ path: String, _ connection: Connection) throws(ErrorCode) -> DataNode {
        guard let node = tree.node(path) else { throw .noNode }
        guard ACLs.check(node.acl, .read, authIds: connection.authIds) else { throw .noAuth }
        return node
    }

    private mutating func answerOne(_ request: Request, _ id: ConnectionID, _ sessionId: Int64, _ connection: Connection) throws(ErrorCode) -> Response {
        switch request {
        case .exists(let path, let watch):
            if path.contains("\0") { throw .badArguments }
            if watch { watches.addDataWatch(path, connection: id) }
            guard let node = tree.node(path) else { throw .noNode }
            return .stat(node.stat)
        case .getData(let path, let watch):
            let node = try readable(path, connection)
            if watch { watches.addDataWatch(path, connection: id) }
            return .getData(data: node.data, stat: node.stat)
        case .getChildren(let path, let watch):
            let node = try readable(path, connection)
            if watch { watches.addChildWatch(path, connection: id) }
            return .getChildren(children: Array(node.children).sorted())
        case .getChildren2(let path, let watch):
            let node = try readable(path, connection)
            if watch { watches.addChildWatch(path, connection: id) }
            return .getChildren2(children: Array(node.children).sorted(), stat: node.stat)
        case .getACL(let path):
            guard let node = tree.node(path) else { throw .noNode }
            guard ACLs.check(node.acl, [.read, .admin], authIds: connection.authIds) else { throw .noAuth }
            let admin = ACLs.check(node.acl, .admin, authIds: connection.authIds)
            return .getACL(acl: admin ? node.acl : ACLs.masked(node.acl), stat: node.stat)
        case .getAllChildrenNumber(let path):
            _ = try readable(path, connection)
            return .getAllChildrenNumber(Int32(clamping: tree.descendantCount(path)))
        case .getEphemerals(let prefix):
            let all = tree.ephemerals(of: sessionId).sorted()
            let wantsAll = prefix.isEmpty || prefix == "/" || prefix.allSatisfy(\.isWhitespace)
            return .getEphemerals(paths: wantsAll ? all : all.filter { $0.hasPrefix(prefix) })
        case .sync(let path):
            return .sync(path: path)
        case .whoAmI:
            return .whoAmI(connection.authIds.map(ACLs.clientInfo))
        case .addWatch(let path, let mode):
            guard let mode = AddWatchMode(rawValue: mode) else { throw .marshallingError }
            watches.addPersistentWatch(path, connection: id, recursive: mode == .persistentRecursive)
            return .errorResponse(0)
        case .checkWatches(let path, let type):
            guard let type = WatcherType(rawValue: type), type.rawValue <= WatcherType.any.rawValue else { throw .marshallingError }
            guard watches.has(path, connection: nil, type: type) else { throw .noWatcher }
            return .empty
        case .removeWatches(let path, let type):
            guard let type = WatcherType(rawValue: type), type.rawValue <= WatcherType.any.rawValue else { throw .marshallingError }
            guard watches.remove(path, connection: id, type: type) else { throw .noWatcher }
            return .empty
        case .reconfig:
            throw .reconfigDisabled
        default:
            throw .unimplemented
        }
    }

    /// Re-registers a reconnecting client's watches, firing at once what it missed since
    /// `relativeZxid` (see ZooKeeper's setWatches rules in docs/protocol.md).
    private mutating func setWatches(_ id: ConnectionID, _ request: SetWatchesRequest, _ ready: inout Ready) {
        let since = request.relativeZxid
        func notify(_ type: EventType, _ path: String, _ ready: inout Ready) {
            ready.send(.notification(zxid: -1, WatcherEvent(type, path: path)), to: id)
        }
        for path in request.dataWatches {
            if let node = tree.node(path) {
                if node.mzxid > since { notify(.nodeDataChanged, path, &ready) } else { watches.addDataWatch(path, connection: id) }
            } else {
                notify(.nodeDeleted, path, &ready)
            }
        }
        for path in request.existWatches {
            if tree.node(path) != nil { notify(.nodeCreated, path, &ready) } else { watches.addDataWatch(path, connection: id) }
        }
        for path in request.childWatches {
            if let node = tree.node(path) {
                if node.pzxid > since { notify(.nodeChildrenChanged, path, &ready) } else { watches.addChildWatch(path, connection: id) }
            } else {
                notify(.nodeDeleted, path, &ready)
            }
        }
        for path in request.persistentWatches { watches.addPersistentWatch(path, connection: id, recursive: false) }
        for path in request.persistentRecursiveWatches { watches.addPersistentWatch(path, connection: id, recursive: true) }
    }

    // MARK: - Time

    private mutating func onTick(_ ready: inout Ready) {
        let expired = sessions.filter { !$0.value.closing && $0.value.expiresAtMs <= nowMs }.keys.sorted()
        for sessionId in expired {
            sessions[sessionId]!.closing = true
            let ephemerals = Array(prepared.ephemerals(of: sessionId)).sorted()
            propose(.closeSession(ephemerals: ephemerals), sessionId: sessionId, cxid: Self.internalCxid, &ready)
        }
        if nowMs >= nextContainerCheckMs {
            nextContainerCheckMs = nowMs + config.containerCheckIntervalMs
            reapContainersAndTTLNodes(&ready)
        }
    }

    /// Deletes containers that had children and lost them all, and TTL nodes without children
    /// whose TTL has run out since their last change.
    private mutating func reapContainersAndTTLNodes(_ ready: inout Ready) {
        var doomed: [String] = []
        for path in tree.containers {
            if let node = prepared.node(path), node.children.isEmpty, node.childCreates > 0 { doomed.append(path) }
        }
        for path in tree.ttlNodes {
            if let node = prepared.node(path), node.children.isEmpty, case .ttl(let ttl) = node.kind, nowMs - node.mtime > ttl {
                doomed.append(path)
            }
        }
        for path in doomed.sorted() {
            propose(.delete(path: path), sessionId: 0, cxid: Self.internalCxid, &ready)
        }
    }

    // MARK: - Status

    public func status() -> ReplicaStatus {
        var status = ReplicaStatus()
        status.lastZxid = tree.lastZxid
        status.nodeCount = tree.nodeCount
        status.approximateDataSize = tree.dataBytes
        status.ephemeralsCount = tree.ephemeralCount
        status.watchCount = watches.count
        status.watchedPathCount = watches.watchedPaths
        status.watchesByConnection = watches.connectionsWatching
        status.outstandingRequests = outstanding.count
        status.connections = connections.keys.sorted().compactMap { id in
            guard let connection = connections[id], !connection.closing else { return nil }
            return ReplicaStatus.Connection(
                id: id, peerAddress: connection.peerAddress, peerPort: connection.peerPort,
                sessionId: connection.sessionId ?? 0,
                sessionTimeoutMs: connection.sessionId.flatMap { sessions[$0]?.timeoutMs } ?? 0,
                outstandingRequests: connection.queue.count, lastZxid: connection.lastZxid,
                watchCount: watches.entries(of: id))
        }
        status.sessions = sessions.keys.sorted().map { id in
            ReplicaStatus.Session(
                id: id, timeoutMs: sessions[id]!.timeoutMs, expiresAtMs: sessions[id]!.expiresAtMs,
                ephemerals: tree.ephemerals(of: id).sorted())
        }
        return status
    }
}
