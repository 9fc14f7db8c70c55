import SparkLiteCore
import XCTest
import ZKSimulator

/// SparkLite's programs under the simulator (`minizk sim --sparklite`): seeded runs with member
/// crashes (the ensemble leader's included), isolations, SparkLite process crashes and stalls
/// past the session timeout, and deletions of the leader's latch node.
final class SparkLiteSimulationTests: XCTestCase {
    func testSeededRunsKeepOneLeaderPerEpochAndTheExactResult() {
        var elections = 0, refused = 0, faults = 0
        for seed in UInt64(1)...12 {
            let result = SparkLiteSimulation(options: .derive(seed: seed)).run()
            XCTAssertNil(result.violation, "\(result.summary); replay: \(result.options.replay)")
            elections += result.elections
            refused += result.refused
            faults += result.faults.count
        }
        // The runs did exercise fail-over and fencing.
        XCTAssertGreaterThan(elections, 12)
        XCTAssertGreaterThan(refused, 0)
        XCTAssertGreaterThan(faults, 50)
    }

    func testASeedReplaysExactly() {
        let first = SparkLiteSimulation(options: .derive(seed: 8)).run()
        let second = SparkLiteSimulation(options: .derive(seed: 8)).run()
        XCTAssertEqual(first.summary, second.summary)
        XCTAssertEqual(first.faults, second.faults)
    }
}
