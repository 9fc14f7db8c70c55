import XCTest
import ZKProtocol

@testable import ZKCore

/// What a replica keeps for watches and sessions is bounded: closed connections and sessions
/// leave nothing behind, and `watchedPathsPerConnectionMax` bounds what one connection may hold.
final class WatchLimitTests: XCTestCase {
    func testClosedConnectionsAndSessionsLeaveNoWatchesBehind() {
        var h = ReplicaHarness()
        let writer = h.connect()
        for i in 0..<20 { _ = h.create(writer, "/n\(i)") }
        var watchers: [ConnectionID] = []
        for _ in 0..<50 {
            let c = h.connect()
            watchers.append(c)
            for i in 0..<20 {
                XCTAssertEqual(h.send(c, .getData(path: "/n\(i)", watch: true)).0, .ok)
                XCTAssertEqual(h.send(c, .getChildren(path: "/n\(i)", watch: true)).0, .ok)
                XCTAssertEqual(h.send(c, .exists(path: "/missing\(i)", watch: true)).0, .noNode)
            }
            XCTAssertEqual(h.send(c, .addWatch(path: "/", mode: AddWatchMode.persistentRecursive.rawValue)).0, .ok)
        }
        XCTAssertEqual(h.replica.watches.count, 50 * (20 * 2 + 20 + 2))
        // Half close their sessions, half just drop the connection (the session lives on until it expires).
        for (index, c) in watchers.enumerated() {
            if index % 2 == 0 { XCTAssertEqual(h.send(c, .closeSession).0, .ok) }
            h.step(.connectionClosed(c))
        }
        XCTAssertEqual(h.replica.watches.count, 0)
        XCTAssertEqual(h.replica.watches.watchedPaths, 0)
        XCTAssertTrue(h.replica.watches.connectionsWatching.isEmpty)
        XCTAssertEqual(h.replica.connections.count, 1, "only the writer's connection")
        XCTAssertEqual(h.replica.sessions.count, 1 + 25, "the writer's and the dropped connections' sessions")
        // A write fires nothing and leaves the tables empty.
        _ = h.send(writer, .setData(path: "/n0", data: [1], version: -1))
        XCTAssertTrue(h.watcherEvents(in: watchers).isEmpty)
        XCTAssertEqual(h.replica.watches.count, 0)
        // Sessions without a connection go when they expire (the writer's too: it does not ping here).
        h.advance(ms: 10_000)
        XCTAssertTrue(h.replica.sessions.isEmpty)
    }

    func testWatchedPathsPerConnectionLimitRefusesWithThrottledOp() {
        var h = ReplicaHarness { $0.watchedPathsPerConnectionMax = 3 }
        let writer = h.connect()
        for path in ["/a", "/b", "/c", "/d"] { _ = h.create(writer, path) }
        let c = h.connect()
        XCTAssertEqual(h.send(c, .getData(path: "/a", watch: true)).0, .ok)
        XCTAssertEqual(h.send(c, .exists(path: "/b", watch: true)).0, .ok)
        XCTAssertEqual(h.send(c, .getChildren(path: "/c", watch: true)).0, .ok)
        // A path already watched costs nothing, also in the other table.
        XCTAssertEqual(h.send(c, .getData(path: "/a", watch: true)).0, .ok)
        XCTAssertEqual(h.send(c, .getChildren2(path: "/a", watch: true)).0, .ok)
        XCTAssertEqual(h.replica.watches.pathCount(of: c), 3)
        XCTAssertTrue(h.warnings.isEmpty)
        // A fourth path is refused, whatever asks for it; the read without a watch is served.
        XCTAssertEqual(h.send(c, .getData(path: "/d", watch: true)).0, .throttledOp)
        XCTAssertEqual(h.send(c, .exists(path: "/missing", watch: true)).0, .throttledOp)
        XCTAssertEqual(h.send(c, .getChildren(path: "/d", watch: true)).0, .throttledOp)
        XCTAssertEqual(h.send(c, .addWatch(path: "/d", mode: AddWatchMode.persistent.rawValue)).0, .throttledOp)
        XCTAssertEqual(h.send(c, .getData(path: "/d", watch: false)).0, .ok)
        XCTAssertEqual(h.warnings.count, 4)
        XCTAssertTrue(h.warnings[0].contains("a watch on /d"), h.warnings[0])
        XCTAssertTrue(h.warnings[0].contains("watches 3 paths"), h.warnings[0])
        XCTAssertTrue(h.warnings[0].contains("watchedPathsPerConnectionMax"), h.warnings[0])
        XCTAssertEqual(h.replica.watches.pathCount(of: c), 3)
        XCTAssertFalse(h.closed.contains(c), "the connection stays")
        // Nothing was registered for the refused requests: a change of /d reaches only a connection under its limit.
        let other = h.connect()
        XCTAssertEqual(h.send(other, .getData(path: "/d", watch: true)).0, .ok)
        _ = h.send(writer, .setData(path: "/d", data: [1], version: -1))
        XCTAssertEqual(h.events(other), [WatcherEvent(.nodeDataChanged, path: "/d")])
        XCTAssertEqual(h.events(c), [])
        // A one-shot watch that fires frees its path.
        _ = h.send(writer, .setData(path: "/b", data: [1], version: -1))
        XCTAssertEqual(h.events(c), [WatcherEvent(.nodeDataChanged, path: "/b")])
        XCTAssertEqual(h.send(c, .getData(path: "/d", watch: true)).0, .ok)

        // setWatches past the limit is refused whole: nothing registered, nothing fired.
        let since = h.replica.tree.lastZxid
        let restored = h.connect()
        let tooMany = SetWatchesRequest(relativeZxid: since - 1, dataWatches: ["/a", "/b", "/d"], existWatches: ["/gone"], childWatches: [])
        XCTAssertEqual(h.send(restored, .setWatches(tooMany)).0, .throttledOp)
        XCTAssertEqual(h.replica.watches.pathCount(of: restored), 0)
        XCTAssertEqual(h.events(restored), [])
        XCTAssertTrue(h.warnings.last!.contains("setWatches of 4 more paths"), h.warnings.last!)
        let enough = SetWatchesRequest(relativeZxid: since, dataWatches: ["/a", "/b"], existWatches: ["/gone"], childWatches: ["/a"])
        XCTAssertEqual(h.send(restored, .setWatches(enough)).0, .ok)
        XCTAssertEqual(h.replica.watches.pathCount(of: restored), 3)
    }

    func testNoLimitByDefault() {
        var h = ReplicaHarness()
        XCTAssertEqual(h.replica.config.watchedPathsPerConnectionMax, 0)
        let c = h.connect()
        for i in 0..<2_000 { XCTAssertEqual(h.send(c, .exists(path: "/p\(i)", watch: true)).0, .noNode) }
        XCTAssertEqual(h.replica.watches.pathCount(of: c), 2_000)
        XCTAssertTrue(h.warnings.isEmpty)
    }
}

extension ReplicaHarness {
    func watcherEvents(in connections: [ConnectionID]) -> [WatcherEvent] {
        connections.flatMap { events($0) }
    }
}
