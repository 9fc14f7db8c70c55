import CoreMetrics
import Prometheus
import ZKCore
import ZKProtocol

// Metrics in ZooKeeper's names, for Prometheus.
//
// ZooKeeper 3.8's Prometheus provider (`metricsProvider.className=...PrometheusMetricsProvider`)
// exports three kinds of metric: the numeric `mntr` values as gauges (`znode_count`,
// `avg_latency`, ...), `ServerMetrics`' counters (`looking_count`, `bytes_received_count`, ...)
// and its summaries (`readlatency`, `fsynctime`, `election_time`, ...) with quantile 0.5, or 0.5,
// 0.9 and 0.99 for the "advanced" ones. MiniZK exports the same names and types for what it
// measures, plus its own under `minizk_`.
//
// What it costs on the hot path: per request, one latency sample into a summary that the event
// loop owns (no lock, no atomic) and two relaxed atomic adds (bytes in, bytes out); per storage
// batch, a few swift-metrics calls. Gauges are read from the replica only when scraped.

/// A summary as ZooKeeper's Prometheus provider exports it: count, sum, and quantiles over the
/// most recent observations (`windowCapacity` of them; ZooKeeper's client library keeps a
/// ten-minute window). A value type owned by one event loop.
public struct MetricSummary: Sendable {
    public static let windowCapacity = 1024

    public private(set) var count: Int64 = 0
    public private(set) var sum: Int64 = 0
    public private(set) var min: Int64 = 0
    public private(set) var max: Int64 = 0
    private var window: [Int64] = []
    private var next = 0

    public init() {}

    public var average: Double { count == 0 ? 0 : Double(sum) / Double(count) }

    public mutating func record(_ value: Int64) {
        min = count == 0 ? value : Swift.min(min, value)
        max = Swift.max(max, value)
        count += 1
        sum &+= value
        if window.count < Self.windowCapacity {
            window.append(value)
        } else {
            window[next] = value
            next = (next + 1) % Self.windowCapacity
        }
    }

    /// The q-quantile (nearest rank) of the observations in the window; NaN when there are none.
    public func quantile(_ q: Double) -> Double {
        guard !window.isEmpty else { return .nan }
        let sorted = window.sorted()
        let rank = Int((q * Double(sorted.count)).rounded(.up)) - 1
        return Double(sorted[Swift.min(Swift.max(rank, 0), sorted.count - 1)])
    }
}

/// The summaries a replica host keeps on its event loop, in ZooKeeper's names.
public struct ServerSummaries: Sendable {
    /// `readlatency`: milliseconds from decoding a read request to handing its reply to the socket.
    public var readLatency = MetricSummary()
    /// `updatelatency`: the same for requests that change the tree or the sessions.
    public var updateLatency = MetricSummary()
    /// `fsynctime`: milliseconds of each durable write of the log (one group-commit batch).
    public var fsyncTime = MetricSummary()
    /// `snapshottime`: milliseconds from starting a snapshot to its completion.
    public var snapshotTime = MetricSummary()
    /// `election_time`: milliseconds from no longer serving (or starting) to serving again.
    public var electionTime = MetricSummary()
    /// `sync_processor_batch_size`: transactions per group-commit batch.
    public var syncProcessorBatchSize = MetricSummary()
    /// `dbinittime`, `startup_snap_load_time`, `startup_txns_load_time`, `startup_txns_loaded`:
    /// recovery at start (once).
    public var dbInitTime = MetricSummary()
    public var startupSnapLoadTime = MetricSummary()
    public var startupTxnsLoadTime = MetricSummary()
    public var startupTxnsLoaded = MetricSummary()
    public init() {}

    /// The summaries in export order: name, quantiles, value.
    public var all: [(name: String, quantiles: [Double], summary: MetricSummary)] {
        let advanced = [0.5, 0.9, 0.99]
        let basic = [0.5]
        return [
            ("readlatency", advanced, readLatency),
            ("updatelatency", advanced, updateLatency),
            ("fsynctime", basic, fsyncTime),
            ("snapshottime", basic, snapshotTime),
            ("election_time", basic, electionTime),
            ("sync_processor_batch_size", basic, syncProcessorBatchSize),
            ("dbinittime", basic, dbInitTime),
            ("startup_snap_load_time", basic, startupSnapLoadTime),
            ("startup_txns_load_time", basic, startupTxnsLoadTime),
            ("startup_txns_loaded", basic, startupTxnsLoaded),
        ]
    }

    /// Whether ZooKeeper counts a request of this opcode in `updatelatency` rather than
    /// `readlatency` (it changes the tree or the sessions). Pings count in neither.
    static func isUpdate(opcode: Int32) -> Bool? {
        switch OpCode(rawValue: opcode) {
        case .ping: return nil
        case .create, .create2, .createContainer, .createTTL, .delete, .deleteContainer, .setData, .setACL, .multi,
            .reconfig, .createSession, .closeSession, .check:
            return true
        default: return false
        }
    }
}

/// How long recovery at start took, as far as the store tells.
public struct RecoveryMetrics: Sendable {
    public var totalSeconds = 0.0
    public var snapshotReadSeconds = 0.0
    public var snapshotDecodeSeconds = 0.0
    public var treeRestoreSeconds = 0.0
    public var logSeconds = 0.0
    public var snapshotNodes = 0
    public var logTransactions = 0
    public init() {}
}

/// A swift-metrics factory onto one Prometheus registry that gives MiniZK's metrics their help
/// text and buckets (swift-prometheus' own factory leaves the help empty, which promtool flags).
struct DescribedMetricsFactory: MetricsFactory {
    let registry: PrometheusCollectorRegistry

    static let help: [String: String] = [
        "minizk_group_commit_batch_transactions": "Transactions made durable by one group-commit batch",
        "minizk_group_commit_batch_steps": "Replica steps whose storage one group-commit batch made durable",
        "minizk_group_commit_write_seconds": "Durable write (SQLite commit and fsync) of one group-commit batch",
        "minizk_snapshot_piece_seconds": "How long a snapshot piece held a group-commit batch up",
        "minizk_snapshot_write_seconds": "From starting a snapshot to its completion",
        "minizk_fsync_batches_total": "Durable writes of the log (group-commit batches)",
        "minizk_fsync_batches_on_event_loop_total": "Group-commit batches the event loop wrote itself",
        "minizk_logged_transactions_total": "Transactions made durable",
        "minizk_snapshots_written_total": "Snapshots completed",
    ]
    static let fastBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
    ]
    static let slowBuckets: [Duration] = [
        .milliseconds(10), .milliseconds(100), .milliseconds(500), .seconds(1), .seconds(5), .seconds(10),
        .seconds(30), .seconds(60),
    ]
    static let sizeBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096]

    private func help(_ label: String) -> String { Self.help[label] ?? label }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(name: label, labels: dimensions, help: help(label))
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(name: label, labels: dimensions, help: help(label))
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard aggregate else { return registry.makeGauge(name: label, labels: dimensions, help: help(label)) }
        return registry.makeValueHistogram(name: label, labels: dimensions, buckets: Self.sizeBuckets, help: help(label))
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(name: label, labels: dimensions, help: help(label))
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        let buckets = label == "minizk_snapshot_write_seconds" ? Self.slowBuckets : Self.fastBuckets
        return registry.makeDurationHistogram(name: label, labels: dimensions, buckets: buckets, help: help(label))
    }

    // The instruments live as long as the server's registry.
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyMeter(_ handler: any MeterHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}
}

/// One server's Prometheus registry and the instruments recorded into it as things happen; the
/// gauges are set from the replica's state when the registry is scraped (`PrometheusExposition`).
public final class ServerMetricsRegistry: Sendable {
    public let registry: PrometheusCollectorRegistry

    // ZooKeeper's counters (relaxed atomics).
    let bytesReceived: Prometheus.Counter
    let responseBytes: Prometheus.Counter
    let connectionRequests: Prometheus.Counter
    let lookingCount: Prometheus.Counter
    let unrecoverableErrors: Prometheus.Counter

    // MiniZK's own, through swift-metrics: recorded once per storage batch or snapshot.
    let groupCommitTransactions: CoreMetrics.Recorder
    let groupCommitSteps: CoreMetrics.Recorder
    let groupCommitWrite: CoreMetrics.Timer
    let snapshotPiece: CoreMetrics.Timer
    let snapshotWrite: CoreMetrics.Timer
    let fsyncBatches: CoreMetrics.Counter
    let batchesOnLoop: CoreMetrics.Counter
    let loggedTransactions: CoreMetrics.Counter
    let snapshotsWritten: CoreMetrics.Counter

    public init() {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        let factory = DescribedMetricsFactory(registry: registry)
        bytesReceived = registry.makeCounter(name: "bytes_received_count", help: "Bytes of client frames received")
        responseBytes = registry.makeCounter(name: "response_bytes", help: "Bytes of frames sent to clients")
        connectionRequests = registry.makeCounter(
            name: "connection_request_count", help: "Client connections accepted")
        lookingCount = registry.makeCounter(name: "looking_count", help: "Times this server started looking for a leader")
        unrecoverableErrors = registry.makeCounter(
            name: "unrecoverable_error_count", help: "Storage failures that stopped this server")
        groupCommitTransactions = Recorder(label: "minizk_group_commit_batch_transactions", factory: factory)
        groupCommitSteps = Recorder(label: "minizk_group_commit_batch_steps", factory: factory)
        groupCommitWrite = Timer(label: "minizk_group_commit_write_seconds", factory: factory)
        snapshotPiece = Timer(label: "minizk_snapshot_piece_seconds", factory: factory)
        snapshotWrite = Timer(label: "minizk_snapshot_write_seconds", factory: factory)
        fsyncBatches = CoreMetrics.Counter(label: "minizk_fsync_batches_total", factory: factory)
        batchesOnLoop = CoreMetrics.Counter(label: "minizk_fsync_batches_on_event_loop_total", factory: factory)
        loggedTransactions = CoreMetrics.Counter(label: "minizk_logged_transactions_total", factory: factory)
        snapshotsWritten = CoreMetrics.Counter(label: "minizk_snapshots_written_total", factory: factory)
    }

    /// A storage batch was made durable.
    func recordBatch(steps: Int, transactions: Int, writeSeconds: Double, snapshotSeconds: Double) {
        groupCommitTransactions.record(transactions)
        groupCommitSteps.record(steps)
        groupCommitWrite.recordNanoseconds(Int64(writeSeconds * 1e9))
        if snapshotSeconds > 0 { snapshotPiece.recordNanoseconds(Int64(snapshotSeconds * 1e9)) }
        fsyncBatches.increment()
        loggedTransactions.increment(by: transactions)
    }

    func recordSnapshot(seconds: Double) {
        snapshotWrite.recordNanoseconds(Int64(seconds * 1e9))
        snapshotsWritten.increment()
    }

    /// Sets a gauge (made on first use).
    func set(_ name: String, _ value: Double, help: String) {
        registry.makeGauge(name: name, help: help).set(value)
    }
}

/// Sizes of the frames sent to clients, as ZooKeeper's `client_response_stats` reports them
/// (-1 before the first).
public struct ResponseSizeStatistics: Sendable, Hashable {
    public var last = -1
    public var min = -1
    public var max = -1
    public init() {}

    mutating func record(_ bytes: Int) {
        last = bytes
        min = min < 0 ? bytes : Swift.min(min, bytes)
        max = Swift.max(max, bytes)
    }
}

/// Everything the metrics and the admin server report, captured at one instant on the replica's
/// event loop.
public struct OperationsSnapshot: Sendable {
    public var fourLetterWords: FourLetterWordSnapshot
    public var summaries: ServerSummaries
    public var recovery: RecoveryMetrics
    public var responseSizes: ResponseSizeStatistics
    /// Durable writes of the log that took longer than a second (ZooKeeper's
    /// `fsync_threshold_exceed_count`, with its default `fsync.warningthresholdms`).
    public var fsyncThresholdExceeded: Int64
    /// Wall-clock ms when the newest snapshot was completed by this process; nil when none was.
    public var lastSnapshotAtMs: Int64?

    public init(
        fourLetterWords: FourLetterWordSnapshot, summaries: ServerSummaries = ServerSummaries(),
        recovery: RecoveryMetrics = RecoveryMetrics(), responseSizes: ResponseSizeStatistics = ResponseSizeStatistics(),
        fsyncThresholdExceeded: Int64 = 0, lastSnapshotAtMs: Int64? = nil
    ) {
        self.fourLetterWords = fourLetterWords
        self.summaries = summaries
        self.recovery = recovery
        self.responseSizes = responseSizes
        self.fsyncThresholdExceeded = fsyncThresholdExceeded
        self.lastSnapshotAtMs = lastSnapshotAtMs
    }
}
