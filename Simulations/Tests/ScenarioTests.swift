import Foundation
import XCTest
import ZKSimulator

/// Runs the scenario files in `Simulations/Scenarios`: seeds worth keeping (the ones that found
/// bugs, the ones that exercise a corner), each with its options and the outcome it must give.
///
/// Grammar, one run per line; `#` starts a comment:
///
///     line     = "seed" N { option } "expect" ( "pass" | property )
///     option   = "profile" ( "quick" | "standard" | "long" ) | "nodes" N | "clients" N
///              | "safety-ms" N | "faults" ( kind { "," kind } | "none" )
final class ScenarioTests: XCTestCase {
    struct Scenario {
        var file: String
        var line: Int
        var seed: UInt64
        var overrides: SimulationOverrides
        /// nil: the run must pass; else the property that must be the first violated.
        var expectedViolation: String?
    }

    static var directory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Scenarios")
    }

    static func parse(_ text: String, file: String) throws -> [Scenario] {
        var scenarios: [Scenario] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let content = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            var words = content.split(separator: " ").map(String.init)[...]
            if words.isEmpty { continue }
            func fail(_ why: String) -> Error { NSError(domain: "scenario", code: 1, userInfo: [NSLocalizedDescriptionKey: "\(file):\(index + 1): \(why)"]) }
            func next() throws -> String {
                guard let word = words.popFirst() else { throw fail("line ends early") }
                return word
            }
            guard try next() == "seed", let seed = UInt64(try next()) else { throw fail("a line starts with seed N") }
            var scenario = Scenario(file: file, line: index + 1, seed: seed, overrides: SimulationOverrides(), expectedViolation: nil)
            loop: while true {
                let word = try next()
                switch word {
                case "profile":
                    guard let profile = SimulationOptions.Profile(rawValue: try next()) else { throw fail("unknown profile") }
                    scenario.overrides.profile = profile
                case "nodes": scenario.overrides.nodes = Int(try next())
                case "clients": scenario.overrides.clients = Int(try next())
                case "safety-ms": scenario.overrides.safetyMs = Int64(try next())
                case "faults":
                    let list = try next()
                    scenario.overrides.faults = list == "none" ? [] : try list.split(separator: ",").map { name in
                        guard let kind = FaultKind(rawValue: String(name)) else { throw fail("unknown fault \(name)") }
                        return kind
                    }
                case "expect":
                    let outcome = try next()
                    scenario.expectedViolation = outcome == "pass" ? nil : outcome
                    break loop
                default:
                    throw fail("unknown word \(word)")
                }
            }
            scenarios.append(scenario)
        }
        return scenarios
    }

    func testEveryScenarioGivesItsExpectedOutcome() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.directory.path)
            .filter { $0.hasSuffix(".scenario") }.sorted()
        XCTAssertFalse(files.isEmpty, "no scenario files in \(Self.directory.path)")
        var count = 0
        for file in files {
            let text = try String(contentsOf: Self.directory.appendingPathComponent(file), encoding: .utf8)
            for scenario in try Self.parse(text, file: file) {
                count += 1
                let result = Simulation(options: scenario.overrides.apply(seed: scenario.seed)).run()
                let where_ = "\(scenario.file):\(scenario.line) seed \(scenario.seed)"
                if let expected = scenario.expectedViolation {
                    XCTAssertEqual(result.violation?.property, expected, "\(where_): \(result.summary)")
                } else if let violation = result.violation {
                    XCTFail("\(where_) must pass: \(violation)\n\(result.report(scenario.overrides))")
                }
            }
        }
        XCTAssertGreaterThan(count, 0)
    }
}
