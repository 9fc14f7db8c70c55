import XCTest
import ZKProtocol

@testable import ZKCore

/// Read-only mode (ZooKeeper's `readonlymode.enabled`), on one member of a three-member ensemble
/// whose peers never answer: it looks for a leader for ever.
final class ReadOnlyModeTests: XCTestCase {
    func readOnlyConnect(_ h: inout ReplicaHarness, readOnly: Bool = true, timeoutMs: Int32 = 4000) -> ConnectionID {
        let id = h.nextConnection
        h.nextConnection += 1
        h.step(.connectionOpened(id, peerAddress: "127.0.0.1", peerPort: 40000 + Int(id)))
        h.step(.connect(id, ConnectRequest(timeoutMs: timeoutMs, readOnly: readOnly)))
        return id
    }

    func connectResponse(_ h: ReplicaHarness, _ id: ConnectionID) -> ConnectResponse? {
        for frame in h.frames[id] ?? [] {
            if case .connect(let response) = frame { return response }
        }
        return nil
    }

    func testAMemberWithoutALeaderServesReadOnlyClientsReadsAndRefusesTheirWrites() {
        var h = ReplicaHarness {
            $0.members = [1, 2, 3]
            $0.readOnlyModeEnabled = true
        }
        XCTAssertEqual(h.replica.status().mode, "looking")
        let early = readOnlyConnect(&h)
        XCTAssertTrue(h.closed.contains(early), "read-only mode starts only after readOnlyAfterMs")

        h.nowMs += 2_000
        h.step(.tick)
        XCTAssertEqual(h.replica.status().mode, "read-only")
        let client = readOnlyConnect(&h)
        guard let response = connectResponse(h, client) else { return XCTFail("no connect response") }
        XCTAssertEqual(response.readOnly, true)
        XCTAssertNotEqual(response.sessionId, 0)
        XCTAssertFalse(h.closed.contains(client))
        guard case (.ok, .getChildren(let children)) = h.send(client, .getChildren(path: "/", watch: false)) else {
            return XCTFail("read refused")
        }
        XCTAssertEqual(children, ["zookeeper"])
        XCTAssertEqual(h.create(client, "/x", "1").0, .notReadOnly)
        XCTAssertEqual(h.send(client, .setData(path: "/", data: [1], version: -1)).0, .notReadOnly)
        XCTAssertEqual(h.send(client, .sync(path: "/")).0, .notReadOnly)
        XCTAssertEqual(h.send(client, .ping).0, .ok)
        XCTAssertTrue(h.log.isEmpty, "nothing was logged")

        let writer = readOnlyConnect(&h, readOnly: false)
        XCTAssertTrue(h.closed.contains(writer), "a client that may write is refused, as ZooKeeper's read-only server does")

        // Without pings the session times out.
        h.nowMs += 10_000
        h.step(.tick)
        XCTAssertTrue(h.closed.contains(client))
    }

    func testOffByDefaultAndNeverForAStandaloneServer() {
        var ensemble = ReplicaHarness { $0.members = [1, 2, 3] }
        ensemble.nowMs += 5_000
        ensemble.step(.tick)
        let refused = readOnlyConnect(&ensemble)
        XCTAssertTrue(ensemble.closed.contains(refused))
        XCTAssertEqual(ensemble.replica.status().mode, "looking")

        var standalone = ReplicaHarness { $0.readOnlyModeEnabled = true }
        let client = readOnlyConnect(&standalone)
        XCTAssertEqual(connectResponse(standalone, client)?.readOnly, false, "a serving server answers read-write")
    }
}
