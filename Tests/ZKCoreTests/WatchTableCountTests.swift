import XCTest
import ZKProtocol

@testable import ZKCore

/// `WatchTable.count`, `watchedPaths` and `watchingConnections` are kept as entries come and go
/// (every `mntr`, metrics scrape and console sample asks them); they must equal a recount after
/// any sequence of adds, fires, removals and closed connections.
final class WatchTableCountTests: XCTestCase {
    func testCountsKeptAsEntriesComeAndGoEqualARecount() {
        var random = SplitMix64(seed: 20261207)
        let paths = ["/", "/a", "/a/b", "/a/b/c", "/d", "/d/e"]
        let events: [EventType] = [.nodeCreated, .nodeDeleted, .nodeDataChanged, .nodeChildrenChanged]
        let types: [WatcherType] = [.children, .data, .any]
        var table = WatchTable()
        for step in 0..<20_000 {
            let path = paths[Int(random.next() % UInt64(paths.count))]
            let connection = ConnectionID(random.next() % 5 + 1)
            switch random.next() % 7 {
            case 0: table.addDataWatch(path, connection: connection)
            case 1: table.addChildWatch(path, connection: connection)
            case 2: table.addPersistentWatch(path, connection: connection, recursive: random.next() % 2 == 0)
            case 3: _ = table.fire(WatchTrigger(path: path, type: events[Int(random.next() % 4)], acl: []))
            case 4: _ = table.remove(path, connection: connection, type: types[Int(random.next() % 3)])
            case 5:
                guard random.next() % 8 == 0 else { break }
                if random.next() % 2 == 0 {
                    table.removeConnection(connection)
                } else {
                    // Several together (as a step that closed them drops their watches).
                    let others = (ConnectionID(1)...5).filter { $0 != connection && random.next() % 2 == 0 }
                    table.removeConnections([connection] + others)
                }
            default: table.addDataWatch(path, connection: connection, mode: .standard)
            }
            let recounted = table.recounted
            XCTAssertEqual(table.count, recounted.entries, "entries after step \(step)")
            XCTAssertEqual(table.watchedPaths, recounted.paths, "paths after step \(step)")
            XCTAssertEqual(table.watchingConnections, recounted.connections, "connections after step \(step)")
            XCTAssertTrue(table.indexMatchesTables, "the per-connection index after step \(step)")
            for connection in ConnectionID(1)...5 {
                XCTAssertEqual(
                    table.entries(of: connection), recounted.byConnection[connection] ?? 0,
                    "entries of \(connection) after step \(step)")
            }
            if table.count != recounted.entries || table.watchedPaths != recounted.paths || !table.indexMatchesTables { return }
        }
        XCTAssertGreaterThan(table.count, 0)
    }

    /// A status without the per-connection listing still counts the watching connections.
    func testStatusCountsWatchingConnectionsWithoutListingThem() {
        var table = WatchTable()
        table.addDataWatch("/a", connection: 1)
        table.addChildWatch("/a", connection: 2)
        table.addDataWatch("/b", connection: 2)
        XCTAssertEqual(table.count, 3)
        XCTAssertEqual(table.watchedPaths, 2)
        XCTAssertEqual(table.watchingConnections, 2)
        table.removeConnection(2)
        XCTAssertEqual(table.count, 1)
        XCTAssertEqual(table.watchedPaths, 1)
        XCTAssertEqual(table.watchingConnections, 1)
    }
}
