import ArgumentParser
import Foundation
import NIOConcurrencyHelpers
import SparkLite
import SparkLiteCore
import ZKClient

/// `minizk spark demo`: a three-member MiniZK ensemble, two masters and N workers, each its own
/// process; a job with a live progress line; kill -9 of the active master and of a worker in the
/// middle; the verified result and the measured fail-over (kill -9 of the active master until
/// the standby's first assignment).
struct SparkDemo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Start an ensemble, two masters and N workers as processes, run a job, kill the active master and a worker mid-job, verify the result and measure the fail-over.")

    @Option(help: "Worker processes.") var workers: Int = 4
    @Option(help: "The job: wordcount or sort.") var job: String = "wordcount"
    @Option(help: "Seed of the generated input.") var seed: UInt64 = 7
    @Option(help: "Map tasks.") var maps: Int = 32
    @Option(help: "Reduce tasks.") var reduces: Int = 8
    @Option(help: "Words or numbers per map task.") var records: Int = 2000
    @Option(help: "How long a worker holds each task (config/cluster taskDelayMs), so that the kills land mid-job.") var taskDelayMs: Int = 150
    @Option(help: "Session timeout of masters and workers, ms (MiniZK grants 2 to 20 ticks).") var sessionTimeoutMs: Int = 500
    @Option(help: "The ensemble's tick, ms.") var tickMs: Int = 100
    @Flag(help: "A short run for CI (12 maps, 4 reduces, 500 words per map, 60 ms tasks).") var ci = false
    @Flag(help: "Print the outcome as one JSON line at the end.") var json = false

    func validate() throws {
        guard JobKind(rawValue: job) != nil else { throw ValidationError("--job is wordcount or sort") }
        guard workers >= 2 else { throw ValidationError("--workers must be at least 2 (one is killed)") }
    }

    final class Child: @unchecked Sendable {
        let name: String
        let process = Process()
        let lines = NIOLockedValueBox<[(at: ContinuousClock.Instant, fields: [String: String])]>([])
        let buffer = NIOLockedValueBox<[UInt8]>([])
        init(name: String) { self.name = name }

        func start(_ executable: String, _ arguments: [String]) throws {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = FileHandle.nullDevice
            pipe.fileHandleForReading.readabilityHandler = { [self] handle in
                let data = handle.availableData
                let now = ContinuousClock.now
                guard !data.isEmpty else {
                    handle.readabilityHandler = nil
                    return
                }
                let complete: [[UInt8]] = buffer.withLockedValue { buffer in
                    buffer += Array(data)
                    var lines: [[UInt8]] = []
                    while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                        lines.append(Array(buffer[..<newline]))
                        buffer.removeSubrange(...newline)
                    }
                    return lines
                }
                for line in complete {
                    guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else { continue }
                    var fields: [String: String] = [:]
                    for (key, value) in object { fields[key] = "\(value)" }
                    lines.withLockedValue { $0.append((now, fields)) }
                }
            }
            try process.run()
        }

        func first(after: ContinuousClock.Instant? = nil, _ predicate: ([String: String]) -> Bool) -> (at: ContinuousClock.Instant, fields: [String: String])? {
            lines.withLockedValue { $0.first { (after == nil || $0.at >= after!) && predicate($0.fields) } }
        }

        /// When this process last reported itself elected.
        func lastElected() -> ContinuousClock.Instant? {
            lines.withLockedValue { $0.last { $0.fields["event"] == "elected" }?.at }
        }

        func signal(_ number: Int32) { if process.isRunning { kill(process.processIdentifier, number) } }
    }

    struct DemoState {
        var masterKilled: (name: String, at: ContinuousClock.Instant)?
        var workerKilled: String?
        var lastLine = ""
    }

    func run() async throws {
        let maps = ci ? 12 : self.maps, reduces = ci ? 4 : self.reduces, records = ci ? 500 : self.records
        let taskDelayMs = ci ? 60 : self.taskDelayMs
        let spec = JobSpec(id: "demo-\(job)-\(seed)", kind: JobKind(rawValue: job)!, seed: seed, maps: maps, reduces: reduces, recordsPerMap: records)
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        var children: [Child] = []
        defer {
            for child in children { child.signal(SIGTERM) }
            for child in children where child.process.isRunning { child.process.waitUntilExit() }
        }
        let quiet = json
        let say: (String) -> Void = { line in if !quiet { printLine(line) } }

        // The ensemble.
        let ensemble = Child(name: "ensemble")
        children.append(ensemble)
        try ensemble.start(executable, ["ensemble", "--nodes", "3", "--in-memory", "--base-port", "0", "--json", "--tick-ms", "\(tickMs)"])
        let info = try await waitFor("the ensemble", timeoutMs: 30_000) { ensemble.first { $0["connectString"] != nil } }
        let connect = info.fields["connectString"]!
        say("ensemble: 3 MiniZK members at \(connect) (tick \(tickMs) ms)")

        // The live configuration: how long each task takes.
        let admin = try await ZooKeeperClient.connect(connect)
        let layout = SparkLayout()
        for path in [layout.root, layout.config] { _ = try? await admin.create(path) }
        let config = Array("taskDelayMs=\(taskDelayMs)\nmaxAttempts=8".utf8)
        if (try? await admin.create(layout.clusterConfig, data: config)) == nil { _ = try await admin.setData(layout.clusterConfig, data: config) }

        func spark(_ role: String, _ id: String, _ extra: [String] = []) throws -> Child {
            let child = Child(name: id)
            children.append(child)
            try child.start(executable, ["spark", role, "--connect", connect, "--id", id, "--session-timeout-ms", "\(sessionTimeoutMs)", "--json"] + extra)
            return child
        }
        let master1 = try spark("master", "master-1")
        _ = try await waitFor("master-1 elected", timeoutMs: 30_000) { master1.first { $0["event"] == "elected" } }
        let master2 = try spark("master", "master-2")
        _ = try await waitFor("master-2 standing by", timeoutMs: 30_000) { master2.first { $0["event"] == "configApplied" } }
        var workerChildren: [Child] = []
        for index in 1...workers { workerChildren.append(try spark("worker", "worker-\(index)", ["--capacity", "2"])) }
        for worker in workerChildren {
            _ = try await waitFor("\(worker.name) registered", timeoutMs: 30_000) { worker.first { $0["event"] == "registered" } }
        }
        say("masters: master-1 (active), master-2 (standby); workers: \(workers) × 2 slots; session timeout \(sessionTimeoutMs) ms")
        say("job \(spec.id): \(spec.kind.rawValue), \(maps) maps → \(reduces) reduces, \(records) records per map, \(taskDelayMs) ms per task")

        let masters = [master1, master2]
        let victim = workerChildren[0]
        let state = NIOLockedValueBox(DemoState())
        let tty = isatty(STDOUT_FILENO) == 1
        let json = self.json
        let started = ContinuousClock.now
        let result = try await SparkLite.submit(connect, spec: spec) { observation in
            guard case .progress(_, let committed, let total) = observation else { return }
            let events: [String] = state.withLockedValue { state in
                var events: [String] = []
                if state.masterKilled == nil, committed * 10 >= total * 3 {
                    // The active master is the one elected last.
                    let elected = masters.compactMap { master in master.lastElected().map { (master, $0) } }
                    let active = elected.max { $0.1 < $1.1 }?.0 ?? masters[0]
                    active.signal(SIGKILL)
                    state.masterKilled = (active.name, ContinuousClock.now)
                    events.append("kill -9 \(active.name) (the active master)")
                }
                if state.workerKilled == nil, committed * 10 >= total * 6 {
                    victim.signal(SIGKILL)
                    state.workerKilled = victim.name
                    events.append("kill -9 \(victim.name)")
                }
                return events
            }
            guard !json else { return }
            let width = 30, filled = committed * width / max(total, 1)
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            let line = "[\(bar)] \(committed)/\(total) tasks  \((ContinuousClock.now - started).milliseconds) ms"
            for event in events { printLine((tty ? "\r" : "") + line + "  ← " + event) }
            if events.isEmpty {
                if tty { FileHandle.standardOutput.write(Data(("\r" + line).utf8)) } else { printLine(line) }
            }
        }
        let elapsed = (ContinuousClock.now - started).milliseconds
        if tty && !json { printLine("") }
        await admin.close()

        let expected = Jobs.singleProcess(spec)
        let verified = result == expected
        let killed = state.withLockedValue { $0.masterKilled }
        var electedMs: Int64?
        var failoverMs: Int64?
        if let killed, let standby = masters.first(where: { $0.name != killed.name }) {
            if let elected = standby.first(after: killed.at, { $0["event"] == "elected" }) {
                electedMs = (elected.at - killed.at).milliseconds
                let epoch = elected.fields["epoch"]
                if let assigned = standby.first(after: killed.at, { $0["event"] == "assigned" && $0["epoch"] == epoch }) {
                    failoverMs = (assigned.at - killed.at).milliseconds
                }
            }
        }
        let lines = String(decoding: result, as: UTF8.self).split(separator: "\n").count
        if json {
            printLine("{\"job\":\"\(spec.id)\",\"verified\":\(verified),\"digest\":\"\(Jobs.digest(result))\",\"lines\":\(lines),\"jobMs\":\(elapsed),"
                + "\"masterKilled\":\"\(killed?.name ?? "")\",\"electedMs\":\(electedMs.map(String.init) ?? "null"),"
                + "\"failoverMs\":\(failoverMs.map(String.init) ?? "null"),\"sessionTimeoutMs\":\(sessionTimeoutMs),\"tickMs\":\(tickMs)}")
        } else {
            printLine("result: \(lines) lines, digest \(Jobs.digest(result)): \(verified ? "equal to" : "DIFFERENT FROM") the single-process computation (\(elapsed) ms)")
            if let killed {
                printLine("fail-over: kill -9 of \(killed.name) → standby elected after \(electedMs.map { "\($0) ms" } ?? "?"), "
                    + "its first assignment after \(failoverMs.map { "\($0) ms" } ?? "?") (session timeout \(sessionTimeoutMs) ms, tick \(tickMs) ms)")
            }
        }
        if !verified || failoverMs == nil { throw ExitCode(1) }
    }

    func waitFor<T>(_ what: String, timeoutMs: Int64, _ probe: () -> T?) async throws -> T {
        let deadline = ContinuousClock.now + .milliseconds(timeoutMs)
        while ContinuousClock.now < deadline {
            if let value = probe() { return value }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw ValidationError("timed out waiting for \(what)")
    }
}
