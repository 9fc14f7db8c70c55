import Foundation
import NIOCore
import NIOPosix
import XCTest
import ZKCore
import ZKProtocol
import ZKServer
import ZKTesting

/// Every operation of `TestEnsemble`, with real client connections on the raw protocol.
final class TestEnsembleTests: XCTestCase {
    private func connect(_ zk: TestEnsemble, _ id: Int64, timeoutMs: Int32 = 30_000) async throws -> TestClient {
        try await TestClient.connect(port: zk.member(id).port, group: zk.eventLoopGroup, timeoutMs: timeoutMs)
    }

    func testStandaloneServesClientsOnASystemChosenPort() async throws {
        try await withTestEnsemble(members: 1) { zk in
            XCTAssertEqual(zk.members.count, 1)
            XCTAssertNotEqual(zk.member(1).port, 0)
            XCTAssertEqual(zk.connectString, "127.0.0.1:\(zk.member(1).port)")
            let leader = try await zk.leader()
            XCTAssertEqual(leader?.id, 1)
            let client = try await connect(zk, 1)
            try await client.create("/a", data: Array("hello".utf8))
            let read = try await client.get("/a")
            XCTAssertEqual(read.map { String(decoding: $0.data, as: UTF8.self) }, "hello")
            let status = try await zk.status()
            XCTAssertEqual(status.map(\.mode), ["standalone"])
            XCTAssertEqual(status.first?.connections, 1)
            try await client.close()
        }
    }

    func testThreeMembersElectOneLeaderAndReplicate() async throws {
        try await withTestEnsemble(members: 3) { zk in
            let modes = try await zk.status().map(\.mode).sorted()
            XCTAssertEqual(modes, ["follower", "follower", "leader"])
            XCTAssertEqual(Set(zk.members.map(\.port)).count, 3)
            let writer = try await connect(zk, 1)
            try await writer.create("/replicated", data: [1, 2, 3])
            for member in zk.members {
                let reader = try await connect(zk, member.id)
                try await reader.ok(.sync(path: "/"))
                let read = try await reader.get("/replicated")
                XCTAssertEqual(read?.data, [1, 2, 3], "member \(member.id)")
                try await reader.close()
            }
            // /zookeeper/config names the real client ports, from which clients may rewrite
            // their connect strings.
            let config = try await writer.get("/zookeeper/config")
            let text = String(decoding: config?.data ?? [], as: UTF8.self)
            for member in zk.members { XCTAssertTrue(text.contains(";127.0.0.1:\(member.port)"), text) }
            try await writer.close()
        }
    }

    func testKillAndRestartKeepThePortAndTheData() async throws {
        for storage in [TestEnsemble.Storage.inMemory, .temporaryDirectory] {
            try await withTestEnsemble(members: 3, storage: storage, clock: .manual) { zk in
                let leader = try await zk.leader()!
                let follower = zk.members.first { $0.id != leader.id }!
                let client = try await connect(zk, leader.id)
                try await client.create("/before")
                try await zk.kill(follower.id)
                let killed = try await zk.status().first { $0.id == follower.id }!
                XCTAssertFalse(killed.running)
                do {
                    _ = try await connect(zk, follower.id)
                    XCTFail("a killed member accepted a connection")
                } catch {}
                // Two of three still serve writes.
                try await client.create("/while-down")
                try await zk.restart(follower.id)
                try await zk.awaitReady()
                XCTAssertEqual(zk.member(follower.id).port, follower.port)
                let reader = try await connect(zk, follower.id)
                try await reader.ok(.sync(path: "/"))
                let value1 = try await reader.exists("/before")
                XCTAssertNotNil(value1, "\(storage)")
                let value2 = try await reader.exists("/while-down")
                XCTAssertNotNil(value2, "\(storage)")
                try await reader.close()
                try await client.close()
            }
        }
    }

    func testStopAndStartBringEveryMemberBackWithItsData() async throws {
        try await withTestEnsemble(members: 3, storage: .temporaryDirectory) { zk in
            let client = try await connect(zk, 2)
            try await client.create("/kept", data: Array("v".utf8))
            try await client.close()
            let ports = zk.members.map(\.port)
            try await zk.stop()
            let value3 = try await zk.status().filter(\.running).count
            XCTAssertEqual(value3, 0)
            let leaderWhileStopped = try await zk.leader()
            XCTAssertNil(leaderWhileStopped)
            try await zk.start()
            XCTAssertEqual(zk.members.map(\.port), ports)
            let value4 = try await zk.dump()
            XCTAssertEqual(value4, ["/kept": "v"])
        }
    }

    func testKillLeaderFailsOverToAnotherMember() async throws {
        try await withTestEnsemble(members: 3, tickMs: 200) { zk in
            let client = try await connect(zk, 1)
            try await client.create("/committed")
            try await client.close()
            let old = try await zk.killLeader()
            try await zk.awaitReady()
            let new = try await zk.leader()
            XCTAssertNotNil(new)
            XCTAssertNotEqual(new?.id, old.id)
            let writer = try await connect(zk, new!.id)
            let value5 = try await writer.exists("/committed")
            XCTAssertNotNil(value5)
            try await writer.create("/after-failover")
            try await writer.close()
            try await zk.restart(old.id)
            try await zk.awaitReady()
            let rejoined = try await connect(zk, old.id)
            try await rejoined.ok(.sync(path: "/"))
            let value6 = try await rejoined.exists("/after-failover")
            XCTAssertNotNil(value6)
            try await rejoined.close()
        }
    }

    func testManualClockExpiresASessionExactlyAtItsDeadline() async throws {
        for members in [1, 3] {
            try await withTestEnsemble(members: members, clock: .manual, tickMs: 1000) { zk in
                let tick: Int64 = 1000
                let timeout: Int64 = 4000
                let leader = try await zk.leader()!
                let client = try await connect(zk, leader.id, timeoutMs: Int32(timeout))
                XCTAssertEqual(Int64(client.sessionTimeoutMs), timeout)
                try await client.create("/owned", ephemeral: true)
                let start = zk.nowMs
                // Expiry is bucketed on tick boundaries: the deadline is the first boundary after
                // start + timeout (start + timeout + tick when start is on a boundary).
                let deadline = try await zk.sessions().first { $0.id == client.sessionId }!.expiresAtMs
                XCTAssertEqual(deadline, (start + timeout) / tick * tick + tick)
                XCTAssertTrue(deadline > start + timeout && deadline <= start + timeout + tick)
                try await zk.advance(by: deadline - start - 1)
                let value7 = try await zk.sessions().contains { $0.id == client.sessionId }
                XCTAssertTrue(value7, "expired early (\(members) members)")
                let value8 = try await client.isClosed()
                XCTAssertFalse(value8)
                try await zk.advance(by: 1)
                let value9 = try await zk.sessions().contains { $0.id == client.sessionId }
                XCTAssertFalse(value9, "not expired (\(members) members)")
                try await client.waitUntilClosed()
                let observer = try await connect(zk, leader.id)
                let value10 = try await observer.exists("/owned")
                XCTAssertNil(value10)
                do {
                    _ = try await TestClient.connect(
                        port: leader.port, group: zk.eventLoopGroup, sessionId: client.sessionId, password: client.password)
                    XCTFail("resumed an expired session")
                } catch TestClientError.sessionExpired {}
                try await observer.close()
            }
        }
    }

    func testManualClockStandsStillInRealTime() async throws {
        try await withTestEnsemble(members: 3, clock: .manual, tickMs: 50) { zk in
            let leader = try await zk.leader()!
            let client = try await connect(zk, leader.id, timeoutMs: 100)
            let before = zk.nowMs
            // Ten times the session's timeout in real time: nothing expires, no one re-elects.
            try await Task.sleep(nanoseconds: 1_000_000_000)
            XCTAssertEqual(zk.nowMs, before)
            let value11 = try await zk.sessions().contains { $0.id == client.sessionId }
            XCTAssertTrue(value11)
            let value12 = try await zk.leader()?.id
            XCTAssertEqual(value12, leader.id)
            let value13 = try await client.isClosed()
            XCTAssertFalse(value13)
            try await client.close()
        }
    }

    func testPartitionOfTheLeadersSideElectsOnTheMajoritySide() async throws {
        try await withTestEnsemble(members: 3, clock: .manual) { zk in
            let old = try await zk.leader()!
            let others = zk.members.map(\.id).filter { $0 != old.id }
            await zk.partition([[old.id], others])
            try await zk.awaitReady()
            let new = try await zk.leader()!
            XCTAssertTrue(others.contains(new.id))
            // The old leader hears from no follower for syncLimit (5) ticks and steps down.
            try await zk.advance(by: 6 * zk.config.tickMs)
            let status = try await zk.status()
            XCTAssertFalse(status.first { $0.id == old.id }!.serving, "the minority side still serves")
            // The old leader's side refuses sessions; the majority's side takes writes.
            let writer = try await connect(zk, new.id)
            try await writer.create("/majority")
            try await writer.close()
            await zk.heal()
            try await zk.awaitReady()
            let modes = try await zk.status().map(\.mode).sorted()
            XCTAssertEqual(modes, ["follower", "follower", "leader"])
            let rejoined = try await connect(zk, old.id)
            try await rejoined.ok(.sync(path: "/"))
            let value14 = try await rejoined.exists("/majority")
            XCTAssertNotNil(value14)
            try await rejoined.close()
        }
    }

    func testIsolatedFollowerCatchesUpAfterHeal() async throws {
        try await withTestEnsemble(members: 3, clock: .manual) { zk in
            let leader = try await zk.leader()!
            let follower = zk.members.first { $0.id != leader.id }!
            await zk.isolate(follower.id)
            try await zk.awaitReady()
            let value15 = try await zk.leader()?.id
            XCTAssertEqual(value15, leader.id)
            let isolated = try await zk.status().first { $0.id == follower.id }!
            XCTAssertFalse(isolated.serving)
            let writer = try await connect(zk, leader.id)
            try await writer.create("/while-isolated")
            try await writer.close()
            await zk.heal()
            try await zk.awaitReady()
            let reader = try await connect(zk, follower.id)
            let value16 = try await reader.exists("/while-isolated")
            XCTAssertNotNil(value16)
            try await reader.close()
        }
    }

    func testPausedMemberReadsNothingUntilResumed() async throws {
        try await withTestEnsemble(members: 3) { zk in
            let leader = try await zk.leader()!
            let follower = zk.members.first { $0.id != leader.id }!
            let client = try await connect(zk, follower.id)
            try await zk.pause(follower.id)
            let value17 = try await zk.status().first { $0.id == follower.id }!.paused
            XCTAssertTrue(value17)
            // A request to the paused member stays unanswered ...
            let pending = Task { try await client.ok(.exists(path: "/", watch: false)) }
            try await Task.sleep(nanoseconds: 300_000_000)
            let value18 = try await client.isClosed()
            XCTAssertFalse(value18)
            // ... while the other two still commit writes.
            let writer = try await connect(zk, leader.id)
            try await writer.create("/during-pause")
            try await writer.close()
            try await zk.resume(follower.id)
            _ = try await pending.value
            try await client.ok(.sync(path: "/"))
            let value19 = try await client.exists("/during-pause")
            XCTAssertNotNil(value19)
            try await client.close()
        }
    }

    func testPausedLeaderIsReplacedOnTheManualClock() async throws {
        try await withTestEnsemble(members: 3, clock: .manual, tickMs: 100) { zk in
            let old = try await zk.leader()!
            try await zk.pause(old.id)
            // Followers give up on a silent leader after syncLimit (5) ticks.
            try await zk.advance(by: 6 * 100)
            try await zk.awaitReady()
            let new = try await zk.leader()!
            XCTAssertNotEqual(new.id, old.id)
            try await zk.resume(old.id)
            try await zk.advance(by: 10 * 100)
            try await zk.awaitReady()
            let modes = try await zk.status().map(\.mode).sorted()
            XCTAssertEqual(modes, ["follower", "follower", "leader"])
        }
    }

    func testDropConnectionsKeepsTheSession() async throws {
        try await withTestEnsemble(members: 3) { zk in
            let client = try await connect(zk, 2)
            try await client.create("/eph", ephemeral: true)
            let where_ = try await zk.member(connectedTo: client.sessionId)
            XCTAssertEqual(where_?.id, 2)
            let closed = try await zk.dropConnections(of: 2)
            XCTAssertEqual(closed, 1)
            try await client.waitUntilClosed()
            let resumed = try await TestClient.connect(
                port: zk.member(3).port, group: zk.eventLoopGroup, sessionId: client.sessionId, password: client.password)
            XCTAssertEqual(resumed.sessionId, client.sessionId)
            let value20 = try await resumed.exists("/eph")
            XCTAssertNotNil(value20)
            // Dropping only one session's connection leaves the others.
            let other = try await connect(zk, 3)
            let value21 = try await zk.dropConnections(ofSession: resumed.sessionId)
            XCTAssertEqual(value21, 1)
            try await resumed.waitUntilClosed()
            let value22 = try await other.isClosed()
            XCTAssertFalse(value22)
            try await other.close()
        }
    }

    func testExpireSessionGoesThroughTheLog() async throws {
        try await withTestEnsemble(members: 3) { zk in
            let leader = try await zk.leader()!
            let followerId = zk.members.first { $0.id != leader.id }!.id
            let client = try await connect(zk, followerId)
            try await client.create("/eph", ephemeral: true)
            let value23 = try await zk.sessions().first { $0.id == client.sessionId }?.ephemerals
            XCTAssertEqual(value23, ["/eph"])
            try await zk.expireSession(client.sessionId)
            try await client.waitUntilClosed()
            let value24 = try await zk.sessions().contains { $0.id == client.sessionId }
            XCTAssertFalse(value24)
            // Every member applied the close: the ephemeral is gone everywhere.
            for member in zk.members {
                let reader = try await connect(zk, member.id)
                try await reader.ok(.sync(path: "/"))
                let value25 = try await reader.exists("/eph")
                XCTAssertNil(value25, "member \(member.id)")
                try await reader.close()
            }
            do {
                _ = try await TestClient.connect(
                    port: zk.member(followerId).port, group: zk.eventLoopGroup, sessionId: client.sessionId,
                    password: client.password)
                XCTFail("resumed an expired session")
            } catch TestClientError.sessionExpired {}
            do {
                try await zk.expireSession(client.sessionId)
                XCTFail("expired an unknown session")
            } catch TestEnsembleError.unknownSession {}
        }
    }

    func testCloseSessionGoesThroughTheLog() async throws {
        try await withTestEnsemble(members: 3, clock: .manual) { zk in
            let client = try await connect(zk, 3)
            try await client.create("/eph", ephemeral: true)
            try await zk.closeSession(client.sessionId)
            try await client.waitUntilClosed()
            let value26 = try await zk.sessions().contains { $0.id == client.sessionId }
            XCTAssertFalse(value26)
            let value27 = try await zk.dump()
            XCTAssertEqual(value27, [:])
        }
    }

    func testResetEmptiesTreeAndSessionsLoadAndDumpRoundTrip() async throws {
        try await withTestEnsemble(members: 3, clock: .manual) { zk in
            try await zk.load(tree: ["/app/config": "a=1", "/app/nodes/n1": "", "/other": "x"])
            let loaded = try await zk.dump()
            XCTAssertEqual(
                loaded,
                ["/app": "", "/app/config": "a=1", "/app/nodes": "", "/app/nodes/n1": "", "/other": "x"])
            // Loading again overwrites data and adds nodes.
            try await zk.load(tree: ["/other": "y", "/more": "z"])
            let value28 = try await zk.dump()["/other"]
            XCTAssertEqual(value28, "y")
            // A node only its creator may touch, and an ephemeral.
            let client = try await connect(zk, 1)
            try await client.addAuth(scheme: "digest", "alice:secret")
            try await client.create("/private", acl: ACL.creatorAll)
            try await client.create("/private/child", acl: ACL.creatorAll)
            try await client.create("/eph", ephemeral: true)
            let value29 = try await zk.sessions().count
            XCTAssertEqual(value29, 1)
            try await zk.reset()
            let value30 = try await zk.dump()
            XCTAssertEqual(value30, [:])
            let value31 = try await zk.sessions().count
            XCTAssertEqual(value31, 0)
            try await client.waitUntilClosed()
            // /zookeeper survives.
            let reader = try await connect(zk, 2)
            let value32 = try await reader.exists("/zookeeper/config")
            XCTAssertNotNil(value32)
            try await reader.close()
        }
    }

    func testLoadFromAJSONFile() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("zktesting-tree-\(UUID().uuidString).json")
        try Data(#"{"/a/b": "1", "/c": "2"}"#.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        try await withTestEnsemble(members: 1) { zk in
            try await zk.load(treeFile: file.path)
            let value33 = try await zk.dump()
            XCTAssertEqual(value33, ["/a": "", "/a/b": "1", "/c": "2"])
        }
    }

    func testEnsemblesInParallelGetDistinctPorts() async throws {
        let ports = try await withThrowingTaskGroup(of: [Int].self) { group in
            for index in 0..<4 {
                group.addTask {
                    try await withTestEnsemble(members: 3, clock: .manual) { zk in
                        let client = try await TestClient.connect(port: zk.member(1).port, group: zk.eventLoopGroup)
                        try await client.create("/ensemble-\(index)")
                        let value34 = try await zk.dump().keys
                        XCTAssertEqual(Array(value34), ["/ensemble-\(index)"])
                        try await client.close()
                        return zk.members.map(\.port)
                    }
                }
            }
            var all: [Int] = []
            for try await ports in group { all += ports }
            return all
        }
        XCTAssertEqual(ports.count, 12)
        XCTAssertEqual(Set(ports).count, 12, "two ensembles shared a port: \(ports.sorted())")
    }

    func testScopedHelperTearsDownWhenTheBodyThrows() async throws {
        struct Boom: Error {}
        var seen: [Int] = []
        do {
            try await withTestEnsemble(members: 3) { zk in
                seen = zk.members.map(\.port)
                throw Boom()
            }
            XCTFail("the error did not propagate")
        } catch is Boom {}
        XCTAssertEqual(seen.count, 3)
        // Every port was released: binding it again succeeds.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        for port in seen {
            let channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .bind(host: "127.0.0.1", port: port).get()
            try await channel.close()
        }
        try await group.shutdownGracefully()
    }

    func testFiveMembersSurviveTwoFailures() async throws {
        try await withTestEnsemble(members: 5, clock: .manual) { zk in
            let value35 = try await zk.status().map(\.mode).filter { $0 == "follower" }.count
            XCTAssertEqual(value35, 4)
            let leader = try await zk.killLeader()
            let another = zk.members.first { $0.id != leader.id }!
            try await zk.kill(another.id)
            try await zk.awaitReady()
            let new = try await zk.leader()!
            let client = try await connect(zk, new.id)
            try await client.create("/three-of-five")
            try await client.close()
        }
    }

    func testAdvanceNeedsTheManualClock() async throws {
        try await withTestEnsemble(members: 1) { zk in
            do {
                try await zk.advance(by: 1000)
                XCTFail("advanced a wall clock")
            } catch TestEnsembleError.notManual {}
        }
    }
}
