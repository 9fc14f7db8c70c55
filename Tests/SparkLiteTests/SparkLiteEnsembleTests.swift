import NIOConcurrencyHelpers
import SparkLite
import SparkLiteCore
import XCTest
import ZKClient
import ZKTesting

/// SparkLite on a real three-member MiniZK ensemble in this process: masters, workers and the
/// driver on real sessions over real sockets, with the active master, a worker and ensemble
/// members (the leader included) killed in the middle of jobs. Every run must give the exact
/// single-process result, with no task output committed twice and assignments only from the
/// current epoch's master.
final class SparkLiteEnsembleTests: XCTestCase {
    final class Recorder: Sendable {
        let observations = NIOLockedValueBox<[(String, SparkObservation)]>([])
        var all: [SparkObservation] { observations.withLockedValue { $0.map(\.1) } }
        func follow(_ name: String, _ stream: AsyncStream<SparkObservation>) {
            Task { for await observation in stream { self.observations.withLockedValue { $0.append((name, observation)) } } }
        }
        func contains(_ predicate: (SparkObservation) -> Bool) -> Bool { all.contains(where: predicate) }
    }

    struct Cluster {
        var masters: [SparkService<MasterProgram>]
        var workers: [SparkService<WorkerProgram>]
        let recorder: Recorder
    }

    // Long enough that a loaded machine does not expire sessions by itself: the tests expire them.
    let sessionTimeout = Duration.milliseconds(4000)

    func startCluster(_ zk: TestEnsemble, masters: Int = 2, workers: Int = 3, taskDelayMs: Int64) async throws -> Cluster {
        let recorder = Recorder()
        // The configuration first, so that every role starts with it.
        let admin = try await ZooKeeperClient.connect(zk.connectString)
        for path in ["/sparklite", "/sparklite/config"] { _ = try? await admin.create(path) }
        _ = try? await admin.create("/sparklite/config/cluster", data: Array("taskDelayMs=\(taskDelayMs)".utf8))
        await admin.close()
        var cluster = Cluster(masters: [], workers: [], recorder: recorder)
        for index in 1...masters {
            let master = SparkLite.master(zk.connectString, id: "master-\(index)", sessionTimeout: sessionTimeout)
            recorder.follow("master-\(index)", master.observations)
            await master.start()
            cluster.masters.append(master)
            if index == 1 { try await until { recorder.contains { if case .elected = $0 { return true } else { return false } } } }
        }
        for index in 1...workers {
            let worker = SparkLite.worker(zk.connectString, id: "worker-\(index)", capacity: 2, sessionTimeout: sessionTimeout)
            recorder.follow("worker-\(index)", worker.observations)
            await worker.start()
            cluster.workers.append(worker)
        }
        return cluster
    }

    func stop(_ cluster: Cluster) async {
        for master in cluster.masters { await master.stop() }
        for worker in cluster.workers { await worker.stop() }
    }

    /// Polls `condition` (a hang becomes a failure; nothing is timed).
    func until(_ what: String = "condition", timeout: Duration = .seconds(60), _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while try await !condition() {
            guard ContinuousClock.now < deadline else { throw TimedOut(what: what) }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    struct TimedOut: Error { var what: String }

    static func submit(_ zk: TestEnsemble, _ spec: JobSpec, _ recorder: Recorder) async throws -> [UInt8] {
        let connectString = zk.connectString
        return try await SparkLite.submit(connectString, spec: spec) { observation in
            recorder.observations.withLockedValue { $0.append(("driver", observation)) }
        }
    }

    func assertChecks(_ spec: JobSpec, _ result: [UInt8], _ recorder: Recorder, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(SparkChecks.resultMatches(spec, result), [], file: file, line: line)
        XCTAssertEqual(SparkChecks.committedOnce(recorder.all), [], file: file, line: line)
        XCTAssertEqual(SparkChecks.singleLeaderPerEpoch(recorder.all), [], file: file, line: line)
    }

    /// The master that leads now (the last one elected that has not been deposed).
    func activeMaster(_ cluster: Cluster) -> Int? {
        var active: String?
        for (name, observation) in cluster.recorder.observations.withLockedValue({ $0 }) {
            if case .elected = observation { active = name }
            if case .deposed = observation, name == active { active = nil }
        }
        return active.flatMap { Int($0.dropFirst("master-".count)) }.map { $0 - 1 }
    }

    func committedCount(_ recorder: Recorder) -> Int {
        recorder.all.filter { if case .committed = $0 { return true } else { return false } }.count
    }

    // MARK: - Tests

    func testWordCountAndSortGiveTheSingleProcessResult() async throws {
        try await withTestEnsemble(members: 3, tickMs: 200) { zk in
            let cluster = try await startCluster(zk, taskDelayMs: 0)
            let wordCount = JobSpec(id: "wc", kind: .wordcount, seed: 21, maps: 8, reduces: 4, recordsPerMap: 2000)
            assertChecks(wordCount, try await Self.submit(zk, wordCount, cluster.recorder), cluster.recorder)
            let sort = JobSpec(id: "sort", kind: .sort, seed: 22, maps: 6, reduces: 3, recordsPerMap: 1500)
            assertChecks(sort, try await Self.submit(zk, sort, cluster.recorder), cluster.recorder)
            let status = try await withClient(zk) { try await SparkStatus.read($0) }
            XCTAssertEqual(status.epoch, 1)
            XCTAssertEqual(status.masters.count, 2)
            XCTAssertEqual(status.masters.filter(\.leader).map(\.id), ["master-1"])
            XCTAssertEqual(status.workers.map(\.id), ["worker-1", "worker-2", "worker-3"])
            XCTAssertEqual(status.jobs.map(\.state), ["finished", "finished"])
            XCTAssertEqual(status.jobs.map(\.id), ["sort", "wc"])
            XCTAssertEqual(status.jobs.map(\.committed), [6 + 3, 8 + 4])
            await stop(cluster)
        }
    }

    func withClient<T: Sendable>(_ zk: TestEnsemble, _ body: (ZooKeeperClient) async throws -> T) async throws -> T {
        let client = try await ZooKeeperClient.connect(zk.connectString)
        do {
            let result = try await body(client)
            await client.close()
            return result
        } catch {
            await client.close()
            throw error
        }
    }

    func testTheActiveMasterKilledMidJob() async throws {
        try await withTestEnsemble(members: 3, tickMs: 200) { zk in
            let cluster = try await startCluster(zk, taskDelayMs: 60)
            let spec = JobSpec(id: "wc", kind: .wordcount, seed: 31, maps: 10, reduces: 4, recordsPerMap: 1000)
            let recorder = cluster.recorder
            async let result = Self.submit(zk, spec, recorder)
            try await until("a task committed") { committedCount(recorder) >= 3 }
            let active = try XCTUnwrap(activeMaster(cluster))
            let epochBefore: Int64 = recorder.all.compactMap { observation -> Int64? in if case .elected(_, let epoch, _) = observation { return epoch } else { return nil } }.max() ?? 0
            // kill -9: the program stops, the client is dropped without closing its session, and
            // the ensemble expires the session (as it does once the timeout passes).
            let master = cluster.masters[active]
            let session = try await master.awaitSession()
            await master.kill()
            try await zk.expireSession(session)
            await master.abandonSession()?.close()
            assertChecks(spec, try await result, recorder)
            // The standby took over with a higher epoch and assigned work under it (a loaded
            // machine may add elections of its own: only this order is asserted).
            let standby = "master-\(2 - active)"
            let takeover = recorder.all.compactMap { if case .elected(standby, let epoch, _) = $0, epoch > epochBefore { return epoch } else { return nil } }.first
            XCTAssertNotNil(takeover, "the standby was not elected after the kill")
            XCTAssertTrue(recorder.contains { if case .assigned(standby, let epoch, _, _, _, _, _) = $0 { return epoch > epochBefore } else { return false } },
                          "the new master assigned nothing")
            await stop(cluster)
        }
    }

    func testAWorkerKilledMidJob() async throws {
        try await withTestEnsemble(members: 3, tickMs: 200) { zk in
            let cluster = try await startCluster(zk, taskDelayMs: 80)
            let spec = JobSpec(id: "sort", kind: .sort, seed: 41, maps: 9, reduces: 3, recordsPerMap: 1000)
            let recorder = cluster.recorder
            async let result = Self.submit(zk, spec, recorder)
            try await until("worker-2 running a task") {
                recorder.contains { if case .taskStarted("worker-2", _, _, _) = $0 { return true } else { return false } }
            }
            let worker = cluster.workers[1]
            let session = try await worker.awaitSession()
            await worker.kill()
            try await zk.expireSession(session)
            await worker.abandonSession()?.close()
            assertChecks(spec, try await result, recorder)
            XCTAssertTrue(recorder.contains { if case .assigned(_, _, _, _, let to, let attempt, _) = $0 { return attempt > 1 && to != "worker-2" } else { return false } },
                          "worker-2's tasks were not assigned again")
            await stop(cluster)
        }
    }

    func testTheEnsembleLeaderAndAFollowerKilledMidJob() async throws {
        try await withTestEnsemble(members: 3, tickMs: 200) { zk in
            let cluster = try await startCluster(zk, taskDelayMs: 50)
            let spec = JobSpec(id: "wc", kind: .wordcount, seed: 51, maps: 10, reduces: 5, recordsPerMap: 1000)
            let recorder = cluster.recorder
            async let result = Self.submit(zk, spec, recorder)
            try await until("the map stage under way") { committedCount(recorder) >= 2 }
            let leader = try await zk.killLeader()
            try await until("more progress without the old leader") { committedCount(recorder) >= 7 }
            try await zk.restart(leader.id)
            try await until("the reduce stage under way") {
                recorder.contains { if case .assigned(_, _, _, let task, _, _, _) = $0 { return task.stage == .reduce } else { return false } }
            }
            let follower = try await zk.status().first { $0.running && $0.mode == "follower" }
            if let follower { try await zk.kill(follower.id) }
            assertChecks(spec, try await result, recorder)
            if let follower { try await zk.restart(follower.id) }
            await stop(cluster)
        }
    }
}
