import Foundation
import NIOConcurrencyHelpers
import SparkLiteCore
@_exported import SparkLiteCore
import ZKClient
import ZKRecipes
import ZKRecipesCore

/// Runs one SparkLite program (a master, a worker or a driver) in this process on a
/// `ZooKeeperClient` with `ProgramRunner`. When the program finishes — a master deposed, a
/// worker whose session ended — the session is closed and, with `restarts`, a new program starts
/// on a new session (a new incarnation). Everything the programs observe, of every incarnation,
/// comes out of `observations`.
public actor SparkService<Program: CoordinationProgram> where Program.Observation == SparkObservation {
    let configuration: ZooKeeperClient.Configuration
    let make: @Sendable (Int) -> Program
    let restarts: Bool
    let complete: @Sendable (Program) -> Bool
    var runner: ProgramRunner<Program>?
    var client: ZooKeeperClient?
    var loop: Task<Void, Never>?
    var stopped = false
    var killed = false
    var lastProgram: Program?
    let continuation: AsyncStream<SparkObservation>.Continuation
    public nonisolated let observations: AsyncStream<SparkObservation>

    /// - Parameter make: the program of each incarnation (1, 2, ...).
    /// - Parameter complete: a finished program for which no new incarnation starts (a driver
    ///   with its result).
    public init(
        configuration: ZooKeeperClient.Configuration, restarts: Bool = true,
        complete: @escaping @Sendable (Program) -> Bool = { _ in false }, make: @escaping @Sendable (Int) -> Program
    ) {
        self.configuration = configuration
        self.restarts = restarts
        self.complete = complete
        self.make = make
        (observations, continuation) = AsyncStream<SparkObservation>.makeStream()
    }

    public func start() {
        guard loop == nil else { return }
        loop = Task { await self.run() }
    }

    func run() async {
        var incarnation = 0
        while !stopped {
            incarnation += 1
            guard let client = try? ZooKeeperClient.start(configuration: configuration) else {
                try? await Task.sleep(for: .milliseconds(200))
                continue
            }
            let runner = ProgramRunner(client: client, program: make(incarnation))
            self.client = client
            self.runner = runner
            await runner.start()
            for await observation in runner.observations { continuation.yield(observation) }
            lastProgram = await runner.current
            self.runner = nil
            if killed { break }  // a crash leaves the session to the ensemble
            await client.close()
            if !restarts || stopped || lastProgram.map(complete) == true { break }
            try? await Task.sleep(for: .milliseconds(50))
        }
        continuation.finish()
    }

    /// The session of the current incarnation (nil before it connects).
    public var sessionId: Int64? {
        guard let id = client?.sessionId, id != 0 else { return nil }
        return id
    }

    public var currentClient: ZooKeeperClient? { client }

    /// The current incarnation's program as it is now (or the last one's, once it has finished).
    public func program() async -> Program? {
        if let runner { return await runner.current }
        return lastProgram
    }

    /// A crash, as `kill -9` of the process: the program stops at once and its session is neither
    /// closed nor kept alive by it any longer than its client pings (the ensemble expires it).
    public func kill() async {
        stopped = true
        killed = true
        await runner?.stop()
    }

    /// Drops the client without closing the session (after `kill`, for tests that expire the
    /// session through the ensemble).
    public func abandonSession() -> ZooKeeperClient? {
        defer { client = nil }
        return client
    }

    /// A clean stop: the program stops and the session is closed (its ephemeral nodes go at once).
    public func stop() async {
        stopped = true
        await runner?.stop()
        await client?.close()
        _ = await loop?.value
    }

    /// Waits until the current incarnation's session is connected; returns its id.
    public func awaitSession(timeout: Duration = .seconds(10)) async throws -> Int64 {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let sessionId { return sessionId }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw ZooKeeperError.connectionLoss
    }
}

/// The programs of one SparkLite cluster member, made from its settings.
public enum SparkLite {
    public static func clientConfiguration(_ connectString: String, sessionTimeout: Duration) -> ZooKeeperClient.Configuration {
        var configuration = ZooKeeperClient.Configuration(connectString: connectString, sessionTimeout: sessionTimeout)
        configuration.initialConnectTimeout = .seconds(30)
        configuration.reconnectDelay = .milliseconds(20)
        return configuration
    }

    public static func master(
        _ connectString: String, id: String, layout: SparkLayout = SparkLayout(), sessionTimeout: Duration = .seconds(4),
        defaults: ClusterConfig = ClusterConfig()
    ) -> SparkService<MasterProgram> {
        SparkService(configuration: clientConfiguration(connectString, sessionTimeout: sessionTimeout)) { _ in
            MasterProgram(.init(layout: layout, id: id, uuid: UUID().uuidString.lowercased(), defaults: defaults))
        }
    }

    public static func worker(
        _ connectString: String, id: String, capacity: Int = 2, layout: SparkLayout = SparkLayout(),
        sessionTimeout: Duration = .seconds(4), defaults: ClusterConfig = ClusterConfig()
    ) -> SparkService<WorkerProgram> {
        SparkService(configuration: clientConfiguration(connectString, sessionTimeout: sessionTimeout)) { _ in
            WorkerProgram(.init(layout: layout, id: id, capacity: capacity, defaults: defaults, nonce: UUID().uuidString.lowercased()))
        }
    }

    public static func driver(
        _ connectString: String, spec: JobSpec, layout: SparkLayout = SparkLayout(), sessionTimeout: Duration = .seconds(10)
    ) -> SparkService<DriverProgram> {
        SparkService(configuration: clientConfiguration(connectString, sessionTimeout: sessionTimeout), restarts: true,
                     complete: { $0.result != nil || $0.failure != nil }) { _ in
            DriverProgram(.init(layout: layout, spec: spec))
        }
    }

    public enum SubmitError: Error, CustomStringConvertible {
        case failed(String)
        case noResult
        public var description: String {
            switch self {
            case .failed(let reason): return "the job failed: \(reason)"
            case .noResult: return "the driver stopped without a result"
            }
        }
    }

    /// Submits a job and waits for its result; `progress` sees every observation of the driver.
    public static func submit(
        _ connectString: String, spec: JobSpec, layout: SparkLayout = SparkLayout(),
        progress: @Sendable (SparkObservation) -> Void = { _ in }
    ) async throws -> [UInt8] {
        let driver = driver(connectString, spec: spec, layout: layout)
        await driver.start()
        for await observation in driver.observations {
            progress(observation)
            switch observation {
            case .result:
                let result = await driver.program()?.result
                await driver.stop()
                guard let result else { throw SubmitError.noResult }
                return result
            case .jobFailed(_, let reason):
                await driver.stop()
                throw SubmitError.failed(reason)
            default:
                continue
            }
        }
        throw SubmitError.noResult
    }
}
