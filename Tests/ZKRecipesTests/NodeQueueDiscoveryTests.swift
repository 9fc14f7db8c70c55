import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest
import ZKTesting
import ZKClient
import ZKCore
import ZKRecipes
import ZKRecipesCore
import ZKServer

/// PersistentNode / PersistentTTLNode, the id and delay queues, ServiceCache / ServiceProvider.
final class NodeQueueDiscoveryTests: RecipeTestCase {
    // MARK: queues

    func testIdQueueItemsCarryTheirIdAndCanBeRemovedById() async throws {
        let path = "\(base)/queues/ids"
        let queue = DistributedIdQueue(client: try await client(), path: path)
        let first = try await queue.put(Array("a".utf8), id: "x")
        try await queue.put(Array("b".utf8), id: "y")
        try await queue.put(Array("c".utf8), id: "x")
        XCTAssertEqual(CuratorNames.nodeName(first), "queue-|x|0000000000", "Curator's DistributedIdQueue name")
        let queuedX = try await queue.isQueued(id: "x")
        XCTAssertTrue(queuedX)
        let removed = try await queue.remove(id: "x")
        XCTAssertEqual(removed, 2)
        let stillX = try await queue.isQueued(id: "x")
        XCTAssertFalse(stillX)
        try await queue.put(Array("d".utf8), id: "z/1")
        let consumer = DistributedIdQueue(client: try await client(), path: path)
        let taken = try await within(30) { try await consumer.take() }
        XCTAssertEqual(taken.id, "y")
        XCTAssertEqual(taken.messages, [Array("b".utf8)])
        let next = try await consumer.poll()
        XCTAssertEqual(next?.id, "z_1", "ids are fixed as Curator fixes them")
        let none = try await consumer.poll()
        XCTAssertNil(none)
    }

    func testDelayQueueHoldsEachItemUntilItsTime() async throws {
        let path = "\(base)/queues/delay"
        let clock = NIOLockedValueBox<Int64>(500)
        let now: @Sendable () -> Int64 = { clock.withLockedValue { $0 } }
        let producer = DistributedDelayQueue(client: try await client(), path: path, now: now)
        let late = try await producer.put(Array("late".utf8), untilEpochMs: 1000)
        try await producer.put(Array("early".utf8), untilEpochMs: 700)
        XCTAssertEqual(CuratorNames.nodeName(late), "queue-|000003E8|0000000000", "Curator's DistributedDelayQueue name")
        let consumer = DistributedDelayQueue(client: try await client(), path: path, now: now)
        let nothingYet = try await consumer.poll()
        XCTAssertNil(nothingYet, "no item before its time")
        clock.withLockedValue { $0 = 800 }
        let early = try await consumer.poll()
        XCTAssertEqual(early, [Array("early".utf8)])
        let stillWaiting = try await consumer.poll()
        XCTAssertNil(stillWaiting)
        // take() waits for the time of the next item (the clock moves while it waits).
        let waiter = Task { try await consumer.take() }
        clock.withLockedValue { $0 = 1200 }
        let taken = try await within(30) { try await waiter.value }
        XCTAssertEqual(taken, [Array("late".utf8)])
        // An item put with a delay from now.
        try await producer.put(Array("soon".utf8), delay: .milliseconds(100))
        clock.withLockedValue { $0 = 1400 }
        let soon = try await within(30) { try await consumer.take() }
        XCTAssertEqual(soon, [Array("soon".utf8)])
    }

    // MARK: persistent nodes

    func testPersistentNodeIsCreatedAgainAfterDeletionWithItsLatestData() async throws {
        let owner = try await client()
        let path = "\(base)/kept/config"
        let node = PersistentNode(client: owner, path: path, mode: .persistent, data: Array("v1".utf8))
        node.start()
        let created = await node.waitForInitialCreate(timeout: .seconds(20))
        XCTAssertTrue(created)
        XCTAssertEqual(node.actualPath, path)
        let other = try await client()
        let (data1, _) = try await other.getData(path)
        XCTAssertEqual(data1, Array("v1".utf8))
        try await node.setData(Array("v2".utf8))
        let (data2, _) = try await other.getData(path)
        XCTAssertEqual(data2, Array("v2".utf8))
        // Deleted by someone else: back, with the latest data.
        let states = node.states
        try await other.delete(path)
        _ = try await within(30) { () -> PersistentNode.State? in
            for await state in states where state == .recreating { return state }
            return nil
        }
        let back = try await within(30) { () -> [UInt8] in
            while true {
                if let (data, _) = try? await other.getData(path) { return data }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        XCTAssertEqual(back, Array("v2".utf8))
        // The node is visible a moment before the create's reply reaches the recipe.
        let recreated = try await within(30) { () -> PersistentNode.State? in
            for await state in states where state == .created(path) { return state }
            return nil
        }
        XCTAssertEqual(recreated, .created(path))
        XCTAssertEqual(node.currentState, .created(path))
        await node.close()
        let gone = try await other.exists(path)
        XCTAssertNil(gone, "close deletes the node")
        XCTAssertEqual(node.currentState, .closed)
    }

    func testProtectedEphemeralSequentialNodeUsesCuratorsNameAndGoesWithItsSession() async throws {
        let owner = try await client()
        let node = PersistentNode(client: owner, path: "\(base)/workers/w-", mode: .ephemeralSequential, useProtection: true,
                                  data: Array("10.0.0.7".utf8), uuid: "0f8fad5b-d9cb-469f-a165-70867728950e")
        node.start()
        let created = await node.waitForInitialCreate(timeout: .seconds(20))
        XCTAssertTrue(created)
        let actual = try XCTUnwrap(node.actualPath)
        XCTAssertEqual(CuratorNames.parent(actual), "\(base)/workers")
        let name = CuratorNames.nodeName(actual)
        XCTAssertTrue(name.hasPrefix("_c_0f8fad5b-d9cb-469f-a165-70867728950e-w-"), name)
        XCTAssertNotNil(CuratorNames.sequence(of: name))
        let stat = try await clients.last!.exists(actual)
        XCTAssertEqual(stat?.ephemeralOwner, owner.sessionId)
    }

    /// The server drops the connection (another connection took the session over); on the
    /// reconnect the node, still there, is kept: no second protected node appears.
    func testProtectedNodeStillThereAfterAReconnectIsKept() async throws {
        let owner = try await client()
        let parent = "\(base)/members"
        let node = PersistentNode(client: owner, path: "\(parent)/m-", mode: .ephemeralSequential, useProtection: true, data: [1])
        node.start()
        let created = await node.waitForInitialCreate(timeout: .seconds(20))
        XCTAssertTrue(created)
        let first = try XCTUnwrap(node.actualPath)
        let states = node.states
        let clientStates = owner.states
        try await takeOver(sessionId: owner.sessionId, password: owner.sessionPassword)
        _ = try await within(30) { () -> ConnectionState? in
            for await state in clientStates where state == .reconnected { return state }
            return nil
        }
        // The node goes through recreating and back to created at the same path.
        let again = try await within(30) { () -> PersistentNode.State? in
            var sawRecreating = false
            for await state in states {
                if state == .recreating { sawRecreating = true }
                if sawRecreating, case .created = state { return state }
            }
            return nil
        }
        XCTAssertEqual(again, .created(first))
        let children = try await clients.last!.getChildren(parent)
        XCTAssertEqual(children, [CuratorNames.nodeName(first)])
        await node.close()
    }

    /// A create the server refuses (NOAUTH here) is reported and not retried in a loop.
    func testRefusedCreateIsReportedAsFailed() async throws {
        let owner = try await client()
        let parent = "\(base)/readonly"
        try await owner.create(parent, acl: ACL.readUnsafe)
        let node = PersistentNode(client: owner, path: "\(parent)/child", mode: .ephemeral)
        let states = node.states
        node.start()
        let failed = try await within(30) { () -> PersistentNode.State? in
            for await state in states { if case .failed = state { return state } }
            return nil
        }
        XCTAssertEqual(failed, .failed(.noAuth))
        let created = await node.waitForInitialCreate(timeout: .milliseconds(300))
        XCTAssertFalse(created)
        XCTAssertEqual(node.currentState, .failed(.noAuth), "no retry loop without a reconnect")
        await node.close()
        XCTAssertEqual(node.currentState, .closed)
    }

    func testPersistentNodeInATTLMode() async throws {
        let owner = try await client()
        let path = "\(base)/kept/ttl"
        let node = PersistentNode(client: owner, path: path, mode: .persistentWithTTL, data: [3], ttl: .seconds(30))
        node.start()
        let created = await node.waitForInitialCreate(timeout: .seconds(20))
        XCTAssertTrue(created)
        let (data, stat) = try await owner.getData(path)
        XCTAssertEqual(data, [3])
        XCTAssertEqual(stat.ephemeralOwner, 0)
        await node.close()
    }

    /// Takes the session over from the client's connection (see `TestClient.takeOver`).
    func takeOver(sessionId: Int64, password: [UInt8]) async throws {
        let hostPort = connectString.split(separator: ",")[0].split(separator: ":")
        try await TestClient.takeOver(
            sessionId: sessionId, password: password, host: String(hostPort[0]), port: Int(hostPort[1])!,
            group: group, timeoutMs: 6000)
    }

    /// After the session expires, the node is created again under the session `newSession` gives.
    func testEphemeralNodeComesBackUnderANewSession() async throws {
        let first = try await client()
        let path = "\(base)/kept/ephemeral"
        var fresh = ZooKeeperClient.Configuration(connectString: connectString, sessionTimeout: .seconds(6))
        fresh.initialConnectTimeout = .seconds(10)
        let freshConfiguration = fresh
        let node = PersistentNode(client: first, path: path, mode: .ephemeral, data: [7],
                                  newSession: { try await ZooKeeperClient.connect(configuration: freshConfiguration) })
        node.start()
        let created = await node.waitForInitialCreate(timeout: .seconds(20))
        XCTAssertTrue(created)
        let observer = try await client()
        let before = try await observer.exists(path)
        XCTAssertEqual(before?.ephemeralOwner, first.sessionId)
        // End the first session from another connection.
        var configuration = ZooKeeperClient.Configuration(connectString: connectString, sessionTimeout: .seconds(6))
        configuration.sessionId = first.sessionId
        configuration.sessionPassword = first.sessionPassword
        let thief = try await ZooKeeperClient.connect(configuration: configuration)
        await thief.close()
        let owner = try await within(30) { () -> Int64 in
            while true {
                if let stat = try? await observer.exists(path), stat.ephemeralOwner != first.sessionId { return stat.ephemeralOwner }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        XCTAssertEqual(owner, node.client.sessionId)
        XCTAssertNotEqual(owner, first.sessionId)
        let (data, _) = try await observer.getData(path)
        XCTAssertEqual(data, [7])
        await node.close()
        await node.client.close()
    }

    func testPersistentNodeWithoutNewSessionIsLostWithItsSession() async throws {
        let first = try await client()
        let node = PersistentNode(client: first, path: "\(base)/kept/once", mode: .ephemeral)
        node.start()
        let created = await node.waitForInitialCreate(timeout: .seconds(20))
        XCTAssertTrue(created)
        var configuration = ZooKeeperClient.Configuration(connectString: connectString, sessionTimeout: .seconds(6))
        configuration.sessionId = first.sessionId
        configuration.sessionPassword = first.sessionPassword
        let thief = try await ZooKeeperClient.connect(configuration: configuration)
        await thief.close()
        let states = node.states
        let lost = try await within(30) { () -> PersistentNode.State? in
            for await state in states where state == .lost { return state }
            return nil
        }
        XCTAssertEqual(lost, .lost)
    }

    /// The TTL node's container holds the data; its `touch` child is a TTL node kept set.
    func testPersistentTTLNodeTouchesATTLChild() async throws {
        let owner = try await client()
        let path = "\(base)/ttl/lease"
        let node = PersistentTTLNode(client: owner, path: path, ttl: .milliseconds(600), data: Array("d".utf8))
        node.start()
        let created = await node.waitForInitialCreate(timeout: .seconds(20))
        XCTAssertTrue(created)
        let observer = try await client()
        let touch = try await within(30) { () -> Stat in
            while true {
                if let stat = try await observer.exists("\(path)/touch") { return stat }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        // A TTL node shows no owner (ZooKeeper hides the TTL encoding from clients); that it
        // expires is testPersistentTTLNodeGoesAfterItsKeeperStops.
        XCTAssertEqual(touch.ephemeralOwner, 0)
        let touched = try await within(30) { () -> Stat in
            while true {
                if let stat = try await observer.exists("\(path)/touch"), stat.version > touch.version { return stat }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        XCTAssertGreaterThan(touched.version, touch.version, "the child is touched again")
        let (data, _) = try await observer.getData(path)
        XCTAssertEqual(data, Array("d".utf8))
        await node.close()
        let after = try await observer.exists(path)
        XCTAssertNotNil(after, "close leaves the node to expire")
    }

    /// On MiniZK with a short container/TTL check: once its keeper stops, the TTL child expires and
    /// then the empty container goes.
    func testPersistentTTLNodeGoesAfterItsKeeperStops() async throws {
        if Self.externalServer != nil { throw XCTSkip("needs a server with a short container check interval (ZKCLIENT_TEST_SERVER is set)") }
        var config = ReplicaConfig()
        config.tickMs = 200
        config.extendedTypesEnabled = true
        config.containerCheckIntervalMs = 100
        var logger = Logger(label: "ttl")
        logger.logLevel = .warning
        let server = try await MiniZKServer.start(config: config, host: "127.0.0.1", port: 0, group: group, logger: logger)
        do {
            let keeper = try await ZooKeeperClient.connect("127.0.0.1:\(server.localPort)")
            let observer = try await ZooKeeperClient.connect("127.0.0.1:\(server.localPort)")
            let node = PersistentTTLNode(client: keeper, path: "/ttl/lease", ttl: .milliseconds(400))
            node.start()
            let created = await node.waitForInitialCreate(timeout: .seconds(20))
            XCTAssertTrue(created)
            _ = try await within(30) { () -> Stat in
                while true {
                    if let stat = try await observer.exists("/ttl/lease/touch") { return stat }
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            await node.close()
            _ = try await within(30) { () -> Bool in
                while try await observer.exists("/ttl/lease") != nil { try await Task.sleep(for: .milliseconds(50)) }
                return true
            }
            let gone = try await observer.exists("/ttl/lease")
            XCTAssertNil(gone)
            await keeper.close()
            await observer.close()
        } catch {
            try? await server.shutdown()
            throw error
        }
        try await server.shutdown()
    }

    // MARK: caches across a disconnection

    /// Changes made while the cache's client is cut off (a proxy drops its connection and turns it
    /// away) are not replayed by the re-registered persistent watch; the cache reads the tree
    /// again on `reconnected`, so the service cache sees the registration made meanwhile.
    func testCachesCatchUpWithChangesMadeWhileDisconnected() async throws {
        let hostPort = connectString.split(separator: ",")[0].split(separator: ":")
        let proxy = try await TestProxy.start(group: group, targetHost: String(hostPort[0]), targetPort: Int(hostPort[1])!)
        var configuration = ZooKeeperClient.Configuration(connectString: "127.0.0.1:\(proxy.port)", sessionTimeout: .seconds(10))
        configuration.initialConnectTimeout = .seconds(10)
        configuration.reconnectDelay = .milliseconds(100)
        let cut = try await ZooKeeperClient.connect(configuration: configuration)
        let basePath = "\(base)/services"
        let registrar = ServiceDiscovery(client: try await client(), basePath: basePath)
        try await registrar.register(ServiceInstance(name: "worker", id: "w-1", port: 1))
        let cache = try await ServiceDiscovery(client: cut, basePath: basePath).cache(of: "worker")
        XCTAssertEqual(cache.instances.map(\.id), ["w-1"])
        let states = cut.states
        await proxy.dropAndHold()
        _ = try await within(30) { () -> ConnectionState? in
            for await state in states where state == .suspended { return state }
            return nil
        }
        try await registrar.register(ServiceInstance(name: "worker", id: "w-2", port: 2))
        try await registrar.unregister(ServiceInstance(name: "worker", id: "w-1", port: 1))
        proxy.release()
        let changes = cache.changes
        let caught = try await within(30) { () -> [String] in
            for await instances in changes where instances.map(\.id) == ["w-2"] { return instances.map(\.id) }
            return []
        }
        XCTAssertEqual(caught, ["w-2"])
        await cache.close()
        await cut.close()
        await proxy.close()
    }

    // MARK: service cache and provider

    func testServiceCacheFollowsRegistrationsAndProvidersPickByStrategy() async throws {
        let basePath = "\(base)/services"
        let registrar = ServiceDiscovery(client: try await client(), basePath: basePath)
        let reader = ServiceDiscovery(client: try await client(), basePath: basePath)
        let cache = try await reader.cache(of: "worker")
        XCTAssertEqual(cache.instances, [])
        let changes = cache.changes
        for id in ["w-1", "w-2", "w-3"] {
            try await registrar.register(ServiceInstance(name: "worker", id: id, address: "10.0.0.\(id.last!)", port: 7077))
        }
        let three = try await within(30) { () -> [ServiceInstance] in
            for await instances in changes where instances.count == 3 { return instances }
            return []
        }
        XCTAssertEqual(three.map(\.id), ["w-1", "w-2", "w-3"])

        let roundRobin = ServiceProvider(cache: cache, strategy: RoundRobinStrategy())
        XCTAssertEqual((0..<4).compactMap { _ in roundRobin.instance()?.id }, ["w-1", "w-2", "w-3", "w-1"])
        var reference = SplitMix64(seed: 42)
        let expected = (0..<6).map { _ in three.randomElement(using: &reference)!.id }
        let random = ServiceProvider(cache: cache, strategy: RandomStrategy(generator: SplitMix64(seed: 42)))
        XCTAssertEqual((0..<6).compactMap { _ in random.instance()?.id }, expected, "the seeded generator decides")
        let sticky = ServiceProvider(cache: cache, strategy: StickyStrategy(RoundRobinStrategy()))
        XCTAssertEqual((0..<3).compactMap { _ in sticky.instance()?.id }, ["w-1", "w-1", "w-1"])
        sticky.noteError(three[0])
        // Skipped; the round robin underneath goes on from where it was (index 1 of w-2, w-3).
        XCTAssertEqual((0..<2).compactMap { _ in sticky.instance()?.id }, ["w-3", "w-3"], "a failing instance is skipped")
        XCTAssertEqual(sticky.allInstances().count, 3)

        try await registrar.unregister(three[1])
        let two = try await within(30) { () -> [ServiceInstance] in
            for await instances in changes where instances.count == 2 { return instances }
            return []
        }
        XCTAssertEqual(two.map(\.id), ["w-1", "w-3"])
        XCTAssertEqual(sticky.instance()?.id, "w-3", "sticky while registered")
        XCTAssertEqual(roundRobin.instance().map { ["w-1", "w-3"].contains($0.id) }, true)
        await cache.close()
    }
}
