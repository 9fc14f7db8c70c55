import ZKCore
import ZKProtocol
import ZKRecipesCore

/// How many contenders of each recipe a run has (`SimulationOptions.recipes`).
public struct RecipeSpec: Sendable, Hashable, CustomStringConvertible {
    public var mutexContenders: Int
    public var latchCandidates: Int
    public var counters: Int
    public var producers: Int
    public var itemsPerProducer: Int
    public var consumers: Int
    /// Mean interval between process faults (crash or pause of a contender).
    public var processFaultIntervalMs: Int64

    static func derive(_ random: inout SimRandom) -> RecipeSpec {
        RecipeSpec(
            mutexContenders: random.int(3...20), latchCandidates: random.int(2...5), counters: random.int(2...4),
            producers: random.int(1...2), itemsPerProducer: random.int(5...30), consumers: random.int(2...4),
            processFaultIntervalMs: random.pick([300, 1_000, 3_000] as [Int64]))
    }

    public var description: String {
        "\(mutexContenders) mutex contenders, \(latchCandidates) latch candidates, \(counters) counters, \(producers)x\(itemsPerProducer) queue items, \(consumers) consumers; a process fault every ~\(processFaultIntervalMs)ms"
    }

    static let root = "/recipes"
    static let mutex = "/recipes/mutex"
    static let latch = "/recipes/latch"
    static let counter = "/recipes/counter"
    static let queue = "/recipes/queue"
    /// Parents the setup client creates.
    static let setupPaths = [root, queue]
}

/// Recipes under the simulator: processes running ZKRecipesCore's programs (`LockContender` on
/// a mutex and on a leader latch, `CounterIncrementer`, `QueueProducer`, `QueueConsumer`) on the
/// client's session core, while the nemesis crashes members, partitions the network, and crashes
/// or stalls the processes themselves (a stall longer than the session timeout expires the
/// session behind its holder's back). Judged from outside, against the servers' committed
/// history (`RecipeChecker`).
final class RecipeScenario {
    typealias Client = ProgramClient<AnyRecipeProgram>

    let spec: RecipeSpec
    unowned let cluster: Cluster
    let checker: RecipeChecker
    var clients: [Client] = []
    var random: SimRandom
    var faultPhase = true
    var faults: [String] = []

    init(spec: RecipeSpec, cluster: Cluster, verdict: Verdict, replicas: ReplicaChecker, seed: UInt64, timeoutMs: ClosedRange<Int64>, tickMs: Int64, firstIndex: Int) {
        self.spec = spec
        self.cluster = cluster
        self.random = SimRandom.derive(seed, "recipes")
        self.checker = RecipeChecker(verdict: verdict, replicas: replicas, cluster: cluster)
        var index = firstIndex
        func add(_ role: RecipeChecker.Role, _ make: @escaping (UInt64) -> AnyRecipeProgram) {
            var programRandom = SimRandom.derive(seed, "recipe-program\(index)")
            let programSeed = programRandom.next()
            let timeout = random.int(timeoutMs)
            let checker = self.checker
            let client = Client(
                index: index, name: "\(role) \(index)", cluster: cluster, seed: seed, timeoutMs: Int32(timeout), tickMs: tickMs,
                makeProgram: { incarnation in make(programSeed &+ UInt64(incarnation) &* 0x9E37_79B9_7F4A_7C15) },
                listener: { client, report in checker.report(client, report) })
            checker.roles[index] = role
            clients.append(client)
            index += 1
        }
        for _ in 0..<spec.mutexContenders {
            add(.mutex) { seed in
                .lock(LockContender(.init(lock: .init(basePath: RecipeSpec.mutex), holdMs: 10...400, thinkMs: 0...300, seed: seed)))
            }
        }
        for _ in 0..<spec.latchCandidates {
            add(.latch) { seed in
                .lock(LockContender(.init(lock: .init(basePath: RecipeSpec.latch, lockName: CuratorNames.latch), holdMs: 200...2_000, thinkMs: 50...500, seed: seed)))
            }
        }
        for _ in 0..<spec.counters {
            add(.counter) { seed in .counter(CounterIncrementer(.init(path: RecipeSpec.counter, thinkMs: 0...200, seed: seed))) }
        }
        for producer in 0..<spec.producers {
            let count = spec.itemsPerProducer
            add(.producer) { seed in
                .producer(QueueProducer(path: RecipeSpec.queue, count: count, name: "p\(producer)-\(seed & 0xFFFF)", thinkMs: 0...300, seed: seed))
            }
        }
        for _ in 0..<spec.consumers {
            add(.consumer) { _ in .consumer(QueueConsumer(path: RecipeSpec.queue)) }
        }
    }

    func start() {
        for client in clients { client.start(atMs: cluster.nowMs + random.int(0...200)) }
    }

    func scheduleFaults(until end: Int64) {
        let interval = spec.processFaultIntervalMs
        cluster.after(random.int((interval / 2)...(interval * 3 / 2))) { [weak self] in
            guard let self, self.faultPhase, self.cluster.nowMs < end, !self.clients.isEmpty else { return }
            let client = self.random.pick(self.clients)
            if self.random.chance(0.5) {
                let ms: Int64 = self.random.int(10...3_000)
                self.faults.append("\(self.cluster.nowMs): crash \(client.name) for \(ms)ms")
                client.crash(downMs: ms)
            } else {
                // Shorter or longer than the session timeout: a pause past it expires the session.
                let ms = self.random.int(50...(3 * client.negotiatedTimeoutMs))
                self.faults.append("\(self.cluster.nowMs): pause \(client.name) for \(ms)ms")
                client.pause(ms: ms)
            }
            self.scheduleFaults(until: end)
        }
    }

    func heal() {
        faultPhase = false
        checker.healedAtMs = cluster.nowMs
        for client in clients {
            client.reviveNow()
            client.resume()
        }
    }

    func stop() { for client in clients { client.stop() } }

    /// After healing: every contender has made progress since, and the queue is drained.
    func settled(_ tree: DataTree) -> Bool { unsettled(tree).isEmpty }

    func unsettled(_ tree: DataTree) -> [String] {
        var lines: [String] = []
        for client in clients {
            let progress = checker.progressSinceHeal[client.index] ?? 0
            let role = checker.roles[client.index]!
            switch role {
            case .mutex, .latch, .counter:
                if progress == 0 { lines.append("\(client.name): no \(role == .counter ? "increment" : "completed hold") since healing; \(checker.describe(client.index))") }
            case .producer:
                if case .producer(let program)? = client.program, !program.done { lines.append("\(client.name): still putting items") }
            case .consumer:
                break
            }
        }
        if !lines.isEmpty {
            for base in [RecipeSpec.mutex, RecipeSpec.latch] {
                guard let node = tree.node(base) else { continue }
                let children = CuratorNames.sorted(Array(node.children), lockNames: [CuratorNames.lock, CuratorNames.latch])
                let described = children.prefix(6).map { child -> String in
                    let owner = tree.node(CuratorNames.join(base, child))?.stat.ephemeralOwner ?? 0
                    let holder = checker.owners[owner].map { "client \($0)" } ?? "no program"
                    return "\(child.suffix(10)) of \(hex(owner)) (\(holder)\(tree.sessions[owner] == nil ? ", session gone" : ""))"
                }
                lines.append("\(base): \(children.count) node(s), first \(described.joined(separator: ", "))")
            }
        }
        let left = tree.node(RecipeSpec.queue).map { $0.children.count } ?? 0
        if left > 0 { lines.append("the queue still holds \(left) item(s)") }
        return lines
    }
}

/// The recipe programs the scenario runs, as one type for `ProgramClient`.
enum AnyRecipeProgram: CoordinationProgram {
    typealias Observation = RecipeObservation
    case lock(LockContender)
    case counter(CounterIncrementer)
    case producer(QueueProducer)
    case consumer(QueueConsumer)

    mutating func handle(_ input: ProgramInput, nowMs: Int64) -> [ProgramAction<RecipeObservation>] {
        switch self {
        case .lock(var program):
            defer { self = .lock(program) }
            return program.handle(input, nowMs: nowMs)
        case .counter(var program):
            defer { self = .counter(program) }
            return program.handle(input, nowMs: nowMs)
        case .producer(var program):
            defer { self = .producer(program) }
            return program.handle(input, nowMs: nowMs)
        case .consumer(var program):
            defer { self = .consumer(program) }
            return program.handle(input, nowMs: nowMs)
        }
    }
}

/// Judges the recipes from outside, against the committed history (`ReplicaChecker`):
///
/// - **mutual exclusion** (mutex, latch): when a contender starts holding, every other
///   contender that still believes it holds (held or suspended) must belong to a session whose
///   end the ensemble has already committed — two holders only while one is a zombie whose
///   session is gone on the quorum, never both live;
/// - **no hold after the session is lost**: once a contender is told its session expired (or
///   presumes so under `keepUntilExpired`), it holds nothing of that session;
/// - **counter**: the committed writes of the counter node go 1, 2, 3, ... (an increment lost
///   to a concurrent one would repeat a value); every increment a contender saw confirmed is one
///   committed write, and no two contenders were confirmed the same value;
/// - **queue**: every item put is taken exactly once: each item node created is deleted exactly
///   once by the end, a take a consumer saw confirmed is the committed delete of its own session,
///   and an item deleted by a consumer's session was reported taken (or unknown) by it, unless
///   that consumer's process crashed with the delete in flight;
/// - **progress** (after healing, `RecipeScenario.settled`): every contender completes a hold or
///   an increment again and the queue drains — a waiter that missed its turn never does.
final class RecipeChecker {
    enum Role: String, CustomStringConvertible {
        case mutex, latch, counter, producer, consumer
        var description: String { rawValue }
    }

    struct Belief {
        var state: HolderState
        var session: Int64
    }

    let verdict: Verdict
    unowned let replicas: ReplicaChecker
    unowned let cluster: Cluster
    var roles: [Int: Role] = [:]
    /// Per client: its belief about the lock it contends for.
    var beliefs: [Int: Belief] = [:]
    /// The client each session a program was given belongs to.
    var owners: [Int64: Int] = [:]
    /// Sessions whose process crashed.
    var crashedSessions: Set<Int64> = []
    var healedAtMs: Int64 = .max
    var progressSinceHeal: [Int: Int] = [:]
    var holds = 0
    var increments: [(client: Int, value: Int64)] = []
    var unknownIncrements = 0
    var consumed: [String: [(client: Int, session: Int64)]] = [:]
    var consumeUnknown: [String: [Int64]] = [:]
    var produced: Set<String> = []
    /// Recent reports, for the evidence of a violation.
    var recent: [String] = []

    init(verdict: Verdict, replicas: ReplicaChecker, cluster: Cluster) {
        self.verdict = verdict
        self.replicas = replicas
        self.cluster = cluster
    }

    func describe(_ client: Int) -> String {
        beliefs[client].map { "\($0.state) in session \(hex($0.session))" } ?? "no hold"
    }

    private func note(_ line: String) {
        recent.append("\(cluster.nowMs)ms \(line)")
        if recent.count > 40 { recent.removeFirst(recent.count - 40) }
    }

    func report(_ client: ProgramClient<AnyRecipeProgram>, _ report: ProgramClient<AnyRecipeProgram>.Report) {
        guard !verdict.failed else { return }
        let index = client.index
        switch report {
        case .started(let incarnation):
            note("\(client.name) starts (incarnation \(incarnation))")
        case .crashed:
            note("\(client.name) crashes")
            if let belief = beliefs[index] { crashedSessions.insert(belief.session) }
            if client.sessionId != 0 { crashedSessions.insert(client.sessionId) }
            beliefs[index] = nil
        case .session(let event):
            note("\(client.name) session \(hex(client.sessionId)) \(event)")
            if event == .connected { owners[client.sessionId] = index }
            switch event {
            case .expired, .closed, .presumedExpired:
                if let belief = beliefs[index], belief.session == client.sessionId, belief.state.token != nil {
                    verdict.fail(
                        "recipes.hold-after-session-loss",
                        "\(client.name) still believes \(belief.state) on \(roles[index]!) after being told its session \(hex(belief.session)) is \(event == .presumedExpired ? "presumed expired" : "gone")",
                        context: recent)
                }
            default:
                break
            }
        case .observed(let observation):
            note("\(client.name) [\(hex(client.sessionId))] \(observation)")
            observed(client, observation)
        }
    }

    private func observed(_ client: ProgramClient<AnyRecipeProgram>, _ observation: RecipeObservation) {
        let index = client.index
        switch observation {
        case .holder(_, let state):
            let previous = beliefs[index]
            beliefs[index] = Belief(state: state, session: client.sessionId)
            if case .held = state, previous?.state.isHeld != true {
                holds += 1
                checkExclusive(client)
            }
            if case .released = state, cluster.nowMs >= healedAtMs { progressSinceHeal[index, default: 0] += 1 }
        case .releasing:
            beliefs[index] = Belief(state: .released, session: client.sessionId)
        case .incremented(_, let value):
            increments.append((index, value))
            if cluster.nowMs >= healedAtMs { progressSinceHeal[index, default: 0] += 1 }
        case .incrementUnknown:
            unknownIncrements += 1
        case .produced(_, let item):
            produced.insert(item)
        case .produceUnknown:
            break
        case .consumed(_, let item, _):
            consumed[item, default: []].append((index, client.sessionId))
            if consumed[item]!.count > 1 {
                verdict.fail("recipes.queue-taken-twice", "\(item) was taken by clients \(consumed[item]!.map(\.client))", context: recent)
            }
        case .consumeUnknown(_, let item):
            consumeUnknown[item, default: []].append(client.sessionId)
        }
    }

    /// `client` starts holding: everyone else who believes it holds the same lock must be a
    /// zombie whose session's end is committed.
    private func checkExclusive(_ client: ProgramClient<AnyRecipeProgram>) {
        let role = roles[client.index]!
        for (other, belief) in beliefs.sorted(by: { $0.key < $1.key }) where other != client.index && roles[other] == role {
            guard belief.state.token != nil else { continue }
            if replicas.sessionEnds[belief.session] == nil {
                verdict.fail(
                    "recipes.mutual-exclusion",
                    "client \(client.index) (session \(hex(client.sessionId))) holds the \(role) while client \(other) still believes \(belief.state) in session \(hex(belief.session)), which the ensemble has not ended",
                    context: recent)
                return
            }
        }
    }

    // MARK: - After the run

    func finalChecks() {
        guard !verdict.failed else { return }
        checkCounter()
        if !verdict.failed { checkQueue() }
    }

    /// Every committed write of a path, in zxid order (multis included).
    private func writes(of path: String, _ match: (TransactionBody) -> Bool) -> [(Transaction, TransactionBody)] {
        var found: [(Transaction, TransactionBody)] = []
        for zxid in replicas.committed.keys.sorted() {
            let txn = replicas.committed[zxid]!
            var bodies = [txn.body]
            if case .multi(let inner) = txn.body { bodies = inner }
            for body in bodies where match(body) { found.append((txn, body)) }
        }
        return found
    }

    private func checkCounter() {
        let path = RecipeSpec.counter
        let committed = writes(of: path) { body in
            switch body {
            case .create(let p, _, _, _), .setData(let p, _, _): return p == path
            default: return false
            }
        }
        var expected: Int64 = 1
        var values: [Int64: Int64] = [:]
        for (txn, body) in committed {
            var data: [UInt8]? = nil
            if case .create(_, let d, _, _) = body { data = d }
            if case .setData(_, let d, _) = body { data = d }
            let value = CuratorValues.decodeLong(data ?? []) ?? -1
            guard value == expected else {
                verdict.fail(
                    "recipes.counter-lost-increment",
                    "the counter's committed write at \(hex(txn.zxid)) (session \(hex(txn.sessionId))) sets \(value) where \(expected) was due: an increment was lost or counted twice",
                    context: recent)
                return
            }
            values[value] = txn.sessionId
            expected += 1
        }
        var seen: [Int64: Int] = [:]
        for (client, value) in increments {
            if let earlier = seen[value] {
                verdict.fail("recipes.counter-lost-increment", "clients \(earlier) and \(client) were both confirmed the increment to \(value)", context: recent)
                return
            }
            seen[value] = client
            guard values[value] != nil else {
                verdict.fail("recipes.counter-phantom", "client \(client) was confirmed the increment to \(value), which was never committed", context: recent)
                return
            }
        }
    }

    private func checkQueue() {
        let prefix = RecipeSpec.queue + "/"
        var created: [String: Zxid] = [:]
        var deleted: [String: [Int64]] = [:]
        for (txn, body) in writes(of: RecipeSpec.queue, { _ in true }) {
            switch body {
            case .create(let path, _, _, _) where path.hasPrefix(prefix):
                created[String(path.dropFirst(prefix.count))] = txn.zxid
            case .delete(let path) where path.hasPrefix(prefix):
                deleted[String(path.dropFirst(prefix.count)), default: []].append(txn.sessionId)
            default:
                break
            }
        }
        for item in produced.sorted() where created[item] == nil {
            verdict.fail("recipes.queue-phantom-put", "\(item) was confirmed put but never committed", context: recent)
            return
        }
        for (item, _) in created.sorted(by: { $0.key < $1.key }) {
            guard let sessions = deleted[item], sessions.count == 1 else {
                verdict.fail("recipes.queue-not-taken-once", "\(item) was deleted \(deleted[item]?.count ?? 0) times by the end", context: recent)
                return
            }
            let deleter = sessions[0]
            for taker in consumed[item] ?? [] where taker.session != deleter {
                verdict.fail(
                    "recipes.queue-phantom-take",
                    "client \(taker.client) was confirmed taking \(item) in session \(hex(taker.session)), but session \(hex(deleter)) deleted it",
                    context: recent)
                return
            }
            let reported = (consumed[item] ?? []).contains { $0.session == deleter } || (consumeUnknown[item] ?? []).contains(deleter)
            if !reported && !crashedSessions.contains(deleter), owners[deleter] != nil {
                verdict.fail(
                    "recipes.queue-lost-item",
                    "session \(hex(deleter)) of client \(owners[deleter]!) deleted \(item) but its consumer never reported taking it",
                    context: recent)
                return
            }
        }
    }

    var summary: String {
        "recipes: \(holds) holds, \(increments.count) increments (+\(unknownIncrements) unknown), \(produced.count) items put, \(consumed.count) taken"
    }
}
