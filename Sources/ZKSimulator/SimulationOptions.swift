import ZKCore

/// The faults the nemesis may inject during the safety phase.
public enum FaultKind: String, CaseIterable, Sendable, Comparable {
    /// A replica dies (losing its unsynced writes, maybe tearing the last one) and restarts later.
    case crash
    /// Several replicas, up to all of them, die together (a power loss) and restart later.
    case crashMany = "crash-many"
    /// The replicas split in two groups that cannot talk.
    case partition
    /// One direction between two replicas is cut.
    case oneWay = "one-way"
    /// Two groups cannot talk, but one replica talks to both (a bridge).
    case bridge
    /// One replica is cut off from all others.
    case isolate
    /// Everything to and from a replica is held for a while.
    case clog
    /// A replica stops running for a while.
    case pause
    /// A replica's fsyncs stall for a while.
    case diskStall = "disk-stall"
    /// The connection between two replicas breaks once.
    case linkBreak = "link-break"
    /// A client's connection breaks; the client moves to another member.
    case clientBreak = "client-break"

    public static func < (a: FaultKind, b: FaultKind) -> Bool { a.rawValue < b.rawValue }
}

/// Every option of a run, derived from its seed (and printed first, so that a report says
/// exactly what ran). The derivation is "swarm" style: each seed switches some fault kinds and
/// operation kinds off and weights the rest at random, so that some seeds hammer one corner.
public struct SimulationOptions: Sendable, CustomStringConvertible {
    public enum Profile: String, Sendable, CaseIterable {
        /// Short runs for the test suite's quick sweep.
        case quick
        /// The default for `minizk sim`.
        case standard
        /// Longer, busier runs.
        case long
    }

    public var seed: UInt64
    public var profile: Profile
    public var nodes: Int
    public var clients: Int
    public var tickMs: Int64
    public var sessionTimeoutMs: ClosedRange<Int64>
    /// Length of the fault phase.
    public var safetyMs: Int64
    /// Bound on the healed phase: a leader, every replica caught up, every client answered.
    public var livenessMs: Int64
    public var peerLatency: LatencyModel
    public var linkLatencySpread: Int64
    public var clientLatency: LatencyModel
    public var fsyncLatency: LatencyModel
    public var dropProbability: Double
    public var duplicateProbability: Double
    public var reorderProbability: Double
    public var detectionDelay: LatencyModel
    public var reconnectDelay: LatencyModel
    /// Mean time between two faults.
    public var faultIntervalMs: Int64
    public var faults: [FaultKind]
    public var tornWriteProbability: Double
    /// The replicas' DIFF window; small ones force SNAPs.
    public var logWindowMax: Int
    /// The replicas' snapshot interval N (ZooKeeper's snapCount, 100,000 in the server): small, so
    /// that snapshots and log compaction happen often, under faults. Drawn from a stream of its own.
    public var snapshotEveryTransactions: Int = 100_000
    /// Time a snapshot takes to be written (a crash before loses it).
    public var snapshotLatency = LatencyModel(minMs: 1, maxMs: 20)
    public var workload: WorkloadSpec
    /// How often replicas are compared (digests, ephemerals) during the run.
    public var checkpointMs: Int64 = 500
    /// Mean time between two reconfigurations in the fault phase (a member becomes an observer
    /// or a participant again, leaves or joins again); nil: the membership never changes.
    /// Drawn from a stream of its own, so that the rest of a seed's options do not depend on it.
    public var reconfigIntervalMs: Int64?
    /// With reconfiguration in a run of three or more: the highest member starts outside the
    /// configuration (a server that has yet to be joined), following without a vote.
    public var outsiderAtStart = false
    /// The configuration members start with: every member a voter but the outsider, if any.
    public var initialVoters: [Int64] {
        let all = (1...Int64(max(nodes, 1))).map { $0 }
        return reconfigIntervalMs != nil && outsiderAtStart && nodes >= 3 ? Array(all.dropLast()) : all
    }
    /// Recipe contenders running alongside the workload (nil: none).
    public var recipes: RecipeSpec?
    /// Steps the linearizability search may take per path before it says "unknown".
    public var linearizabilityBudget: Int = 200_000

    public static func derive(seed: UInt64, profile: Profile = .standard) -> SimulationOptions {
        var random = SimRandom.derive(seed, "options")
        let nodes = profile == .quick ? random.pick([3, 3, 3, 5, 1]) : random.pick([3, 3, 3, 3, 5, 5, 1])
        let tickMs = random.pick([50, 100, 200] as [Int64])
        let clients = profile == .quick ? random.int(1...3) : random.int(1...(profile == .long ? 8 : 5))
        let timeoutLow = tickMs * random.int(4...8)
        let sessionTimeoutMs = timeoutLow...(timeoutLow + tickMs * random.int(0...10))
        let safetyMs: Int64
        switch profile {
        case .quick: safetyMs = random.int(1_000...2_500)
        case .standard: safetyMs = random.int(4_000...15_000)
        case .long: safetyMs = random.int(20_000...60_000)
        }
        func latency(_ maxSpread: Int64, spikes: [Double], spikeMax: [Int64]) -> LatencyModel {
            let low: Int64 = random.int(0...2)
            return LatencyModel(
                minMs: low, maxMs: low + random.int(0...maxSpread), spikeProbability: random.pick(spikes),
                spikeMaxMs: random.pick(spikeMax))
        }
        let peerLatency = latency(30, spikes: [0, 0.01, 0.05], spikeMax: [50, 300])
        let spread: Int64 = random.int(1...3)
        let clientLatency = latency(20, spikes: [0, 0.01, 0.05], spikeMax: [50, 300])
        let fsyncLatency = latency(10, spikes: [0, 0.02, 0.1], spikeMax: [20, 200])
        func messageFault() -> Double { random.chance(0.5) ? random.pick([0.0005, 0.002, 0.01]) : 0 }
        let drop = messageFault()
        let duplicate = messageFault()
        let reorder = messageFault()
        let detectionLow = random.int(0...tickMs)
        let detectionDelay = LatencyModel(minMs: detectionLow, maxMs: detectionLow + random.int(0...(2 * tickMs)))
        let reconnectLow: Int64 = random.int(0...50)
        let reconnectDelay = LatencyModel(minMs: reconnectLow, maxMs: reconnectLow + random.int(0...450))
        let faultIntervalMs = random.pick([200, 500, 1_000, 3_000] as [Int64])
        var faults = FaultKind.allCases.filter { _ in random.chance(0.6) }
        if faults.isEmpty { faults = [random.pick(FaultKind.allCases)] }
        let torn = random.pick([0, 0.5, 1.0])
        let logWindowMax = random.chance(0.3) ? random.pick([3, 10, 50]) : 100_000
        let workload = WorkloadSpec.derive(&random)
        let livenessMs = 30_000 + 3 * sessionTimeoutMs.upperBound
        var options = SimulationOptions(
            seed: seed, profile: profile, nodes: nodes, clients: clients, tickMs: tickMs, sessionTimeoutMs: sessionTimeoutMs,
            safetyMs: safetyMs, livenessMs: livenessMs, peerLatency: peerLatency, linkLatencySpread: spread,
            clientLatency: clientLatency, fsyncLatency: fsyncLatency, dropProbability: drop, duplicateProbability: duplicate,
            reorderProbability: reorder, detectionDelay: detectionDelay, reconnectDelay: reconnectDelay,
            faultIntervalMs: faultIntervalMs, faults: faults, tornWriteProbability: torn, logWindowMax: logWindowMax,
            workload: workload)
        if profile == .quick { options.checkpointMs = 1_000 }
        var reconfigRandom = SimRandom.derive(seed, "reconfig-options")
        if nodes > 1 && reconfigRandom.chance(0.3) { options.reconfigIntervalMs = reconfigRandom.pick([300, 1_000, 3_000] as [Int64]) }
        var outsiderRandom = SimRandom.derive(seed, "reconfig-outsider")
        options.outsiderAtStart = outsiderRandom.chance(0.5)
        // Drawn from streams of their own: seeds without recipes run as before.
        var snapshotRandom = SimRandom.derive(seed, "snapshot-options")
        options.snapshotEveryTransactions = snapshotRandom.int(20...200)
        let snapshotLow: Int64 = snapshotRandom.int(1...10)
        options.snapshotLatency = LatencyModel(
            minMs: snapshotLow, maxMs: snapshotLow + snapshotRandom.int(0...200), spikeProbability: snapshotRandom.pick([0, 0.1]),
            spikeMaxMs: 1_000)
        var recipesRandom = SimRandom.derive(seed, "recipes-options")
        if recipesRandom.chance(0.3) { options.recipes = RecipeSpec.derive(&recipesRandom) }
        return options
    }

    public var description: String {
        [
            "profile=\(profile.rawValue) nodes=\(nodes) clients=\(clients) tick=\(tickMs)ms session-timeout=\(sessionTimeoutMs.lowerBound)-\(sessionTimeoutMs.upperBound)ms",
            "phases: safety \(safetyMs)ms with faults, then healed; liveness within \(livenessMs)ms",
            "network: peer latency \(peerLatency) x1-\(linkLatencySpread) per link, client latency \(clientLatency), drop=\(formatProbability(dropProbability)) duplicate=\(formatProbability(duplicateProbability)) reorder=\(formatProbability(reorderProbability)) (connection-level), break detection \(detectionDelay), reconnect \(reconnectDelay)",
            "disk: fsync \(fsyncLatency), torn last write p=\(tornWriteProbability), snapshot every \(snapshotEveryTransactions / 2)-\(snapshotEveryTransactions) transactions taking \(snapshotLatency)",
            "nemesis: every ~\(faultIntervalMs)ms one of [\(faults.map(\.rawValue).joined(separator: ","))]"
                + (reconfigIntervalMs.map { "; reconfig every ~\($0)ms" } ?? "; no reconfig")
                + (initialVoters.count < nodes ? "; n\(nodes) starts outside the configuration" : ""),
            "replicas: DIFF window \(logWindowMax)",
            "workload: \(workload)",
            "recipes: " + (recipes.map(\.description) ?? "none"),
        ].joined(separator: "\n")
    }
}

/// Options set on the command line over what the seed derives; they are part of the replay
/// command.
public struct SimulationOverrides: Sendable {
    public var profile: SimulationOptions.Profile = .standard
    public var nodes: Int?
    public var clients: Int?
    public var safetyMs: Int64?
    public var faults: [FaultKind]?
    /// Mean interval of reconfigurations; 0 turns them off.
    public var reconfigMs: Int64?
    /// Recipe contenders on (drawn from the seed when the seed has none) or off.
    public var recipes: Bool?
    public init() {}

    public func apply(seed: UInt64) -> SimulationOptions {
        var options = SimulationOptions.derive(seed: seed, profile: profile)
        if let nodes { options.nodes = nodes }
        if let clients { options.clients = clients }
        if let safetyMs { options.safetyMs = safetyMs }
        if let reconfigMs { options.reconfigIntervalMs = reconfigMs > 0 && options.nodes > 1 ? reconfigMs : nil }
        if let recipes {
            if !recipes {
                options.recipes = nil
            } else if options.recipes == nil {
                var random = SimRandom.derive(seed, "recipes-options")
                _ = random.chance(0.3)
                options.recipes = RecipeSpec.derive(&random)
            }
        }
        if let faults {
            options.faults = faults
            if faults.isEmpty {
                options.dropProbability = 0
                options.duplicateProbability = 0
                options.reorderProbability = 0
            }
        }
        return options
    }

    /// The command-line arguments that reproduce these overrides.
    public var arguments: [String] {
        var arguments: [String] = []
        if profile != .standard { arguments += ["--profile", profile.rawValue] }
        if let nodes { arguments += ["--nodes", "\(nodes)"] }
        if let clients { arguments += ["--clients", "\(clients)"] }
        if let safetyMs { arguments += ["--safety-ms", "\(safetyMs)"] }
        if let reconfigMs { arguments += ["--reconfig-ms", "\(reconfigMs)"] }
        if let recipes { arguments += ["--recipes", recipes ? "on" : "off"] }
        if let faults { arguments += ["--faults", faults.isEmpty ? "none" : faults.map(\.rawValue).joined(separator: ",")] }
        return arguments
    }
}
