import Crypto
import Foundation
import ZKProtocol

extension Replica {
    // MARK: - Reads and session-local requests

    /// Answers a request that does not go through the log, against the committed tree.
    mutating func answer(_ id: ConnectionID, _ header: RequestHeader, _ request: Request, _ ready: inout Ready) {
        guard let connection = connections[id], let sessionId = connection.sessionId else { return }
        let zxid = tree.lastZxid
        if sessions[sessionId]?.closing ?? (readOnlySessions[sessionId] == nil) {
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
                    reply(id, xid: header.xid, zxid: 0, err: .authFailed, .empty, &ready)
                    closeConnection(id, reason: "authentication with unsupported scheme \(scheme)", &ready)
                    return
                }
                addAuthIds(ids, to: id)
                reply(id, xid: header.xid, zxid: 0, err: .ok, .empty, &ready)
            case .setWatches(let request), .setWatches2(let request):
                // The reply carries the request's xid, whatever it is: kazoo and the C client send
                // -8, ZooKeeper's Java client an ordinary xid that it checks against the reply.
                if config.watchedPathsPerConnectionMax > 0 {
                    let all = request.dataWatches + request.existWatches + request.childWatches
                        + request.persistentWatches + request.persistentRecursiveWatches
                    let new = Set(all).filter { !watches.watches($0, connection: id) }.count
                    if watches.pathCount(of: id) + new > config.watchedPathsPerConnectionMax {
                        ready.warnings.append(watchLimitWarning(id, sessionId, "setWatches of \(new) more paths"))
                        throw ErrorCode.throttledOp
                    }
                }
                setWatches(id, request, &ready)
                reply(id, xid: header.xid, zxid: zxid, err: .ok, .empty, &ready)
            case .sasl(let token):
                sasl(id, sessionId, xid: header.xid, token: token ?? [], &ready)
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
                let response: Response
                do throws(ErrorCode) {
                    response = try answerOne(request, id, sessionId, connection)
                } catch .throttledOp {
                    ready.warnings.append(watchLimitWarning(id, sessionId, "a watch on \(Self.watchedPath(request))"))
                    throw ErrorCode.throttledOp
                }
                reply(id, xid: header.xid, zxid: zxid, err: .ok, response, &ready)
            }
        } catch {
            reply(id, xid: header.xid, zxid: zxid, err: error as? ErrorCode ?? .systemError, .empty, &ready)
        }
    }

    /// One step of a SASL DIGEST-MD5 exchange (`SASLDigestServer`): the first token gets a
    /// challenge, the answer to it either authenticates the connection as `sasl:<user>` or fails
    /// it with AUTHFAILED and closes it, as ZooKeeper does.
    mutating func sasl(_ id: ConnectionID, _ sessionId: Int64, xid: Int32, token: [UInt8], _ ready: inout Ready) {
        func fail(_ reason: String) {
            reply(id, xid: xid, zxid: 0, err: .authFailed, .empty, &ready)
            closeConnection(id, reason: reason, &ready)
        }
        guard !config.saslUsers.isEmpty else { return fail("SASL authentication is not configured") }
        guard let nonce = connections[id]?.saslNonce else {
            saslChallenges += 1
            let nonce = Self.saslNonce(secret: secret, sessionId: sessionId, connection: id, count: saslChallenges, nowMs: nowMs)
            connections[id]?.saslNonce = nonce
            reply(id, xid: xid, zxid: 0, err: .ok, .sasl(token: SASLDigestServer.challenge(nonce: nonce)), &ready)
            return
        }
        connections[id]?.saslNonce = nil
        switch SASLDigestServer(users: config.saslUsers).verify(response: token, nonce: nonce) {
        case .success(let (user, final)):
            let saslId = Id(scheme: "sasl", id: user)
            if !(connections[id]?.authIds.contains(saslId) ?? true) { connections[id]?.authIds.append(saslId) }
            reply(id, xid: xid, zxid: 0, err: .ok, .sasl(token: final), &ready)
        case .failure(let failure):
            fail("SASL authentication failed: \(failure)")
        }
    }

    /// A nonce no client can guess without the session secret, different for every challenge;
    /// made from the replica's inputs only, so a simulated run repeats it.
    static func saslNonce(secret: UInt64, sessionId: Int64, connection: ConnectionID, count: UInt64, nowMs: Int64) -> String {
        var material: [UInt8] = []
        for value in [secret, UInt64(bitPattern: sessionId), connection, count, UInt64(bitPattern: nowMs)] {
            withUnsafeBytes(of: value.bigEndian) { material += $0 }
        }
        return Data(SHA256.hash(data: material)).base64EncodedString()
    }

    static func isMultiReadOp(_ op: Request) -> Bool {
        switch op {
        case .getData, .getChildren: return true
        default: return false
        }
    }

    /// One read inside a multiRead: no watches are set.
    func read(_ op: Request, _ id: ConnectionID, _ connection: Connection) throws(ErrorCode) -> MultiResult {
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

    func readable(_ path: String, _ connection: Connection) throws(ErrorCode) -> DataNode {
        guard let node = tree.node(path) else { throw .noNode }
        guard ACLs.check(node.acl, .read, authIds: connection.authIds) else { throw .noAuth }
        return node
    }

    mutating func answerOne(_ request: Request, _ id: ConnectionID, _ sessionId: Int64, _ connection: Connection) throws(ErrorCode) -> Response {
        switch request {
        case .exists(let path, let watch):
            if path.utf8.contains(0) { throw .badArguments }
            // ZooKeeper 3.8 (ZOOKEEPER-2590): a node that exists needs READ, checked before the
            // watch is set, so a refused connection learns nothing and leaves no watch. A missing
            // node needs nothing: the watch waits for its creation.
            let node = tree.node(path)
            if let node, !ACLs.check(node.acl, .read, authIds: connection.authIds) { throw .noAuth }
            if watch { try admitWatch(path, id); watches.addDataWatch(path, connection: id) }
            guard let node else { throw .noNode }
            return .stat(node.stat)
        case .getData(let path, let watch):
            let node = try readable(path, connection)
            if watch { try admitWatch(path, id); watches.addDataWatch(path, connection: id) }
            return .getData(data: node.data, stat: node.stat)
        case .getChildren(let path, let watch):
            let node = try readable(path, connection)
            if watch { try admitWatch(path, id); watches.addChildWatch(path, connection: id) }
            return .getChildren(children: Array(node.children).sorted())
        case .getChildren2(let path, let watch):
            let node = try readable(path, connection)
            if watch { try admitWatch(path, id); watches.addChildWatch(path, connection: id) }
            return .getChildren2(children: Array(node.children).sorted(), stat: node.stat)
        case .getACL(let path):
            guard let node = tree.node(path) else { throw .noNode }
            guard ACLs.check(node.acl, [.read, .admin], authIds: connection.authIds) else { throw .noAuth }
            let admin = ACLs.check(node.acl, .admin, authIds: connection.authIds)
            return .getACL(acl: admin ? node.acl : ACLs.masked(node.acl), stat: node.stat)
        case .getAllChildrenNumber(let path):
            _ = try readable(path, connection)
            // ZooKeeper counts the keys that start with `path + "/"`; for the empty path (its alias
            // of the root) that includes the root itself.
            let count = tree.descendantCount(path) + (path.isEmpty ? 1 : 0)
            return .getAllChildrenNumber(Int32(clamping: count))
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
            try admitWatch(path, id)
            watches.addPersistentWatch(path, connection: id, recursive: mode == .persistentRecursive)
            return .errorResponse(0)
        case .checkWatches(let path, let type):
            guard let type = WatcherType(rawValue: type), type.rawValue <= WatcherType.any.rawValue else { throw .marshallingError }
            guard let found = watches.check(path, type: type) else { throw .marshallingError }
            guard found else { throw .noWatcher }
            return .empty
        case .removeWatches(let path, let type):
            guard let type = WatcherType(rawValue: type), type.rawValue <= WatcherType.any.rawValue else { throw .marshallingError }
            guard watches.remove(path, connection: id, type: type) else { throw .noWatcher }
            return .empty
        case .reconfig:
            throw config.reconfigEnabled ? .unimplemented : .reconfigDisabled
        case .nullPath(let opcode):
            // ZooKeeper validates the path of setData and setACL before anything reads it
            // (BADARGUMENTS); every other operation trips over the null first (MARSHALLINGERROR).
            // removeWatches finds no watch on it (NOWATCHER); addWatch is answered OK, as
            // ZooKeeper registers a watch no event can reach.
            if opcode == OpCode.removeWatches.rawValue { throw .noWatcher }
            if opcode == OpCode.addWatch.rawValue { return .errorResponse(0) }
            throw opcode == OpCode.setData.rawValue || opcode == OpCode.setACL.rawValue ? .badArguments : .marshallingError
        default:
            throw .unimplemented
        }
    }

    /// Throws THROTTLEDOP when a watch on `path` would take the connection past
    /// `watchedPathsPerConnectionMax` watched paths (a path it already watches costs nothing).
    func admitWatch(_ path: String, _ id: ConnectionID) throws(ErrorCode) {
        let max = config.watchedPathsPerConnectionMax
        guard max > 0, watches.pathCount(of: id) >= max, !watches.watches(path, connection: id) else { return }
        throw .throttledOp
    }

    /// The path a watching read names, for the log.
    static func watchedPath(_ request: Request) -> String {
        switch request {
        case .exists(let path, _), .getData(let path, _), .getChildren(let path, _), .getChildren2(let path, _),
             .addWatch(let path, _):
            return path
        default:
            return "?"
        }
    }

    /// The warning logged for a request refused by `watchedPathsPerConnectionMax`.
    func watchLimitWarning(_ id: ConnectionID, _ sessionId: Int64, _ what: String) -> String {
        let connection = connections[id]
        return "Refused \(what) with THROTTLEDOP: connection \(connection?.peerAddress ?? "?"):\(connection?.peerPort ?? 0) "
            + "of session 0x\(String(UInt64(bitPattern: sessionId), radix: 16)) watches \(watches.pathCount(of: id)) paths, "
            + "the most allowed (watchedPathsPerConnectionMax)"
    }

    /// Re-registers a reconnecting client's watches, firing at once what it missed since
    /// `relativeZxid` (see ZooKeeper's setWatches rules in docs/protocol.md).
    mutating func setWatches(_ id: ConnectionID, _ request: SetWatchesRequest, _ ready: inout Ready) {
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
}
