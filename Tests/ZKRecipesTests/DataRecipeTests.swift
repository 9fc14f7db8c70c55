import Foundation
import XCTest
import ZKClient
import ZKRecipes
import ZKRecipesCore

final class DataRecipeTests: RecipeTestCase {
    func testCounterIncrementsFromSeveralClientsLoseNothing() async throws {
        let path = "\(base)/counters/hits"
        var counters: [DistributedAtomicLong] = []
        for _ in 0..<4 { counters.append(DistributedAtomicLong(client: try await client(), path: path)) }
        let all = counters
        try await within(120) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for counter in all {
                    group.addTask { for _ in 0..<25 { try await counter.increment() } }
                }
                try await group.waitForAll()
            }
        }
        let total = try await counters[0].get()
        XCTAssertEqual(total, 100)
        let (data, _) = try await clients[0].getData(path)
        XCTAssertEqual(data, [0, 0, 0, 0, 0, 0, 0, 100])
        let swapped = try await counters[1].compareAndSet(expected: 100, newValue: 7)
        XCTAssertTrue(swapped)
        let stale = try await counters[2].compareAndSet(expected: 100, newValue: 8)
        XCTAssertFalse(stale)
        let value = try await counters[3].get()
        XCTAssertEqual(value, 7)
    }

    func testSharedCountIsVersioned() async throws {
        let path = "\(base)/shared/count"
        let one = try await SharedCount(client: try await client(), path: path, seed: 5)
        let two = try await SharedCount(client: try await client(), path: path, seed: 99)
        let read = try await two.get()
        XCTAssertEqual(read.value, 5)
        let changes = one.values().makeAsyncIterator()
        var iterator = changes
        let initial = try await iterator.next()
        XCTAssertEqual(initial, 5)
        let first = try await one.trySet(6, previous: read)
        XCTAssertTrue(first)
        let second = try await two.trySet(7, previous: read)
        XCTAssertFalse(second)
        let seen = try await iterator.next()
        XCTAssertEqual(seen, 6)
        let (data, _) = try await clients[0].getData(path)
        XCTAssertEqual(data, [0, 0, 0, 6])
    }

    func testQueueItemsAreConsumedExactlyOnce() async throws {
        let path = "\(base)/queues/work"
        let producers = 3, perProducer = 15, consumers = 3
        var producerClients: [ZooKeeperClient] = [], consumerClients: [ZooKeeperClient] = []
        for _ in 0..<producers { producerClients.append(try await client()) }
        for _ in 0..<consumers { consumerClients.append(try await client()) }
        let pClients = producerClients, cClients = consumerClients
        let total = producers * perProducer
        let taken = try await within(120) {
            try await withThrowingTaskGroup(of: [String].self) { group in
                for (index, client) in pClients.enumerated() {
                    group.addTask {
                        let queue = DistributedQueue(client: client, path: path)
                        for item in 0..<perProducer { try await queue.put(Array("p\(index)-\(item)".utf8)) }
                        return []
                    }
                }
                let claimed = Occupancy()
                for client in cClients {
                    group.addTask {
                        let queue = DistributedQueue(client: client, path: path)
                        var mine: [String] = []
                        while await claimed.entries < total {
                            let next = try await withThrowingTaskGroup(of: [[UInt8]]?.self) { inner in
                                inner.addTask { try await queue.take() }
                                inner.addTask { try await Task.sleep(for: .milliseconds(500)); return nil }
                                let first = try await inner.next() ?? nil
                                inner.cancelAll()
                                return first
                            }
                            guard let next else { continue }
                            for message in next {
                                mine.append(String(decoding: message, as: UTF8.self))
                                await claimed.enter()
                            }
                        }
                        return mine
                    }
                }
                var all: [String] = []
                for try await part in group { all += part }
                return all
            }
        }
        XCTAssertEqual(taken.count, total)
        XCTAssertEqual(Set(taken).count, total)
        let expected = Set((0..<producers).flatMap { p in (0..<perProducer).map { "p\(p)-\($0)" } })
        XCTAssertEqual(Set(taken), expected)
        let left = try await pClients[0].getChildren(path)
        XCTAssertEqual(left, [])
    }

    func testPriorityQueueTakesLowestFirst() async throws {
        let queue = DistributedQueue(client: try await client(), path: "\(base)/queues/priority")
        try await queue.put([3], priority: 3)
        try await queue.put([1], priority: -5)
        try await queue.put([2], priority: 0)
        var order: [UInt8] = []
        while let item = try await queue.poll() { order += item.flatMap { $0 } }
        XCTAssertEqual(order, [1, 2, 3])
    }

    func testServiceRegistrationIsFound() async throws {
        let basePath = "\(base)/services"
        let owner = try await client()
        let discovery = ServiceDiscovery(client: owner, basePath: basePath)
        let instance = ServiceInstance(name: "worker", id: "w-1", address: "10.0.0.7", port: 7077,
                                       payload: .object(["@class": .string("java.util.LinkedHashMap"), "zone": .string("a")]))
        try await discovery.register(instance)
        try await discovery.register(ServiceInstance(name: "worker", id: "w-2", address: "10.0.0.8", port: 7077))
        let reader = ServiceDiscovery(client: try await client(), basePath: basePath)
        let names = try await reader.names()
        XCTAssertEqual(names, ["worker"])
        let found = try await reader.instances(of: "worker")
        XCTAssertEqual(found.map(\.id), ["w-1", "w-2"])
        XCTAssertEqual(found.first, instance)
        // The node is curator-x-discovery's JSON.
        let (data, stat) = try await clients.last!.getData("\(basePath)/worker/w-1")
        let json = try JSONSerialization.jsonObject(with: Data(data)) as? [String: Any]
        XCTAssertEqual(json?["serviceType"] as? String, "DYNAMIC")
        XCTAssertEqual(json?["port"] as? Int, 7077)
        XCTAssertTrue(json?["sslPort"] is NSNull)
        XCTAssertEqual(stat.ephemeralOwner, owner.sessionId)
        // A dynamic instance goes with its session.
        await owner.close()
        let after = try await reader.instances(of: "worker")
        XCTAssertEqual(after.map(\.id), [])
    }

    func testBarrier() async throws {
        let path = "\(base)/barriers/start"
        let barrier = DistributedBarrier(client: try await client(), path: path)
        try await barrier.setBarrier()
        let waiter = DistributedBarrier(client: try await client(), path: path)
        let passed = Occupancy()
        let task = Task {
            try await waiter.waitOnBarrier()
            await passed.enter()
        }
        try await Task.sleep(for: .milliseconds(100))
        let early = await passed.entries
        XCTAssertEqual(early, 0)
        try await barrier.removeBarrier()
        try await task.value
        let late = await passed.entries
        XCTAssertEqual(late, 1)
    }
}

final class SelectorAndDoubleBarrierTests: RecipeTestCase {
    func testLeaderSelectorRunsOneLeaderAtATime() async throws {
        let path = "\(base)/selector"
        let occupancy = Occupancy()
        var selectors: [LeaderSelector] = []
        for index in 0..<3 { selectors.append(LeaderSelector(client: try await client(), path: path, id: "s\(index)")) }
        let all = selectors
        try await within(60) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for selector in all {
                    group.addTask {
                        try await selector.lead { token in
                            await occupancy.enter(token.sequence)
                            try await Task.sleep(for: .milliseconds(50))
                            await occupancy.exit()
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        let maxInside = await occupancy.maxInside, entries = await occupancy.entries
        XCTAssertEqual(maxInside, 1)
        XCTAssertEqual(entries, 3)
    }

    func testLeaderSelectorCancelsWorkWhenLeadershipIsLost() async throws {
        let doomed = try await client()
        let selector = LeaderSelector(client: doomed, path: "\(base)/selector-lost", id: "x")
        let started = Occupancy()
        let task = Task {
            try await selector.lead { _ in
                await started.enter()
                try await Task.sleep(for: .seconds(120))
            }
        }
        while await started.entries == 0 { try await Task.sleep(for: .milliseconds(10)) }
        await doomed.close()
        do {
            try await task.value
            XCTFail("work should have been cancelled")
        } catch RecipeError.lost(.sessionExpired) {}
    }

    func testDoubleBarrierEntersAndLeavesTogether() async throws {
        let path = "\(base)/double"
        let members = 3
        var sessions: [ZooKeeperClient] = []
        for _ in 0..<members { sessions.append(try await client()) }
        let arrived = Occupancy(), entered = Occupancy(), left = Occupancy()
        let all = sessions
        try await within(60) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (index, client) in all.enumerated() {
                    group.addTask {
                        let barrier = DistributedDoubleBarrier(client: client, path: path, memberCount: members)
                        try await Task.sleep(for: .milliseconds(100 * index))
                        await arrived.enter()
                        try await barrier.enter()
                        // Nobody is through before everyone has arrived.
                        let arrivals = await arrived.entries
                        XCTAssertEqual(arrivals, members)
                        await entered.enter()
                        try await barrier.leave()
                        await left.enter()
                    }
                }
                try await group.waitForAll()
            }
        }
        let e = await entered.entries, l = await left.entries
        XCTAssertEqual(e, members)
        XCTAssertEqual(l, members)
        let remaining = try await sessions[0].getChildren(path)
        XCTAssertEqual(remaining, [])
    }
}

final class GroupMemberTests: RecipeTestCase {
    func testMembersJoinAndGoWithTheirSession() async throws {
        let path = "\(base)/group"
        let observer = GroupMember(client: try await client(), path: path, memberId: "observer")
        var changes = observer.memberChanges().makeAsyncIterator()
        let initial = try await changes.next()
        XCTAssertEqual(initial, [])
        let doomed = try await client()
        let a = GroupMember(client: doomed, path: path, memberId: "a")
        try await a.join(payload: Array("10.0.0.1".utf8))
        var seen = try await changes.next()
        XCTAssertEqual(seen, ["a"])
        let b = GroupMember(client: try await client(), path: path, memberId: "b")
        try await b.join()
        seen = try await changes.next()
        XCTAssertEqual(seen, ["a", "b"])
        let members = try await observer.members()
        XCTAssertEqual(members["a"], Array("10.0.0.1".utf8))
        // The same id from another session is refused while the first lives.
        let intruder = GroupMember(client: try await client(), path: path, memberId: "a")
        do {
            try await intruder.join()
            XCTFail("joined twice")
        } catch ZooKeeperError.nodeExists {}
        await doomed.close()
        seen = try await changes.next()
        XCTAssertEqual(seen, ["b"])
    }
}

final class TreeCacheTests: RecipeTestCase {
    func testCacheFollowsTheSubtree() async throws {
        let path = "\(base)/config"
        let writer = try await client()
        try await writer.create(path, data: [1])
        try await writer.create("\(path)/db", data: Array("old".utf8))
        let cache = try await TreeCache.start(client: try await client(), path: path)
        XCTAssertEqual(cache.current, [path: [1], "\(path)/db": Array("old".utf8)])
        let snapshots = cache.snapshots
        try await writer.setData("\(path)/db", data: Array("new".utf8))
        try await writer.create("\(path)/db/replica", data: [9])
        try await writer.delete("\(path)/db/replica")
        try await writer.create("\(path)/cache", data: [2])
        let expected: [String: [UInt8]] = [path: [1], "\(path)/db": Array("new".utf8), "\(path)/cache": [2]]
        let reached = try await within(30) {
            for await snapshot in snapshots where snapshot == expected { return true }
            return false
        }
        XCTAssertTrue(reached)
        await cache.close()
    }
}
