import Foundation
import XCTest
import ZKClient
import ZKRecipes
import ZKRecipesCore
import ZKTesting

struct StateNotReached: Error {
    var what = ""
}

/// ZKTesting as a project uses it: the Swift client and recipes against a `TestEnsemble`, with
/// faults on call and the manual clock, each test written the natural way.
final class ClientOnTestEnsembleTests: XCTestCase {
    func connect(_ zk: TestEnsemble, timeout: Duration = .seconds(4)) async throws -> ZooKeeperClient {
        var configuration = ZooKeeperClient.Configuration(connectString: zk.connectString, sessionTimeout: timeout)
        configuration.initialConnectTimeout = .seconds(20)
        configuration.reconnectDelay = .milliseconds(20)
        return try await ZooKeeperClient.connect(configuration: configuration)
    }

    /// Runs `body` with a bound that only turns a hang into a failure (nothing is timed).
    func bounded<T: Sendable>(_ what: String = "", _ body: @escaping @Sendable () async throws -> T?) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: .seconds(30))
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            guard let first else { throw StateNotReached(what: what) }
            return first
        }
    }

    /// A task that ends with the first state satisfying `condition` (subscribed now, so a change
    /// that comes before the wait is not missed).
    func expectState(_ client: ZooKeeperClient, _ condition: @escaping @Sendable (ConnectionState) -> Bool) -> Task<ConnectionState?, Never> {
        let states = client.states
        return Task {
            for await state in states where condition(state) { return state }
            return nil
        }
    }

    /// Waits for `expectation`, cancelling it after 30 s (awaiting a task's value does not end
    /// when the waiter is cancelled, so the bound cancels the task itself).
    func awaitState(_ expectation: Task<ConnectionState?, Never>) async throws -> ConnectionState {
        let bound = Task {
            try await Task.sleep(for: .seconds(30))
            expectation.cancel()
        }
        defer { bound.cancel() }
        guard let state = await expectation.value else { throw StateNotReached(what: "the state") }
        return state
    }

    /// A process holding an ephemeral dies without closing its session (a raw connection that
    /// says nothing more stands for it); a ZKClient watching the node sees it go exactly when the
    /// manual clock reaches the session's deadline, and not a tick before.
    func testAnEphemeralGoesExactlyWhenTheManualClockExpiresItsOwner() async throws {
        try await withTestEnsemble(members: 3, clock: .manual, tickMs: 500) { zk in
            let leader = try await zk.leader()!
            let owner = try await TestClient.connect(port: leader.port, group: zk.eventLoopGroup, timeoutMs: 4_000)
            try await owner.create("/owned", ephemeral: true)
            let watcher = try await self.connect(zk, timeout: .seconds(30))
            let (_, watch) = try await watcher.exists("/owned", watch: true)
            // Real time passes; the ensemble's time does not: the session lives.
            try await Task.sleep(for: .milliseconds(300))
            let deadline = try await zk.sessions().first { $0.id == owner.sessionId }!.expiresAtMs
            try await zk.advance(by: deadline - zk.nowMs - 1)
            let still = try await watcher.exists("/owned")
            XCTAssertNotNil(still, "expired before its deadline")
            XCTAssertNil(watch!.triggered)
            try await zk.advance(by: 1)
            let event = try await self.bounded("the watch event") { try await watch!.event() }
            XCTAssertEqual(event, WatchEvent(type: .nodeDeleted, path: "/owned"))
            let gone = try await watcher.exists("/owned")
            XCTAssertNil(gone)
            await watcher.close()
        }
    }

    /// The ensemble expires a ZKClient's session (`expireSession`, done by the servers through
    /// the log): the client hears `expired` and its ephemeral is gone for everyone.
    func testAClientHearsThatTheEnsembleExpiredItsSession() async throws {
        try await withTestEnsemble(members: 3, clock: .manual, tickMs: 500) { zk in
            let client = try await self.connect(zk, timeout: .seconds(4))
            try await client.create("/mine", mode: .ephemeral)
            let expired = self.expectState(client) { $0 == .expired }
            try await zk.expireSession(client.sessionId)
            let state = try await self.awaitState(expired)
            XCTAssertEqual(state, .expired)
            let observer = try await self.connect(zk)
            let gone = try await observer.exists("/mine")
            XCTAssertNil(gone)
            await observer.close()
            await client.close()
        }
    }

    func testTheClientRidesOutTheLossOfTheLeaderItIsConnectedTo() async throws {
        try await withTestEnsemble(members: 3) { zk in
            let leader = try await zk.leader()!
            var configuration = ZooKeeperClient.Configuration(connectString: leader.address, sessionTimeout: .seconds(8))
            configuration.initialConnectTimeout = .seconds(20)
            configuration.reconnectDelay = .milliseconds(20)
            // Connected to the leader only at first; the rest of the ensemble is in the connect
            // string too, so the client can move.
            configuration.connectString = ([leader.address] + zk.members.filter { $0.id != leader.id }.map(\.address)).joined(separator: ",")
            configuration.shuffleSeed = 0
            let client = try await ZooKeeperClient.connect(configuration: configuration)
            try await client.create("/before", data: [1])
            let session = client.sessionId
            let reconnected = self.expectState(client) { $0 == .reconnected }
            _ = try await zk.killLeader()
            _ = try await self.awaitState(reconnected)
            XCTAssertEqual(client.sessionId, session, "the session survives the leader's loss")
            // The follower the client moved to may learn of the leader's loss only after the
            // client reconnected, and then drops its connections while it elects: a call answers
            // CONNECTIONLOSS (a write may or may not have been applied), as on ZooKeeper, and the
            // client retries it.
            let retry = RetryPolicy.exponential(attempts: 20, baseDelay: .milliseconds(50), maxDelay: .seconds(1))
            try await retry.run {
                do {
                    try await client.create("/after", data: [2])
                } catch let error as ZooKeeperError where error.code == .nodeExists {
                    // An attempt answered CONNECTIONLOSS was applied.
                }
            }
            let after = try await retry.run { try await client.getData("/after").0 }
            XCTAssertEqual(after, [2])
            let data = try await retry.run { try await client.getData("/before").0 }
            XCTAssertEqual(data, [1])
            XCTAssertEqual(client.sessionId, session, "still the same session")
            await client.close()
        }
    }

    func testLeaderLatchFailsOverWhenTheLeadersSessionIsExpired() async throws {
        try await withTestEnsemble(members: 3, clock: .manual, tickMs: 500) { zk in
            let first = try await self.connect(zk)
            let second = try await self.connect(zk)
            let a = LeaderLatch(client: first, path: "/election", id: "a")
            let b = LeaderLatch(client: second, path: "/election", id: "b")
            try await a.start()
            let token = try await a.awaitLeadership()
            try await b.start()
            XCTAssertFalse(b.hasLeadership)
            // The ensemble expires the leader's session: its latch hears it at once, the other
            // candidate takes over with a larger fencing token.
            try await zk.expireSession(first.sessionId)
            let next = try await self.bounded { try await b.awaitLeadership() }
            XCTAssertGreaterThan(next, token)
            let states = a.states
            let lost = try await self.bounded { await states.first { if case .lost = $0 { return true } else { return false } } }
            XCTAssertEqual(lost, .lost(.sessionExpired))
            await b.close()
            await a.close()
            await second.close()
            await first.close()
        }
    }

    func testAPartitionedMemberLosesItsClientToTheMajority() async throws {
        try await withTestEnsemble(members: 3) { zk in
            let client = try await self.connect(zk, timeout: .seconds(6))
            try await client.create("/p", data: [0])
            let member = try await zk.member(connectedTo: client.sessionId)!
            let reconnected = self.expectState(client) { $0 == .reconnected }
            await zk.isolate(member.id)
            // The isolated member stops serving; the client moves to the majority and keeps its
            // session and can write.
            _ = try await self.awaitState(reconnected)
            _ = try await client.setData("/p", data: [1])
            let now = try await zk.member(connectedTo: client.sessionId)
            XCTAssertNotEqual(now?.id, member.id)
            await zk.heal()
            await client.close()
        }
    }
}
