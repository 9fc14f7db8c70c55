import ZKCore
import ZKProtocol

/// One simulated run, in the manner of TigerBeetle's VOPR and FoundationDB's simulation: one
/// thread, virtual time, and one seed that derives every option and every choice.
///
/// 1. **Start**: the ensemble elects a leader; a setup client creates the workload's parents.
/// 2. **Safety phase**: clients run the workload while the nemesis injects faults (crashes,
///    partitions, clogs, pauses, disk stalls, broken connections) and the network drops,
///    duplicates and reorders at the connection level; in some seeds an administrator also
///    reconfigures the membership now and then. Checkers watch every step.
/// 3. **Liveness phase**: every fault is healed and every replica restarted. Within a bounded
///    virtual time a quorum must elect a leader, every replica must catch up, every client
///    must get its probe (a write and a read) answered, and every abandoned session must expire.
/// 4. **Offline checks** over the whole history: linearizability per path, sequential
///    znodes, watches, acknowledged writes.
///
/// The first violated property stops the run and is reported with the evidence around it.
public final class Simulation {
    public let options: SimulationOptions
    public let cluster: Cluster
    public let history = History()
    let verdict: Verdict
    let checker: ReplicaChecker
    var clients: [SimClient] = []
    var setup: SimClient?
    /// Recipe contenders, when the options have them.
    var recipes: RecipeScenario?
    private var nemesisRandom: SimRandom
    /// Reconfigurations draw from a stream of their own: seeds without them run as before.
    private var reconfigRandom: SimRandom
    private var faultPhase = true
    private var cutCounts: [String: Int] = [:]
    public private(set) var faultsInjected: [String] = []
    /// Reconfigurations the administrator asked for.
    private var reconfigsAsked = 0

    public init(options: SimulationOptions, traceSink: ((String) -> Void)? = nil) {
        self.options = options
        var clusterOptions = Cluster.Options()
        clusterOptions.seed = options.seed
        clusterOptions.tickMs = options.tickMs
        clusterOptions.peerLatency = options.peerLatency
        clusterOptions.linkLatencySpread = options.linkLatencySpread
        clusterOptions.clientLatency = options.clientLatency
        clusterOptions.fsyncLatency = options.fsyncLatency
        clusterOptions.dropProbability = options.dropProbability
        clusterOptions.duplicateProbability = options.duplicateProbability
        clusterOptions.reorderProbability = options.reorderProbability
        clusterOptions.detectionDelay = options.detectionDelay
        clusterOptions.reconnectDelay = options.reconnectDelay
        clusterOptions.recordsMessages = false
        clusterOptions.snapshotEveryTransactions = options.snapshotEveryTransactions
        clusterOptions.snapshotLatency = options.snapshotLatency
        let logWindowMax = options.logWindowMax
        let members = (1...Int64(options.nodes)).map { $0 }
        let ensembleText = options.reconfigIntervalMs == nil ? nil : Self.ensemble(options.initialVoters).text
        clusterOptions.configure = { config in
            config.logWindowMax = logWindowMax
            if let ensembleText {
                config.ensembleConfigText = ensembleText
                config.reconfigEnabled = true
                config.superDigest = Simulation.adminDigest
            }
        }
        cluster = Cluster(members: members, options: clusterOptions)
        cluster.traceSink = traceSink
        verdict = Verdict(cluster: cluster)
        checker = ReplicaChecker(verdict: verdict, voters: options.initialVoters)
        cluster.observers.append(checker)
        cluster.observers.append(SessionChecker(verdict: verdict))
        nemesisRandom = SimRandom.derive(options.seed, "nemesis")
        reconfigRandom = SimRandom.derive(options.seed, "reconfig")
    }

    // MARK: - Running

    public func run() -> SimulationResult {
        let startMs = cluster.nowMs
        cluster.start()
        if !cluster.awaitStable(limitMs: 20_000) && !verdict.failed {
            verdict.fail("liveness", "no leader was established within 20000 ms of a fault-free start", context: livenessState())
        }
        if !verdict.failed { runSetup() }
        if !verdict.failed { runSafetyPhase() }
        if !verdict.failed { runLivenessPhase() }
        var summary = HistoryChecker.Summary()
        if !verdict.failed { finalChecks() }
        if !verdict.failed { summary = offlineChecks() }
        if !verdict.failed { recipes?.checker.finalChecks() }
        for client in clients { client.stop() }
        setup?.stop()
        recipes?.stop()
        return SimulationResult(
            options: options, violation: verdict.first, simulatedMs: cluster.nowMs - startMs, events: cluster.eventsHandled,
            operations: history.entries.count, completed: history.completed, sessions: history.sessions.count,
            committed: checker.committed.count, faults: faultsInjected + (recipes?.faults ?? []), unknownPaths: summary.unknownPaths,
            linearizabilityPaths: summary.paths, readsChecked: summary.readsChecked, statistics: cluster.statistics,
            leaders: checker.leaderOfEpoch.count, reconfigsAsked: reconfigsAsked,
            reconfigsCommitted: checker.committed.values.filter { Replica.reconfiguration($0) != nil }.count,
            recipes: recipes?.checker.summary)
    }

    private func runSetup() {
        let setup = makeClient(index: options.clients, timeoutMs: options.sessionTimeoutMs.upperBound)
        let recipePaths = options.recipes == nil ? [] : RecipeSpec.setupPaths.map { ($0, "") }
        setup.script = (WorkloadSpec.setupPaths(clients: options.clients) + recipePaths).map { path, data in
            .create(path: path, data: Array(data.utf8), ephemeral: false, sequential: false)
        }
        self.setup = setup
        setup.start(atMs: cluster.nowMs)
        scheduleCheckpoints()
        let done = cluster.run(untilMs: 30_000) { _ in setup.scriptDone }
        if !done && !verdict.failed {
            verdict.fail("liveness", "the setup client could not create the workload's parents within 30000 ms without faults", context: livenessState())
            return
        }
        setup.abandon()
    }

    private func makeClient(index: Int, timeoutMs: Int64) -> SimClient {
        SimClient(
            index: index, cluster: cluster, history: history, verdict: verdict, spec: options.workload, seed: options.seed,
            timeoutMs: Int32(timeoutMs), tickMs: options.tickMs)
    }

    private func runSafetyPhase() {
        var random = SimRandom.derive(options.seed, "clients")
        for index in 0..<options.clients {
            let timeout = random.int(options.sessionTimeoutMs)
            let client = makeClient(index: index, timeoutMs: timeout)
            clients.append(client)
            client.start(atMs: cluster.nowMs + random.int(0...200))
        }
        let end = cluster.nowMs + options.safetyMs
        if let spec = options.recipes {
            let recipes = RecipeScenario(
                spec: spec, cluster: cluster, verdict: verdict, replicas: checker, seed: options.seed,
                timeoutMs: options.sessionTimeoutMs, tickMs: options.tickMs, firstIndex: options.clients + 1)
            self.recipes = recipes
            recipes.start()
            if !options.faults.isEmpty { recipes.scheduleFaults(until: end) }
        }
        if !options.faults.isEmpty { scheduleNextFault(until: end) }
        if let interval = options.reconfigIntervalMs { scheduleNextReconfig(every: interval, until: end) }
        cluster.run(forMs: options.safetyMs)
    }

    private func runLivenessPhase() {
        healEverything()
        recipes?.heal()
        for client in clients { client.beginProbe() }
        let deadline = cluster.nowMs + options.livenessMs
        while !verdict.failed && cluster.nowMs < deadline {
            cluster.run(forMs: 100)
            if livenessReached() {
                // Let what is in flight land (watch events on their way) before the final checks.
                cluster.run(forMs: 1_000)
                return
            }
        }
        if !verdict.failed && !livenessReached() {
            verdict.fail(
                "liveness", "\(options.livenessMs) ms after healing every fault the ensemble has not recovered",
                context: livenessState())
        }
    }

    private func scheduleCheckpoints() {
        cluster.after(options.checkpointMs) { [weak self] in
            guard let self, !self.verdict.failed else { return }
            self.checker.checkpoint(self.cluster)
            self.scheduleCheckpoints()
        }
    }

    // MARK: - Liveness

    /// The healed ensemble serves again: one leader, everyone serving and caught up, every
    /// client answered, every abandoned or closed session gone.
    func livenessReached() -> Bool {
        guard cluster.leaders.count == 1, cluster.servingCount == cluster.members.count else { return false }
        let leader = cluster.replica(cluster.leaders[0])
        let last = leader.tree.lastZxid
        for id in cluster.members where cluster.replica(id).tree.lastZxid != last { return false }
        guard clients.allSatisfy(\.isSettled) else { return false }
        if let recipes, !recipes.settled(leader.tree) { return false }
        return lingeringSessions(leader.tree).isEmpty
    }

    /// Sessions that should be gone but are still in `tree`.
    private func lingeringSessions(_ tree: DataTree) -> [Int64] {
        history.sessions.values.filter { session in
            (session.abandonedAtMs != nil || session.closedByClient) && tree.sessions[session.id] != nil
        }.map(\.id).sorted()
    }

    private func livenessState() -> [String] {
        var lines: [String] = []
        for id in cluster.members {
            let replica = cluster.replica(id)
            let status = replica.status()
            lines.append(
                "n\(id): \(cluster.isUp(id) ? status.mode : "down")\(replica.isServing ? " serving" : "") epoch \(status.currentEpoch) applied \(hex(replica.tree.lastZxid)) logged \(hex(cluster.store(id).lastZxid)) durable \(hex(cluster.store(id).durableZxid))"
            )
        }
        for client in clients where !client.isSettled {
            let waiting = client.waiting.map { waiting in waiting.operation.map { "xid \(waiting.xid) \($0)" } ?? "ping" }
            lines.append("client \(client.index): \(client.phase) session \(hex(client.sessionId)) waiting for \(waiting)")
        }
        if let recipes, let leader = cluster.leaders.first { lines += recipes.unsettled(cluster.replica(leader).tree) }
        if let leader = cluster.leaders.first {
            let lingering = lingeringSessions(cluster.replica(leader).tree)
            if !lingering.isEmpty {
                let status = cluster.replica(leader).status()
                for id in lingering {
                    let record = history.sessions[id]
                    let expiresAt = status.sessions.first { $0.id == id }?.expiresAtMs ?? 0
                    lines.append(
                        "session \(hex(id)) not expired: \(record?.closedByClient == true ? "closed by its client" : "abandoned at \(record?.abandonedAtMs ?? 0)"), timeout \(record?.timeoutMs ?? 0)ms, the leader expires it at \(expiresAt == 0 ? "never (not tracked)" : "\(expiresAt)")"
                    )
                }
            }
        }
        return lines
    }

    // MARK: - Checks

    private func finalChecks() {
        checker.checkpoint(cluster)
        for id in cluster.members { checker.checkLog(id, cluster) }
        if verdict.failed { return }
        let final = cluster.replica(cluster.leaders[0]).tree
        if checker.maxCommitted > final.lastZxid {
            verdict.fail(
                "zab.lost-commit",
                "\(hex(checker.maxCommitted)) was committed (applied by a replica) but the healed ensemble ends at \(hex(final.lastZxid))")
            return
        }
        for client in clients where final.sessions[client.sessionId] == nil {
            verdict.fail("session.expiry", "client \(client.index)'s session \(hex(client.sessionId)) is answered but not live in the tree")
            return
        }
    }

    private func offlineChecks() -> HistoryChecker.Summary {
        var checker = HistoryChecker(
            history: history, committed: self.checker.committed, committedAt: self.checker.committedAt,
            liveSessions: Set(clients.map(\.sessionId)), openConnections: Set(clients.compactMap(\.connection)))
        checker.budget = options.linearizabilityBudget
        checker.checkAcknowledgedWrites(into: verdict)
        if verdict.failed { return HistoryChecker.Summary() }
        checker.checkSequential(into: verdict)
        if verdict.failed { return HistoryChecker.Summary() }
        let reads = ReadChecker.check(history: history, committed: self.checker.committed, into: verdict)
        if verdict.failed { return HistoryChecker.Summary() }
        checker.checkWatches(into: verdict)
        if verdict.failed { return HistoryChecker.Summary() }
        var summary = checker.checkLinearizability(into: verdict)
        summary.readsChecked = reads
        return summary
    }

    // MARK: - Nemesis

    private func scheduleNextFault(until end: Int64) {
        let delay = nemesisRandom.int((options.faultIntervalMs / 2)...(options.faultIntervalMs * 3 / 2))
        cluster.after(delay) { [weak self] in
            guard let self, self.faultPhase, self.cluster.nowMs < end else { return }
            self.injectFault()
            self.scheduleNextFault(until: end)
        }
    }

    private func record(_ fault: String) {
        faultsInjected.append("\(cluster.nowMs): \(fault)")
    }

    private func injectFault() {
        let members = cluster.members
        let kind = nemesisRandom.pick(options.faults)
        let node = nemesisRandom.pick(members)
        switch kind {
        case .crash:
            crash(node)
        case .crashMany:
            let count = nemesisRandom.int(1...members.count)
            var victims = members
            for _ in 0..<(members.count - count) { victims.remove(at: Int(nemesisRandom.below(UInt64(victims.count)))) }
            for victim in victims { crash(victim) }
        case .partition:
            guard members.count > 1 else { return }
            var shuffled = members
            shuffle(&shuffled)
            let size = nemesisRandom.int(1...(members.count / 2))
            let side = Array(shuffled.prefix(size))
            let other = Array(shuffled.dropFirst(size))
            cutFor(pairs: side.flatMap { a in other.flatMap { b in [(a, b), (b, a)] } }, label: "partition \(side)|\(other)")
        case .oneWay:
            guard members.count > 1 else { return }
            let to = nemesisRandom.pick(members.filter { $0 != node })
            cutFor(pairs: [(node, to)], label: "one-way \(node)->\(to)")
        case .bridge:
            guard members.count >= 3 else { return }
            var others = members.filter { $0 != node }
            shuffle(&others)
            let size = nemesisRandom.int(1...(others.count - 1))
            let side = Array(others.prefix(size))
            let other = Array(others.dropFirst(size))
            cutFor(pairs: side.flatMap { a in other.flatMap { b in [(a, b), (b, a)] } }, label: "bridge \(side)|\(node)|\(other)")
        case .isolate:
            guard members.count > 1 else { return }
            let others = members.filter { $0 != node }
            cutFor(pairs: others.flatMap { [(node, $0), ($0, node)] }, label: "isolate \(node)")
        case .clog:
            let ms: Int64 = nemesisRandom.int(50...2_000)
            record("clog n\(node) \(ms)ms")
            cluster.clog(node, forMs: ms)
        case .pause:
            let ms: Int64 = nemesisRandom.int(50...3_000)
            record("pause n\(node) \(ms)ms")
            cluster.pause(node, forMs: ms)
        case .diskStall:
            let ms: Int64 = nemesisRandom.int(50...2_000)
            record("disk stall n\(node) \(ms)ms")
            cluster.stallDisk(node, forMs: ms)
        case .linkBreak:
            guard members.count > 1 else { return }
            let peer = nemesisRandom.pick(members.filter { $0 != node })
            record("break link \(node)-\(peer)")
            cluster.breakConnection(node, peer)
        case .clientBreak:
            let connected = clients.filter { $0.connection != nil }
            guard !connected.isEmpty else { return }
            let client = nemesisRandom.pick(connected)
            record("break client \(client.index)'s connection")
            cluster.breakClientConnection(client.connection!)
        }
    }

    // MARK: - Reconfiguration

    static let adminDigest = ACLs.digest("admin:reconfig")

    /// Every member a participant, with made-up addresses (the simulator routes by id).
    static func ensemble(_ members: [Int64]) -> EnsembleConfig {
        EnsembleConfig(servers: members.map { server($0, .participant) })
    }

    static func server(_ id: Int64, _ role: EnsembleConfig.Role) -> EnsembleConfig.Server {
        EnsembleConfig.Server(
            id: id, host: "10.0.1.\(id)", peerPort: 2888, electionPort: 3888, role: role, clientHost: "10.0.1.\(id)", clientPort: 2181)
    }

    private func scheduleNextReconfig(every intervalMs: Int64, until end: Int64) {
        let delay = reconfigRandom.int((intervalMs / 2)...(intervalMs * 3 / 2))
        cluster.after(delay) { [weak self] in
            guard let self, self.faultPhase, self.cluster.nowMs < end else { return }
            self.reconfigure()
            self.scheduleNextReconfig(every: intervalMs, until: end)
        }
    }

    /// An administrator asks a random member to change one member: a participant becomes an
    /// observer or leaves, an observer becomes a participant, one that left joins again. The
    /// request may fail (no quorum synced, one in progress, the connection breaks): that is
    /// part of the test. The membership it sees is the leader's, if there is one.
    private func reconfigure() {
        guard let leader = cluster.leaders.first,
            let data = cluster.replica(leader).tree.node(Paths.config)?.data,
            let current = try? EnsembleConfig(parsing: String(decoding: data, as: UTF8.self))
        else { return }
        let member = reconfigRandom.pick(cluster.members)
        let voters = current.voters
        var joining: String?
        var leaving: String?
        switch current.servers[member]?.role {
        case .participant?:
            guard voters.count > 2 else { return }
            if reconfigRandom.chance(0.5) {
                leaving = "\(member)"
            } else {
                joining = "server.\(member)=" + Self.server(member, .observer).spec
            }
        case .observer?:
            joining = "server.\(member)=" + Self.server(member, .participant).spec
        case nil:
            joining = "server.\(member)=" + Self.server(member, reconfigRandom.chance(0.5) ? .participant : .observer).spec
        }
        let via = reconfigRandom.pick(cluster.members)
        reconfigsAsked += 1
        record("reconfig \(joining.map { "+" + $0 } ?? "-server.\(leaving!)") via n\(via)")
        let admin = cluster.openConnection(to: via) { _ in }
        cluster.clientSend(admin, .connect(admin, ConnectRequest(timeoutMs: 4_000, sessionId: 0, password: [UInt8](repeating: 0, count: 16))))
        cluster.clientSend(admin, .request(admin, RequestHeader(xid: -4, type: OpCode.auth.rawValue), .auth(type: 0, scheme: "digest", auth: Array("admin:reconfig".utf8))))
        let request = ReconfigRequest(joiningServers: joining, leavingServers: leaving, newMembers: nil, currentConfigId: -1)
        cluster.clientSend(admin, .request(admin, RequestHeader(xid: 1, type: OpCode.reconfig.rawValue), .reconfig(request)))
        cluster.after(2_000) { [weak self] in
            guard let self else { return }
            self.cluster.clientSend(admin, .request(admin, RequestHeader(xid: 2, type: OpCode.closeSession.rawValue), .closeSession))
            self.cluster.clientClose(admin)
        }
    }

    private func shuffle(_ items: inout [Int64]) {
        guard items.count > 1 else { return }
        for index in stride(from: items.count - 1, to: 0, by: -1) {
            items.swapAt(index, Int(nemesisRandom.below(UInt64(index + 1))))
        }
    }

    private func crash(_ node: Int64) {
        guard cluster.isUp(node) else { return }
        let torn = nemesisRandom.chance(options.tornWriteProbability)
        let downMs: Int64 = nemesisRandom.int(10...3_000)
        record("crash n\(node)\(torn ? " torn" : "") for \(downMs)ms")
        cluster.crash(node, tearLastWrite: torn)
        cluster.after(downMs) { [weak self] in
            guard let self, self.faultPhase else { return }
            self.restart(node)
        }
    }

    private func restart(_ node: Int64) {
        guard !cluster.isUp(node) else { return }
        do {
            _ = try cluster.store(node).recover()
        } catch {
            verdict.fail("storage.recovery", "n\(node) cannot recover from its disk: \(error)")
            return
        }
        cluster.restart(node)
    }

    private func key(_ from: Int64, _ to: Int64) -> String { "\(from)>\(to)" }

    /// Cuts the pairs for a while; overlapping partitions keep a pair cut until the last ends.
    private func cutFor(pairs: [(Int64, Int64)], label: String) {
        let ms: Int64 = nemesisRandom.int(100...5_000)
        record("\(label) for \(ms)ms")
        for (a, b) in pairs { cutCounts[key(a, b), default: 0] += 1 }
        cluster.cut(pairs.map { (from: $0.0, to: $0.1) })
        cluster.after(ms) { [weak self] in
            guard let self, self.faultPhase else { return }
            var healed: [(from: Int64, to: Int64)] = []
            for (a, b) in pairs {
                self.cutCounts[self.key(a, b), default: 1] -= 1
                if self.cutCounts[self.key(a, b)] == 0 { healed.append((a, b)) }
            }
            self.cluster.uncut(healed)
        }
    }

    private func healEverything() {
        faultPhase = false
        cutCounts.removeAll()
        cluster.messageFaultsEnabled = false
        cluster.latencySpikesEnabled = false
        cluster.heal()
        cluster.unclogAll()
        for id in cluster.members where !cluster.isUp(id) { restart(id) }
    }
}

/// What a run found, and how to replay it.
public struct SimulationResult: Sendable {
    public var options: SimulationOptions
    public var violation: Violation?
    public var simulatedMs: Int64
    public var events: UInt64
    public var operations: Int
    public var completed: Int
    public var sessions: Int
    public var committed: Int
    public var faults: [String]
    public var unknownPaths: [String]
    public var linearizabilityPaths: Int
    /// Reads compared with the committed state at their zxid (nil: the sequence had a gap).
    public var readsChecked: Int?
    public var statistics: Cluster.Statistics
    public var leaders: Int
    public var reconfigsAsked = 0
    public var reconfigsCommitted = 0
    /// What the recipe contenders did, when the run had them.
    public var recipes: String? = nil

    public var passed: Bool { violation == nil }
    public var seed: UInt64 { options.seed }

    public func replayCommand(_ overrides: SimulationOverrides) -> String {
        (["swift run minizk sim --seed \(seed)"] + overrides.arguments).joined(separator: " ")
    }

    /// The summary line of a run.
    public var summary: String {
        let outcome = violation.map { "FAIL \($0.property)" } ?? (unknownPaths.isEmpty ? "pass" : "pass (linearizability unknown on \(unknownPaths.count) path(s))")
        let reconfigs = reconfigsAsked > 0 ? ", \(reconfigsCommitted) of \(reconfigsAsked) reconfigs committed" : ""
        return "seed \(seed): \(outcome); \(simulatedMs)ms simulated, \(events) events, \(operations) ops (\(completed) answered), \(committed) txns, \(faults.count) faults, \(leaders) leader epochs\(reconfigs)\(recipes.map { "; " + $0 } ?? "")"
    }

    /// The full report: options first, then the outcome, the evidence, and the replay command.
    public func report(_ overrides: SimulationOverrides, recentEvents: [String] = []) -> String {
        var lines = ["seed \(seed)", options.description]
        lines.append("result: \(summary)")
        let s = statistics
        lines.append(
            "network: \(s.peerMessages) peer messages (\(s.peerBytes) bytes; \(s.peerMessagesLost) lost with their connection), \(s.linkBreaks) connection breaks, \(s.clientFrames) client frames, \(s.clientBreaks) client breaks; disk: \(s.fsyncs) fsyncs, \(s.snapshotsWritten) snapshots; \(s.crashes) crashes"
        )
        if passed {
            lines.append(
                "checked: \(linearizabilityPaths) paths for linearizability, \(readsChecked.map { "\($0) reads against the committed state" } ?? "reads not replayed (a gap in the committed sequence)")"
            )
        }
        if !unknownPaths.isEmpty { lines.append("linearizability search gave up (unknown) on: \(unknownPaths.joined(separator: ", "))") }
        if let violation {
            lines.append("")
            lines.append("FIRST VIOLATED PROPERTY: \(violation.property)")
            lines.append("  \(violation.detail)")
            lines.append("  at virtual time \(violation.atMs)")
            if !violation.context.isEmpty {
                lines.append("evidence:")
                for line in violation.context { lines.append("  \(line)") }
            }
            if !faults.isEmpty {
                lines.append("faults injected (last 12 of \(faults.count)):")
                for fault in faults.suffix(12) { lines.append("  \(fault)") }
            }
            if !recentEvents.isEmpty {
                lines.append("last \(recentEvents.count) events before it:")
                for event in recentEvents { lines.append("  \(event)") }
            }
            lines.append("replay: \(replayCommand(overrides))")
            lines.append("        (add --trace for the whole event trace)")
        }
        return lines.joined(separator: "\n")
    }
}

/// Keeps the last lines of a trace, to show what led to a violation.
public final class TraceRing {
    private var lines: [String]
    private var next = 0
    private var full = false
    public init(capacity: Int) { lines = Array(repeating: "", count: max(capacity, 1)) }
    public func append(_ line: String) {
        lines[next] = line
        next = (next + 1) % lines.count
        if next == 0 { full = true }
    }
    public var contents: [String] { full ? Array(lines[next...] + lines[..<next]) : Array(lines[..<next]) }
}

/// Hashes a trace line by line (FNV-1a, 64 bits): equal hashes, equal traces.
public final class TraceHasher {
    public private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325
    public private(set) var lines = 0
    public init() {}
    public func append(_ line: String) {
        for byte in line.utf8 {
            value ^= UInt64(byte)
            value = value &* 0x100_0000_01B3
        }
        value ^= 0x0A
        value = value &* 0x100_0000_01B3
        lines += 1
    }
}
