import ArgumentParser
import Foundation
import NIOConcurrencyHelpers
import ZKClient
import ZKCore
import ZKProtocol
import ZKSimulator
import ZKStorage

/// `minizk chaos-client`: the workload of `scripts/chaos.sh` and its judge.
///
/// Several ZKClient sessions, each with one call in flight at a time, read, write and
/// compare-and-set a few keys of `/chaos` for `--seconds` while faults are injected from outside,
/// and, with `--ephemeral-lock`, compete for an ephemeral, `/chaos/lock-N` (clients 0 and 1 create
/// it and delete it when held, all read it), which must vanish with its owner's session. N
/// counts `--lock-period`s from the start: a client holding the lock of an earlier period
/// releases it first. Each lock path is its own key for the search, with only the sessions that
/// competed for it in that period, so a long run is judged as a row of CI-length ones.
/// Every call is recorded (invocation and response on one logical clock, in real-time order;
/// wall-clock milliseconds beside them). A call whose outcome the client cannot know
/// (connectionLoss, sessionExpired, requestTimeout) stays open in the history: it may have taken
/// effect at any time after it was sent, or never.
///
/// After the workload, the command waits for `--heal-file` (the script creates it once every
/// fault is healed and the members agree) and for a session timeout (every workload session is
/// closed or expired by then), then reads every key from every member after a `sync` ("final
/// reads", judged strictly: they may not be stale; every `/chaos/lock-N` must be gone). Then it judges:
///
/// - the whole history with the simulator's linearizability search (`RecordedHistory`);
/// - acknowledged writes against each member's store (`--data-dir`, opened read-only): the
///   transaction logged at the zxid of a write's reply (`Stat.mzxid`) is that write (its path and
///   its data, which is unique to the call), on every member whose log covers that zxid, and no
///   member has stopped before it.
///
/// It prints a summary and exits 1 on a violation.
struct ChaosClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chaos-client",
        abstract: "Run a recorded read/write/CAS workload against an ensemble under faults, then check the history (linearizability, acknowledged writes).",
        shouldDisplay: false
    )

    @Option(help: "The members, host:port,host:port,...")
    var connect: String

    @Option(help: "Concurrent client sessions.")
    var clients: Int = 6

    @Option(help: "Keys (znodes under /chaos) the workload touches.")
    var keys: Int = 5

    @Option(help: "How long the workload runs, in seconds.")
    var seconds: Double = 30

    @Option(help: "Seeds the choice of operations, keys and pauses.")
    var seed: UInt64 = 1

    @Option(help: "Pause between two calls of one client, in milliseconds: a range lo-hi.")
    var thinkMs: String = "5-40"

    @Option(help: "Session timeout asked for, in milliseconds.")
    var sessionTimeoutMs: Int = 6000

    @Option(help: "A call not answered after this long fails (its outcome unknown), in milliseconds.")
    var requestTimeoutMs: Int = 5000

    @Option(help: "Before the final reads, wait until this file exists (at most --heal-wait seconds).")
    var healFile: String?

    @Option(help: "How long to wait for --heal-file, in seconds.")
    var healWait: Double = 300

    @Option(name: .customLong("data-dir"), help: "A member's data directory, to check acknowledged writes against (repeatable).")
    var dataDirs: [String] = []

    @Option(help: "Steps the linearizability search may take per key before it says unknown.")
    var budget: Int = 5_000_000

    @Flag(help: "Also compete for an ephemeral, /chaos/lock-N (clients 0 and 1), which must vanish with its owner's session. Widens the linearizability search: every session whose end its client does not know, and every call without an answer, may or may not have taken effect (seconds on a 90 s run).")
    var ephemeralLock = false

    @Option(help: "With --ephemeral-lock: the lock's path changes every this many seconds (/chaos/lock-0, -1, ...), so that each lock key's history, which the search judges alone, spans one period.")
    var lockPeriod: Double = 60

    @Option(help: "Write the recorded history here, one line per call.")
    var historyFile: String?

    func validate() throws {
        guard clients > 0, keys > 0, seconds > 0 else { throw ValidationError("--clients, --keys and --seconds must be positive") }
        guard thinkRange != nil else { throw ValidationError("--think-ms is lo-hi, e.g. 5-40") }
        guard lockPeriod > 0 else { throw ValidationError("--lock-period must be positive") }
    }

    var thinkRange: ClosedRange<Int>? {
        let parts = thinkMs.split(separator: "-").compactMap { Int($0) }
        guard parts.count == 2, parts[0] >= 0, parts[0] <= parts[1] else { return nil }
        return parts[0]...parts[1]
    }

    func run() async throws {
        let recorder = ChaosRecorder()
        let paths = (0..<keys).map { "/chaos/k\($0)" }
        let started = Date()
        try await setUp(paths: paths, recorder: recorder)
        printLine("chaos-client: \(clients) clients on \(keys) keys for \(seconds) s, seed \(seed)")

        let start = ContinuousClock.now
        let deadline = start + .milliseconds(Int64(seconds * 1000))
        let locks = LockPaths(start: start, period: .milliseconds(Int64(lockPeriod * 1000)))
        let stats = await withTaskGroup(of: ClientStats.self) { group in
            for index in 0..<clients {
                group.addTask { await self.runClient(index: index, paths: paths, locks: locks, deadline: deadline, recorder: recorder) }
            }
            var total = ClientStats()
            for await one in group { total.add(one) }
            return total
        }
        printLine(
            "chaos-client: workload over after \(String(format: "%.1f", Date().timeIntervalSince(started))) s: \(stats.calls) calls, \(stats.ok) ok, \(stats.failed) failed (noNode/nodeExists/badVersion), \(stats.unknown) unknown outcome, \(stats.sessions) sessions"
        )

        if let healFile {
            let until = Date().addingTimeInterval(healWait)
            while !FileManager.default.fileExists(atPath: healFile) {
                guard Date() < until else {
                    printError("chaos-client: \(healFile) did not appear within \(healWait) s")
                    throw ExitCode.failure
                }
                try await Task.sleep(for: .milliseconds(100))
            }
        }

        // Every workload session is closed or expired: once a session timeout has passed,
        // no ephemeral of theirs may be left.
        if ephemeralLock { try await Task.sleep(for: .milliseconds(sessionTimeoutMs + 2000)) }
        var violations: [String] = []
        let lockPaths = ephemeralLock ? locks.all(through: deadline) : []
        let finalReads = await readFinal(paths: paths + lockPaths, lockPaths: Set(lockPaths), recorder: recorder)
        violations += finalReads.problems
        for path in finalReads.locksLeft.sorted() { violations.append("\(path), an ephemeral, is still there after every session ended") }

        if let historyFile {
            let lines = recorder.withHistory { $0.entries.map(\.line) }
            try (lines.joined(separator: "\n") + "\n").write(toFile: historyFile, atomically: true, encoding: .utf8)
        }

        let checkStart = Date()
        let report = recorder.withHistory { $0.checkLinearizability(budget: budget) }
        let checkSeconds = Date().timeIntervalSince(checkStart)
        printLine(
            "linearizability: \(report.paths) keys, \(report.operations) operations, \(report.violation == nil ? 0 : 1) violations, \(report.unknownPaths.count) undecided (search budget), checked in \(String(format: "%.1f", checkSeconds)) s"
        )
        if !report.unknownPaths.isEmpty { printLine("  undecided: \(report.unknownPaths.joined(separator: " "))") }
        if let violation = report.violation {
            violations.append(violation.description)
            for line in violation.context { printLine("  \(line)") }
        }

        if !dataDirs.isEmpty {
            let acknowledged = recorder.withHistory { Self.acknowledgedWrites($0.entries) }
            let check = Self.checkAcknowledged(acknowledged, dataDirs: dataDirs)
            printLine(
                "acknowledged writes: \(acknowledged.count), found in a member's log at their zxid: \(check.verified), older than every log (covered by snapshots): \(check.inSnapshot), lost: \(check.problems.count)"
            )
            for problem in check.problems.prefix(10) { printLine("  \(problem)") }
            violations += check.problems
        }

        printLine("chaos-client: \(violations.count) violations")
        if !violations.isEmpty {
            for violation in violations.prefix(10) { printError("violation: \(violation)") }
            throw ExitCode.failure
        }
    }

    // MARK: - Workload

    struct ClientStats: Sendable {
        var calls = 0
        var ok = 0
        var failed = 0
        var unknown = 0
        var sessions = 0

        mutating func add(_ other: ClientStats) {
            calls += other.calls
            ok += other.ok
            failed += other.failed
            unknown += other.unknown
            sessions += other.sessions
        }
    }

    private func configuration(_ connectString: String) -> ZooKeeperClient.Configuration {
        var configuration = ZooKeeperClient.Configuration(connectString: connectString, sessionTimeout: .milliseconds(sessionTimeoutMs))
        configuration.requestTimeout = .milliseconds(requestTimeoutMs)
        configuration.reconnectDelay = .milliseconds(100)
        configuration.initialConnectTimeout = .seconds(10)
        return configuration
    }

    /// `/chaos` and its keys, created through the history (client -1), so the register model
    /// starts from what the workload finds.
    private func setUp(paths: [String], recorder: ChaosRecorder) async throws {
        let client = try await ZooKeeperClient.connect(configuration: configuration(connect))
        do {
            _ = try await client.create("/chaos", data: [])
        } catch let error as ZooKeeperError where error.code == .nodeExists {}
        var connection = recorder.newConnection()
        for path in paths {
            // Until answered: an attempt without an answer stays open, and the next one may find
            // the key created by it (nodeExists).
            var answered = false
            for _ in 0..<20 where !answered {
                let data = Array("init".utf8)
                let operation = ZKSimulator.Operation.create(path: path, data: data, ephemeral: false, sequential: false)
                let id = recorder.invoke(client: -1, session: client.sessionId, connection: connection, operation)
                let (result, _) = await client.send(Self.request(operation))
                switch result {
                case .success(let response):
                    recorder.respond(id, .ok(response))
                    answered = true
                case .failure(let code) where modeledErrorCodes.contains(code):
                    recorder.respond(id, .failed(code))
                    answered = true
                case .failure:
                    connection = recorder.newConnection()
                    try await Task.sleep(for: .milliseconds(500))
                }
            }
            guard answered else {
                await client.close()
                throw ZooKeeperError(.connectionLoss, path: path)
            }
        }
        await client.close()
    }

    /// The request for a recorded operation: a create asks for its Stat (create2), so its zxid
    /// is known.
    static func request(_ operation: ZKSimulator.Operation) -> Request {
        if case .create(let path, let data, let ephemeral, false) = operation {
            return .create2(CreateRequest(path: path, data: data, acl: ACL.openUnsafe, flags: ephemeral ? 1 : 0))
        }
        return operation.request
    }

    private func runClient(index: Int, paths: [String], locks: LockPaths, deadline: ContinuousClock.Instant, recorder: ChaosRecorder) async -> ClientStats {
        var generator = SplitMix64(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(index + 1))
        var stats = ClientStats()
        var client: ZooKeeperClient? = nil
        var connection: ConnectionID = 0
        var versions: [String: Int32] = [:]
        var counter = 0
        var heldLock: String? = nil
        let think = thinkRange!
        while ContinuousClock.now < deadline {
            if client == nil {
                do {
                    let opened = try await ZooKeeperClient.connect(configuration: configuration(connect))
                    client = opened
                    recorder.sessionStarted(opened.sessionId, client: index, timeoutMs: Int64(opened.negotiatedSessionTimeoutMs))
                    connection = recorder.newConnection()
                    heldLock = nil
                    stats.sessions += 1
                } catch {
                    try? await Task.sleep(for: .milliseconds(200))
                    continue
                }
            }
            let session = client!.sessionId
            let path = paths[Int(generator.next() % UInt64(paths.count))]
            counter += 1
            let data = Array("c\(index)-\(counter)".utf8)
            let roll = generator.next() % 100
            var operation: ZKSimulator.Operation
            switch roll {
            case 0..<40: operation = .getData(path: path, watch: false)
            case 40..<65: operation = .setData(path: path, data: data, version: -1)
            case 65..<88: operation = .setData(path: path, data: data, version: versions[path] ?? 0)
            case 88..<97: operation = .create(path: path, data: data, ephemeral: false, sequential: false)
            default: operation = .delete(path: path, version: -1)
            }
            // One call in twelve goes to an ephemeral the sessions of clients 0 and 1 compete for,
            // as a lock; the others only read it. (Each session that ever created it adds a
            // session end the search may place anywhere: two clients keep that small, and a new
            // path each period keeps it to the sessions of that period.) A lock held from an
            // earlier period is released first.
            var isLockCall = false
            if ephemeralLock && generator.next() % 12 == 0 {
                isLockCall = true
                let lockPath = locks.current()
                let lockRoll = generator.next() % 100
                if let held = heldLock, held != lockPath || lockRoll < 40 {
                    operation = .delete(path: held, version: -1)
                } else if index < 2 && lockRoll < 60 {
                    operation = .create(path: lockPath, data: data, ephemeral: true, sequential: false)
                } else {
                    operation = .getData(path: lockPath, watch: false)
                }
            }
            let id = recorder.invoke(client: index, session: session, connection: connection, operation)
            let (result, _) = await client!.send(Self.request(operation))
            stats.calls += 1
            switch result {
            case .success(let response):
                recorder.respond(id, .ok(response))
                stats.ok += 1
                switch response {
                case .stat(let stat), .getData(_, let stat), .create2(_, let stat):
                    if !isLockCall { versions[path] = stat.version }
                default: break
                }
                if case .create(let created, _, true, _) = operation { heldLock = created }
                if case .delete(let deleted, _) = operation, deleted == heldLock { heldLock = nil }
            case .failure(let code) where modeledErrorCodes.contains(code):
                recorder.respond(id, .failed(code))
                stats.failed += 1
                // A release that finds no lock (its delete was lost, then answered when retried).
                if case .delete(let deleted, _) = operation, deleted == heldLock, code == .noNode { heldLock = nil }
            case .failure(let code):
                // Outcome unknown: the call stays open in the history.
                stats.unknown += 1
                if code == .sessionExpired || client!.state == .expired {
                    recorder.sessionEnded(client!.sessionId)
                    await client!.close()
                    client = nil
                } else {
                    connection = recorder.newConnection()
                    await Self.waitConnected(client!, until: deadline)
                }
            }
            let pause = think.lowerBound + Int(generator.next() % UInt64(think.count))
            if pause > 0 { try? await Task.sleep(for: .milliseconds(pause)) }
        }
        if let client {
            recorder.sessionEnded(client.sessionId)
            await client.close()
        }
        return stats
    }

    /// Waits (polling, at most until the deadline or 3 s) for the client to be connected again,
    /// so that a partitioned client does not record a burst of calls that never left.
    static func waitConnected(_ client: ZooKeeperClient, until deadline: ContinuousClock.Instant) async {
        let limit = min(deadline, ContinuousClock.now + .seconds(3))
        while ContinuousClock.now < limit {
            switch client.state {
            case .connected, .reconnected, .connectedReadOnly, .expired, .authFailed, .closed: return
            default: try? await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    /// The lock's path of each period of the workload: `/chaos/lock-N`, N periods from the start.
    struct LockPaths: Sendable {
        var start: ContinuousClock.Instant
        var period: Duration

        func current(at now: ContinuousClock.Instant = .now) -> String {
            path(Int((now - start) / period))
        }

        /// Every path a call made before `deadline` may have used.
        func all(through deadline: ContinuousClock.Instant) -> [String] {
            (0...Int((deadline - start) / period)).map(path)
        }

        private func path(_ index: Int) -> String { "/chaos/lock-\(index)" }
    }

    // MARK: - Final reads

    /// After the heal: on each member alone, `sync` then read every key. The members must
    /// answer, and must agree.
    private func readFinal(paths: [String], lockPaths: Set<String>, recorder: ChaosRecorder) async -> (problems: [String], count: Int, locksLeft: Set<String>) {
        var problems: [String] = []
        var seen: [String: [String]] = [:]
        var count = 0
        var locksLeft: Set<String> = []
        let members = connect.split(separator: ",").map(String.init)
        for (memberIndex, member) in members.enumerated() {
            var answered = false
            for _ in 0..<10 where !answered {
                guard let client = try? await ZooKeeperClient.connect(configuration: configuration(member)) else {
                    try? await Task.sleep(for: .seconds(1))
                    continue
                }
                let connection = recorder.newConnection()
                do {
                    _ = try await client.sync("/chaos")
                    var values: [String] = []
                    for path in paths {
                        let operation = ZKSimulator.Operation.getData(path: path, watch: false)
                        let id = recorder.invoke(client: 1000 + memberIndex, session: client.sessionId, connection: connection, operation, final: true)
                        let (result, _) = await client.send(operation.request)
                        switch result {
                        case .success(let response):
                            recorder.respond(id, .ok(response))
                            if case .getData(let data, let stat) = response {
                                if lockPaths.contains(path) { locksLeft.insert(path) }
                                values.append("\(path)=\(String(decoding: data ?? [], as: UTF8.self))@v\(stat.version)")
                            }
                        case .failure(let code) where modeledErrorCodes.contains(code):
                            recorder.respond(id, .failed(code))
                            values.append("\(path)=\(code.name)")
                        case .failure(let code):
                            throw ZooKeeperError(code, path: path)
                        }
                        count += 1
                    }
                    seen[values.joined(separator: " "), default: []].append(member)
                    answered = true
                } catch {
                    try? await Task.sleep(for: .seconds(1))
                }
                await client.close()
            }
            if !answered { problems.append("member \(member) did not answer the final reads") }
        }
        printLine("final reads: \(count) reads on \(members.count) members after sync")
        for (values, members) in seen.sorted(by: { $0.key < $1.key }) { printLine("  \(members.joined(separator: ",")): \(values)") }
        if seen.count > 1 { problems.append("the members answered different final values after sync") }
        return (problems, count, locksLeft)
    }

    // MARK: - Acknowledged writes against the stores

    struct AcknowledgedWrite {
        var path: String
        var data: [UInt8]
        var zxid: Zxid
        var line: String
    }

    static func acknowledgedWrites(_ entries: [HistoryEntry]) -> [AcknowledgedWrite] {
        entries.compactMap { entry in
            switch (entry.operation, entry.outcome) {
            case (.setData(let path, let data, _), .ok(.stat(let stat))):
                return AcknowledgedWrite(path: path, data: data ?? [], zxid: stat.mzxid, line: entry.line)
            case (.create(let path, let data, _, _), .ok(.create2(_, let stat))):
                return AcknowledgedWrite(path: path, data: data ?? [], zxid: stat.czxid, line: entry.line)
            default:
                return nil
            }
        }
    }

    static func checkAcknowledged(_ writes: [AcknowledgedWrite], dataDirs: [String]) -> (verified: Int, inSnapshot: Int, problems: [String]) {
        var problems: [String] = []
        var logs: [(dir: String, transactions: [Zxid: ZKProtocol.Transaction], first: Zxid, last: Zxid)] = []
        for dir in dataDirs {
            do {
                var options = SQLiteStore.Options()
                options.readOnly = true
                let store = try SQLiteStore(directory: dir, options: options)
                var transactions: [Zxid: ZKProtocol.Transaction] = [:]
                var first = Zxid.max
                var last: Zxid = 0
                try store.forEachTransaction(after: 0) { txn in
                    transactions[txn.zxid] = txn
                    first = min(first, txn.zxid)
                    last = max(last, txn.zxid)
                }
                logs.append((dir, transactions, first, last))
            } catch {
                problems.append("cannot read the store in \(dir): \(error)")
            }
        }
        var verified = 0
        var inSnapshot = 0
        for write in writes {
            var covered = false
            for log in logs {
                if write.zxid > log.last {
                    problems.append("\(log.dir) ends at \(hex(log.last)), before the acknowledged write at \(hex(write.zxid)): \(write.line)")
                    continue
                }
                guard write.zxid >= log.first else { continue }
                guard let txn = log.transactions[write.zxid] else {
                    problems.append("\(log.dir) has no transaction at \(hex(write.zxid)), the zxid of an acknowledged write: \(write.line)")
                    continue
                }
                let matches: Bool
                switch txn.body {
                case .setData(let path, let data, _), .create(let path, let data, _, _): matches = path == write.path && (data ?? []) == write.data
                default: matches = false
                }
                if matches {
                    covered = true
                } else {
                    problems.append("\(log.dir) logged \(InspectCommand.describe(txn)) at \(hex(write.zxid)), the zxid of an acknowledged write: \(write.line)")
                }
            }
            if covered { verified += 1 } else if logs.allSatisfy({ write.zxid < $0.first }) { inSnapshot += 1 }
        }
        return (verified, inSnapshot, problems)
    }
}

/// The errors the register model knows; the others leave a call's outcome unknown.
private let modeledErrorCodes: Set<ErrorCode> = [.noNode, .nodeExists, .badVersion]

/// The history, shared by the clients' tasks: invocation and response under one lock, so the
/// history's logical clock follows real time.
final class ChaosRecorder: @unchecked Sendable {
    private let lock = NIOLock()
    private let recorded = RecordedHistory()
    private var connections: ConnectionID = 0

    func newConnection() -> ConnectionID {
        lock.withLock {
            connections += 1
            return connections
        }
    }

    func invoke(client: Int, session: Int64, connection: ConnectionID, _ operation: ZKSimulator.Operation, final: Bool = false) -> Int {
        lock.withLock {
            recorded.invoke(client: client, session: session, connection: connection, operation, wallMs: Self.wallMs(), final: final)
        }
    }

    func respond(_ id: Int, _ outcome: Outcome) {
        lock.withLock { recorded.respond(id, outcome, wallMs: Self.wallMs()) }
    }

    func sessionStarted(_ id: Int64, client: Int, timeoutMs: Int64) {
        lock.withLock { recorded.sessionStarted(id, client: client, timeoutMs: timeoutMs) }
    }

    func sessionEnded(_ id: Int64) {
        lock.withLock { recorded.sessionEnded(id) }
    }

    func withHistory<T>(_ body: (RecordedHistory) -> T) -> T {
        lock.withLock { body(recorded) }
    }

    static func wallMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}
