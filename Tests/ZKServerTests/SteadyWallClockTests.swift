import NIOConcurrencyHelpers
import XCTest

@testable import ZKServer

/// The replica's clock ignores steps of the system's real-time clock and follows the monotonic one.
final class SteadyWallClockTests: XCTestCase {
    func testStepsOfTheRealTimeClockMoveNothing() {
        let realTime = NIOLockedValueBox<Int64>(1_765_000_000_000)
        let monotonic = NIOLockedValueBox<Int64>(5_000)
        let clock = SteadyWallClock(
            wallMs: { realTime.withLockedValue { $0 } }, monotonicMs: { monotonic.withLockedValue { $0 } })
        XCTAssertEqual(clock.nowMs(), 1_765_000_000_000, "starts at the real time")
        monotonic.withLockedValue { $0 += 250 }
        realTime.withLockedValue { $0 += 250 }
        XCTAssertEqual(clock.nowMs(), 1_765_000_000_250, "advances with the monotonic clock")
        // An operator sets the clock an hour ahead, then two hours back.
        realTime.withLockedValue { $0 += 3_600_000 }
        XCTAssertEqual(clock.nowMs(), 1_765_000_000_250, "a step forwards expires nothing")
        realTime.withLockedValue { $0 -= 7_200_000 }
        monotonic.withLockedValue { $0 += 1_000 }
        XCTAssertEqual(clock.nowMs(), 1_765_000_001_250, "after a step backwards, time still runs")
    }

    func testTheProcessClockRunsWithTheMonotonicClock() {
        let first = SystemFacts.wallClockMs()
        let monotonicBefore = SystemFacts.monotonicMs()
        usleep(20_000)
        let elapsed = SystemFacts.wallClockMs() - first
        let monotonicElapsed = SystemFacts.monotonicMs() - monotonicBefore
        XCTAssertGreaterThanOrEqual(elapsed, 20)
        XCTAssertLessThanOrEqual(abs(elapsed - monotonicElapsed), 50, "the replica's clock and the monotonic clock drift apart")
        XCTAssertLessThan(abs(SystemFacts.wallClockMs() - SystemFacts.realTimeMs()), 60_000, "far from the real time at start-up")
    }
}
