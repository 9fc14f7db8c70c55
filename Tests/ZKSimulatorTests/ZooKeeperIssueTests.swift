import XCTest
import ZKProtocol
import ZKSimulator

@testable import ZKCore

/// ZooKeeper's own known failures, each replayed on the simulator as closely as it allows: the
/// schedule that triggered the bug in ZooKeeper, and the property ZooKeeper violated (the members
/// agree, nothing acknowledged is lost, an ephemeral node dies with its session, the election
/// ends). Each test is named after its JIRA issue. Every scenario is deterministic: its faults
/// are placed by the test, not drawn.
final class ZooKeeperIssueTests: XCTestCase {
    // MARK: - Helpers

    func create(_ path: String, _ data: String = "", ephemeral: Bool = false) -> Request {
        .create(CreateRequest(path: path, data: Array(data.utf8), acl: ACL.openUnsafe, flags: ephemeral ? 1 : 0))
    }

    func client(_ cluster: Cluster, _ node: Int64, timeoutMs: Int32 = 10_000, file: StaticString = #filePath, line: UInt = #line)
        -> ConnectionID
    {
        let client = cluster.connectClient(to: node, timeoutMs: timeoutMs)
        XCTAssertTrue(cluster.run(untilMs: 3_000) { $0.session(client) != nil }, "no session from n\(node)", file: file, line: line)
        return client
    }

    @discardableResult
    func call(_ cluster: Cluster, _ client: ConnectionID, _ request: Request, limitMs: Int64 = 3_000) -> ErrorCode? {
        let xid = cluster.send(client, request)
        cluster.run(untilMs: limitMs) { $0.reply(client, xid: xid) != nil }
        return cluster.reply(client, xid: xid)?.0
    }

    /// The one leader, failing the test (not trapping) when there is none.
    func leader(_ cluster: Cluster, file: StaticString = #filePath, line: UInt = #line) -> Int64 {
        guard let leader = cluster.leaders.first else {
            XCTFail("no leader", file: file, line: line)
            return cluster.members[0]
        }
        return leader
    }

    func stableCluster(_ members: [Int64] = [1, 2, 3], _ options: Cluster.Options = Cluster.Options()) -> Cluster {
        let cluster = Cluster(members: members, options: options)
        if ProcessInfo.processInfo.environment["MINIZK_SIM_TRACE"] != nil { cluster.traceSink = { print($0) } }
        cluster.start()
        XCTAssertTrue(cluster.awaitStable(), "no stable leader")
        return cluster
    }

    /// Every running member holds the same tree.
    func assertAgree(_ cluster: Cluster, file: StaticString = #filePath, line: UInt = #line) {
        let up = cluster.upMembers
        let digests = Set(up.map { cluster.replica($0).digest })
        XCTAssertEqual(
            digests.count, 1, "members differ: \(up.map { ($0, String(cluster.replica($0).tree.lastZxid, radix: 16)) })",
            file: file, line: line)
    }

    /// Every path in `paths` is on every running member.
    func assertHeld(_ paths: [String], _ cluster: Cluster, file: StaticString = #filePath, line: UInt = #line) {
        for id in cluster.upMembers {
            for path in paths where cluster.replica(id).tree.node(path) == nil {
                XCTFail("n\(id) lost the acknowledged \(path)", file: file, line: line)
            }
        }
    }

    /// The kinds of sync plans the leader sent to `follower` since trace entry `index`.
    func syncKinds(_ cluster: Cluster, to follower: Int64, since index: Int) -> [String] {
        cluster.trace[index...].compactMap { entry in
            guard entry.to == follower, case .sync(let plan) = entry.message else { return nil }
            switch plan.kind {
            case .diff: return "diff"
            case .trunc: return "trunc"
            case .snap: return "snap"
            }
        }
    }

    // MARK: - ZOOKEEPER-1419

    /// ZOOKEEPER-1419, "Leader election never settles for a 5-node cluster": FastLeaderElection's
    /// vote order looked at the last zxid before the peer epoch, so a server that had accepted a
    /// newer epoch but logged nothing in it, and one with a longer log in the older epoch, each
    /// kept voting for itself or switching back and forth; with five servers whose histories
    /// differed that way, no quorum ever agreed and the ensemble never served (fixed by ordering
    /// votes by epoch, then zxid, then server id).
    ///
    /// Here five members get exactly such histories — two that committed more in the old epoch
    /// and never saw the new one, three that accepted a new epoch with no transaction in it —
    /// then all crash and restart together and one at a time, in many orders. Every time one
    /// leader must emerge, every member serve, and all agree.
    func testZOOKEEPER_1419_ElectionSettlesAcrossDivergedEpochsAndZxids() {
        let orders: [[Int64]] = [
            [1, 2, 3, 4, 5], [5, 4, 3, 2, 1], [1, 3, 5, 2, 4], [2, 4, 1, 5, 3], [3, 1, 4, 5, 2], [4, 5, 1, 2, 3],
            [2, 1, 5, 3, 4], [5, 3, 1, 4, 2],
        ]
        for (index, order) in orders.enumerated() {
            var options = Cluster.Options()
            options.seed = UInt64(index + 1)
            options.peerLatency = LatencyModel(minMs: 1, maxMs: 5)
            let cluster = stableCluster([1, 2, 3, 4, 5], options)
            let first = leader(cluster)
            let writer = client(cluster, first)
            XCTAssertEqual(call(cluster, writer, create("/a")), .ok)
            // Two members fall behind; the others commit more in this epoch.
            let behind = cluster.members.filter { $0 != first }.prefix(2)
            for id in behind { cluster.isolate(id) }
            for n in 0..<3 { XCTAssertEqual(call(cluster, writer, create("/b\(n)")), .ok, "order \(order)") }
            // The leader dies; the two that fell behind come back while two of the others are cut
            // off, so the new epoch is set up by a quorum with members of both kinds. Nothing is
            // written in it.
            cluster.crash(first)
            cluster.heal()
            let ahead = cluster.members.filter { $0 != first && !behind.contains($0) }
            cluster.isolate(ahead[0])
            XCTAssertTrue(cluster.run(untilMs: 5_000) { $0.leaders.count == 1 }, "no leader of the new epoch, order \(order)")
            // Everybody dies before anything else happens; the stores now hold different
            // (accepted epoch, last zxid) pairs.
            cluster.heal()
            for id in cluster.members { cluster.crash(id) }
            let histories = cluster.members.map { id in
                "n\(id): epoch \(cluster.replica(id).hard.acceptedEpoch) zxid \(String(cluster.store(id).lastZxid, radix: 16))"
            }
            if index == 0 {
                // Simultaneous start.
                for id in cluster.members { cluster.restart(id) }
            } else {
                for id in order {
                    cluster.restart(id)
                    cluster.run(forMs: 7 * Int64(index))
                }
            }
            XCTAssertTrue(cluster.awaitStable(limitMs: 15_000), "the election never settled, order \(order): \(histories)")
            XCTAssertEqual(cluster.leaders.count, 1, "order \(order)")
            let again = client(cluster, self.leader(cluster))
            XCTAssertEqual(call(cluster, again, create("/after")), .ok, "order \(order)")
            cluster.run(forMs: 200)
            assertHeld(["/a", "/b0", "/b1", "/b2", "/after"], cluster)
            assertAgree(cluster)
        }
    }

    // MARK: - ZOOKEEPER-1154

    /// ZOOKEEPER-1154, "Data inconsistency when the node(s) with the highest zxid is not present
    /// at the time of leader election": the leader A logged a proposal (74) that its followers
    /// never wrote (its reporter suspended them in a debugger), then every server crashed. B and C
    /// elected a leader without A and went on (80, 81). When A came back it replayed 74 into its
    /// tree, and the new leader, seeing 74 between its oldest and newest committed zxid, sent a
    /// DIFF instead of truncating it: A served a change no other server had.
    ///
    /// Here the followers' disks stall (they cannot write the proposal), the leader logs it
    /// durably, everybody crashes, the followers elect and write, and the old leader returns. It
    /// must drop the proposal: after it rejoins, all three agree and nobody holds it.
    func testZOOKEEPER_1154_AReturningMemberDropsTheProposalOnlyItLogged() {
        let cluster = stableCluster()
        let a = leader(cluster)
        let followers = cluster.members.filter { $0 != a }
        let writer = client(cluster, a)
        XCTAssertEqual(call(cluster, writer, create("/73")), .ok)
        for id in followers { cluster.stallDisk(id, forMs: 1_000) }
        let xid = cluster.send(writer, create("/74"))
        XCTAssertTrue(cluster.run(untilMs: 2_000) { $0.store(a).durableZxid > $0.replica(a).tree.lastZxid }, "the leader never logged /74")
        cluster.run(forMs: 100)
        XCTAssertNil(cluster.reply(writer, xid: xid), "/74 was acknowledged without a quorum")
        for id in cluster.members { cluster.crash(id) }
        // Down until the stalled disks would have come back (a crashed member's disk keeps the
        // order of the writes queued on it).
        cluster.run(forMs: 1_000)
        XCTAssertTrue(followers.allSatisfy { cluster.store(a).lastZxid > cluster.store($0).lastZxid }, "A must hold more than B and C")

        for id in followers { cluster.restart(id) }
        XCTAssertTrue(cluster.awaitStable(), "B and C elected no leader")
        let second = client(cluster, self.leader(cluster))
        XCTAssertEqual(call(cluster, second, create("/80")), .ok)
        XCTAssertEqual(call(cluster, second, create("/81")), .ok)

        cluster.restart(a)
        XCTAssertTrue(cluster.awaitStable(), "A never rejoined")
        cluster.run(forMs: 200)
        for id in cluster.members {
            XCTAssertNil(cluster.replica(id).tree.node("/74"), "n\(id) serves the proposal only the old leader logged")
        }
        assertHeld(["/73", "/80", "/81"], cluster)
        assertAgree(cluster)
        let log = (try? cluster.store(a).transactions(after: 0, limit: 10_000)) ?? []
        for txn in log {
            if case .create(let path, _, _, _) = txn.body, path == "/74" { XCTFail("A's log still holds /74") }
        }
    }

    // MARK: - ZOOKEEPER-2355

    /// ZOOKEEPER-2355, "Ephemeral node is never deleted if follower fails while reading the
    /// proposal packet": a client's session lived on a follower; the follower lost its leader
    /// while the proposal creating the client's ephemeral node was on the wire, rejoined and
    /// synchronized, and when the session later ended the node stayed on that follower forever
    /// (the follower's view of the session's ephemerals missed the node it learned through the
    /// sync).
    ///
    /// Here the leader's link to the follower is cut one way while the create is proposed, the
    /// follower crashes and rejoins by a sync, the client goes away, and its session expires: the
    /// node must be gone from every member.
    func testZOOKEEPER_2355_AnEphemeralLearnedThroughSyncDiesWithItsSession() {
        var options = Cluster.Options()
        // A one-way cut is noticed after 50 ms: the follower's forward still reaches the leader,
        // the proposal back is lost.
        options.detectionDelay = .fixed(50)
        options.configure = { config in config.maxSessionTimeoutMs = 10_000 }
        let cluster = stableCluster([1, 2, 3], options)
        let leader = self.leader(cluster)
        let follower = cluster.members.first { $0 != leader }!
        let owner = client(cluster, follower, timeoutMs: 5_000)
        guard let sessionId = cluster.session(owner)?.sessionId else { return XCTFail("no session") }
        let mark = cluster.trace.count
        cluster.partitionOneWay(from: leader, to: follower)
        let xid = cluster.send(owner, create("/eph", ephemeral: true))
        // The proposal is committed by the leader and the other follower; this follower never
        // reads it.
        let other = cluster.members.first { $0 != leader && $0 != follower }!
        XCTAssertTrue(cluster.run(untilMs: 2_000) { $0.replica(other).tree.node("/eph") != nil }, "the create was not committed")
        XCTAssertNil(cluster.replica(follower).tree.node("/eph"))
        cluster.crash(follower)
        cluster.heal()
        cluster.restart(follower)
        XCTAssertTrue(cluster.awaitStable(), "the follower never rejoined")
        XCTAssertFalse(syncKinds(cluster, to: follower, since: mark).isEmpty, "the follower rejoined without a sync")
        for id in cluster.members {
            XCTAssertNotNil(cluster.replica(id).tree.node("/eph"), "n\(id) lacks the ephemeral while its session lives")
        }
        XCTAssertNil(cluster.reply(owner, xid: xid), "the follower answered a create it never read")
        // The client lost its connection with the follower's crash and is gone for good: its
        // session expires, and its ephemeral must go everywhere.
        XCTAssertTrue(
            cluster.run(untilMs: 15_000) { c in c.members.allSatisfy { c.replica($0).tree.sessions[sessionId] == nil } },
            "the session never expired")
        cluster.run(forMs: 200)
        for id in cluster.members {
            let tree = cluster.replica(id).tree
            XCTAssertNil(tree.node("/eph"), "n\(id) keeps the ephemeral of an expired session")
            for (owner, paths) in tree.ephemerals where tree.sessions[owner] == nil {
                XCTFail("n\(id) holds ephemerals \(paths.sorted()) of the dead session \(owner)")
            }
        }
        assertAgree(cluster)
    }

    // MARK: - ZOOKEEPER-3911

    /// ZOOKEEPER-3911, "Data inconsistency caused by DIFF sync uncommitted log": a leader's DIFF
    /// carries its outstanding, uncommitted proposals; the follower logged them while
    /// synchronizing, restarted before they were committed, and on restart loaded its whole log
    /// into its tree — serving a transaction the ensemble never committed, and keeping it when the
    /// new leader did not have it.
    ///
    /// Here the leader holds a proposal it cannot commit (the other follower's disk stalls); a
    /// member restarts, synchronizes, logs that proposal durably and crashes with the leader
    /// before anything commits it. Restarted alone it must not serve; once the ensemble is back,
    /// every member agrees, whatever the new leader decided about the proposal.
    func testZOOKEEPER_3911_AMemberRestartedDuringSyncServesNoUncommittedTransaction() {
        let cluster = stableCluster()
        let leader = self.leader(cluster)
        let (stalled, restarted) = { () -> (Int64, Int64) in
            let others = cluster.members.filter { $0 != leader }
            return (others[0], others[1])
        }()
        let writer = client(cluster, leader)
        XCTAssertEqual(call(cluster, writer, create("/committed")), .ok)
        cluster.crash(restarted)
        cluster.stallDisk(stalled, forMs: 3_000)
        let xid = cluster.send(writer, create("/pending"))
        XCTAssertTrue(cluster.run(untilMs: 2_000) { $0.store(leader).lastZxid > $0.replica(leader).tree.lastZxid }, "nothing outstanding")
        let pendingZxid = cluster.store(leader).lastZxid
        let mark = cluster.trace.count
        cluster.restart(restarted)
        // The moment its log holds the proposal durably it crashes, and so does the leader: the
        // acknowledgement in flight is lost.
        XCTAssertTrue(cluster.run(untilMs: 3_000) { $0.store(restarted).durableZxid >= pendingZxid }, "the sync never logged /pending")
        XCTAssertEqual(syncKinds(cluster, to: restarted, since: mark).first, "diff")
        cluster.crash(restarted)
        cluster.crash(leader)
        XCTAssertNil(cluster.reply(writer, xid: xid), "/pending was acknowledged")
        cluster.crash(stalled)
        cluster.run(forMs: 3_000)

        cluster.restart(restarted)
        cluster.run(forMs: 2_000)
        XCTAssertFalse(cluster.replica(restarted).isServing, "a member alone serves")
        let reader = cluster.connectClient(to: restarted)
        cluster.run(forMs: 500)
        XCTAssertNil(cluster.session(reader), "a member without a quorum opened a session")

        cluster.restart(stalled)
        XCTAssertTrue(cluster.awaitStable(), "no leader after the restart")
        let second = client(cluster, self.leader(cluster))
        XCTAssertEqual(call(cluster, second, create("/after")), .ok)
        cluster.restart(leader)
        XCTAssertTrue(cluster.awaitStable(), "the old leader never rejoined")
        cluster.run(forMs: 200)
        assertHeld(["/committed", "/after"], cluster)
        let holders = cluster.members.filter { cluster.replica($0).tree.node("/pending") != nil }
        XCTAssertTrue(holders.isEmpty || holders.count == cluster.members.count, "only \(holders) hold /pending")
        assertAgree(cluster)
    }

    // MARK: - ZOOKEEPER-4646 and ZOOKEEPER-4785

    /// The window of ZOOKEEPER-4646 and ZOOKEEPER-4785. A leader holds proposals it could not
    /// commit (its one follower up had a stalled disk, then died); it loses its quorum, and the
    /// other follower, far behind, comes back: the leader wins the election and its sync to that
    /// follower carries the uncommitted proposals. A quorum's acknowledgement of NEWLEADER commits
    /// them, and the leader serves them. The rejoining follower's disk stalls from the moment the
    /// sync is sent; once a client has read the proposals on the leader (committed, then), the
    /// follower crashes (`tearLastWrite`: its last unsynced record torn) and so does the leader.
    /// The two followers restart and elect: every write acknowledged or read must be there, then
    /// on the old leader too. Returns the sync kinds the rejoining follower was sent.
    func crashAfterSync(windowMax: Int, tear: Bool, file: StaticString = #filePath, line: UInt = #line) -> [String] {
        var options = Cluster.Options()
        options.configure = { config in config.logWindowMax = windowMax }
        let cluster = stableCluster([1, 2, 3], options)
        let first = self.leader(cluster)
        let others = cluster.members.filter { $0 != first }
        let (syncing, stalled) = (others[0], others[1])
        let writer = client(cluster, first)
        guard let session = cluster.session(writer) else { return [] }
        var acknowledged: [String] = []
        cluster.crash(syncing)
        for n in 0..<12 {
            if call(cluster, writer, create("/before\(n)")) == .ok { acknowledged.append("/before\(n)") }
        }
        XCTAssertEqual(acknowledged.count, 12, file: file, line: line)
        // The follower that stays up cannot write: the leader's next proposals wait, then that
        // follower dies and the leader is left without a quorum.
        cluster.stallDisk(stalled, forMs: 3_000)
        let outstanding = (0..<5).map { "/outstanding\($0)" }
        let xids = outstanding.map { cluster.send(writer, create($0)) }
        cluster.run(forMs: 100)
        XCTAssertTrue(xids.allSatisfy { cluster.reply(writer, xid: $0)?.0 != .ok }, "committed without a quorum", file: file, line: line)
        cluster.crash(stalled)
        let mark = cluster.trace.count
        cluster.restart(syncing)
        // The disk stalls the moment the leader of the new epoch sends the sync: the snapshot or
        // the DIFF, and the proposals it carries, are written slowly.
        XCTAssertTrue(
            cluster.run(untilMs: 5_000) { !self.syncKinds($0, to: syncing, since: mark).isEmpty }, "no sync", file: file, line: line)
        cluster.stallDisk(syncing, forMs: 300)
        XCTAssertTrue(
            cluster.run(untilMs: 3_000) { $0.leaders == [first] && $0.replica(first).isServing }, "the leader never served again",
            file: file, line: line)
        // A client resumes its session on the leader (no proposal needed) and reads the proposals:
        // what it sees is committed.
        let reader = cluster.connectClient(to: first, sessionId: session.sessionId, password: session.password)
        XCTAssertTrue(cluster.run(untilMs: 1_000) { $0.session(reader) != nil }, "no session", file: file, line: line)
        let reads = outstanding.map { cluster.send(reader, .exists(path: $0, watch: false)) }
        XCTAssertTrue(cluster.run(untilMs: 1_000) { c in reads.allSatisfy { c.reply(reader, xid: $0) != nil } }, file: file, line: line)
        for (path, xid) in zip(outstanding, reads) where cluster.reply(reader, xid: xid)?.0 == .ok { acknowledged.append(path) }
        XCTAssertEqual(acknowledged.count, 12 + outstanding.count, "the new epoch did not commit the proposals", file: file, line: line)
        cluster.crash(syncing, tearLastWrite: tear)
        cluster.crash(first)
        cluster.run(forMs: 3_000)

        cluster.restart(stalled)
        cluster.restart(syncing)
        XCTAssertTrue(cluster.awaitStable(), "the two followers elected no leader", file: file, line: line)
        cluster.run(forMs: 200)
        assertHeld(acknowledged, cluster, file: file, line: line)
        cluster.restart(first)
        XCTAssertTrue(cluster.awaitStable(), "the old leader never rejoined", file: file, line: line)
        cluster.run(forMs: 200)
        assertHeld(acknowledged, cluster, file: file, line: line)
        assertAgree(cluster, file: file, line: line)
        return syncKinds(cluster, to: syncing, since: mark)
    }

    /// ZOOKEEPER-4646, "Committed txns may still be lost if followers crash after replying ACK of
    /// NEWLEADER": after a SNAP sync the follower acknowledged NEWLEADER while the snapshot and
    /// the transactions after it were still being written asynchronously; the leader counted it
    /// in the quorum and committed, the follower crashed before the writes were durable, and once
    /// the leader died too a new leader without those transactions was elected — committed
    /// transactions were gone.
    ///
    /// Here the follower is far behind a small log window, so it gets a SNAP (`crashAfterSync`).
    func testZOOKEEPER_4646_NothingCommittedIsLostWhenAFollowerCrashesAfterASnapSync() {
        let kinds = crashAfterSync(windowMax: 4, tear: false)
        XCTAssertEqual(kinds.first, "snap", "the follower was not sent a snapshot: \(kinds)")
    }

    /// ZOOKEEPER-4785, "Txn loss due to race condition in Learner.syncWithLeader() during DIFF
    /// sync": with a DIFF the follower acknowledged NEWLEADER before the proposals of the sync were
    /// logged (they were handed to the asynchronous log writer); crashing in that window lost
    /// transactions the leader had counted as durable there.
    ///
    /// Here the same schedule (`crashAfterSync`) with a DIFF (the log window holds everything),
    /// and the follower's last unsynced record torn by the crash.
    func testZOOKEEPER_4785_NothingCommittedIsLostWhenAFollowerCrashesMidDiffSync() {
        let kinds = crashAfterSync(windowMax: 20_000, tear: true)
        XCTAssertEqual(kinds.first, "diff", "the follower was not sent a DIFF: \(kinds)")
    }
}
