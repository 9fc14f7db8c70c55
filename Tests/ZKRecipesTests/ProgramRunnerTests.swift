import NIOConcurrencyHelpers
import XCTest
import ZKClient
import ZKProtocol
import ZKRecipes
import ZKRecipesCore

/// The programs the simulator runs, run here by `ProgramRunner` on real clients and sockets
/// (MiniZK, or ZooKeeper with ZKCLIENT_TEST_SERVER).
final class ProgramRunnerTests: RecipeTestCase {
    /// Mutual exclusion itself is judged in the simulator, against the committed history; here
    /// the observations of separate runners arrive through separate streams, so the test checks
    /// what their order cannot blur: every contender gets turns, each hold has its own token.
    func testLockContendersTakeTurnsEachWithItsOwnToken() async throws {
        let path = base + "/mutex"
        let holders = NIOLockedValueBox<(tokens: [Int64], holds: [Int])>(([], []))
        var runners: [ProgramRunner<LockContender>] = []
        for index in 0..<4 {
            let configuration = LockContender.Configuration(lock: .init(basePath: path), holdMs: 5...20, thinkMs: 0...10, seed: UInt64(index + 1))
            let runner = ProgramRunner(client: try await client(), program: LockContender(configuration))
            runners.append(runner)
            let observations = runner.observations
            Task {
                for await observation in observations {
                    holders.withLockedValue { state in
                        switch observation {
                        case .holder(_, .held(let token)):
                            state.tokens.append(token.sequence)
                            state.holds.append(index)
                        default:
                            break
                        }
                    }
                }
            }
            await runner.start()
        }
        try await within(60) {
            while holders.withLockedValue({ Set($0.holds).count < 4 || $0.holds.count < 12 }) { try await Task.sleep(for: .milliseconds(20)) }
        }
        for runner in runners { await runner.stop() }
        let (tokens, holds) = holders.withLockedValue { $0 }
        XCTAssertEqual(Set(tokens).count, tokens.count, "two holds with one token: \(tokens)")
        XCTAssertEqual(Set(holds), [0, 1, 2, 3], "every contender got its turn")
    }

    func testCounterIncrementersLoseNothing() async throws {
        let path = base + "/counter"
        let confirmed = NIOLockedValueBox<[Int64]>([])
        var runners: [ProgramRunner<CounterIncrementer>] = []
        for index in 0..<3 {
            let runner = ProgramRunner(client: try await client(), program: CounterIncrementer(.init(path: path, thinkMs: 0...2, seed: UInt64(index))))
            runners.append(runner)
            let observations = runner.observations
            Task {
                for await observation in observations {
                    if case .incremented(_, let value) = observation { confirmed.withLockedValue { $0.append(value) } }
                }
            }
            await runner.start()
        }
        try await within(60) {
            while confirmed.withLockedValue({ $0.count < 60 }) { try await Task.sleep(for: .milliseconds(20)) }
        }
        for runner in runners { await runner.stop() }
        try await Task.sleep(for: .milliseconds(100))
        let values = confirmed.withLockedValue { $0 }
        let (data, _) = try await client().getData(path)
        let final = CuratorValues.decodeLong(data) ?? -1
        XCTAssertEqual(Set(values).count, values.count, "two increments were confirmed the same value")
        // Every confirmed increment is in the counter; beyond them, at most the one write each
        // runner had in flight when it stopped.
        XCTAssertGreaterThanOrEqual(final, Int64(values.count))
        XCTAssertLessThanOrEqual(final, Int64(values.count + runners.count))
        XCTAssertLessThanOrEqual(values.max() ?? 0, final)
    }
}
