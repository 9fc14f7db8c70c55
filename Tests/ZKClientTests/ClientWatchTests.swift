import XCTest
import ZKClient

/// One-shot, persistent and recursive watches, and ZooKeeper's ordering guarantee.
final class ClientWatchTests: ClientTestCase {
    func testOneShotDataExistAndChildWatchesFireOnce() async throws {
        let zk = try await client()
        let writer = try await client()
        let path = "\(base)/w"

        let (missing, existWatch) = try await zk.exists(path, watch: true)
        XCTAssertNil(missing)
        XCTAssertNil(existWatch?.triggered)
        let (_, childWatch) = try await zk.getChildren(base, watch: true)
        try await writer.create(path, data: [1])
        let created = try await event(existWatch)
        XCTAssertEqual(created, WatchEvent(type: .nodeCreated, path: path))
        let children = try await event(childWatch)
        XCTAssertEqual(children, WatchEvent(type: .nodeChildrenChanged, path: base))

        let (_, _, dataWatch) = try await zk.getData(path, watch: true)
        let (_, presentWatch) = try await zk.exists(path, watch: true)
        try await writer.setData(path, data: [2])
        let changed = try await event(dataWatch)
        XCTAssertEqual(changed, WatchEvent(type: .nodeDataChanged, path: path))
        let changedToo = try await event(presentWatch)
        XCTAssertEqual(changedToo, WatchEvent(type: .nodeDataChanged, path: path))

        // One-shot: a second change is not delivered to the old watch; a new one sees the delete.
        let (_, _, again) = try await zk.getData(path, watch: true)
        try await writer.delete(path)
        let deleted = try await event(again)
        XCTAssertEqual(deleted, WatchEvent(type: .nodeDeleted, path: path))

        // A failed read sets no watch and hands none out.
        await assertThrows(.noNode) { try await zk.getData(path, watch: true) }
    }

    /// ZooKeeper's guarantee: a client sees the watch event before it sees the reply of any later
    /// read that observes the change.
    func testWatchEventArrivesBeforeTheReplyThatSeesTheChange() async throws {
        let zk = try await client()
        let writer = try await client()
        let path = "\(base)/ordered"
        try await writer.create(path, data: [0])
        for round in 1...20 {
            let (_, _, watch) = try await zk.getData(path, watch: true)
            try await writer.setData(path, data: [UInt8(round)])
            // Read until the change is visible to this session; the event must be there by then.
            while true {
                let (data, _) = try await zk.getData(path)
                if data == [UInt8(round)] { break }
                XCTAssertNil(watch?.triggered, "the event came before a read that does not see the change")
            }
            XCTAssertEqual(watch?.triggered, WatchEvent(type: .nodeDataChanged, path: path), "round \(round)")
        }
    }

    func testPersistentAndRecursiveWatchesKeepFiringUntilRemoved() async throws {
        let zk = try await client()
        let writer = try await client()
        let node = "\(base)/p"
        try await writer.create(node, data: [0])
        let persistent = try await zk.addWatch(node, mode: .persistent)
        let recursive = try await zk.addWatch(base, mode: .persistentRecursive)
        try await zk.checkWatches(node, type: .any)

        try await writer.setData(node, data: [1])
        try await writer.setData(node, data: [2])
        try await writer.create("\(node)/child")
        try await writer.create("\(node)/child/grandchild")
        try await writer.setData("\(node)/child/grandchild", data: [3])
        try await writer.delete("\(node)/child/grandchild")
        try await zk.sync(base)
        _ = try await zk.exists(node)

        let persistentEvents = try await collect(persistent, count: 3)
        XCTAssertEqual(persistentEvents, [
            WatchEvent(type: .nodeDataChanged, path: node), WatchEvent(type: .nodeDataChanged, path: node),
            WatchEvent(type: .nodeChildrenChanged, path: node),
        ])
        let recursiveEvents = try await collect(recursive, count: 6)
        XCTAssertEqual(recursiveEvents, [
            WatchEvent(type: .nodeDataChanged, path: node), WatchEvent(type: .nodeDataChanged, path: node),
            WatchEvent(type: .nodeCreated, path: "\(node)/child"), WatchEvent(type: .nodeCreated, path: "\(node)/child/grandchild"),
            WatchEvent(type: .nodeDataChanged, path: "\(node)/child/grandchild"),
            WatchEvent(type: .nodeDeleted, path: "\(node)/child/grandchild"),
        ], "a recursive watch gets no child events")

        try await zk.removeWatches(node, type: .any)
        let persistentEnded = try await ends(persistent)
        XCTAssertTrue(persistentEnded, "the sequence ends when the watch is removed")
        await assertThrows(.noWatcher) { try await zk.checkWatches(node, type: .any) }
        await assertThrows(.noWatcher) { try await zk.removeWatches(node, type: .any) }
        try await zk.removeWatches(base, type: .any)
        let recursiveEnded = try await ends(recursive)
        XCTAssertTrue(recursiveEnded)
    }

    func testRemovingAOneShotWatchEndsItWithNoWatcher() async throws {
        let zk = try await client()
        let path = "\(base)/r"
        try await zk.create(path)
        let (_, _, watch) = try await zk.getData(path, watch: true)
        try await zk.removeWatches(path, type: .data)
        let removed = await outcome(watch)
        XCTAssertEqual(removed, .failure(.noWatcher), "a removed watch does not fire")
    }
}
