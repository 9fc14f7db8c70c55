import ArgumentParser
import ZKSimulator

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `minizk sim`: runs the deterministic simulation for one seed (a report, optionally the whole
/// event trace) or a range of seeds (a progress line and a summary table).
///
/// This is the simulator's shell: the only place that reads the wall clock, to tell how fast
/// virtual time runs. Nothing in a run depends on it.
struct SimCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sim",
        abstract: "Run the deterministic simulation: one seed with a report, or a range of seeds with a summary.",
        discussion: """
            Every option of a run derives from its seed and is printed first; the same seed gives the \
            same run, event for event. A failure prints the first violated property, the evidence and \
            the command that replays it.
            """
    )

    @Option(help: "The seed of one run (default: one drawn from the clock, printed).")
    var seed: UInt64?

    @Option(help: "A range of seeds, A..B (both included).")
    var seeds: String?

    @Option(help: "quick, standard or long.")
    var profile: String = "standard"

    @Option(help: "Replicas in the ensemble (default: from the seed).")
    var nodes: Int?

    @Option(help: "Workload clients (default: from the seed).")
    var clients: Int?

    @Option(help: "Length of the fault phase in virtual ms (default: from the seed).")
    var safetyMs: Int64?

    @Option(help: "Mean virtual ms between two reconfigurations of the membership, 0 for none (default: from the seed).")
    var reconfigMs: Int64?

    @Option(help: "Recipe contenders (mutex, leader latch, counter, queue) alongside the workload: on or off (default: from the seed, in 30% of seeds).")
    var recipes: String?

    @Option(help: "Fault kinds, comma-separated, or 'none' (default: from the seed). Kinds: \(FaultKind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var faults: String?

    @Flag(help: "Run SparkLite (masters, workers, a driver) under faults instead of the workload (docs/sparklite.md); other options are ignored.")
    var sparklite = false

    @Flag(help: "Print the whole event trace of a single run.")
    var trace = false

    @Flag(help: "Print the hash of the event trace (two runs of one seed must agree).")
    var traceHash = false

    @Flag(help: "Stop a range at its first failure.")
    var stopOnFailure = false

    @Option(help: "Write each seed to this file before running it (to name the seed that crashed the process).")
    var checkpoint: String?

    @Flag(help: "For a range: print only the summary.")
    var quiet = false

    func validate() throws {
        guard SimulationOptions.Profile(rawValue: profile) != nil else { throw ValidationError("unknown --profile \(profile)") }
        if let seeds { _ = try parseRange(seeds) }
        if let faults { _ = try parseFaults(faults) }
        if seed != nil && seeds != nil { throw ValidationError("--seed and --seeds exclude each other") }
        if let recipes, !["on", "off"].contains(recipes) { throw ValidationError("--recipes takes on or off") }
        if let nodes, !(1...9).contains(nodes) { throw ValidationError("--nodes must be 1...9") }
    }

    func parseRange(_ text: String) throws -> ClosedRange<UInt64> {
        let parts = text.split(separator: ".", omittingEmptySubsequences: true)
        guard parts.count == 2, let low = UInt64(parts[0]), let high = UInt64(parts[1]), low <= high else {
            throw ValidationError("--seeds takes A..B, as in 1..1000")
        }
        return low...high
    }

    func parseFaults(_ text: String) throws -> [FaultKind] {
        if text == "none" { return [] }
        return try text.split(separator: ",").map { name in
            guard let kind = FaultKind(rawValue: String(name)) else { throw ValidationError("unknown fault kind \(name)") }
            return kind
        }
    }

    var overrides: SimulationOverrides {
        var overrides = SimulationOverrides()
        overrides.profile = SimulationOptions.Profile(rawValue: profile) ?? .standard
        overrides.nodes = nodes
        overrides.clients = clients
        overrides.safetyMs = safetyMs
        overrides.reconfigMs = reconfigMs
        overrides.recipes = recipes.map { $0 == "on" }
        overrides.faults = faults.flatMap { try? parseFaults($0) }
        return overrides
    }

    func run() throws {
        if sparklite {
            let range = try seeds.map(parseRange) ?? {
                let one = self.seed ?? UInt64.random(in: 1...999_999_999)
                return one...one
            }()
            if !runSparkLite(range) { throw ExitCode(1) }
            return
        }
        if let seeds {
            try sweep(parseRange(seeds))
        } else {
            let seed = self.seed ?? UInt64.random(in: 1...999_999_999)
            if !runOne(seed) { throw ExitCode(1) }
        }
    }

    /// SparkLite seeds: the options of each, its outcome, and for a failure the evidence and the
    /// replay command.
    func runSparkLite(_ range: ClosedRange<UInt64>) -> Bool {
        var failed: [UInt64] = []
        let started = ContinuousClock.now
        var simulatedMs: Int64 = 0
        for seed in range {
            let options = SparkLiteSimOptions.derive(seed: seed)
            if !quiet || range.count == 1 { emit(options.description) }
            let result = SparkLiteSimulation(options: options).run()
            simulatedMs += result.simulatedMs
            if !quiet || range.count == 1 || !result.passed { emit(result.summary) }
            if let violation = result.violation {
                if failed.isEmpty { emit("first failure: seed \(seed) property \(violation.prefix { $0 != ":" })") }
                failed.append(seed)
                emit("violation: \(violation)")
                for fault in result.faults.suffix(25) { emit("  fault \(fault)") }
                for line in result.recent.suffix(40) { emit("  seen \(line)") }
                emit("replay: \(options.replay)")
                if stopOnFailure { break }
            }
        }
        if range.count > 1 {
            emit("sparklite: \(range.count) seeds, \(failed.count) failed\(failed.isEmpty ? "" : " (\(failed.prefix(20).map(String.init).joined(separator: ", ")))"); \(format(wall: ContinuousClock.now - started, simulatedMs: simulatedMs))")
        }
        return failed.isEmpty
    }

    /// One seed, with its full report.
    func runOne(_ seed: UInt64) -> Bool {
        let options = overrides.apply(seed: seed)
        let hasher = TraceHasher()
        let ring = TraceRing(capacity: 60)
        let printing = trace
        let simulation = Simulation(options: options) { line in
            hasher.append(line)
            ring.append(line)
            if printing { emit(line) }
        }
        let started = ContinuousClock.now
        let result = simulation.run()
        let wall = ContinuousClock.now - started
        emit(result.report(overrides, recentEvents: result.passed ? [] : ring.contents))
        emit("speed: \(format(wall: wall, simulatedMs: result.simulatedMs))")
        if traceHash || trace { emit("trace: \(hasher.lines) lines, hash \(String(hasher.value, radix: 16))") }
        return result.passed
    }

    /// A range of seeds: a progress line, each failure as it happens, then a summary table.
    func sweep(_ range: ClosedRange<UInt64>) throws {
        let total = Int(range.upperBound - range.lowerBound + 1)
        var failures: [(seed: UInt64, property: String)] = []
        var unknown = 0
        var simulatedMs: Int64 = 0
        var events: UInt64 = 0
        var operations = 0
        var done = 0
        let started = ContinuousClock.now
        var lastProgress = started
        emit("minizk sim --seeds \(range.lowerBound)..\(range.upperBound)\(overrides.arguments.isEmpty ? "" : " " + overrides.arguments.joined(separator: " "))")
        for seed in range {
            if let checkpoint { writeFile(checkpoint, "\(seed)\n") }
            let result = Simulation(options: overrides.apply(seed: seed)).run()
            done += 1
            simulatedMs += result.simulatedMs
            events += result.events
            operations += result.operations
            if !result.unknownPaths.isEmpty { unknown += 1 }
            if let violation = result.violation {
                failures.append((seed, violation.property))
                if !quiet {
                    progress("")
                    emit("FAIL seed \(seed): \(violation.property): \(violation.detail)")
                    emit("     replay: \(result.replayCommand(overrides))")
                }
                if stopOnFailure { break }
            }
            let now = ContinuousClock.now
            if now - lastProgress > .milliseconds(250) || done == total {
                lastProgress = now
                let elapsed = seconds(now - started)
                let rate = elapsed > 0 ? Double(done) / elapsed * 60 : 0
                progress("[\(done)/\(total)] \(failures.count) failed, \(Int(rate)) seeds/min, seed \(seed)")
            }
        }
        progress("")
        let wall = ContinuousClock.now - started
        emit("")
        emit(pad("property", 34) + pad("failures", 10) + "first seed")
        var byProperty: [String: [UInt64]] = [:]
        for failure in failures { byProperty[failure.property, default: []].append(failure.seed) }
        for property in byProperty.keys.sorted() {
            let seeds = byProperty[property]!
            emit(pad(property, 34) + pad("\(seeds.count)", 10) + "\(seeds[0])")
        }
        if failures.isEmpty { emit(pad("(none)", 34) + pad("0", 10) + "-") }
        emit("")
        emit("seeds \(range.lowerBound)..\(range.upperBound): \(done) run, \(done - failures.count) passed, \(failures.count) failed, \(unknown) with a linearizability search that gave up on some path")
        emit("\(operations) client operations, \(events) events")
        let elapsed = seconds(wall)
        emit("\(format(wall: wall, simulatedMs: simulatedMs)); \(elapsed > 0 ? Int(Double(done) / elapsed * 60) : 0) seeds/min")
        if let first = failures.first {
            emit("first failure: seed \(first.seed) property \(first.property)")
            emit("replay the first failure: swift run minizk sim --seed \(first.seed)\(overrides.arguments.isEmpty ? "" : " " + overrides.arguments.joined(separator: " "))")
            throw ExitCode(1)
        }
    }

    func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    func format(wall: Duration, simulatedMs: Int64) -> String {
        let wallSeconds = seconds(wall)
        let simulated = Double(simulatedMs) / 1000
        let ratio = wallSeconds > 0 ? simulated / wallSeconds : 0
        return "\(rounded(simulated))s simulated in \(rounded(wallSeconds))s wall: \(rounded(ratio))x real time"
    }

    func rounded(_ value: Double) -> String {
        let scaled = (value * 10).rounded() / 10
        return "\(scaled)"
    }

    func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }
}

private func emit(_ line: String) {
    writeAll(STDOUT_FILENO, line + "\n")
}

/// A progress line on standard error, rewritten in place.
private func progress(_ line: String) {
    guard isatty(STDERR_FILENO) != 0 else { return }
    writeAll(STDERR_FILENO, "\r\u{1B}[2K" + line + (line.isEmpty ? "\r" : ""))
}

private func writeFile(_ path: String, _ text: String) {
    let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard descriptor >= 0 else { return }
    writeAll(descriptor, text)
    close(descriptor)
}

private func writeAll(_ descriptor: Int32, _ text: String) {
    let bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeBytes { raw in write(descriptor, raw.baseAddress! + offset, raw.count - offset) }
        if written < 0 && errno == EINTR { continue }
        if written <= 0 { return }
        offset += written
    }
}
