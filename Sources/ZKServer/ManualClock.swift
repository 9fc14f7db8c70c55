import NIOConcurrencyHelpers
import NIOCore

/// A clock for tests: the replicas that use it read its time instead of the wall clock, get no
/// timer ticks, and see time pass only through `advance(by:)`, which delivers every tick and
/// every wake-up a replica asked for, in time order, each at its exact time. Session expiry and
/// election time-outs then happen exactly when a test says and take no real time.
///
/// ```swift
/// let clock = ManualClock(startMs: 1_000_000)
/// let server = try await MiniZKServer.start(config: config, host: "127.0.0.1", port: 0,
///     group: group, logger: logger, clock: clock)
/// try await clock.advance(by: 12_000)   // every tick of the next 12 s, at once
/// ```
public final class ManualClock: Sendable {
    private struct State {
        var nowMs: Int64
        var hosts: [ObjectIdentifier: ReplicaHost] = [:]
    }
    private let state: NIOLockedValueBox<State>
    /// Serializes `advance` calls: time moves in one place at a time.
    private let advancing = NIOLockedValueBox(false)

    /// `startMs` is the time replicas see until the first advance; a multiple of the tick makes
    /// expiry deadlines (bucketed on tick boundaries) fall exactly at start + timeout + tick.
    public init(startMs: Int64) {
        state = NIOLockedValueBox(State(nowMs: startMs))
    }

    public var nowMs: Int64 { state.withLockedValue { $0.nowMs } }

    func register(_ host: ReplicaHost) {
        state.withLockedValue { $0.hosts[ObjectIdentifier(host)] = host }
    }

    func unregister(_ host: ReplicaHost) {
        _ = state.withLockedValue { $0.hosts.removeValue(forKey: ObjectIdentifier(host)) }
    }

    private var hosts: [ReplicaHost] {
        state.withLockedValue { state in
            state.hosts.values.sorted { $0.config.serverId < $1.config.serverId }
        }
    }

    /// Moves time forward by `ms`, stopping at every tick and wake-up a replica is due in that
    /// span: the replicas due then are stepped, and the ensemble is left to settle (messages
    /// between replicas delivered, storage written) before time moves on.
    public func advance(by ms: Int64) async throws {
        precondition(ms >= 0, "time only moves forward")
        while advancing.withLockedValue({ busy in
            if busy { return true }
            busy = true
            return false
        }) {
            try await Task.sleep(nanoseconds: 1_000_000)
        }
        defer { advancing.withLockedValue { $0 = false } }
        let target = nowMs + ms
        var sameInstantRounds = 0
        while true {
            var next = target
            for host in hosts {
                let due = try await host.eventLoop.submit { host.manualDueMs() }.get()
                next = min(next, due)
            }
            let now = nowMs
            next = max(next, now)
            sameInstantRounds = next == now ? sameInstantRounds + 1 : 0
            state.withLockedValue { $0.nowMs = next }
            for host in hosts {
                try await host.eventLoop.submit { host.manualFire() }.get()
            }
            try await settle()
            // A replica that keeps asking to be woken at the current instant cannot stall time.
            if next >= target || sameInstantRounds > 100 { break }
        }
        if nowMs < target { state.withLockedValue { $0.nowMs = target } }
    }

    /// Waits until every replica on this clock is quiet: nothing queued on its loop, no storage
    /// on its way, no peer messages waiting to be flushed. Two quiet rounds in a row are needed,
    /// since a message handed between loops appears quiet on both sides while it moves.
    public func settle() async throws {
        var quietRounds = 0
        var rounds = 0
        while quietRounds < 2 && rounds < 10_000 {
            rounds += 1
            var quiet = true
            for host in hosts {
                if !(try await host.eventLoop.submit { host.isQuiet }.get()) { quiet = false }
            }
            quietRounds = quiet ? quietRounds + 1 : 0
            if !quiet { try await Task.sleep(nanoseconds: 100_000) }
        }
    }
}

extension ManualClock {
    /// When the earliest replica on this clock next wants a tick; nil without replicas.
    public func nextDueMs() async throws -> Int64? {
        var next: Int64?
        for host in hosts {
            let due = try await host.eventLoop.submit { host.manualDueMs() }.get()
            next = min(next ?? .max, due)
        }
        return next
    }

    /// Advances exactly to the next tick or wake-up a replica waits for.
    public func advanceToNextDue() async throws {
        guard let next = try await nextDueMs(), next < .max else { return }
        try await advance(by: max(0, next - nowMs))
    }
}
