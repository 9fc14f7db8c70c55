import XCTest
import ZKSimulator

/// Recipe contenders under the simulator: mutex and latch contenders, counters and a queue run as
/// programs on the client's session core while members crash, the network partitions, and the
/// contenders' own processes crash or stall past their session timeout. Longer runs:
/// `minizk sim --seeds A..B --recipes on`.
final class RecipeSimulationTests: XCTestCase {
    func run(_ seed: UInt64, traceSink: ((String) -> Void)? = nil) -> SimulationResult {
        var overrides = SimulationOverrides()
        overrides.profile = .quick
        overrides.recipes = true
        return Simulation(options: overrides.apply(seed: seed), traceSink: traceSink).run()
    }

    func testRecipeSeedsFindNoViolationAndTheContendersWork() {
        var overrides = SimulationOverrides()
        overrides.profile = .quick
        overrides.recipes = true
        var holds = 0
        for seed in 1...24 as ClosedRange<UInt64> {
            let result = run(seed)
            XCTAssertTrue(result.passed, result.report(overrides))
            let summary = result.recipes ?? ""
            XCTAssertTrue(summary.hasPrefix("recipes: "), "seed \(seed) ran no recipes")
            if let count = Int(summary.dropFirst("recipes: ".count).prefix { $0.isNumber }) { holds += count }
        }
        XCTAssertGreaterThan(holds, 100, "the contenders hardly ever held their locks")
    }

    func testARecipeSeedReplaysByteForByte() {
        let first = TraceHasher(), second = TraceHasher()
        let a = run(5, traceSink: first.append)
        let b = run(5, traceSink: second.append)
        XCTAssertEqual(first.value, second.value)
        XCTAssertEqual(a.recipes, b.recipes)
        XCTAssertGreaterThan(first.lines, 100)
    }
}
