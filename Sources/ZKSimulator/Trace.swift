import ZKCore
import ZKProtocol

// One-line descriptions of inputs and messages for the event trace. They print what identifies
// an event (kinds, zxids, xids, paths), never a whole tree, so that a trace stays readable and
// its bytes do not depend on the iteration order of any hash table.

func hex(_ zxid: Zxid) -> String { "0x" + String(zxid, radix: 16) }

func describe(_ input: ReplicaInput) -> String {
    switch input {
    case .connectionOpened(let id, _, _): return "opened c\(id)"
    case .connect(let id, let request):
        return "connect c\(id) session \(hex(request.sessionId)) lastZxid \(hex(request.lastZxidSeen)) timeout \(request.timeoutMs)"
    case .request(let id, let header, let request): return "request c\(id) xid \(header.xid) \(describe(request))"
    case .connectionClosed(let id): return "closed c\(id)"
    case .tick: return "tick"
    case .persisted(let zxid, let through): return "persisted \(hex(zxid)) through #\(through)"
    case .peerMessage(let from, let message): return "n\(from): \(describe(message))"
    case .peerConnected(let peer): return "connected n\(peer)"
    case .peerDisconnected(let peer): return "disconnected n\(peer)"
    case .snapshotFinished(let completed): return completed ? "snapshot written" : "snapshot abandoned"
    }
}

func describe(_ message: PeerMessage) -> String {
    switch message {
    case .notification(let n): return "notification \(n.vote) round \(n.round) \(n.state)"
    case .followerInfo(let accepted, let last): return "FOLLOWERINFO e\(accepted) \(hex(last))"
    case .leaderInfo(let epoch): return "LEADERINFO e\(epoch)"
    case .ackEpoch(let current, let last): return "ACKEPOCH e\(current) \(hex(last))"
    case .sync(let plan):
        let kind: String
        switch plan.kind {
        case .diff: kind = "DIFF"
        case .trunc(let zxid): kind = "TRUNC \(hex(zxid))"
        case .snap(let tree): kind = "SNAP \(hex(tree.lastZxid))"
        }
        let range = plan.transactions.isEmpty ? "" : " \(hex(plan.transactions.first!.zxid))...\(hex(plan.transactions.last!.zxid))"
        return "\(kind) +\(plan.transactions.count)\(range) NEWLEADER e\(plan.epoch)"
    case .ackNewLeader(let epoch): return "ACK(NEWLEADER) e\(epoch)"
    case .upToDate(let zxid): return "UPTODATE \(hex(zxid))"
    case .propose(let txn): return "PROPOSE \(hex(txn.zxid)) \(describe(txn.body))"
    case .ack(let zxid): return "ACK \(hex(zxid))"
    case .commit(let zxid): return "COMMIT \(hex(zxid))"
    case .forward(.createSession(let id, let timeout)): return "FORWARD createSession \(hex(id)) \(timeout)"
    case .forward(.request(let id, let header, let request, _)): return "FORWARD \(hex(id)) xid \(header.xid) \(describe(request))"
    case .ping(let touched): return "PING \(touched.count)"
    case .barrier(let token): return "BARRIER \(token)"
    case .barrierDone(let token): return "BARRIERDONE \(token)"
    case .revalidate(let id, let timeout): return "REVALIDATE \(hex(id)) \(timeout)"
    case .revalidated(let id, let valid): return "REVALIDATED \(hex(id)) \(valid ? "valid" : "expired")"
    }
}

func describe(_ body: TransactionBody) -> String {
    switch body {
    case .createSession(let timeout): return "createSession \(timeout)"
    case .closeSession(let paths): return "closeSession \(paths)"
    case .create(let path, _, _, let kind): return "create \(path) \(kind)"
    case .delete(let path): return "delete \(path)"
    case .setData(let path, _, let version): return "setData \(path) v\(version)"
    case .setACL(let path, _, let version): return "setACL \(path) v\(version)"
    case .check(let path): return "check \(path)"
    case .multi(let bodies): return "multi[" + bodies.map(describe).joined(separator: ", ") + "]"
    case .error(let code): return "error \(code.name)"
    case .failedMulti(let codes): return "failedMulti \(codes.map(\.name))"
    }
}

func describe(_ request: Request) -> String {
    switch request {
    case .create(let r), .create2(let r): return "create \(r.path) flags \(r.flags) \(describe(data: r.data))"
    case .delete(let path, let version): return "delete \(path) v\(version)"
    case .exists(let path, let watch): return "exists \(path)\(watch ? " watch" : "")"
    case .getData(let path, let watch): return "getData \(path)\(watch ? " watch" : "")"
    case .setData(let path, let data, let version): return "setData \(path) \(describe(data: data)) v\(version)"
    case .getChildren(let path, let watch), .getChildren2(let path, let watch): return "getChildren \(path)\(watch ? " watch" : "")"
    case .sync(let path): return "sync \(path)"
    case .ping: return "ping"
    case .check(let path, let version): return "check \(path) v\(version)"
    case .multi(let ops): return "multi[" + ops.map(describe).joined(separator: ", ") + "]"
    case .closeSession: return "closeSession"
    default: return "opcode \(request.opcode)"
    }
}

func describe(data: [UInt8]?) -> String {
    guard let data else { return "null" }
    return "'" + String(decoding: data.prefix(24), as: UTF8.self) + "'"
}

func describe(_ delivery: Cluster.ClientDelivery) -> String {
    switch delivery {
    case .closed: return "closed"
    case .frame(let frame): return describe(frame)
    }
}

func describe(_ frame: ServerFrame) -> String {
    switch frame {
    case .connect(let response):
        return response.timeoutMs <= 0 ? "connect: session expired" : "connect: session \(hex(response.sessionId)) timeout \(response.timeoutMs)"
    case .reply(let header, let response):
        let err = ErrorCode(rawValue: header.err)?.name ?? "\(header.err)"
        return "reply xid \(header.xid) zxid \(hex(header.zxid)) \(err)\(header.err == 0 ? " " + describe(response) : "")"
    case .notification(_, let event):
        return "event \(EventType(rawValue: event.type).map { "\($0)" } ?? "\(event.type)") \(event.path)"
    }
}

func describe(_ response: Response) -> String {
    switch response {
    case .create(let path): return path
    case .create2(let path, let stat): return "\(path) v\(stat.version)"
    case .stat(let stat): return "v\(stat.version)"
    case .getData(let data, let stat): return "\(describe(data: data)) v\(stat.version)"
    case .getChildren(let children): return "\(children.count) children"
    case .getChildren2(let children, _): return "\(children.count) children"
    case .multi(let results): return "multi(\(results.count))"
    case .sync(let path): return path
    default: return ""
    }
}
