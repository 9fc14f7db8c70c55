import XCTest
import ZKProtocol
@testable import ZKSimulator

/// The per-path search on small hand-written histories: what it accepts, what it rejects, and
/// that unanswered operations which change nothing do not make it give up.
final class LinearizabilityTests: XCTestCase {
    typealias L = Linearizability

    private func op(
        _ action: L.Action, _ invoke: UInt64, _ response: UInt64?, _ expected: L.Result?, relaxed: Bool = false,
        session: Int64 = 1, connection: UInt64 = 1
    ) -> L.Op {
        L.Op(
            action: action, relaxed: relaxed, invoke: invoke, response: response ?? .max, expected: expected,
            session: session, connection: connection, label: "\(action) @\(invoke)")
    }

    private func isLinearizable(_ verdict: L.Verdict) -> Bool {
        if case .linearizable = verdict { return true }
        return false
    }

    private func isViolation(_ verdict: L.Verdict) -> Bool {
        if case .violation = verdict { return true }
        return false
    }

    func testSequentialWritesAndAReadAreLinearizable() {
        let ops = [
            op(.create(data: [1], owner: 0), 0, 1, .ok),
            op(.set(data: [2], version: 0), 2, 3, .version(1)),
            op(.read, 4, 5, .read(data: [2], version: 1), relaxed: true),
        ]
        XCTAssertTrue(isLinearizable(L.check(ops, budget: 1_000)))
    }

    func testTwoCompareAndSetsOnOneVersionBothSucceedingIsAViolation() {
        let ops = [
            op(.create(data: [1], owner: 0), 0, 1, .ok),
            op(.set(data: [2], version: 0), 2, 3, .version(1)),
            op(.set(data: [3], version: 0), 4, 5, .version(1), session: 2, connection: 2),
        ]
        XCTAssertTrue(isViolation(L.check(ops, budget: 1_000)))
    }

    func testAnUnansweredWriteMayExplainWhatALaterReadSaw() {
        let ops = [
            op(.create(data: [1], owner: 0), 0, 1, .ok),
            op(.set(data: [9], version: -1), 2, nil, nil, session: 2, connection: 2),
            op(.read, 10, 11, .read(data: [9], version: 1), relaxed: true),
        ]
        XCTAssertTrue(isLinearizable(L.check(ops, budget: 1_000)))
    }

    func testAnUnansweredWriteMayAlsoNeverHaveHappened() {
        let ops = [
            op(.create(data: [1], owner: 0), 0, 1, .ok),
            op(.set(data: [9], version: -1), 2, nil, nil, session: 2, connection: 2),
            op(.read, 10, 11, .read(data: [1], version: 0), relaxed: true),
        ]
        XCTAssertTrue(isLinearizable(L.check(ops, budget: 1_000)))
    }

    /// An unanswered session end that takes the ephemeral away is tried: the read after it saw
    /// the node gone.
    func testAnUnansweredSessionEndThatRemovesTheEphemeralIsTried() {
        let ops = [
            op(.create(data: [1], owner: 7), 0, 1, .ok, session: 7, connection: 7),
            op(.sessionEnd(owner: 7), 0, nil, nil, session: 7, connection: 7),
            op(.exists, 10, 11, .error(.noNode), relaxed: false, session: 2, connection: 2),
        ]
        XCTAssertTrue(isLinearizable(L.check(ops, budget: 1_000)))
    }

    /// Thirty unanswered operations that change nothing (failed compare-and-sets, ends of
    /// sessions owning nothing) beside a violation: the search must still prove the violation
    /// instead of visiting every subset of them (2^30) and giving up.
    func testUnansweredOperationsThatChangeNothingDoNotExhaustTheBudget() {
        var ops = [op(.create(data: [1], owner: 0), 0, 1, .ok)]
        for index in 0..<30 {
            let action: L.Action = index % 2 == 0 ? .check(version: 77) : .sessionEnd(owner: 1_000 + Int64(index))
            ops.append(op(action, 2, nil, nil, session: Int64(100 + index), connection: UInt64(100 + index)))
        }
        ops.append(op(.set(data: [2], version: 0), 3, 4, .version(1)))
        ops.append(op(.set(data: [3], version: 0), 5, 6, .version(1), session: 2, connection: 2))
        let verdict = L.check(ops, budget: 50_000)
        XCTAssertTrue(isViolation(verdict), "\(verdict)")
        // The same without the violation is found linearizable as quickly.
        ops[ops.count - 1] = op(.set(data: [3], version: 0), 5, 6, .error(.badVersion), session: 2, connection: 2)
        XCTAssertTrue(isLinearizable(L.check(ops, budget: 50_000)))
    }
}
