import XCTest
import ZKClient
import ZKRecipes
import ZKRecipesCore

final class LockRecipeTests: RecipeTestCase {
    func testContendersNeverHoldTheMutexAtOnce() async throws {
        let path = "\(base)/locks/shared"
        let occupancy = Occupancy()
        let contenders = 5, rounds = 4
        var sessions: [ZooKeeperClient] = []
        for _ in 0..<contenders { sessions.append(try await client()) }
        let clients = sessions
        try await within(120) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for client in clients {
                    group.addTask {
                        let mutex = InterProcessMutex(client: client, path: path)
                        for _ in 0..<rounds {
                            let token = try await mutex.acquire()
                            await occupancy.enter(token.sequence)
                            try await Task.sleep(for: .milliseconds(5))
                            await occupancy.exit()
                            try await mutex.release()
                        }
                        await mutex.close()
                    }
                }
                try await group.waitForAll()
            }
        }
        let maxInside = await occupancy.maxInside, entries = await occupancy.entries, tokens = await occupancy.tokens
        XCTAssertEqual(maxInside, 1)
        XCTAssertEqual(entries, contenders * rounds)
        // Fencing tokens increase from one hold to the next.
        XCTAssertEqual(tokens, tokens.sorted())
        XCTAssertEqual(Set(tokens).count, tokens.count)
        // Every node was removed.
        let left = try await clients[0].getChildren(path)
        XCTAssertEqual(left, [])
    }

    func testLayoutIsCuratorsAndReentrancyCounts() async throws {
        let client = try await client()
        let path = "\(base)/locks/layout"
        let mutex = InterProcessMutex(client: client, path: path)
        let token = try await mutex.acquire()
        let children = try await client.getChildren(path)
        XCTAssertEqual(children.count, 1)
        let name = children[0]
        // _c_<36-char uuid>-lock-<10 digits>
        XCTAssertTrue(name.hasPrefix("_c_"), name)
        XCTAssertEqual(name.count, 3 + 36 + 1 + 5 + 10, name)
        XCTAssertTrue(name.dropFirst(40).hasPrefix("lock-"), name)
        XCTAssertEqual(token.path, "\(path)/\(name)")
        let stat = try await client.exists(token.path)
        XCTAssertEqual(stat?.ephemeralOwner, client.sessionId)
        XCTAssertEqual(stat?.czxid, token.czxid)
        // The parent is a container (ephemeralOwner marks containers with the high bit in
        // ZooKeeper 3.8's Stat only through getEphemerals; check it is not ephemeral at least).
        let parent = try await client.exists(path)
        XCTAssertEqual(parent?.ephemeralOwner ?? -1, 0)

        try await mutex.acquire()
        let depth = await mutex.holdCount
        XCTAssertEqual(depth, 2)
        try await mutex.release()
        let stillThere = try await client.exists(token.path)
        XCTAssertNotNil(stillThere)
        XCTAssertTrue(mutex.isHeld)
        try await mutex.release()
        let gone = try await client.exists(token.path)
        XCTAssertNil(gone)
        XCTAssertEqual(mutex.state, .released)
        do {
            try await mutex.release()
            XCTFail("release of a lock not held")
        } catch RecipeError.notHeld {}
        await mutex.close()
    }

    func testWaitersAreQueuedAndEachWatchesItsPredecessor() async throws {
        let path = "\(base)/locks/line"
        let first = try await client(), second = try await client(), third = try await client()
        let a = InterProcessMutex(client: first, path: path)
        try await a.acquire()
        let b = InterProcessMutex(client: second, path: path), c = InterProcessMutex(client: third, path: path)
        let bTask = Task { try await b.acquire() }
        _ = await b.states.first { $0 == .waiting }
        // Wait for b's node before c queues, so the order is a, b, c.
        while try await first.getChildren(path).count < 2 { try await Task.sleep(for: .milliseconds(10)) }
        let cTask = Task { try await c.acquire() }
        while try await first.getChildren(path).count < 3 { try await Task.sleep(for: .milliseconds(10)) }
        // Timeout-bounded acquire by c's object fails while a holds.
        XCTAssertFalse(b.isHeld)
        try await a.release()
        let bToken = try await bTask.value
        XCTAssertTrue(b.isHeld)
        XCTAssertFalse(c.isHeld)
        try await b.release()
        let cToken = try await cTask.value
        XCTAssertGreaterThan(cToken, bToken)
        try await c.release()
        for m in [a, b, c] { await m.close() }
    }

    func testAcquireWithTimeoutGivesUpAndRemovesItsNode() async throws {
        let path = "\(base)/locks/timeout"
        let holder = InterProcessMutex(client: try await client(), path: path)
        try await holder.acquire()
        let other = try await client()
        let waiter = InterProcessMutex(client: other, path: path)
        let token = try await waiter.acquire(timeout: .milliseconds(300))
        XCTAssertNil(token)
        let children = try await other.getChildren(path)
        XCTAssertEqual(children.count, 1)
        try await holder.release()
        let later = try await waiter.acquire(timeout: .seconds(30))
        XCTAssertNotNil(later)
        try await waiter.release()
    }

    func testLostSessionIsReportedAtOnceAndTheNextWaiterProceeds() async throws {
        let path = "\(base)/locks/lost"
        let doomed = try await client()
        let mutex = InterProcessMutex(client: doomed, path: path)
        try await mutex.acquire()
        let waiter = InterProcessMutex(client: try await client(), path: path)
        let waiting = Task { try await waiter.acquire() }
        let states = mutex.states
        // The session ends (closed here; an expiry is reported the same way).
        await doomed.close()
        var sawLost = false
        for await state in states {
            if case .lost(.sessionExpired) = state { sawLost = true; break }
        }
        XCTAssertTrue(sawLost)
        XCTAssertFalse(mutex.isHeld)
        let token = try await waiting.value
        XCTAssertTrue(waiter.isHeld)
        XCTAssertNotNil(token)
        try await waiter.release()
    }

    func testExpiredSessionLosesLeadershipAtOnce() async throws {
        let path = "\(base)/election-expiry"
        let doomed = try await client()
        let leader = LeaderLatch(client: doomed, path: path, id: "doomed")
        try await leader.start()
        try await leader.awaitLeadership()
        let follower = LeaderLatch(client: try await client(), path: path, id: "next")
        try await follower.start()
        let states = leader.states
        // Another connection takes over the session and closes it: the ensemble ends the session,
        // and the leader's client, reconnecting, is told it expired.
        var configuration = ZooKeeperClient.Configuration(connectString: connectString, sessionTimeout: .seconds(6))
        configuration.sessionId = doomed.sessionId
        configuration.sessionPassword = doomed.sessionPassword
        let thief = try await ZooKeeperClient.connect(configuration: configuration)
        await thief.close()
        let ended = try await within(60) {
            for await state in states {
                if case .lost = state { return state }
            }
            return HolderState.idle
        }
        XCTAssertEqual(ended, .lost(.sessionExpired))
        XCTAssertFalse(leader.hasLeadership)
        let token = try await within(60) { try await follower.awaitLeadership() }
        XCTAssertTrue(follower.hasLeadership)
        XCTAssertTrue(token.path.contains("-latch-"))
        await follower.close()
    }

    func testLeaderLatchElectsExactlyOne() async throws {
        let path = "\(base)/election"
        var latches: [LeaderLatch] = []
        for index in 0..<4 {
            let latch = LeaderLatch(client: try await client(), path: path, id: "candidate-\(index)")
            try await latch.start()
            latches.append(latch)
        }
        var remaining = latches
        while !remaining.isEmpty {
            let all = remaining
            let leader = try await within(60) {
                try await withThrowingTaskGroup(of: LeaderLatch.self) { group in
                    for latch in all { group.addTask { try await latch.awaitLeadership(); return latch } }
                    let first = try await group.next()!
                    group.cancelAll()
                    return first
                }
            }
            // Give others a chance to (wrongly) think they lead, then count.
            try await Task.sleep(for: .milliseconds(200))
            XCTAssertEqual(remaining.filter(\.hasLeadership).count, 1)
            XCTAssertTrue(leader.hasLeadership)
            // Leader's node is first and holds its id.
            let children = try await clients[0].getChildren(path)
            let sorted = CuratorNames.sorted(children, lockName: CuratorNames.latch)
            let (data, _) = try await clients[0].getData("\(path)/\(sorted[0])")
            XCTAssertEqual(String(decoding: data, as: UTF8.self), leader.id)
            XCTAssertTrue(sorted[0].contains("-latch-"))
            await leader.close()
            remaining.removeAll { $0 === leader }
        }
    }
}

final class ReadWriteLockTests: RecipeTestCase {
    func testReadersShareAndWritersExclude() async throws {
        let path = "\(base)/rw"
        let a = InterProcessReadWriteLock(client: try await client(), path: path)
        let b = InterProcessReadWriteLock(client: try await client(), path: path)
        let w = InterProcessReadWriteLock(client: try await client(), path: path)
        try await a.readLock.acquire()
        let shared = try await b.readLock.acquire(timeout: .seconds(30))
        XCTAssertNotNil(shared, "two readers hold together")
        let excluded = try await w.writeLock.acquire(timeout: .milliseconds(300))
        XCTAssertNil(excluded, "a writer waits for readers")
        let writer = Task { try await w.writeLock.acquire() }
        while try await clients[0].getChildren(path).count < 3 { try await Task.sleep(for: .milliseconds(10)) }
        let names = try await clients[0].getChildren(path)
        XCTAssertEqual(names.filter { $0.contains("-__READ__") }.count, 2)
        XCTAssertEqual(names.filter { $0.contains("-__WRIT__") }.count, 1)
        try await a.readLock.release()
        try await b.readLock.release()
        _ = try await writer.value
        XCTAssertTrue(w.writeLock.isHeld)
        let blockedReader = try await a.readLock.acquire(timeout: .milliseconds(300))
        XCTAssertNil(blockedReader, "a reader waits for the writer ahead")
        try await w.writeLock.release()
        let reader = try await a.readLock.acquire(timeout: .seconds(30))
        XCTAssertNotNil(reader)
        try await a.readLock.release()
    }
}

final class SemaphoreTests: RecipeTestCase {
    func testNoMoreThanMaxLeasesAtOnce() async throws {
        let path = "\(base)/semaphore"
        let occupancy = Occupancy()
        var sessions: [ZooKeeperClient] = []
        for _ in 0..<5 { sessions.append(try await client()) }
        let all = sessions
        try await within(120) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for client in all {
                    group.addTask {
                        let semaphore = InterProcessSemaphoreV2(client: client, path: path, maxLeases: 2)
                        for _ in 0..<3 {
                            let lease = try await semaphore.acquire()
                            XCTAssertTrue(lease.path.hasPrefix("\(path)/leases/_c_"))
                            XCTAssertTrue(lease.path.contains("-lease-"))
                            await occupancy.enter()
                            try await Task.sleep(for: .milliseconds(20))
                            await occupancy.exit()
                            try await semaphore.release(lease)
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        let maxInside = await occupancy.maxInside, entries = await occupancy.entries
        XCTAssertLessThanOrEqual(maxInside, 2)
        XCTAssertEqual(entries, 15)
    }
}

final class MultiLockTests: RecipeTestCase {
    func testTakesAllOrNothing() async throws {
        let first = "\(base)/multi/a", second = "\(base)/multi/b"
        let owner = try await client(), other = try await client()
        let multi = InterProcessMultiLock(client: owner, paths: [first, second])
        let tokens = try await multi.acquire()
        XCTAssertEqual(tokens.count, 2)
        XCTAssertTrue(multi.isHeld)
        // Someone holding b makes another multi-lock give up a without keeping it.
        try await multi.release()
        let blocker = InterProcessMutex(client: other, path: second)
        try await blocker.acquire()
        let contender = InterProcessMultiLock(client: owner, paths: [first, second])
        let none = try await contender.acquire(timeout: .milliseconds(300))
        XCTAssertNil(none)
        XCTAssertFalse(contender.locks[0].isHeld)
        let left = try await other.getChildren(first)
        XCTAssertEqual(left, [])
        try await blocker.release()
        let all = try await contender.acquire(timeout: .seconds(30))
        XCTAssertEqual(all?.count, 2)
        try await contender.release()
    }
}
