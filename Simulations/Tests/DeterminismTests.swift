import XCTest
import ZKSimulator

/// One seed, one run: the same seed gives the same event trace byte for byte, which is what
/// makes a printed replay command worth anything.
final class DeterminismTests: XCTestCase {
    func traceHash(_ seed: UInt64, profile: SimulationOptions.Profile = .quick) -> (hash: UInt64, lines: Int, result: SimulationResult) {
        let hasher = TraceHasher()
        var overrides = SimulationOverrides()
        overrides.profile = profile
        let result = Simulation(options: overrides.apply(seed: seed), traceSink: hasher.append).run()
        return (hasher.value, hasher.lines, result)
    }

    func testTheSameSeedGivesTheSameTraceByteForByte() {
        for seed in [1, 7, 42, 133] as [UInt64] {
            let first = traceHash(seed)
            let second = traceHash(seed)
            XCTAssertGreaterThan(first.lines, 100, "seed \(seed) traced almost nothing")
            XCTAssertEqual(first.hash, second.hash, "seed \(seed): two runs differ")
            XCTAssertEqual(first.lines, second.lines, "seed \(seed)")
            XCTAssertEqual(first.result.events, second.result.events, "seed \(seed)")
            XCTAssertEqual(first.result.operations, second.result.operations, "seed \(seed)")
        }
    }

    func testDifferentSeedsGiveDifferentRuns() {
        let hashes = Set((1...8 as ClosedRange<UInt64>).map { traceHash($0).hash })
        XCTAssertEqual(hashes.count, 8)
    }

    func testEveryOptionDerivesFromTheSeed() {
        let a = SimulationOptions.derive(seed: 99)
        let b = SimulationOptions.derive(seed: 99)
        XCTAssertEqual(a.description, b.description)
        XCTAssertNotEqual(a.description, SimulationOptions.derive(seed: 100).description)
    }
}
