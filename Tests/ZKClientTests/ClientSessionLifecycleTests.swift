import Logging
import NIOPosix
import XCTest
import ZKClient
import ZKCore
import ZKServer

/// Connection states, expiry, close and reconnecting to another member.
final class ClientSessionLifecycleTests: ClientTestCase {
    func testStatesAndClose() async throws {
        let zk = try await client()
        XCTAssertEqual(zk.state, .connected)
        XCTAssertNotEqual(zk.sessionId, 0)
        XCTAssertGreaterThan(zk.negotiatedSessionTimeoutMs, 0)
        XCTAssertNotNil(zk.connectedHost)
        let states = zk.states
        await zk.close()
        let closed = try await first(states) { $0 == .closed }
        XCTAssertEqual(closed, .closed)
        XCTAssertEqual(zk.state, .closed)
        await assertThrows(.sessionExpired) { try await zk.getData("/") }
    }

    /// A second client resuming the session with its id and password, then closing it, ends it
    /// for the first: it learns `expired`, its calls and watches fail with sessionExpired.
    func testSessionClosedElsewhereIsSeenAsExpired() async throws {
        let first = try await client()
        try await first.create("\(base)/mine", mode: .ephemeral)
        let (_, _, watch) = try await first.getData("\(base)/mine", watch: true)
        let states = first.states
        let second = try await client {
            $0.sessionId = first.sessionId
            $0.sessionPassword = first.sessionPassword
        }
        XCTAssertEqual(second.sessionId, first.sessionId)
        await second.close()
        let expired = try await self.first(states) { $0 == .expired }
        XCTAssertEqual(expired, .expired)
        await assertThrows(.sessionExpired) { try await first.exists("/") }
        let ended = await outcome(watch)
        XCTAssertEqual(ended, .failure(.sessionExpired), "the watch of an expired session does not fire")
        let observer = try await client()
        let value1 = try await observer.exists("\(base)/mine")
        XCTAssertNil(value1)
    }

    /// Resuming a session with the zxid its earlier client saw: accepted by a member that has it;
    /// refused by every member when the zxid is ahead of them, so the resumed session never
    /// reads state older than what the session has seen.
    func testResumingWithTheLastZxidSeenNeverGoesBackInTime() async throws {
        let first = try await client()
        try await first.create("\(base)/seen", data: [1])
        let seen = first.lastZxidSeen
        XCTAssertGreaterThan(seen, 0)
        let second = try await client {
            $0.sessionId = first.sessionId
            $0.sessionPassword = first.sessionPassword
            $0.lastZxidSeen = seen
        }
        XCTAssertEqual(second.sessionId, first.sessionId)
        XCTAssertGreaterThanOrEqual(second.lastZxidSeen, seen)
        // (No call on `second`: the server closes the first client's connection for it, and the
        // first client, reconnecting, takes the session back, on ZooKeeper as on MiniZK.)
        do {
            _ = try await client {
                $0.sessionId = first.sessionId
                $0.sessionPassword = first.sessionPassword
                $0.lastZxidSeen = seen + 1_000_000
                $0.initialConnectTimeout = .seconds(2)
                $0.reconnectDelay = .milliseconds(50)
            }
            XCTFail("a member behind the zxid the session has seen served it")
        } catch {
            XCTAssertEqual(error as? ZooKeeperError, .connectionLoss)
        }
    }

    func testResumingAnUnknownSessionThrowsSessionExpired() async throws {
        do {
            _ = try await client {
                $0.sessionId = 0x7777_0000_1234
                $0.sessionPassword = [UInt8](repeating: 3, count: 16)
            }
            XCTFail("an unknown session cannot be resumed")
        } catch {
            XCTAssertEqual(error as? ZooKeeperError, .sessionExpired)
        }
    }

    func testConnectingToNothingThrowsConnectionLoss() async throws {
        var configuration = ZooKeeperClient.Configuration(connectString: "127.0.0.1:1", sessionTimeout: .seconds(2))
        configuration.initialConnectTimeout = .milliseconds(500)
        configuration.reconnectDelay = .milliseconds(50)
        do {
            _ = try await ZooKeeperClient.connect(configuration: configuration)
            XCTFail("nothing listens on port 1")
        } catch {
            XCTAssertEqual(error as? ZooKeeperError, .connectionLoss)
        }
    }

    /// The member serving the session stops: the client moves to another, keeps its session and
    /// ephemerals, re-registers its watches (a change made while it was away fires at once) and
    /// keeps serving.
    func testReconnectToAnotherMemberKeepsSessionAndWatches() async throws {
        if isExternal { throw XCTSkip("needs an in-process ensemble whose members it can stop (ZKCLIENT_TEST_SERVER is set)") }
        var config = ReplicaConfig()
        config.tickMs = 100
        let ensembleGroup = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let ensemble = try await Ensemble.start(nodes: 3, config: config, group: ensembleGroup, logger: logger)
        defer { _ = ensembleGroup }
        let value2 = try await ensemble.waitUntilServing()
        XCTAssertTrue(value2)
        var configuration = ZooKeeperClient.Configuration(connectString: ensemble.connectString, sessionTimeout: .seconds(4))
        configuration.reconnectDelay = .milliseconds(100)
        let zk = try await ZooKeeperClient.connect(configuration: configuration)
        let writer = try await ZooKeeperClient.connect(configuration: configuration)

        try await zk.create("/eph", mode: .ephemeral)
        try await zk.create("/watched", data: [0])
        try await zk.create("/missed", data: [0])
        let (_, _, watched) = try await zk.getData("/watched", watch: true)
        let (_, _, missed) = try await zk.getData("/missed", watch: true)
        let tree = try await zk.addWatch("/watched", mode: .persistent)
        let sessionId = zk.sessionId
        guard let serving = zk.connectedHost else { return XCTFail("not connected") }
        let states = zk.states

        // Stop the member serving the session; the writer (wherever it is) changes /missed while the
        // session is away, if it is not on the stopped member itself.
        let stopped = ensemble.servers.first { $0.localPort == serving.port }!
        try await stopped.shutdown()
        let suspended = try await first(states) { $0 == .suspended }
        XCTAssertEqual(suspended, .suspended)
        let missedWrite = try await RetryPolicy(attempts: 50, baseDelay: .milliseconds(100), maxDelay: .milliseconds(200)).run {
            try await writer.setData("/missed", data: [1])
        }
        _ = missedWrite
        let reconnected = try await first(states) { $0 == .reconnected }
        XCTAssertEqual(reconnected, .reconnected)
        XCTAssertEqual(zk.sessionId, sessionId)
        XCTAssertNotEqual(zk.connectedHost, serving)
        let value3 = try await zk.exists("/eph")
        XCTAssertNotNil(value3, "the session and its ephemeral survive")

        let missedEvent = try await event(missed)
        XCTAssertEqual(missedEvent, WatchEvent(type: .nodeDataChanged, path: "/missed"), "setWatches fires what was missed")
        try await RetryPolicy(attempts: 50, baseDelay: .milliseconds(100), maxDelay: .milliseconds(200)).run {
            try await writer.setData("/watched", data: [2])
        }
        let watchedEvent = try await event(watched)
        XCTAssertEqual(watchedEvent, WatchEvent(type: .nodeDataChanged, path: "/watched"))
        let persistentEvents = try await collect(tree, count: 1)
        XCTAssertEqual(persistentEvents, [WatchEvent(type: .nodeDataChanged, path: "/watched")])

        await zk.close()
        await writer.close()
        for server in ensemble.servers where server !== stopped { try? await server.shutdown() }
        try? await ensembleGroup.shutdownGracefully()
    }

    /// A member without a quorum serves read-only clients: the client reports connectedReadOnly,
    /// reads work, writes fail notReadOnly.
    func testReadOnlyConnectWhenTheQuorumIsGone() async throws {
        if isExternal { throw XCTSkip("needs an in-process ensemble whose members it can stop (ZKCLIENT_TEST_SERVER is set)") }
        var config = ReplicaConfig()
        config.tickMs = 100
        config.readOnlyModeEnabled = true
        let ensembleGroup = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let ensemble = try await Ensemble.start(nodes: 3, config: config, group: ensembleGroup, logger: logger)
        let serving = try await ensemble.waitUntilServing()
        XCTAssertTrue(serving)
        let last = ensemble.servers[2]
        let writer = try await ZooKeeperClient.connect("127.0.0.1:\(last.localPort)", sessionTimeout: .seconds(4))
        try await writer.create("/ro", data: [7])
        await writer.close()
        try await ensemble.servers[0].shutdown()
        try await ensemble.servers[1].shutdown()

        var configuration = ZooKeeperClient.Configuration(connectString: "127.0.0.1:\(last.localPort)", sessionTimeout: .seconds(4))
        configuration.canBeReadOnly = true
        configuration.reconnectDelay = .milliseconds(100)
        configuration.initialConnectTimeout = .seconds(20)
        let reader = try await ZooKeeperClient.connect(configuration: configuration)
        XCTAssertEqual(reader.state, .connectedReadOnly)
        let value = try await reader.getData("/ro").data
        XCTAssertEqual(value, [7])
        await assertThrows(.notReadOnly) { try await reader.create("/nope") }
        await reader.close()
        try? await last.shutdown()
        try? await ensembleGroup.shutdownGracefully()
    }
}
