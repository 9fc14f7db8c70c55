import ZKProtocol

/// The shape of the load, drawn from the seed: which operations clients issue and how often.
///
/// The znodes it touches are laid out so that each checker has a simple model:
///
/// - `/r/k0…`: registers: created, set (with and without a version), deleted, read, watched,
///   and changed two at a time in multis; always leaves, so every path is an independent
///   versioned register for the linearizability checker;
/// - `/e/k0…`: ephemeral registers, which also vanish when their owner's session ends;
/// - `/q`: a queue: producers add sequential children, consumers take the smallest (delete);
///   sequence numbers must be unique and grow in real-time order;
/// - `/c/n`: a counter incremented by read-then-versioned-set (the optimistic-concurrency
///   recipe); a BADVERSION means someone else got there first;
/// - `/p/cN`: each client's probe node, written once everything is healed to show the ensemble
///   serves again.
public struct WorkloadSpec: Sendable, CustomStringConvertible {
    public enum Kind: Int, CaseIterable, Sendable {
        case create, set, delete, get, exists, multi, sync, children
        case ephemeralCreate, ephemeralDelete, ephemeralGet
        case enqueue, dequeue, increment
    }

    public var registers: Int = 4
    public var ephemerals: Int = 3
    /// Weight of each kind (indexed by `Kind.rawValue`).
    public var weights: [Int] = Array(repeating: 1, count: Kind.allCases.count)
    /// Requests one client may have waiting for replies.
    public var pipelineMax: Int = 2
    /// Pause between two requests of a client.
    public var thinkMs: ClosedRange<Int64> = 0...50
    /// Chance that a read sets a watch.
    public var watchProbability: Double = 0.3
    /// Per request: the client goes silent (stops pinging) and lets its session expire.
    public var abandonProbability: Double = 0.002
    /// Per request: the client closes its session and starts a new one.
    public var closeProbability: Double = 0.002
    public init() {}

    public static func derive(_ random: inout SimRandom) -> WorkloadSpec {
        var spec = WorkloadSpec()
        spec.registers = random.int(1...6)
        spec.ephemerals = random.int(1...4)
        // Swarm testing: each kind is switched off now and then, the others weighted at random,
        // so that some seeds hammer one corner.
        spec.weights = Kind.allCases.map { _ in random.chance(0.2) ? 0 : random.int(1...10) }
        spec.weights[Kind.set.rawValue] = max(spec.weights[Kind.set.rawValue], 1)
        spec.weights[Kind.get.rawValue] = max(spec.weights[Kind.get.rawValue], 1)
        spec.pipelineMax = random.int(1...4)
        let thinkMax = random.pick([0, 5, 20, 100] as [Int64])
        spec.thinkMs = 0...thinkMax
        spec.watchProbability = random.pick([0, 0.2, 0.6])
        spec.abandonProbability = random.pick([0, 0.001, 0.005])
        spec.closeProbability = random.pick([0, 0.001, 0.005])
        return spec
    }

    public var description: String {
        let mix = Kind.allCases.filter { weights[$0.rawValue] > 0 }.map { "\($0)=\(weights[$0.rawValue])" }.joined(separator: ",")
        return "registers=\(registers) ephemerals=\(ephemerals) pipeline=\(pipelineMax) think=\(thinkMs.lowerBound)-\(thinkMs.upperBound)ms "
            + "watch=\(watchProbability) abandon=\(abandonProbability) close=\(closeProbability) mix=[\(mix)]"
    }

    static func register(_ index: Int) -> String { "/r/k\(index)" }
    static func ephemeral(_ index: Int) -> String { "/e/k\(index)" }
    static let queue = "/q"
    static let counter = "/c/n"
    static func probe(_ client: Int) -> String { "/p/c\(client)" }

    /// What setup creates before the load starts, parents first.
    static func setupPaths(clients: Int) -> [(String, String)] {
        [("/r", ""), ("/e", ""), ("/q", ""), ("/c", ""), ("/c/n", "0"), ("/p", "")]
            + (0..<clients).map { (probe($0), "") }
    }
}

/// One client's stream of operations, and the recipes that need a reply before their next step.
struct ClientWorkload {
    let spec: WorkloadSpec
    let client: Int
    var random: SimRandom
    var written = 0
    /// Steps of a recipe waiting to be sent (a versioned set after its read).
    var followUps: [Operation] = []
    /// The last version seen of each path, for versioned sets and deletes.
    var versions: [String: Int32] = [:]

    init(spec: WorkloadSpec, client: Int, random: SimRandom) {
        self.spec = spec
        self.client = client
        self.random = random
    }

    mutating func data() -> [UInt8] {
        written += 1
        return Array("c\(client)-\(written)".utf8)
    }

    /// -1 (any), the last version seen, or a wrong one now and then.
    mutating func version(_ path: String) -> Int32 {
        switch random.int(0...9) {
        case 0...3: return -1
        case 4...8: return versions[path] ?? 0
        default: return Int32(random.int(0...3))
        }
    }

    mutating func next() -> Operation {
        if !followUps.isEmpty { return followUps.removeFirst() }
        let kind = WorkloadSpec.Kind(rawValue: random.weighted(spec.weights))!
        let register = WorkloadSpec.register(random.int(0...(spec.registers - 1)))
        let ephemeral = WorkloadSpec.ephemeral(random.int(0...(spec.ephemerals - 1)))
        let watch = random.chance(spec.watchProbability)
        switch kind {
        case .create:
            return .create(path: register, data: data(), ephemeral: false, sequential: false)
        case .set:
            return .setData(path: register, data: data(), version: version(register))
        case .delete:
            return .delete(path: register, version: version(register))
        case .get:
            return .getData(path: register, watch: watch)
        case .exists:
            return .exists(path: register, watch: watch)
        case .multi:
            guard spec.registers >= 2 else { return .getData(path: register, watch: false) }
            var other = register
            while other == register { other = WorkloadSpec.register(random.int(0...(spec.registers - 1))) }
            switch random.int(0...2) {
            case 0: return .multi([.check(path: register, version: version(register)), .setData(path: other, data: data(), version: -1)])
            case 1: return .multi([.create(path: register, data: data(), ephemeral: false, sequential: false), .delete(path: other, version: -1)])
            default: return .multi([.setData(path: register, data: data(), version: -1), .setData(path: other, data: data(), version: version(other))])
            }
        case .sync:
            followUps.append(.getData(path: register, watch: false))
            return .sync(path: register)
        case .children:
            return .getChildren(path: random.chance(0.5) ? "/r" : "/e", watch: watch)
        case .ephemeralCreate:
            return .create(path: ephemeral, data: data(), ephemeral: true, sequential: false)
        case .ephemeralDelete:
            return .delete(path: ephemeral, version: version(ephemeral))
        case .ephemeralGet:
            return random.chance(0.5) ? .getData(path: ephemeral, watch: watch) : .exists(path: ephemeral, watch: watch)
        case .enqueue:
            return .create(path: WorkloadSpec.queue + "/item-", data: data(), ephemeral: false, sequential: true)
        case .dequeue:
            return .getChildren(path: WorkloadSpec.queue, watch: false)
        case .increment:
            return .getData(path: WorkloadSpec.counter, watch: false)
        }
    }

    /// Learns from a reply: versions, and the next step of a recipe.
    mutating func observe(_ operation: Operation, _ outcome: Outcome) {
        guard case .ok(let response) = outcome else { return }
        switch (operation, response) {
        case (.getData(let path, _), .getData(let data, let stat)):
            versions[path] = stat.version
            if path == WorkloadSpec.counter {
                let value = Int(String(decoding: data ?? [], as: UTF8.self)) ?? 0
                followUps.append(.setData(path: path, data: Array("\(value + 1)".utf8), version: stat.version))
            }
        case (.exists(let path, _), .stat(let stat)):
            versions[path] = stat.version
        case (.setData(let path, _, _), .stat(let stat)):
            versions[path] = stat.version
        case (.create(let path, _, _, false), _):
            versions[path] = 0
        case (.getChildren(WorkloadSpec.queue, _), .getChildren(let children)):
            if let first = children.sorted().first {
                followUps.append(.delete(path: WorkloadSpec.queue + "/" + first, version: -1))
            }
        default:
            break
        }
    }
}
