import Logging
import NIOPosix
import XCTest
import ZKClient
import ZKCore
import ZKRecipes
import ZKRecipesCore
import ZKServer

/// The connection policy over a real disconnection: a three-member MiniZK ensemble whose member
/// serving the holder is stopped (in-process only: it needs to stop members).
final class ConnectionPolicyTests: XCTestCase {
    func withEnsemble(_ body: (Ensemble) async throws -> Void) async throws {
        if ProcessInfo.processInfo.environment["ZKCLIENT_TEST_SERVER"] != nil {
            throw XCTSkip("needs an in-process ensemble whose members it can stop (ZKCLIENT_TEST_SERVER is set)")
        }
        var config = ReplicaConfig()
        config.tickMs = 100
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let ensemble = try await Ensemble.start(nodes: 3, config: config, group: group, logger: logger)
        _ = try await ensemble.waitUntilServing()
        do {
            try await body(ensemble)
        } catch {
            for server in ensemble.servers { try? await server.shutdown() }
            try? await group.shutdownGracefully()
            throw error
        }
        for server in ensemble.servers { try? await server.shutdown() }
        try? await group.shutdownGracefully()
    }

    func connect(_ ensemble: Ensemble) async throws -> ZooKeeperClient {
        var configuration = ZooKeeperClient.Configuration(connectString: ensemble.connectString, sessionTimeout: .seconds(6))
        configuration.reconnectDelay = .milliseconds(100)
        configuration.initialConnectTimeout = .seconds(10)
        return try await ZooKeeperClient.connect(configuration: configuration)
    }

    /// Stops the member serving `client`, and returns a client on another member.
    func stopServing(_ client: ZooKeeperClient, in ensemble: Ensemble) async throws -> ZooKeeperClient {
        guard let serving = client.connectedHost else { throw ZooKeeperError.connectionLoss }
        let other = ensemble.servers.first { $0.localPort != serving.port }!
        var configuration = ZooKeeperClient.Configuration(connectString: "127.0.0.1:\(other.localPort)", sessionTimeout: .seconds(6))
        configuration.initialConnectTimeout = .seconds(10)
        let elsewhere = try await ZooKeeperClient.connect(configuration: configuration)
        try await ensemble.servers.first { $0.localPort == serving.port }!.shutdown()
        return elsewhere
    }

    func testShortSuspensionKeepsTheLock() async throws {
        try await withEnsemble { ensemble in
            let holder = try await connect(ensemble)
            let mutex = InterProcessMutex(client: holder, path: "/locks/policy")
            let token = try await mutex.acquire()
            let states = mutex.states
            let elsewhere = try await stopServing(holder, in: ensemble)
            let contender = InterProcessMutex(client: elsewhere, path: "/locks/policy")
            var seen: [HolderState] = []
            for await state in states {
                seen.append(state)
                if case .held = state, seen.count > 1 { break }
                if case .lost = state { break }
            }
            XCTAssertEqual(seen, [.held(token), .suspended(token), .held(token)], "suspended, then held again: never lost")
            // The hold was kept throughout: the contender cannot take the lock.
            let stolen = try await contender.acquire(timeout: .milliseconds(300))
            XCTAssertNil(stolen)
            try await mutex.release()
            let next = try await contender.acquire(timeout: .seconds(30))
            XCTAssertNotNil(next)
            try await contender.release()
            await holder.close()
            await elsewhere.close()
        }
    }

    func testDropOnSuspendLosesAtOnceAndFreesTheLock() async throws {
        try await withEnsemble { ensemble in
            let holder = try await connect(ensemble)
            let mutex = InterProcessMutex(client: holder, path: "/locks/strict", policy: .dropOnSuspend)
            try await mutex.acquire()
            let states = mutex.states
            let elsewhere = try await stopServing(holder, in: ensemble)
            var lost = false
            for await state in states {
                if case .lost(.connectionSuspended) = state { lost = true; break }
            }
            XCTAssertTrue(lost)
            XCTAssertFalse(mutex.isHeld)
            // Once the holder reconnects its node is deleted, and a contender gets the lock.
            let contender = InterProcessMutex(client: elsewhere, path: "/locks/strict")
            let token = try await contender.acquire(timeout: .seconds(30))
            XCTAssertNotNil(token)
            try await contender.release()
            await holder.close()
            await elsewhere.close()
        }
    }

    func testLatchUnderDropOnSuspendLosesThenRejoins() async throws {
        try await withEnsemble { ensemble in
            let candidate = try await connect(ensemble)
            let latch = LeaderLatch(client: candidate, path: "/election/strict", id: "only", policy: .dropOnSuspend)
            try await latch.start()
            let first = try await latch.awaitLeadership()
            let states = latch.states
            let elsewhere = try await stopServing(candidate, in: ensemble)
            var seen: [HolderState] = []
            for await state in states {
                seen.append(state)
                if case .held(let token) = state, token != first { break }
            }
            XCTAssertTrue(seen.contains(.lost(.connectionSuspended)), "\(seen)")
            guard case .held(let second)? = seen.last else { return XCTFail("no new leadership: \(seen)") }
            XCTAssertGreaterThan(second, first)
            // The old node is gone: one candidate node, ours.
            let children = try await elsewhere.getChildren("/election/strict")
            XCTAssertEqual(children, [CuratorNames.nodeName(second.path)])
            await latch.close()
            await candidate.close()
            await elsewhere.close()
        }
    }
}
