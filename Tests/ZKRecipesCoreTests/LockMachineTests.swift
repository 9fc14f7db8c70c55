import Foundation
import XCTest
import ZKProtocol
@testable import ZKRecipesCore

final class LockMachineTests: XCTestCase {
    let base = "/locks/job"
    let uuid = "0f1e2d3c-4b5a-4697-8877-665544332211"

    func stat(_ czxid: Int64) -> Stat {
        var stat = Stat()
        stat.czxid = czxid
        return stat
    }

    func node(_ uuid: String, _ seq: Int, lockName: String = "lock-") -> String {
        "_c_\(uuid)-\(lockName)\(String(format: "%010d", seq))"
    }

    /// A machine whose node is `ours` among `others`, after the first listing.
    func machine(ours seq: Int, others: [Int], policy: ConnectionPolicy = .keepUntilExpired, maxLeases: Int = 1)
        -> (LockMachine, [LockMachine.Command])
    {
        var m = LockMachine(.init(basePath: base, maxLeases: maxLeases, policy: policy))
        let start = m.handle(.acquire(uuid: uuid))
        XCTAssertEqual(start, [.report(.waiting), .create(path: "\(base)/_c_\(uuid)-lock-", data: [], mode: .ephemeralSequential)])
        let ours = node(uuid, seq)
        XCTAssertEqual(m.handle(.created(path: "\(base)/\(ours)", stat: stat(100 + Int64(seq)))), [.getChildren(base)])
        var children = others.map { node("aaaaaaaa-0000-4000-8000-00000000000\($0 % 10)", $0) }
        children.insert(ours, at: children.count / 2)
        let out = m.handle(.children(children))
        return (m, out)
    }

    func testAloneHoldsAtOnceWithFencingToken() {
        let (m, out) = machine(ours: 7, others: [])
        let token = FencingToken(sequence: 7, czxid: 107, path: "\(base)/\(node(uuid, 7))")
        XCTAssertEqual(out, [.report(.held(token))])
        XCTAssertEqual(m.phase, .held)
        XCTAssertEqual(m.holdCount, 1)
    }

    func testWaiterWatchesOnlyItsPredecessor() {
        // Children arrive unsorted and with other holders' UUIDs (which sort differently from
        // their sequences): the predecessor is by sequence.
        let (m, out) = machine(ours: 5, others: [9, 1, 4, 3])
        XCTAssertEqual(out, [.watchData("\(base)/\(node("aaaaaaaa-0000-4000-8000-000000000004", 4))")])
        XCTAssertEqual(m.phase, .waiting(predecessor: node("aaaaaaaa-0000-4000-8000-000000000004", 4)))
        // Exactly one watch, on one node, never the parent.
        let watches = out.filter { if case .watchData = $0 { return true } else { return false } }
        XCTAssertEqual(watches.count, 1)
        XCTAssertFalse(out.contains(.getChildren(base)))
    }

    func testPredecessorGoneThenHolds() {
        var (m, _) = machine(ours: 5, others: [4])
        let predecessor = "\(base)/\(node("aaaaaaaa-0000-4000-8000-000000000004", 4))"
        XCTAssertEqual(m.handle(.predecessorExists(predecessor)), [])
        // A watch on some other path (stale) changes nothing.
        XCTAssertEqual(m.handle(.watchFired("\(base)/other")), [])
        XCTAssertEqual(m.handle(.watchFired(predecessor)), [.getChildren(base)])
        let out = m.handle(.children([node(uuid, 5)]))
        XCTAssertEqual(out, [.report(.held(FencingToken(sequence: 5, czxid: 105, path: "\(base)/\(node(uuid, 5))")))])
    }

    func testPredecessorAlreadyGoneListsAgain() {
        var (m, _) = machine(ours: 5, others: [2, 4])
        let out = m.handle(.predecessorGone("\(base)/\(node("aaaaaaaa-0000-4000-8000-000000000004", 4))"))
        XCTAssertEqual(out, [.getChildren(base)])
        // Now 2 is still ahead: watch it (only it).
        XCTAssertEqual(m.handle(.children([node(uuid, 5), node("aaaaaaaa-0000-4000-8000-000000000002", 2)])),
                       [.watchData("\(base)/\(node("aaaaaaaa-0000-4000-8000-000000000002", 2))")])
    }

    func testReentrancy() {
        var (m, _) = machine(ours: 1, others: [])
        XCTAssertEqual(m.handle(.acquire(uuid: "ignored")), [])
        XCTAssertEqual(m.holdCount, 2)
        XCTAssertEqual(m.handle(.release), [])
        XCTAssertEqual(m.holdCount, 1)
        XCTAssertEqual(m.phase, .held)
        let path = "\(base)/\(node(uuid, 1))"
        XCTAssertEqual(m.handle(.release), [.delete(path)])
        XCTAssertEqual(m.handle(.deleted(path)), [.report(.released)])
        XCTAssertEqual(m.phase, .idle)
        XCTAssertNil(m.ourPath)
    }

    func testLostSessionDropsTheHoldAtOnce() {
        var (m, _) = machine(ours: 1, others: [])
        // Suspended first (the default policy keeps the hold, marked suspended)...
        let token = m.token!
        XCTAssertEqual(m.handle(.session(.suspended)), [.report(.suspended(token))])
        // ...then the session is reported expired: lost immediately, no call is made.
        XCTAssertEqual(m.handle(.session(.expired)), [.report(.lost(.sessionExpired))])
        XCTAssertEqual(m.phase, .idle)
        XCTAssertEqual(m.holdCount, 0)
        // A later acquire on the dead session fails at once.
        XCTAssertEqual(m.handle(.acquire(uuid: uuid)), [])
        XCTAssertEqual(m.state, .lost(.sessionExpired))
    }

    func testExpiryWhileHeldAndConnected() {
        var (m, _) = machine(ours: 1, others: [])
        XCTAssertEqual(m.handle(.session(.expired)), [.report(.lost(.sessionExpired))])
    }

    func testShortSuspensionKeepsTheHold() {
        var (m, _) = machine(ours: 3, others: [])
        let token = m.token!
        XCTAssertEqual(m.handle(.session(.suspended)), [.report(.suspended(token))])
        XCTAssertEqual(m.handle(.session(.reconnected)), [.report(.held(token))])
        XCTAssertEqual(m.phase, .held)
    }

    func testDropOnSuspendPolicyLosesAndDeletesOnReconnect() {
        var (m, _) = machine(ours: 3, others: [], policy: .dropOnSuspend)
        XCTAssertEqual(m.handle(.session(.suspended)), [.report(.lost(.connectionSuspended))])
        let path = "\(base)/\(node(uuid, 3))"
        XCTAssertEqual(m.handle(.session(.reconnected)), [.delete(path)])
        XCTAssertEqual(m.handle(.deleted(path)), [])
        XCTAssertEqual(m.phase, .idle)
    }

    func testSuspendedForASessionTimeoutIsLost() {
        var (m, _) = machine(ours: 3, others: [])
        _ = m.handle(.session(.suspended))
        XCTAssertEqual(m.handle(.session(.presumedExpired)), [.report(.lost(.connectionSuspended))])
        let path = "\(base)/\(node(uuid, 3))"
        // The session survived after all: our node is removed so that the next in line proceeds.
        XCTAssertEqual(m.handle(.session(.reconnected)), [.delete(path)])
    }

    func testLostCreateReplyIsRecoveredByProtectedPrefix() {
        var m = LockMachine(.init(basePath: base))
        _ = m.handle(.acquire(uuid: uuid))
        XCTAssertEqual(m.handle(.session(.suspended)), [])
        XCTAssertEqual(m.handle(.failed(.connectionLoss)), [])
        XCTAssertEqual(m.handle(.session(.reconnected)), [.getChildren(base)])
        // The create did take effect: our node is found, not created twice.
        let other = node("bbbbbbbb-0000-4000-8000-000000000000", 1)
        let out = m.handle(.children([node(uuid, 2), other]))
        XCTAssertEqual(out, [.watchData("\(base)/\(other)")])
        XCTAssertEqual(m.ourPath, "\(base)/\(node(uuid, 2))")
    }

    func testLostCreateThatDidNotHappenCreatesAgain() {
        var m = LockMachine(.init(basePath: base))
        _ = m.handle(.acquire(uuid: uuid))
        _ = m.handle(.session(.suspended))
        _ = m.handle(.failed(.connectionLoss))
        XCTAssertEqual(m.handle(.session(.reconnected)), [.getChildren(base)])
        XCTAssertEqual(m.handle(.children([])), [.create(path: "\(base)/_c_\(uuid)-lock-", data: [], mode: .ephemeralSequential)])
    }

    func testCancelWhileWaitingDeletesOurNode() {
        var (m, _) = machine(ours: 5, others: [4])
        let path = "\(base)/\(node(uuid, 5))"
        XCTAssertEqual(m.handle(.cancel), [.delete(path)])
        XCTAssertEqual(m.handle(.deleted(path)), [.report(.idle)])
        XCTAssertEqual(m.phase, .idle)
    }

    func testCancelDuringCreateDeletesWhenCreated() {
        var m = LockMachine(.init(basePath: base))
        _ = m.handle(.acquire(uuid: uuid))
        XCTAssertEqual(m.handle(.cancel), [])
        let path = "\(base)/\(node(uuid, 0))"
        XCTAssertEqual(m.handle(.created(path: path, stat: stat(1))), [.delete(path)])
    }

    func testOurNodeDeletedByOthersStartsOver() {
        var (m, _) = machine(ours: 5, others: [4])
        _ = m.handle(.predecessorGone("\(base)/\(node("aaaaaaaa-0000-4000-8000-000000000004", 4))"))
        XCTAssertEqual(m.handle(.children([])), [.create(path: "\(base)/_c_\(uuid)-lock-", data: [], mode: .ephemeralSequential)])
    }

    func testSemaphoreWithTwoLeasesWatchesTwoAhead() {
        let (_, out) = machine(ours: 5, others: [1, 2, 3], maxLeases: 2)
        XCTAssertEqual(out, [.watchData("\(base)/\(node("aaaaaaaa-0000-4000-8000-000000000002", 2))")])
        let (_, held) = machine(ours: 5, others: [1], maxLeases: 2)
        XCTAssertEqual(held.count, 1)
        XCTAssertTrue(held.first.map { if case .report(.held) = $0 { return true } else { return false } } ?? false)
    }

    func testLatchNamesAndData() {
        var m = LockMachine(.init(basePath: "/election", lockName: CuratorNames.latch, data: Array("me".utf8)))
        XCTAssertEqual(m.handle(.acquire(uuid: uuid)).last,
                       .create(path: "/election/_c_\(uuid)-latch-", data: Array("me".utf8), mode: .ephemeralSequential))
    }

    func testConnectionLossWhileConnectedRetriesAtOnce() {
        var (m, _) = machine(ours: 5, others: [4])
        XCTAssertEqual(m.handle(.failed(.connectionLoss)), [.getChildren(base)])
    }

    func testRefusedCreateGivesUp() {
        var m = LockMachine(.init(basePath: base))
        _ = m.handle(.acquire(uuid: uuid))
        XCTAssertEqual(m.handle(.failed(.noAuth)), [.report(.lost(.error(.noAuth)))])
        XCTAssertEqual(m.phase, .idle)
    }
}

final class ReadWriteLockMachineTests: XCTestCase {
    let base = "/rw"

    func run(_ configuration: LockMachine.Configuration, ours: String, children: [String]) -> [LockMachine.Command] {
        var m = LockMachine(configuration)
        _ = m.handle(.acquire(uuid: "u"))
        _ = m.handle(.created(path: "\(base)/\(ours)", stat: Stat()))
        return m.handle(.children(children))
    }

    func testReadersShareUntilAWriterIsAhead() {
        let r1 = "_c_a-__READ__0000000001", r2 = "_c_b-__READ__0000000002", w3 = "_c_c-__WRIT__0000000003", r4 = "_c_d-__READ__0000000004"
        let children = [r4, w3, r2, r1]
        // A reader behind only readers holds.
        let second = run(.readLock(basePath: base), ours: r2, children: children)
        XCTAssertTrue(second.first.map { if case .report(.held) = $0 { return true } else { return false } } ?? false)
        // A reader behind a writer watches that writer (the first one ahead).
        XCTAssertEqual(run(.readLock(basePath: base), ours: r4, children: children), [.watchData("\(base)/\(w3)")])
        // A writer waits for everything ahead, watching its immediate predecessor.
        XCTAssertEqual(run(.writeLock(basePath: base), ours: w3, children: children), [.watchData("\(base)/\(r2)")])
        let first = run(.writeLock(basePath: base), ours: "_c_e-__WRIT__0000000000", children: children + ["_c_e-__WRIT__0000000000"])
        XCTAssertEqual(first.count, 1)
    }
}
