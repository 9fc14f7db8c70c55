import NIOCore
import ZKCore
import ZKProtocol
import ZKStorage

// The peer protocol on the wire: election notifications and Zab messages between replicas.
//
//     connection := hello frame*
//     hello      := magic:int(0x4D5A4B50 "MZKP") serverId:long        (sent by the dialling side)
//     frame      := length:int message                                  (length excludes itself)
//     message    := tag:int body
//       1  notification  leader:long zxid:long epoch:long round:long state:int
//       2  followerInfo  acceptedEpoch:long lastZxid:long
//       3  leaderInfo    epoch:long
//       4  ackEpoch      currentEpoch:long lastZxid:long
//       5  sync          kind:int [truncZxid:long | snapshot:buffer] epoch:long count:int transaction{count}
//                        kind 0 diff, 1 trunc, 2 snap (snapshot in the grammar of SnapshotCodec)
//       6  ackNewLeader  epoch:long
//       7  upToDate      commitZxid:long
//       8  propose       transaction
//       9  ack           zxid:long
//      10  commit        zxid:long
//      11  forward       0 sessionId:long timeoutMs:long
//                      | 1 sessionId:long request:buffer authIds:vector<Id>
//                        (request = a client request frame: length, header, record)
//      12  ping          touched:vector<long>
//      13  barrier       token:long
//      14  barrierDone   token:long
//      15  revalidate    sessionId:long timeoutMs:long
//      16  revalidated   sessionId:long valid:bool
//     transaction := the grammar of TransactionCodec.swift
//
// Decoding is as defensive as for client frames: damage throws and closes that peer connection.
// Each kind of message has a maximum frame length (`frameBytesMax(tag:)`), checked as soon as the
// length and the tag have arrived, before the frame is waited for: only a sync (which may carry a
// snapshot) may be large; a proposal or a forwarded request carries one client request; a ping
// the sessions a follower's clients touched; everything else is a few numbers.
package enum PeerCodec {
    package static let helloMagic: Int32 = 0x4D5A_4B50
    /// The largest frame of any kind: a sync with a snapshot of the whole tree.
    package static let frameBytesMax = 1 << 30
    /// A proposal or a forwarded write: one client request (at most `jute.maxbuffer`, 1 MiB by
    /// default) plus its transaction's fields, with room for a raised `jute.maxbuffer`.
    package static let writeFrameBytesMax = 64 << 20
    /// A ping: eight bytes per session touched since the last one.
    package static let pingFrameBytesMax = 64 << 20
    /// Every other message: election notifications, epochs, acks, commits, barriers.
    package static let smallFrameBytesMax = 4096

    /// The largest frame allowed for a message with `tag` (an unknown tag gets the small limit,
    /// and fails to decode anyway).
    package static func frameBytesMax(tag: Int32) -> Int {
        switch tag {
        case 5: return frameBytesMax
        case 8, 11: return writeFrameBytesMax
        case 12: return pingFrameBytesMax
        default: return smallFrameBytesMax
        }
    }

    package enum DecodeError: Error, CustomStringConvertible {
        case invalid(String)
        package var description: String {
            switch self {
            case .invalid(let what): return "invalid peer message: \(what)"
            }
        }
    }

    package static func encode(_ message: PeerMessage, into buffer: inout ByteBuffer) {
        let start = buffer.writerIndex
        buffer.writeInteger(Int32(0))
        switch message {
        case .notification(let n):
            buffer.writeJuteInt(1)
            buffer.writeJuteLong(n.vote.leader)
            buffer.writeJuteLong(n.vote.zxid)
            buffer.writeJuteLong(n.vote.epoch)
            buffer.writeJuteLong(n.round)
            buffer.writeJuteInt(n.state.rawValue)
        case .followerInfo(let acceptedEpoch, let lastZxid):
            buffer.writeJuteInt(2)
            buffer.writeJuteLong(acceptedEpoch)
            buffer.writeJuteLong(lastZxid)
        case .leaderInfo(let epoch):
            buffer.writeJuteInt(3)
            buffer.writeJuteLong(epoch)
        case .ackEpoch(let currentEpoch, let lastZxid):
            buffer.writeJuteInt(4)
            buffer.writeJuteLong(currentEpoch)
            buffer.writeJuteLong(lastZxid)
        case .sync(let plan):
            buffer.writeJuteInt(5)
            switch plan.kind {
            case .diff:
                buffer.writeJuteInt(0)
            case .trunc(let zxid):
                buffer.writeJuteInt(1)
                buffer.writeJuteLong(zxid)
            case .snap(let tree):
                buffer.writeJuteInt(2)
                let lengthIndex = buffer.writerIndex
                buffer.writeInteger(Int32(0))
                SnapshotCodec.encode(tree) { chunk in buffer.writeImmutableBuffer(chunk) }
                buffer.setInteger(Int32(buffer.writerIndex - lengthIndex - 4), at: lengthIndex)
            }
            buffer.writeJuteLong(plan.epoch)
            buffer.writeJuteInt(Int32(plan.transactions.count))
            for txn in plan.transactions { txn.encode(into: &buffer) }
        case .ackNewLeader(let epoch):
            buffer.writeJuteInt(6)
            buffer.writeJuteLong(epoch)
        case .upToDate(let zxid):
            buffer.writeJuteInt(7)
            buffer.writeJuteLong(zxid)
        case .propose(let txn):
            buffer.writeJuteInt(8)
            txn.encode(into: &buffer)
        case .ack(let zxid):
            buffer.writeJuteInt(9)
            buffer.writeJuteLong(zxid)
        case .commit(let zxid):
            buffer.writeJuteInt(10)
            buffer.writeJuteLong(zxid)
        case .forward(.createSession(let sessionId, let timeoutMs)):
            buffer.writeJuteInt(11)
            buffer.writeJuteInt(0)
            buffer.writeJuteLong(sessionId)
            buffer.writeJuteLong(timeoutMs)
        case .forward(.request(let sessionId, let header, let request, let authIds)):
            buffer.writeJuteInt(11)
            buffer.writeJuteInt(1)
            buffer.writeJuteLong(sessionId)
            // The client frame, with its length prefix serving as the buffer length.
            ClientMessageEncoder.encode(xid: header.xid, request, into: &buffer)
            buffer.writeJuteVector(authIds) { $0.writeJuteId($1) }
        case .ping(let touched):
            buffer.writeJuteInt(12)
            buffer.writeJuteVector(touched) { $0.writeJuteLong($1) }
        case .barrier(let token):
            buffer.writeJuteInt(13)
            buffer.writeJuteLong(Int64(bitPattern: token))
        case .barrierDone(let token):
            buffer.writeJuteInt(14)
            buffer.writeJuteLong(Int64(bitPattern: token))
        case .revalidate(let sessionId, let timeoutMs):
            buffer.writeJuteInt(15)
            buffer.writeJuteLong(sessionId)
            buffer.writeJuteLong(timeoutMs)
        case .revalidated(let sessionId, let valid):
            buffer.writeJuteInt(16)
            buffer.writeJuteLong(sessionId)
            buffer.writeJuteBool(valid)
        }
        buffer.setInteger(Int32(buffer.writerIndex - start - 4), at: start)
    }

    /// Decodes one message payload (the part after the length).
    package static func decode(_ buffer: inout ByteBuffer) throws -> PeerMessage {
        let tag = try buffer.readJuteInt("peer message tag")
        switch tag {
        case 1:
            let leader = try buffer.readJuteLong("leader")
            let zxid = try buffer.readJuteLong("zxid")
            let epoch = try buffer.readJuteLong("epoch")
            let round = try buffer.readJuteLong("round")
            guard let state = ServerState(rawValue: try buffer.readJuteInt("state")) else { throw DecodeError.invalid("server state") }
            return .notification(Notification(vote: Vote(leader: leader, zxid: zxid, epoch: epoch), round: round, state: state))
        case 2:
            return .followerInfo(acceptedEpoch: try buffer.readJuteLong("accepted epoch"), lastZxid: try buffer.readJuteLong("last zxid"))
        case 3:
            return .leaderInfo(epoch: try buffer.readJuteLong("epoch"))
        case 4:
            return .ackEpoch(currentEpoch: try buffer.readJuteLong("current epoch"), lastZxid: try buffer.readJuteLong("last zxid"))
        case 5:
            let kind: SyncPlan.Kind
            switch try buffer.readJuteInt("sync kind") {
            case 0: kind = .diff
            case 1: kind = .trunc(after: try buffer.readJuteLong("trunc zxid"))
            case 2:
                let length = try buffer.readJuteInt("snapshot length")
                guard length >= 0, var snapshot = buffer.readSlice(length: Int(length)) else { throw DecodeError.invalid("snapshot length \(length)") }
                kind = .snap(try SnapshotCodec.decode(&snapshot))
            case let other: throw DecodeError.invalid("sync kind \(other)")
            }
            let epoch = try buffer.readJuteLong("epoch")
            let count = try buffer.readJuteInt("transaction count")
            guard count >= 0, Int(count) <= buffer.readableBytes / 28 else { throw DecodeError.invalid("transaction count \(count)") }
            var transactions: [Transaction] = []
            transactions.reserveCapacity(Int(count))
            for _ in 0..<count { transactions.append(try Transaction.decode(&buffer)) }
            return .sync(SyncPlan(kind: kind, transactions: transactions, epoch: epoch))
        case 6:
            return .ackNewLeader(epoch: try buffer.readJuteLong("epoch"))
        case 7:
            return .upToDate(commitZxid: try buffer.readJuteLong("commit zxid"))
        case 8:
            return .propose(try Transaction.decode(&buffer))
        case 9:
            return .ack(try buffer.readJuteLong("zxid"))
        case 10:
            return .commit(try buffer.readJuteLong("zxid"))
        case 11:
            switch try buffer.readJuteInt("forward kind") {
            case 0:
                return .forward(.createSession(sessionId: try buffer.readJuteLong("session"), timeoutMs: try buffer.readJuteLong("timeout")))
            case 1:
                let sessionId = try buffer.readJuteLong("session")
                let length = try buffer.readJuteInt("request length")
                guard length >= 8, var frame = buffer.readSlice(length: Int(length)) else { throw DecodeError.invalid("request length \(length)") }
                let (header, request) = try ClientMessageDecoder.decodeRequest(&frame)
                let ids = try buffer.readJuteVector("auth ids", elementBytesMin: 8) { try $0.readJuteId() } ?? []
                return .forward(.request(sessionId: sessionId, header: header, request: request, authIds: ids))
            case let other:
                throw DecodeError.invalid("forward kind \(other)")
            }
        case 12:
            return .ping(touchedSessions: try buffer.readJuteVector("touched", elementBytesMin: 8) { try $0.readJuteLong("session") } ?? [])
        case 13:
            return .barrier(token: UInt64(bitPattern: try buffer.readJuteLong("token")))
        case 14:
            return .barrierDone(token: UInt64(bitPattern: try buffer.readJuteLong("token")))
        case 15:
            return .revalidate(sessionId: try buffer.readJuteLong("session"), timeoutMs: try buffer.readJuteLong("timeout"))
        case 16:
            return .revalidated(sessionId: try buffer.readJuteLong("session"), valid: try buffer.readJuteBool("valid"))
        default:
            throw DecodeError.invalid("tag \(tag)")
        }
    }
}
