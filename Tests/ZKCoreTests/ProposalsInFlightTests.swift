import XCTest
import ZKProtocol

@testable import ZKCore

/// `proposalsInFlightMax`: the leader stops preparing client writes while that many proposals
/// are outstanding; later writes wait in arrival order and are proposed as commits make room.
final class ProposalsInFlightTests: XCTestCase {
    func testWritesBeyondTheLimitWaitAndAreProposedInOrder() {
        var h = ReplicaHarness { $0.proposalsInFlightMax = 2 }
        let c = h.connect()
        XCTAssertEqual(h.sessionId(c) != 0, true)
        var logged: [Transaction] = []
        var sequence: UInt64 = 0
        var replies: [(xid: Int32, err: Int32)] = []
        func collect(_ ready: Ready) {
            logged.append(contentsOf: ready.persist)
            if ready.storageSequence > 0 { sequence = ready.storageSequence }
            for frame in ready.frames {
                if case .reply(let header, _) = frame.frame { replies.append((header.xid, header.err)) }
            }
        }
        for xid in Int32(1)...5 {
            let create = Request.create(CreateRequest(path: "/n\(xid)", data: nil, acl: ACL.openUnsafe, flags: 0))
            collect(h.replica.step(.request(c, RequestHeader(xid: xid, type: OpCode.create.rawValue), create), nowMs: h.nowMs))
        }
        // Two proposals in flight; three writes wait, unprepared.
        XCTAssertEqual(logged.map(\.cxid), [1, 2])
        XCTAssertEqual(h.replica.status().outstandingRequests, 2)
        // Each durable batch commits what it holds and lets the next writes be proposed, in order.
        var rounds = 0
        while replies.count < 5 && rounds < 10 {
            rounds += 1
            let before = logged.count
            collect(h.replica.step(.persisted(upTo: logged.last!.zxid, through: sequence), nowMs: h.nowMs))
            XCTAssertLessThanOrEqual(logged.count - before, 2, "more than two proposed at once")
        }
        XCTAssertEqual(logged.map(\.cxid), [1, 2, 3, 4, 5])
        XCTAssertEqual(replies.map(\.xid), [1, 2, 3, 4, 5])
        XCTAssertEqual(replies.map(\.err), [0, 0, 0, 0, 0])
        XCTAssertNotNil(h.stat(c, "/n5"))
    }

    func testAWaitingWriteOfAnExpiredSessionIsRefused() {
        var h = ReplicaHarness { $0.proposalsInFlightMax = 1 }
        let c = h.connect(timeoutMs: 400)
        var logged: [Transaction] = []
        var sequence: UInt64 = 0
        for xid in Int32(1)...2 {
            let create = Request.create(CreateRequest(path: "/e\(xid)", data: nil, acl: ACL.openUnsafe, flags: CreateMode.ephemeral.rawValue))
            let ready = h.replica.step(.request(c, RequestHeader(xid: xid, type: OpCode.create.rawValue), create), nowMs: h.nowMs)
            logged.append(contentsOf: ready.persist)
            if ready.storageSequence > 0 { sequence = ready.storageSequence }
        }
        XCTAssertEqual(logged.map(\.cxid), [1])
        // The session expires while its second write waits: the expiry is proposed at once
        // (the replica's own write), and the waiting create becomes SESSIONEXPIRED, so no
        // ephemeral outlives the session.
        h.nowMs += 2_000
        var ready = h.replica.step(.tick, nowMs: h.nowMs)
        logged.append(contentsOf: ready.persist)
        if ready.storageSequence > 0 { sequence = ready.storageSequence }
        for _ in 0..<5 where logged.count < 3 || h.replica.status().outstandingRequests > 0 {
            ready = h.replica.step(.persisted(upTo: logged.last!.zxid, through: sequence), nowMs: h.nowMs)
            logged.append(contentsOf: ready.persist)
            if ready.storageSequence > 0 { sequence = ready.storageSequence }
        }
        XCTAssertEqual(logged.count, 3, "\(logged.map(\.body))")
        guard logged.count == 3 else { return }
        if case .closeSession(let ephemerals) = logged[1].body {
            XCTAssertEqual(ephemerals, ["/e1"])
        } else {
            XCTFail("expected the expiry second: \(logged[1].body)")
        }
        XCTAssertEqual(logged[2].body, .error(.sessionExpired))
        XCTAssertEqual(logged[2].cxid, 2)
        XCTAssertTrue(h.replica.tree.ephemerals(of: h.sessionId(c)).isEmpty)
        XCTAssertEqual(h.replica.tree.nodeCount, DataTree().nodeCount)
    }
}
