// Seeds of the peer, transaction and snapshot targets, built with the encoders from the values the
// codec tests use (MINIZK_FUZZ_WRITE_SEEDS=<corpus directory>).

import Foundation
import NIOCore
import ZKCore
import ZKProtocol
import ZKServerFormats
import ZKStorage

/// A tree with every kind of node, two ACLs, null and empty data and a session.
func sampleTree(nodes: Int) -> DataTree {
    var tree = DataTree()
    var triggers: [WatchTrigger] = []
    for txn in sampleTransactions() + (0..<nodes).map({ index in
        Transaction(
            zxid: Int64(100 + index), timeMs: 2000, sessionId: 7, cxid: 0,
            body: .create(path: "/a/n\(index)", data: Array(repeating: UInt8(index), count: index % 9), acl: ACL.openUnsafe, kind: .persistent)
        )
    }) {
        _ = tree.apply(txn, triggers: &triggers)
    }
    return tree
}

func sampleTransactions() -> [Transaction] {
    let bodies: [TransactionBody] = [
        .createSession(timeoutMs: 4000),
        .create(path: "/a", data: Array("alpha".utf8), acl: ACL.openUnsafe, kind: .persistent),
        .create(path: "/a/e", data: nil, acl: ACL.openUnsafe, kind: .ephemeral(owner: 7)),
        .create(path: "/c", data: [], acl: ACL.readUnsafe, kind: .container),
        .create(path: "/t", data: [1, 2, 3], acl: ACL.creatorAll, kind: .ttl(ms: 500)),
        .setData(path: "/a", data: Array("beta".utf8), version: 1),
        .setACL(path: "/a", acl: ACL.readUnsafe, version: 0),
        .check(path: "/a"),
        .multi([.create(path: "/m", data: [9], acl: ACL.openUnsafe, kind: .persistent), .delete(path: "/m")]),
        .failedMulti([.ok, .noNode]),
        .error(.nodeExists),
        .delete(path: "/c"),
        .closeSession(ephemerals: ["/a/e"]),
    ]
    return bodies.enumerated().map { index, body in
        Transaction(zxid: Int64(index + 1), timeMs: 1000 + Int64(index), sessionId: 7, cxid: Int32(index), body: body)
    }
}

func writeSeeds(into root: String) throws {
    func write(_ target: String, _ name: String, _ buffer: ByteBuffer) throws {
        let directory = root + "/" + target
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Data(buffer.readableBytesView).write(to: URL(fileURLWithPath: directory + "/" + name))
    }
    let transactions = sampleTransactions()
    for (index, txn) in transactions.enumerated() { try write("transaction", "seed-\(index)", txn.encoded()) }
    try write("snapshot", "seed-small", encodedSnapshot(sampleTree(nodes: 3)))
    try write("snapshot", "seed-empty", encodedSnapshot(DataTree()))
    let messages: [(String, PeerMessage)] = [
        ("notification", .notification(Notification(vote: Vote(leader: 2, zxid: 0x1_0000_0005, epoch: 1), round: 3, state: .looking))),
        ("followerInfo", .followerInfo(acceptedEpoch: 1, lastZxid: 0x1_0000_0005)),
        ("leaderInfo", .leaderInfo(epoch: 2)),
        ("ackEpoch", .ackEpoch(currentEpoch: 1, lastZxid: 5)),
        ("sync-diff", .sync(SyncPlan(kind: .diff, transactions: Array(transactions.prefix(3)), epoch: 2))),
        ("sync-trunc", .sync(SyncPlan(kind: .trunc(after: 4), transactions: [transactions[5]], epoch: 2))),
        ("sync-snap", .sync(SyncPlan(kind: .snap(sampleTree(nodes: 2)), transactions: [transactions[1]], epoch: 2))),
        ("ackNewLeader", .ackNewLeader(epoch: 2)),
        ("upToDate", .upToDate(commitZxid: 9)),
        ("propose", .propose(transactions[8])),
        ("ack", .ack(9)),
        ("commit", .commit(9)),
        ("forward-session", .forward(.createSession(sessionId: 77, timeoutMs: 4000))),
        ("forward-request", .forward(.request(
            sessionId: 77, header: RequestHeader(xid: 5, type: OpCode.create.rawValue),
            request: .create(CreateRequest(path: "/x", data: [1], acl: ACL.openUnsafe, flags: 0)),
            authIds: [Id(scheme: "digest", id: "bob:x"), Id(scheme: "ip", id: "127.0.0.1")]
        ))),
        ("ping", .ping(touchedSessions: [1, 2, 3])),
        ("barrier", .barrier(token: 11)),
        ("barrierDone", .barrierDone(token: 11)),
        ("revalidate", .revalidate(sessionId: 77, timeoutMs: 4000)),
        ("revalidated", .revalidated(sessionId: 77, valid: true)),
    ]
    for (name, message) in messages { try write("peer", "seed-\(name)", encodedPeer(message)) }
}
