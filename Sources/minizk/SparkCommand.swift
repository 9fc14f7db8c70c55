import ArgumentParser
import Foundation
import NIOConcurrencyHelpers
import SparkLite
import SparkLiteCore
import ZKClient

/// `minizk spark ...`: SparkLite's masters, workers, driver and status (docs/sparklite.md).
struct SparkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spark",
        abstract: "SparkLite: Spark-like masters and workers that coordinate through MiniZK (docs/sparklite.md).",
        subcommands: [SparkMaster.self, SparkWorker.self, SparkSubmit.self, SparkStatusCommand.self, SparkDemo.self]
    )
}

struct SparkConnection: ParsableArguments {
    @Option(help: "Connect string of the ensemble (host:port,...).")
    var connect: String = "127.0.0.1:2181"

    @Option(help: "Root of SparkLite's nodes.")
    var root: String = "/sparklite"

    @Option(help: "Session timeout in milliseconds (the fail-over time of a crashed master is about this).")
    var sessionTimeoutMs: Int = 4000

    var layout: SparkLayout { SparkLayout(root: root) }
    var sessionTimeout: Duration { .milliseconds(sessionTimeoutMs) }

    func validate() throws {
        guard root.hasPrefix("/"), !root.hasSuffix("/") else { throw ValidationError("--root is an absolute path without a trailing slash") }
        guard sessionTimeoutMs > 0 else { throw ValidationError("--session-timeout-ms must be positive") }
    }
}

/// Prints observations, one line each, until the stream ends.
func printObservations(_ stream: AsyncStream<SparkObservation>, json: Bool, started: ContinuousClock.Instant) async {
    for await observation in stream {
        let ms = (ContinuousClock.now - started).milliseconds
        printLine(json ? "{\"ms\":\(ms)," + observation.jsonLine.dropFirst() : "\(ms) ms  \(observation.text)")
    }
}

struct SparkMaster: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "master", abstract: "Run a SparkLite master (a leader candidate) until SIGINT or SIGTERM.")

    @OptionGroup var connection: SparkConnection
    @Option(help: "This master's id.") var id: String = "master-\(getpid())"
    @Flag(help: "Print observations as JSON lines.") var json = false

    func run() async throws {
        let signals = TerminationSignals()
        let master = SparkLite.master(connection.connect, id: id, layout: connection.layout, sessionTimeout: connection.sessionTimeout)
        let started = ContinuousClock.now
        let printer = Task { await printObservations(master.observations, json: json, started: started) }
        await master.start()
        _ = await signals.wait()
        await master.stop()
        printer.cancel()
    }
}

struct SparkWorker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "worker", abstract: "Run a SparkLite worker until SIGINT or SIGTERM.")

    @OptionGroup var connection: SparkConnection
    @Option(help: "This worker's id.") var id: String = "worker-\(getpid())"
    @Option(help: "Tasks run at once.") var capacity: Int = 2
    @Flag(help: "Print observations as JSON lines.") var json = false

    func run() async throws {
        let signals = TerminationSignals()
        let worker = SparkLite.worker(connection.connect, id: id, capacity: capacity, layout: connection.layout, sessionTimeout: connection.sessionTimeout)
        let started = ContinuousClock.now
        let printer = Task { await printObservations(worker.observations, json: json, started: started) }
        await worker.start()
        _ = await signals.wait()
        await worker.stop()
        printer.cancel()
    }
}

struct JobArguments: ParsableArguments {
    @Argument(help: "The job: wordcount or sort.") var job: String
    @Option(help: "Job id (default: the job and the seed).") var id: String?
    @Option(help: "Seed of the generated input.") var seed: UInt64 = 1
    @Option(help: "Map tasks.") var maps: Int = 8
    @Option(help: "Reduce tasks.") var reduces: Int = 4
    @Option(help: "Words (word count) or numbers (sort) per map task.") var records: Int = 2000

    func validate() throws {
        guard JobKind(rawValue: job) != nil else { throw ValidationError("JOB is wordcount or sort") }
        if let id, !JobSpec.isValidID(id) { throw ValidationError("--id is [A-Za-z0-9_-]+") }
    }

    var spec: JobSpec {
        JobSpec(id: id ?? "\(job)-\(seed)", kind: JobKind(rawValue: job)!, seed: seed, maps: maps, reduces: reduces, recordsPerMap: records)
    }
}

struct SparkSubmit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit", abstract: "Submit a job, follow it, gather its result and check it against a single-process computation.")

    @OptionGroup var connection: SparkConnection
    @OptionGroup var job: JobArguments
    @Flag(help: "Print observations and the outcome as JSON lines.") var json = false
    @Option(help: "Write the job's result to this file.") var output: String?

    func run() async throws {
        let spec = job.spec
        let started = ContinuousClock.now
        let json = self.json
        let result = try await SparkLite.submit(connection.connect, spec: spec, layout: connection.layout) { observation in
            let ms = (ContinuousClock.now - started).milliseconds
            printLine(json ? "{\"ms\":\(ms)," + observation.jsonLine.dropFirst() : "\(ms) ms  \(observation.text)")
        }
        let expected = Jobs.singleProcess(spec)
        if let output { try Data(result).write(to: URL(fileURLWithPath: output)) }
        let verified = result == expected
        if json {
            printLine("{\"job\":\"\(spec.id)\",\"digest\":\"\(Jobs.digest(result))\",\"bytes\":\(result.count),\"verified\":\(verified)}")
        } else {
            printLine("\(spec.id): \(result.count) bytes, digest \(Jobs.digest(result)), \(verified ? "equal to" : "DIFFERENT FROM") the single-process result")
        }
        if !verified { throw ExitCode(1) }
    }
}

struct SparkStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Masters, epoch, workers, jobs and their progress.")

    @OptionGroup var connection: SparkConnection
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let client = try await ZooKeeperClient.connect(connection.connect, sessionTimeout: connection.sessionTimeout)
        let status = try await SparkStatus.read(client, layout: connection.layout)
        await client.close()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            printLine(String(decoding: try encoder.encode(status), as: UTF8.self))
        } else {
            printLine(status.text)
        }
    }
}

extension Duration {
    var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}
