import ZKProtocol

/// When to take the next snapshot: after a number of durably logged transactions drawn at random
/// in [N/2, N] each time, so that the replicas of an ensemble (each with its own seed) do not all
/// write a snapshot at the same moment. ZooKeeper does the same with `snapCount`.
///
/// The replica owns one (`ReplicaConfig.snapshotEveryTransactions`, `snapshotSeed`) and asks for a
/// snapshot through `Ready.snapshot`; the shell writes it and reports `.snapshotFinished`. A value:
/// the same seed and the same durable batches give the same snapshots, in the server and in the
/// simulator alike.
public struct SnapshotSchedule: Sendable {
    /// N; 0 or less: never (a reconfiguration's `takeSoon` still asks for one).
    public let everyTransactions: Int
    private var generator: SplitMix64
    public private(set) var threshold: Int
    public private(set) var loggedSinceSnapshot = 0
    /// A snapshot was asked for and the shell has not reported it written yet.
    public private(set) var inFlight = false

    /// - Parameter alreadyLogged: transactions in the log after the newest snapshot at start, so
    ///   that a replica restarted over a long log snapshots soon rather than a whole interval later.
    public init(everyTransactions: Int, seed: UInt64, alreadyLogged: Int = 0) {
        self.everyTransactions = everyTransactions
        generator = SplitMix64(seed: seed)
        threshold = .max
        threshold = drawThreshold()
        loggedSinceSnapshot = alreadyLogged
    }

    private mutating func drawThreshold() -> Int {
        guard everyTransactions > 0 else { return .max }
        let low = max(1, everyTransactions / 2)
        let high = max(low, everyTransactions)
        // Uniform in low...high: the draw the standard library's `Int.random(in:using:)` makes.
        return low + Int(generator.next(upperBound: UInt(high - low) + 1))
    }

    /// Counts durable transactions (0 just asks); true when a snapshot should be taken now.
    public mutating func logged(_ transactions: Int) -> Bool {
        loggedSinceSnapshot += transactions
        guard !inFlight, loggedSinceSnapshot >= threshold else { return false }
        inFlight = true
        loggedSinceSnapshot = 0
        threshold = drawThreshold()
        return true
    }

    public mutating func snapshotWritten() {
        inFlight = false
    }

    /// The next durable batch takes a snapshot (or the one after the snapshot being written).
    public mutating func takeSoon() {
        threshold = 0
    }
}
