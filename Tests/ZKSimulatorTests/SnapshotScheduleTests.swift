import XCTest
import ZKCore
import ZKProtocol
import ZKSimulator

/// The snapshot schedule is the replica's: the simulator honours `Ready.snapshot` on its stores
/// (snapshot, then the log it covers compacted away), and replicas restart from snapshot + log.
final class SnapshotScheduleTests: XCTestCase {
    func create(_ path: String) -> Request {
        .create(CreateRequest(path: path, data: Array(path.utf8), acl: ACL.openUnsafe, flags: 0))
    }

    func write(_ cluster: Cluster, via node: Int64, _ paths: [String]) {
        let client = cluster.connectClient(to: node)
        XCTAssertTrue(cluster.run(untilMs: 2000) { $0.session(client) != nil }, "no session from n\(node)")
        for path in paths {
            let xid = cluster.send(client, create(path))
            XCTAssertTrue(cluster.run(untilMs: 2000) { $0.reply(client, xid: xid) != nil }, "no reply to \(path)")
            XCTAssertEqual(cluster.reply(client, xid: xid)?.0, .ok, path)
        }
    }

    func testReplicasSnapshotOnTheirScheduleAndRestartFromSnapshotPlusLog() throws {
        var options = Cluster.Options()
        options.snapshotEveryTransactions = 10
        options.snapshotLatency = LatencyModel(minMs: 1, maxMs: 5)
        options.seed = 5
        let cluster = Cluster(members: [1, 2, 3], options: options)
        cluster.start()
        XCTAssertTrue(cluster.awaitStable())
        let leader = try XCTUnwrap(cluster.leaders.first)
        let follower = cluster.members.first { $0 != leader }!
        write(cluster, via: leader, (1...40).map { "/a\($0)" })
        cluster.run(forMs: 500)

        XCTAssertGreaterThan(cluster.statistics.snapshotsWritten, 3)
        for id in cluster.members {
            let store = cluster.store(id)
            let snapshot = try XCTUnwrap(store.snapshotZxid, "n\(id) wrote no snapshot")
            XCTAssertGreaterThan(snapshot, 0)
            // Compacted: the log holds nothing the snapshot covers, and goes on right after it.
            XCTAssertTrue(store.loggedZxids.allSatisfy { $0 > snapshot }, "n\(id) keeps records up to its snapshot")
            if let first = store.loggedZxids.first { XCTAssertEqual(first, snapshot + 1, "n\(id)") }
        }

        cluster.crash(follower)
        write(cluster, via: leader, (41...70).map { "/a\($0)" })
        cluster.restart(follower)
        let restored = cluster.replica(follower).tree.lastZxid
        XCTAssertEqual(restored, cluster.store(follower).snapshotZxid, "the replica restarted from its snapshot")
        XCTAssertTrue(cluster.run(untilMs: 5000) { c in
            c.replica(follower).isServing && c.replica(follower).tree.lastZxid == c.replica(leader).tree.lastZxid
        })
        XCTAssertEqual(cluster.replica(follower).digest, cluster.replica(leader).digest)
        XCTAssertNotNil(cluster.replica(follower).tree.node("/a70"))
    }

    /// A snapshot still being written when the replica crashes is lost; recovery uses the last
    /// complete one and the log.
    func testACrashLosesTheSnapshotBeingWritten() throws {
        var options = Cluster.Options()
        options.snapshotEveryTransactions = 4
        // Far longer than the run: no snapshot completes.
        options.snapshotLatency = LatencyModel.fixed(1_000_000)
        let cluster = Cluster(members: [1], options: options)
        cluster.start()
        XCTAssertTrue(cluster.awaitStable())
        write(cluster, via: 1, (1...10).map { "/b\($0)" })
        XCTAssertNil(cluster.store(1).snapshotZxid)
        let last = cluster.replica(1).tree.lastZxid
        cluster.crash(1)
        cluster.restart(1)
        XCTAssertNil(cluster.store(1).snapshotZxid)
        XCTAssertEqual(cluster.replica(1).tree.lastZxid, 0, "nothing but the log to recover from")
        XCTAssertTrue(cluster.awaitStable())
        XCTAssertGreaterThanOrEqual(cluster.replica(1).tree.lastZxid, last)
        XCTAssertNotNil(cluster.replica(1).tree.node("/b10"))
    }
}
