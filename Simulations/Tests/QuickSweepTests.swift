import XCTest
import ZKSimulator

/// The quick seed sweep of the test suite: a few hundred short runs, each with its own faults,
/// workload and checkers. Longer sweeps: `Simulations/sweep.sh` or `minizk sim --seeds A..B`.
final class QuickSweepTests: XCTestCase {
    static let seeds: ClosedRange<UInt64> = 1...200
    static let lanes = 2

    func testQuickSeedSweepFindsNoViolation() async {
        let results = await withTaskGroup(of: [SimulationResult].self) { group in
            for lane in 0..<Self.lanes {
                group.addTask {
                    var results: [SimulationResult] = []
                    for seed in Self.seeds where Int(seed % UInt64(Self.lanes)) == lane {
                        var overrides = SimulationOverrides()
                        overrides.profile = .quick
                        results.append(Simulation(options: overrides.apply(seed: seed)).run())
                    }
                    return results
                }
            }
            var all: [SimulationResult] = []
            for await lane in group { all += lane }
            return all.sorted { $0.seed < $1.seed }
        }
        XCTAssertEqual(results.count, Self.seeds.count)
        var overrides = SimulationOverrides()
        overrides.profile = .quick
        for result in results where !result.passed {
            XCTFail(result.report(overrides))
        }
        let simulatedMs = results.reduce(0) { $0 + $1.simulatedMs }
        let operations = results.reduce(0) { $0 + $1.operations }
        let faults = results.reduce(0) { $0 + $1.faults.count }
        print("quick sweep: \(results.count) seeds, \(simulatedMs / 1000)s simulated, \(operations) client operations, \(faults) faults")
    }
}
