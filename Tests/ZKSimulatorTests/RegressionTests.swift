import XCTest
import ZKCore
import ZKProtocol
import ZKSimulator

/// Bugs the simulator found in the replica, each pinned down as a deterministic scenario.
final class RegressionTests: XCTestCase {
    /// Found by `minizk sim --seed 133`: a follower forwards a client's ephemeral create for a
    /// session that the leader has meanwhile started to expire. The leader prepared it anyway,
    /// so the create was committed after the session's closeSession, and the ephemeral outlived
    /// its session on every replica, forever. A leader must refuse (SESSIONEXPIRED) any write of
    /// a session it is closing, as ZooKeeper's PrepRequestProcessor does.
    ///
    /// Before the fix: the create is answered OK and /eph stays on all three replicas, owned by
    /// a session that no longer exists.
    func testWriteForwardedForAClosingSessionDoesNotOutliveIt() {
        // Slow fsyncs keep the leader's closeSession uncommitted for a while: the window in
        // which the forwarded create arrives.
        var options = Cluster.Options()
        options.fsyncMs = 200
        let cluster = Cluster(members: [1, 2, 3], options: options)
        cluster.start()
        XCTAssertTrue(cluster.awaitStable())
        let leader = cluster.leaders[0]
        let follower = cluster.members.first { $0 != leader }!
        let client = cluster.connectClient(to: follower, timeoutMs: 200)
        XCTAssertTrue(cluster.run(untilMs: 2000) { $0.session(client) != nil })
        // The client stays silent, so the leader expires its session; the moment the leader has
        // logged the closeSession (still uncommitted, its fsync is slow), the client writes.
        let logged = cluster.store(leader).lastZxid
        func closing(_ cluster: Cluster) -> Bool {
            let txns = (try? cluster.store(leader).transactions(after: logged, limit: 10)) ?? []
            return txns.contains { if case .closeSession = $0.body { return true } else { return false } }
        }
        XCTAssertTrue(cluster.run(untilMs: 2000, closing), "the leader never expired the silent session")
        XCTAssertNotNil(cluster.replica(follower).tree.sessions[cluster.session(client)!.sessionId], "the follower must still know the session")
        let xid = cluster.send(client, .create(CreateRequest(path: "/eph", data: nil, acl: ACL.openUnsafe, flags: 1)))
        cluster.run(forMs: 2000)
        let reply = cluster.reply(client, xid: xid)?.0
        XCTAssertNotEqual(reply, .ok, "the create of a session being expired succeeded")
        for id in cluster.members {
            let tree = cluster.replica(id).tree
            XCTAssertNil(tree.node("/eph"), "n\(id) holds an ephemeral of an expired session")
            for (owner, paths) in tree.ephemerals where tree.sessions[owner] == nil {
                XCTFail("n\(id) holds ephemerals \(paths.sorted()) of the dead session \(owner)")
            }
        }
    }
}
