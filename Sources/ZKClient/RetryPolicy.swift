/// Retries an operation that failed in a way that may pass (connectionLoss, operationTimeout,
/// requestTimeout, throttledOp, sessionMoved), waiting longer each time.
///
/// Opt-in and only for idempotent operations: an operation that failed with connectionLoss may
/// have taken effect, so retrying a create or a versionless setData can apply it twice (a retried
/// create then fails with nodeExists). Delays grow as `baseDelay * 2^attempt`, capped at
/// `maxDelay`, each scaled by a random factor in [1 - jitter, 1] so that many clients losing the
/// same member do not come back in step.
public struct RetryPolicy: Sendable, Hashable {
    public var attempts: Int
    public var baseDelay: Duration
    public var maxDelay: Duration
    /// Fraction of each delay that is randomised (0: none, 1: anywhere from 0 to the delay).
    public var jitter: Double

    public init(attempts: Int, baseDelay: Duration = .milliseconds(50), maxDelay: Duration = .seconds(5), jitter: Double = 0.5) {
        precondition(attempts >= 1, "a retry policy makes at least one attempt")
        precondition((0...1).contains(jitter), "jitter \(jitter) outside 0...1")
        self.attempts = attempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.jitter = jitter
    }

    /// Exponential back-off with jitter, `attempts` tries in all.
    public static func exponential(attempts: Int, baseDelay: Duration = .milliseconds(50), maxDelay: Duration = .seconds(5)) -> RetryPolicy {
        RetryPolicy(attempts: attempts, baseDelay: baseDelay, maxDelay: maxDelay)
    }

    /// The delay before retry number `retry` (0 for the first retry), before jitter.
    public func delay(beforeRetry retry: Int) -> Duration {
        var delay = baseDelay
        for _ in 0..<min(retry, 30) {
            delay = delay * 2
            if delay >= maxDelay { return maxDelay }
        }
        return min(delay, maxDelay)
    }

    /// Runs `operation` until it succeeds, fails in a way that will not pass, or the attempts run
    /// out (the last error is thrown).
    @discardableResult
    public func run<T: Sendable>(_ operation: @Sendable () async throws -> T) async throws -> T {
        var generator = SystemRandomNumberGenerator()
        var retry = 0
        while true {
            do {
                return try await operation()
            } catch let error as ZooKeeperError where error.isRetryable && retry + 1 < attempts {
                let full = delay(beforeRetry: retry)
                let factor = 1 - jitter * Double.random(in: 0..<1, using: &generator)
                try await Task.sleep(for: full * factor)
                retry += 1
            }
        }
    }
}
