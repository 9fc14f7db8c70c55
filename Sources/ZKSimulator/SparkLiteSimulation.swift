import SparkLiteCore
import ZKCore
import ZKProtocol
import ZKRecipesCore

/// What a SparkLite run has, all derived from its seed and printed first.
public struct SparkLiteSimOptions: Sendable, CustomStringConvertible {
    public var seed: UInt64
    public var nodes: Int
    public var masters: Int
    public var workers: Int
    public var capacity: Int
    public var spec: JobSpec
    public var taskDelayMs: Int64
    public var sessionTimeoutMs: ClosedRange<Int64>
    public var tickMs: Int64
    /// Mean interval between two faults (members, network, processes, latch nodes).
    public var faultIntervalMs: Int64
    /// An operator deletes the leading master's latch node now and then (the master's session
    /// lives on: only the epoch keeps its late writes out).
    public var latchDeletions: Bool
    public var safetyMs: Int64
    public var livenessMs: Int64

    public static func derive(seed: UInt64) -> SparkLiteSimOptions {
        var random = SimRandom.derive(seed, "sparklite-options")
        let kind: JobKind = random.chance(0.5) ? .wordcount : .sort
        return SparkLiteSimOptions(
            seed: seed, nodes: random.pick([3, 3, 5]), masters: random.int(2...3), workers: random.int(2...5), capacity: random.int(1...3),
            spec: JobSpec(id: "job\(seed)", kind: kind, seed: seed, maps: random.int(6...24), reduces: random.int(1...6), recordsPerMap: random.int(20...300)),
            taskDelayMs: random.pick([50, 200, 600] as [Int64]), sessionTimeoutMs: 400...random.pick([800, 2_000, 4_000] as [Int64]), tickMs: 100,
            faultIntervalMs: random.pick([200, 500, 1_500] as [Int64]), latchDeletions: random.chance(0.6),
            safetyMs: random.int(5_000...20_000), livenessMs: 60_000)
    }

    public var description: String {
        "seed \(seed): \(nodes) members, \(masters) masters, \(workers) workers x\(capacity), \(spec.kind.rawValue) \(spec.maps) maps -> \(spec.reduces) reduces x\(spec.recordsPerMap) records, tasks \(taskDelayMs)ms, sessions \(sessionTimeoutMs.lowerBound)..\(sessionTimeoutMs.upperBound)ms, a fault every ~\(faultIntervalMs)ms\(latchDeletions ? " (latch deletions included)" : ""), \(safetyMs)ms of faults"
    }

    /// The command that runs this seed again.
    public var replay: String { "minizk sim --sparklite --seed \(seed)" }
}

public struct SparkLiteSimResult: Sendable {
    public var options: SparkLiteSimOptions
    /// The first violated property and its evidence (nil: the run passed).
    public var violation: String?
    public var simulatedMs: Int64
    public var faults: [String]
    public var elections: Int
    public var assignments: Int
    public var refused: Int
    public var commits: Int
    public var duplicates: Int
    /// For a failure: the last observations and session events of the processes.
    public var recent: [String]
    public var passed: Bool { violation == nil }

    public var summary: String {
        "seed \(options.seed): \(passed ? "passed" : "FAILED") in \(simulatedMs)ms simulated; \(faults.count) faults, \(elections) elections, \(assignments) assignments accepted, \(refused) refused, \(commits) commits, \(duplicates) duplicates discarded"
    }
}

/// SparkLite under the simulator: masters, workers and a driver — the same `MasterProgram`,
/// `WorkerProgram` and `DriverProgram` values the `minizk spark` processes run — as
/// `ProgramClient`s against a simulated ensemble, while the nemesis crashes and restarts
/// members, isolates them, crashes and stalls the SparkLite processes (a stall past the session
/// timeout expires the session behind the process's back) and, in some seeds, deletes the
/// leading master's latch node as an operator might. After the fault phase everything is healed
/// and the job must finish.
///
/// Judged from outside, by the observations (with the zxids the ensemble gave them) and the
/// committed tree: the job's result equals the single-process computation; at most one master's
/// assignments are accepted per epoch, and only while its epoch is current
/// (`SparkChecks.singleLeaderPerEpoch`); every task output is committed once; the tree holds one
/// result per task and the epoch of the last election.
public final class SparkLiteSimulation {
    public let options: SparkLiteSimOptions
    public let cluster: Cluster
    var random: SimRandom
    var observations: [SparkObservation] = []
    /// The last observations and session events, with their time and process, for a failure's report.
    var recent: [String] = []
    var faults: [String] = []
    var faultPhase = true
    var masters: [ProgramClient<Incarnations<MasterProgram>>] = []
    var workers: [ProgramClient<Incarnations<WorkerProgram>>] = []
    var driver: ProgramClient<Incarnations<DriverProgram>>?
    var vandal: ProgramClient<LatchVandal>?
    var processes: [(name: String, crash: (Int64) -> Void, pause: (Int64) -> Void, revive: () -> Void, timeoutMs: () -> Int64)] = []

    public init(options: SparkLiteSimOptions) {
        self.options = options
        var clusterOptions = Cluster.Options()
        clusterOptions.seed = options.seed
        clusterOptions.tickMs = options.tickMs
        clusterOptions.recordsMessages = false
        clusterOptions.clientLatency = LatencyModel(minMs: 1, maxMs: 5)
        clusterOptions.peerLatency = LatencyModel(minMs: 1, maxMs: 3)
        // Snapshots and log compaction happen often, as in the ZooKeeper runs.
        var snapshotRandom = SimRandom.derive(options.seed, "snapshot-options")
        clusterOptions.snapshotEveryTransactions = snapshotRandom.int(20...200)
        clusterOptions.snapshotLatency = LatencyModel(minMs: 1, maxMs: 1 + snapshotRandom.int(0...100))
        cluster = Cluster(members: (1...Int64(options.nodes)).map { $0 }, options: clusterOptions)
        random = SimRandom.derive(options.seed, "sparklite")
    }

    public func run() -> SparkLiteSimResult {
        let started = cluster.nowMs
        cluster.start()
        var violation: String?
        if !cluster.awaitStable(limitMs: 20_000) { violation = "liveness: no leader within 20000 ms of a fault-free start" }
        if violation == nil {
            startProcesses()
            let end = cluster.nowMs + options.safetyMs
            scheduleFaults(until: end)
            cluster.run(forMs: options.safetyMs)
            heal()
            _ = cluster.run(untilMs: options.livenessMs) { [self] _ in jobDone }
            if !jobDone {
                violation = "liveness: the job did not finish within \(options.livenessMs) ms of healing; \(state())"
            } else {
                cluster.run(forMs: 500)
                violation = check()
            }
        }
        for process in masters { process.stop() }
        for process in workers { process.stop() }
        driver?.stop()
        vandal?.stop()
        let count = { (match: (SparkObservation) -> Bool) in self.observations.filter(match).count }
        return SparkLiteSimResult(
            options: options, violation: violation, simulatedMs: cluster.nowMs - started, faults: faults,
            elections: count { if case .elected = $0 { return true } else { return false } },
            assignments: count { if case .assigned = $0 { return true } else { return false } },
            refused: count { if case .assignmentRefused = $0 { return true } else { return false } },
            commits: count { if case .committed = $0 { return true } else { return false } },
            duplicates: count { if case .duplicateDiscarded = $0 { return true } else { return false } },
            recent: violation == nil ? [] : Array(recent.suffix(60)))
    }

    func remember(_ line: String) {
        recent.append("\(cluster.nowMs): \(line)")
        if recent.count > 80 { recent.removeFirst(recent.count - 60) }
    }

    var driverProgram: DriverProgram? { driver?.program?.last }
    var jobDone: Bool { driverProgram?.result != nil || driverProgram?.failure != nil }

    // MARK: - Processes

    func timeout() -> Int32 { Int32(random.int(options.sessionTimeoutMs)) }

    func startProcesses() {
        let layout = SparkLayout()
        var config = ClusterConfig()
        config.taskDelayMs = options.taskDelayMs
        let defaults = config
        let seed = options.seed
        var index = 0
        func listener<P>(_ name: String) -> (ProgramClient<P>, ProgramClient<P>.Report) -> Void where P.Observation == SparkObservation {
            { [weak self] _, report in
                guard let self else { return }
                switch report {
                case .observed(let observation):
                    self.observations.append(observation)
                    self.remember("\(name): \(observation)")
                case .session(let event):
                    self.remember("\(name): session \(event)")
                case .crashed:
                    self.remember("\(name): crashed")
                case .started(let incarnation):
                    self.remember("\(name): started (\(incarnation))")
                }
            }
        }
        for number in 1...options.masters {
            let id = "master-\(number)"
            let client = ProgramClient<Incarnations<MasterProgram>>(
                index: index, name: id, cluster: cluster, seed: seed, timeoutMs: timeout(), tickMs: options.tickMs,
                makeProgram: { life in
                    Incarnations(make: { incarnation in
                        var uuids = SeededUUIDs(seed: seed &* 31 &+ UInt64(number) &* 1_000_003 &+ UInt64(life) &* 10_007 &+ UInt64(incarnation))
                        return MasterProgram(.init(layout: layout, id: id, uuid: uuids.next(), defaults: defaults))
                    })
                }, listener: listener(id))
            masters.append(client)
            index += 1
        }
        for number in 1...options.workers {
            let id = "worker-\(number)"
            let capacity = options.capacity
            let client = ProgramClient<Incarnations<WorkerProgram>>(
                index: index, name: id, cluster: cluster, seed: seed, timeoutMs: timeout(), tickMs: options.tickMs,
                makeProgram: { life in
                    Incarnations(make: { incarnation in
                        WorkerProgram(.init(layout: layout, id: id, capacity: capacity, defaults: defaults, nonce: "\(life).\(incarnation)"))
                    })
                },
                listener: listener(id))
            workers.append(client)
            index += 1
        }
        let spec = options.spec
        let driver = ProgramClient<Incarnations<DriverProgram>>(
            index: index, name: "driver", cluster: cluster, seed: seed, timeoutMs: timeout(), tickMs: options.tickMs,
            makeProgram: { _ in Incarnations(make: { _ in DriverProgram(.init(layout: layout, spec: spec)) }, complete: { $0.result != nil || $0.failure != nil }) },
            listener: listener("driver"))
        self.driver = driver
        index += 1
        if options.latchDeletions {
            var vandalRandom = SimRandom.derive(seed, "sparklite-vandal")
            var at: Int64 = 0
            var delays: [Int64] = []
            while at < options.safetyMs {
                let delay = vandalRandom.int((options.faultIntervalMs * 2)...(options.faultIntervalMs * 6))
                at += delay
                if at < options.safetyMs { delays.append(delay) }
            }
            let vandal = ProgramClient<LatchVandal>(
                index: index, name: "operator", cluster: cluster, seed: seed, timeoutMs: 10_000, tickMs: options.tickMs,
                makeProgram: { _ in LatchVandal(base: layout.leaderElection, delaysMs: delays) },
                listener: { [weak self] _, report in
                    if case .observed(.deposed(_, _, let reason)) = report { self?.faults.append("\(self?.cluster.nowMs ?? 0): \(reason)") }
                })
            self.vandal = vandal
        }
        var start = cluster.nowMs
        for client in masters { client.start(atMs: start); start += random.int(0...50) }
        for client in workers { client.start(atMs: start + random.int(0...200)) }
        driver.start(atMs: start + random.int(100...(options.safetyMs / 3)))
        vandal?.start(atMs: cluster.nowMs)
        for client in masters { processes.append((client.name, client.crash, { client.pause(ms: $0) }, client.reviveNow, { client.negotiatedTimeoutMs })) }
        for client in workers { processes.append((client.name, client.crash, { client.pause(ms: $0) }, client.reviveNow, { client.negotiatedTimeoutMs })) }
        processes.append((driver.name, driver.crash, { driver.pause(ms: $0) }, driver.reviveNow, { driver.negotiatedTimeoutMs }))
    }

    // MARK: - Faults

    func scheduleFaults(until end: Int64) {
        let interval = options.faultIntervalMs
        cluster.after(random.int((interval / 2)...(interval * 3 / 2))) { [weak self] in
            guard let self, self.faultPhase, self.cluster.nowMs < end else { return }
            self.inject()
            self.scheduleFaults(until: end)
        }
    }

    func record(_ fault: String) { faults.append("\(cluster.nowMs): \(fault)") }

    func inject() {
        let members = cluster.members
        switch random.weighted([3, 2, 1, 4, 3]) {
        case 0:
            // A member crashes (a majority stays up) and restarts later.
            let up = members.filter(cluster.isUp)
            guard up.count > members.count / 2 + 1 || (up.count == members.count && members.count > 1) else { return }
            let victim = random.pick(up)
            record("crash n\(victim)")
            cluster.crash(victim)
            cluster.after(random.int(200...3_000)) { [weak self] in
                guard let self, !self.cluster.isUp(victim) else { return }
                self.record("restart n\(victim)")
                self.cluster.restart(victim)
            }
        case 1:
            // The leader of the ensemble crashes.
            guard let leader = cluster.leaders.first, members.filter(cluster.isUp).count == members.count else { return }
            record("crash the ensemble leader n\(leader)")
            cluster.crash(leader)
            cluster.after(random.int(500...3_000)) { [weak self] in
                guard let self, !self.cluster.isUp(leader) else { return }
                self.record("restart n\(leader)")
                self.cluster.restart(leader)
            }
        case 2:
            // A member is cut off from the others, then the network heals.
            let victim = random.pick(members)
            record("isolate n\(victim)")
            cluster.isolate(victim)
            cluster.after(random.int(300...4_000)) { [weak self] in
                guard let self, self.faultPhase else { return }
                self.record("heal the network")
                self.cluster.heal()
            }
        case 3:
            let process = random.pick(processes)
            let down = random.int(10...3_000) as Int64
            record("crash \(process.name) for \(down)ms")
            process.crash(down)
        default:
            // A stall: past the session timeout, the session expires behind the process's back.
            let process = random.pick(processes)
            let ms = random.int(50...(3 * max(process.timeoutMs(), 100)))
            record("pause \(process.name) for \(ms)ms")
            process.pause(ms)
        }
    }

    func heal() {
        faultPhase = false
        record("heal everything")
        cluster.heal()
        cluster.unclogAll()
        for id in cluster.members where !cluster.isUp(id) { cluster.restart(id) }
        for client in masters { client.reviveNow(); client.resume() }
        for client in workers { client.reviveNow(); client.resume() }
        driver?.reviveNow()
        driver?.resume()
        vandal?.stop()
    }

    // MARK: - Checks

    func check() -> String? {
        var violations = SparkChecks.resultMatches(options.spec, driverProgram?.result)
        violations += SparkChecks.singleLeaderPerEpoch(observations)
        violations += SparkChecks.committedOnce(observations)
        if let failure = driverProgram?.failure { violations.append(.init(property: "the job finishes", detail: "it failed: \(failure)")) }
        if let first = violations.first { return first.description }
        // The committed tree, on the leader.
        guard let leader = cluster.leaders.first else { return nil }
        let tree = cluster.replica(leader).tree
        let layout = SparkLayout()
        let results = tree.node(layout.resultDir(options.spec.id)).map { Array($0.children).count } ?? 0
        if results != options.spec.maps + options.spec.reduces {
            return "the tree holds one result per task: \(results) results for \(options.spec.maps + options.spec.reduces) tasks"
        }
        // The epoch node holds the last election's epoch, or one a master bumped to and never
        // learned of (it crashed, or its session ended, before the reply).
        let epochs = observations.compactMap { if case .elected(_, let epoch, _) = $0 { return epoch } else { return nil } }
        let attempted = observations.compactMap { if case .bumping(_, let epoch) = $0 { return epoch } else { return nil } }
        let stored = tree.node(layout.epoch).flatMap { $0.data }.flatMap { Int64(String(decoding: $0, as: UTF8.self)) } ?? 0
        if let highest = epochs.max(), stored < highest || stored > (attempted.max() ?? highest) {
            return "the epoch node holds the last election's epoch or an attempted one: \(stored), elected up to \(highest), attempted up to \(attempted.max() ?? 0)"
        }
        return nil
    }

    func state() -> String {
        let committed = observations.filter { if case .committed = $0 { return true } else { return false } }.count
        let leading = masters.compactMap { $0.program?.last }.filter(\.isLeading).map(\.summary)
        var lines = "\(committed) commits observed; masters running \(masters.filter(\.isRunning).count), workers running \(workers.filter(\.isRunning).count); leading: \(leading)"
        if let leader = cluster.leaders.first {
            let tree = cluster.replica(leader).tree
            let layout = SparkLayout()
            let registered = tree.node(layout.workers).map { Array($0.children).sorted() } ?? []
            let assigned = registered.map { worker in "\(worker): \(tree.node(layout.assignmentDir(worker)).map { Array($0.children).sorted() } ?? [])" }
            lines += "; registered \(registered); assignments \(assigned)"
            lines += "; workers: " + workers.map { "\($0.program?.last?.summary ?? "\($0.name) not running")" }.joined(separator: "; ")
        }
        return lines
    }
}

/// An operator who, now and then, deletes the first node of the leader latch — the leading
/// master's — with zkCli. The master's session lives on and nothing tells it: a second master
/// leads while the first still believes it does, and only the epoch keeps the first one's late
/// writes out.
struct LatchVandal: CoordinationProgram {
    typealias Observation = SparkObservation
    let base: String
    var delaysMs: [Int64]
    var listing: CallID = 0
    var next: CallID = 1

    init(base: String, delaysMs: [Int64]) {
        self.base = base
        self.delaysMs = delaysMs
    }

    mutating func handle(_ input: ProgramInput, nowMs: Int64) -> [ProgramAction<SparkObservation>] {
        var out: [ProgramAction<SparkObservation>] = []
        switch input {
        case .start:
            if !delaysMs.isEmpty { out.append(.timer(1, afterMs: delaysMs.removeFirst())) }
        case .timer:
            listing = next
            next += 1
            out.append(.call(listing, .getChildren(path: base, watch: false), watch: false))
            if !delaysMs.isEmpty { out.append(.timer(1, afterMs: delaysMs.removeFirst())) }
        case .reply(let id, .success(.getChildren(let children))) where id == listing:
            if let first = CuratorNames.sorted(children, lockName: CuratorNames.latch).first {
                next += 1
                out.append(.call(next, .delete(path: CuratorNames.join(base, first), version: -1), watch: false))
                out.append(.observe(.deposed(master: "?", epoch: 0, reason: "operator deletes the latch node \(first)")))
            }
        default:
            break
        }
        return out
    }
}
