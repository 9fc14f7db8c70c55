import XCTest
@testable import ZKCore
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

extension RegressionTests {
    /// Found by `minizk sim --seed 1952` (five replicas, a stalled disk): a follower whose disk
    /// stalls while it records the new leader's epoch times out of discovery and starts again
    /// with the same leader. Then (a) it acknowledged the epoch at once (ACKEPOCH), although the
    /// accepted epoch was not durable yet, and (b) when the disk came back, the first round's
    /// pending action sent a second ACKEPOCH. The leader answered that with a second sync plan and
    /// credited the follower's NEWLEADER acknowledgement of the first plan with everything up to
    /// the second plan's end: it committed a proposal only a minority held durably.
    ///
    /// Before the fix: two ACKEPOCHs after the follower's last FOLLOWERINFO, the first sent while
    /// its accepted epoch was still in the volatile tail.
    func testAFollowerAcknowledgesEachDiscoveryOnceAndOnlyWhenTheEpochIsDurable() {
        let cluster = Cluster(members: [1, 2, 3])
        cluster.start()
        XCTAssertTrue(cluster.awaitStable())
        XCTAssertEqual(cluster.leaders, [3])
        // Replica 1 is cut off with a stalled disk while 2 and 3 move to a new epoch.
        cluster.isolate(1)
        cluster.stallDisk(1, forMs: 4_000)
        cluster.crash(3)
        cluster.restart(3)
        XCTAssertTrue(cluster.run(untilMs: 3_000) { $0.leaders == [3] && $0.replica(2).isServing })
        let writer = cluster.connectClient(to: 3)
        XCTAssertTrue(cluster.run(untilMs: 1_000) { $0.session(writer) != nil })
        let mark = cluster.trace.count
        cluster.heal()
        // Replica 1 rejoins: its accepted-epoch write waits for the disk, so discovery times out
        // (init limit) and starts again with the same leader while writes go on.
        for n in 0..<30 {
            cluster.send(writer, .create(CreateRequest(path: "/w\(n)", data: nil, acl: ACL.openUnsafe, flags: 0)))
            cluster.run(forMs: 150)
        }
        XCTAssertTrue(cluster.awaitStable(limitMs: 10_000))
        let fromOne = cluster.trace[mark...].filter { $0.from == 1 && $0.to == 3 }.map(\.message)
        var ackEpochsSinceFollowerInfo = 0
        var followerInfos = 0
        for message in fromOne {
            switch message {
            case .followerInfo:
                followerInfos += 1
                ackEpochsSinceFollowerInfo = 0
            case .ackEpoch:
                ackEpochsSinceFollowerInfo += 1
            default:
                break
            }
        }
        XCTAssertGreaterThan(followerInfos, 1, "the scenario needs replica 1 to start discovery again")
        XCTAssertEqual(ackEpochsSinceFollowerInfo, 1, "replica 1 acknowledged its last discovery \(ackEpochsSinceFollowerInfo) times")
        cluster.run(forMs: 200)
        let digests = Set(cluster.members.map { cluster.replica($0).digest })
        XCTAssertEqual(digests.count, 1)
    }
}

extension RegressionTests {
    /// Found by `minizk sim --seed 2031`: a client of a follower pipelines sync, a read and a
    /// create. The follower forwards the barrier and then the create; the leader proposes the
    /// create after the barrier but, committing both at once, sent COMMIT (covering the create)
    /// before BARRIERDONE. The follower applied the create while the sync still headed the
    /// connection's queue, so the create's reply was dropped (its client waited until it gave
    /// the connection up), and the read behind the sync saw the create sent after it.
    func testAWriteSentAfterASyncIsAppliedAfterTheSyncIsAnswered() {
        var options = Cluster.Options()
        options.fsyncMs = 20
        let cluster = Cluster(members: [1, 2, 3], options: options)
        cluster.start()
        XCTAssertTrue(cluster.awaitStable())
        let leader = cluster.leaders[0]
        let follower = cluster.members.first { $0 != leader }!
        let onLeader = cluster.connectClient(to: leader)
        let onFollower = cluster.connectClient(to: follower)
        XCTAssertTrue(cluster.run(untilMs: 2_000) { $0.session(onLeader) != nil && $0.session(onFollower) != nil })
        // A proposal in flight on the leader, so that the follower's barrier has to wait for it.
        cluster.send(onLeader, .create(CreateRequest(path: "/a", data: nil, acl: ACL.openUnsafe, flags: 0)))
        let syncXid = cluster.send(onFollower, .sync(path: "/b"))
        let readXid = cluster.send(onFollower, .exists(path: "/b", watch: false))
        let createXid = cluster.send(onFollower, .create(CreateRequest(path: "/b", data: nil, acl: ACL.openUnsafe, flags: 0)))
        cluster.run(forMs: 2_000)
        XCTAssertEqual(cluster.reply(onFollower, xid: syncXid)?.0, .ok)
        XCTAssertEqual(cluster.reply(onFollower, xid: readXid)?.0, .noNode, "the read sent before the create saw it")
        XCTAssertEqual(cluster.reply(onFollower, xid: createXid)?.0, .ok, "the create sent after the sync was never answered")
    }
}

extension RegressionTests {
    /// Found by `minizk sim --seed 328` (five replicas): two replicas looked for a leader forever
    /// while three others served. The leader and one follower answered with one vote, a follower
    /// that had joined in an earlier round with another (same leader, older zxid); the lookers
    /// required a quorum of identical votes, so they never joined. Out of election only the
    /// leader counts.
    func testALookerJoinsAnEstablishedLeaderWhoseFollowersJoinedAtDifferentTimes() {
        var election = LeaderElection(
            me: 1, voterSets: [[1, 2, 3, 4, 5]], round: 4, vote: Vote(leader: 3, zxid: 0x3_0000_000A, epoch: 3), nowMs: 0,
            finalizeWaitMs: 50, resendMinMs: 50, resendMaxMs: 2000)
        _ = election.start(nowMs: 0)
        let current = Vote(leader: 4, zxid: 0x3_0000_000A, epoch: 3)
        var decision = election.receive(from: 4, Notification(vote: current, round: 4, state: .leading), nowMs: 1).decision
        XCTAssertNil(decision)
        decision = election.receive(from: 2, Notification(vote: current, round: 4, state: .following), nowMs: 2).decision
        XCTAssertNil(decision)
        let older = Vote(leader: 4, zxid: 0x2_0000_0011, epoch: 2)
        decision = election.receive(from: 5, Notification(vote: older, round: 3, state: .following), nowMs: 3).decision
        XCTAssertEqual(decision?.leader, 4, "three of five follow or lead replica 4, which says it leads")
    }
}

extension RegressionTests {
    /// Found by `minizk sim --seed 2982` (a standalone replica, a stalled disk): a leader whose
    /// epoch writes were slow gave up (init limit) and led again with a new epoch; when the disk
    /// came back, the first leadership's "epoch is current" action established the second one
    /// before it had even started synchronising: with an empty committed history, so the
    /// sessions of the log were never tracked and never expired.
    func testALeadershipIsNotEstablishedByTheDurableWritesOfAnEarlierOne() {
        let cluster = Cluster(members: [1])
        cluster.start()
        XCTAssertTrue(cluster.awaitStable())
        let client = cluster.connectClient(to: 1, timeoutMs: 400)
        XCTAssertTrue(cluster.run(untilMs: 1_000) { $0.session(client) != nil })
        let sessionId = cluster.session(client)!.sessionId
        cluster.crash(1)
        cluster.restart(1)
        // The restarted replica's first epoch write completes after 500 ms; its second (the
        // epoch becomes current) waits for the disk beyond the init limit (1 s), so it leads
        // again, with a new epoch, before the second write of its first leadership completes.
        cluster.stallDisk(1, forMs: 500)
        cluster.run(forMs: 499)
        cluster.stallDisk(1, forMs: 2_600)
        cluster.run(forMs: 6_000)
        XCTAssertTrue(cluster.replica(1).isLeader)
        XCTAssertNil(cluster.replica(1).tree.sessions[sessionId], "the silent client's session never expired")
    }
}

extension RegressionTests {
    /// Found by `minizk sim --seed 2180` (five replicas): a leader that gave up for a follower
    /// with a newer history looked again, and the notifications of replicas still following it
    /// from the previous round made it lead again at once; with the same follower it gave up
    /// again, and so on: epochs climbed past 100 and nobody served. A replica is elected by
    /// itself only with votes of its current round.
    func testALookerIsNotReelectedByFollowersOfItsPreviousRound() {
        var election = LeaderElection(
            me: 5, voterSets: [[1, 2, 3, 4, 5]], round: 13, vote: Vote(leader: 5, zxid: 0xA_0000_0050, epoch: 10), nowMs: 0,
            finalizeWaitMs: 50, resendMinMs: 50, resendMaxMs: 2000)
        _ = election.start(nowMs: 0)
        let previous = Vote(leader: 5, zxid: 0xA_0000_0050, epoch: 10)
        for peer in [2, 3, 4] as [Int64] {
            let step = election.receive(from: peer, Notification(vote: previous, round: 12, state: .following), nowMs: peer)
            XCTAssertNil(step.decision, "followers of round 12 elected replica 5 in round 13")
        }
    }
}

extension RegressionTests {
    /// Found by `minizk sim --seed 3152` (five replicas): a follower started its discovery again
    /// on a live link, so the leader's answers to the earlier discovery (a LEADERINFO, a sync
    /// plan) arrived in the new one and were taken for its own. The leader had meanwhile sent a
    /// second plan, up to a newer proposal, and credited the follower's NEWLEADER
    /// acknowledgement (of the first plan) with the second plan's end: it committed a proposal
    /// only a minority held durably. A NEWLEADER acknowledgement now counts the follower in, and
    /// only its cumulative ACK, which names what it holds durably, counts for commits.
    func testANewLeaderAcknowledgementIsNotCreditedWithALaterSyncPlan() {
        var config = ReplicaConfig()
        config.serverId = 3
        config.members = [1, 2, 3]
        config.tickMs = 100
        var replica = Replica(config: config, startTimeMs: 1_000_000, secret: 7)
        var nowMs: Int64 = 1_000_000
        var logged: Zxid = 0
        func step(_ input: ReplicaInput) {
            var ready = replica.step(input, nowMs: nowMs)
            while ready.storageSequence > 0 {
                logged = ready.persist.last?.zxid ?? logged
                ready = replica.step(.persisted(upTo: logged, through: ready.storageSequence), nowMs: nowMs)
            }
        }
        step(.tick)
        step(.peerConnected(1))
        step(.peerConnected(2))
        for peer in [1, 2] as [Int64] {
            step(.peerMessage(from: peer, .notification(Notification(vote: Vote(leader: 3, zxid: 0, epoch: 0), round: 1, state: .looking))))
        }
        // Replica 1 follows and synchronises: the leader is established with it.
        step(.peerMessage(from: 1, .followerInfo(acceptedEpoch: 0, lastZxid: 0)))
        step(.peerMessage(from: 1, .ackEpoch(currentEpoch: 0, lastZxid: 0)))
        step(.peerMessage(from: 1, .ackNewLeader(epoch: 1)))
        XCTAssertTrue(replica.isLeader)
        // Replica 2's first discovery gets a plan up to nothing yet.
        step(.peerMessage(from: 2, .followerInfo(acceptedEpoch: 0, lastZxid: 0)))
        step(.peerMessage(from: 2, .ackEpoch(currentEpoch: 0, lastZxid: 0)))
        // A client's session is proposed; replica 1 does not acknowledge it (yet).
        step(.connectionOpened(1, peerAddress: "10.0.0.1", peerPort: 1))
        step(.connect(1, ConnectRequest(timeoutMs: 4000)))
        nowMs += 1
        let proposal = logged
        XCTAssertGreaterThan(proposal, 0)
        // Replica 2 starts its discovery again; its second plan reaches the proposal. Then the
        // acknowledgement of its first plan arrives.
        step(.peerMessage(from: 2, .followerInfo(acceptedEpoch: 1, lastZxid: 0)))
        step(.peerMessage(from: 2, .ackEpoch(currentEpoch: 1, lastZxid: 0)))
        step(.peerMessage(from: 2, .ackNewLeader(epoch: 1)))
        XCTAssertLessThan(replica.tree.lastZxid, proposal, "committed with only the leader holding it")
        // Replica 2's cumulative acknowledgement of the proposal commits it.
        step(.peerMessage(from: 2, .ack(proposal)))
        XCTAssertEqual(replica.tree.lastZxid, proposal)
    }
}

extension RegressionTests {
    /// Found by `minizk sim --seed 261 --reconfig-ms 400`: a reconfiguration (server 3 from
    /// observer to participant) was logged by replicas 2 and 3 but not 1. Replica 1, whose voters
    /// were {1, 2}, elected 2; replica 2, counting {1, 2, 3}, elected 3; replica 3 could not
    /// establish itself without a quorum of {1, 2} as well, and the three went round for ever.
    /// Election now needs a quorum of every configuration that may be in force, as establishing
    /// does: 2 and 3 cannot elect 3 without 1.
    func testElectionNeedsAQuorumOfEveryConfigurationThatMayBeInForce() {
        var election = LeaderElection(
            me: 2, voterSets: [[1, 2], [1, 2, 3]], round: 1, vote: Vote(leader: 2, zxid: 0x4_0000_000F, epoch: 4), nowMs: 0,
            finalizeWaitMs: 0, resendMinMs: 50, resendMaxMs: 2000)
        XCTAssertNil(election.start(nowMs: 0).decision)
        let best = Vote(leader: 3, zxid: 0x4_0000_000F, epoch: 4)
        XCTAssertNil(election.receive(from: 3, Notification(vote: best, round: 1, state: .looking), nowMs: 1).decision,
                     "2 and 3 are a quorum of {1, 2, 3} but not of {1, 2}")
        let step = election.receive(from: 1, Notification(vote: best, round: 1, state: .looking), nowMs: 2)
        XCTAssertEqual(step.decision, best)
    }

    /// Found by `minizk sim --seed 1362 --reconfig-ms 300` (five replicas): replica 1 missed the
    /// reconfigurations that made 4 a voter again; it heard 2, 3 and 5 follow 4 but never spoke
    /// to 4, whose claim to lead it needed. It now asks a leader it does not know directly, and
    /// counts its claim.
    /// Found by `minizk sim --seed 2704 --reconfig-ms 300` (five replicas, server 5 joined later):
    /// replica 2 restarted with reconfigurations in its log that made it one of two voters; the
    /// others followed 5, and 2 could never count a quorum of {1, 2} following 5 without itself;
    /// it asked 5 once, and 5's answer came before 2 had looked long enough to follow any leader.
    /// A looker now asks an unknown leader every time its voters name it, so that after
    /// `staleViewAfterMs` it joins.
    func testALookerKeepsAskingAnUnknownLeaderAndJoinsItOnceItsViewIsStale() {
        var election = LeaderElection(
            me: 2, voterSets: [[1, 2, 3, 4], [1, 2]], round: 8, vote: Vote(leader: 2, zxid: 0x2_0000_003B, epoch: 2), nowMs: 0,
            finalizeWaitMs: 50, resendMinMs: 50, resendMaxMs: 2000)
        _ = election.start(nowMs: 0)
        let leader = Vote(leader: 5, zxid: 0x4_0000_004B, epoch: 5)
        for peer in [1, 3, 4] as [Int64] {
            let step = election.receive(from: peer, Notification(vote: leader, round: 7, state: .following), nowMs: peer)
            XCTAssertTrue(step.replies.contains { $0.to == 5 }, "server 5 is asked every time")
        }
        XCTAssertNil(election.receive(from: 5, Notification(vote: leader, round: 7, state: .leading), nowMs: 10).decision,
                     "one of {1, 2} follows 5: no quorum of the voters it knows")
        XCTAssertTrue(election.receive(from: 1, Notification(vote: leader, round: 7, state: .following), nowMs: 3_990).replies.contains { $0.to == 5 })
        let step = election.receive(from: 5, Notification(vote: leader, round: 7, state: .leading), nowMs: 4_000)
        XCTAssertEqual(step.decision, leader)
    }

    func testAReplicaWithAStaleConfigurationAsksTheLeaderItsVotersFollow() {
        var election = LeaderElection(
            me: 1, voterSets: [[2, 3, 5]], round: 5, vote: Vote(leader: 1, zxid: 0, epoch: -1), nowMs: 0,
            finalizeWaitMs: 50, resendMinMs: 50, resendMaxMs: 2000)
        _ = election.start(nowMs: 0)
        let leader = Vote(leader: 4, zxid: 0x4_0000_00CB, epoch: 4)
        var asked = false
        for peer in [2, 3, 5] as [Int64] {
            let step = election.receive(from: peer, Notification(vote: leader, round: 5, state: .following), nowMs: peer)
            XCTAssertNil(step.decision, "followers alone do not make a leader")
            asked = asked || step.replies.contains { $0.to == 4 }
        }
        XCTAssertTrue(asked, "the replica did not ask server 4")
        let step = election.receive(from: 4, Notification(vote: leader, round: 5, state: .leading), nowMs: 10)
        XCTAssertEqual(step.decision, leader)
    }
}
