import XCTest
import ZKProtocol

@testable import ZKCore

/// Quotas as ZooKeeper 3.8 keeps them: the stats under `/zookeeper/quota` are part of the
/// replicated tree, and with `enforceQuota` the leader's prepare step refuses what exceeds a hard
/// limit with QUOTAEXCEEDED.
final class QuotaTests: XCTestCase {
    // MARK: StatsTrack text

    func testStatsTrackReadsAndWritesZooKeeperText() {
        let limits = StatsTrack(parsing: "count=10,bytes=-1=;byteHardLimit=-1;countHardLimit=5")
        XCTAssertEqual(limits.count, 10)
        XCTAssertEqual(limits.bytes, -1)
        XCTAssertEqual(limits.countHardLimit, 5)
        XCTAssertEqual(limits.byteHardLimit, -1)
        XCTAssertEqual(limits.text, "count=10,bytes=-1=;byteHardLimit=-1;countHardLimit=5")

        var stats = StatsTrack()
        stats.count = 3
        stats.bytes = 7
        XCTAssertEqual(stats.text, "count=3,bytes=7")
        XCTAssertEqual(StatsTrack(parsing: "count=3,bytes=7"), stats)
        // Missing keys are -1 (no limit); pairs ZooKeeper's parser would throw on are skipped.
        let odd = StatsTrack(parsing: "count,bytes=x;countHardLimit=4")
        XCTAssertEqual(odd.count, -1)
        XCTAssertEqual(odd.bytes, -1)
        XCTAssertEqual(odd.countHardLimit, 4)
        XCTAssertEqual(StatsTrack(bytes: nil).text, "count=-1,bytes=-1")
    }

    // MARK: Stats

    func testStatsCountTheSubtreeFromTheirCreationAndFollowEveryWrite() {
        var h = ReplicaHarness()
        let c = h.connect()
        XCTAssertEqual(h.create(c, "/q", "").0, .ok)
        XCTAssertEqual(h.create(c, "/q/a", "xy").0, .ok)
        XCTAssertEqual(h.create(c, "/other", "zzzz").0, .ok)
        setQuota(&h, c, "/q", limits: "count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=10")
        // The stats node was written as zkCli writes it ("count=0,bytes=0"); the server counts.
        XCTAssertEqual(stats(&h, c, "/q"), "count=2,bytes=2")

        XCTAssertEqual(h.create(c, "/q/b", "abc").0, .ok)
        XCTAssertEqual(stats(&h, c, "/q"), "count=3,bytes=5")
        XCTAssertEqual(h.send(c, .setData(path: "/q/b", data: Array("a".utf8), version: -1)).0, .ok)
        XCTAssertEqual(stats(&h, c, "/q"), "count=3,bytes=3")
        XCTAssertEqual(h.send(c, .delete(path: "/q/a", version: -1)).0, .ok)
        XCTAssertEqual(stats(&h, c, "/q"), "count=2,bytes=1")
        // Writes outside the quota's subtree, and to a sibling whose name starts the same, do not count.
        XCTAssertEqual(h.create(c, "/qq", "abcdef").0, .ok)
        XCTAssertEqual(h.send(c, .setData(path: "/other", data: [1], version: -1)).0, .ok)
        XCTAssertEqual(stats(&h, c, "/q"), "count=2,bytes=1")

        // Only the data of the stats node changes: its version and mzxid stay (ZooKeeper writes it in place).
        guard let statsStat = h.stat(c, "/zookeeper/quota/q/zookeeper_stats") else { return XCTFail("no stats node") }
        XCTAssertEqual(statsStat.version, 0)
        XCTAssertEqual(statsStat.mzxid, statsStat.czxid)
        XCTAssertEqual(statsStat.dataLength, Int32("count=2,bytes=1".utf8.count))
        // The tree's byte total follows the stats node's data.
        let dataBytes = h.replica.tree.allNodes.reduce(0) { $0 + $1.node.dataLength }
        XCTAssertEqual(h.replica.tree.dataBytes, dataBytes)
    }

    func testEphemeralsRemovedWithTheirSessionLeaveTheStats() {
        var h = ReplicaHarness()
        let c = h.connect()
        XCTAssertEqual(h.create(c, "/q", "").0, .ok)
        setQuota(&h, c, "/q", limits: "count=100,bytes=-1")
        let owner = h.connect()
        XCTAssertEqual(h.create(owner, "/q/e1", "12", mode: .ephemeral).0, .ok)
        XCTAssertEqual(h.create(owner, "/q/e2", "345", mode: .ephemeral).0, .ok)
        XCTAssertEqual(stats(&h, c, "/q"), "count=3,bytes=5")
        XCTAssertEqual(h.send(owner, .closeSession).0, .ok)
        XCTAssertEqual(stats(&h, c, "/q"), "count=1,bytes=0")
    }

    func testTheDeepestQuotaCoversAPathAndTheRootNever() {
        var h = ReplicaHarness()
        let c = h.connect()
        for path in ["/a", "/a/b", "/a/b/c"] { XCTAssertEqual(h.create(c, path, "").0, .ok) }
        setQuota(&h, c, "/a", limits: "count=100,bytes=-1")
        setQuota(&h, c, "/a/b", limits: "count=100,bytes=-1")
        let tree = h.replica.tree
        XCTAssertEqual(tree.quotaPrefix(of: "/a"), "/a")
        XCTAssertEqual(tree.quotaPrefix(of: "/a/x"), "/a")
        XCTAssertEqual(tree.quotaPrefix(of: "/a/b"), "/a/b")
        XCTAssertEqual(tree.quotaPrefix(of: "/a/b/c/d"), "/a/b")
        XCTAssertNil(tree.quotaPrefix(of: "/ab"))
        XCTAssertNil(tree.quotaPrefix(of: "/"))
        XCTAssertNil(DataTree().quotaPrefix(of: "/a"))
        // Deleting the limits node ends the quota; the stats node no longer moves.
        XCTAssertEqual(h.send(c, .delete(path: "/zookeeper/quota/a/b/zookeeper_limits", version: -1)).0, .ok)
        XCTAssertEqual(h.replica.tree.quotaPrefix(of: "/a/b/c"), "/a")
        let before = stats(&h, c, "/a/b")
        XCTAssertEqual(h.create(c, "/a/b/n", "").0, .ok)
        XCTAssertEqual(stats(&h, c, "/a/b"), before)
    }

    // MARK: Enforcement

    func testHardLimitsRefuseCreatesAndSetDataOnlyWhenEnforced() {
        for enforced in [false, true] {
            var h = ReplicaHarness { $0.enforceQuota = enforced }
            let c = h.connect()
            XCTAssertEqual(h.create(c, "/q", "").0, .ok)
            setQuota(&h, c, "/q", limits: "count=-1,bytes=-1=;byteHardLimit=10;countHardLimit=3")
            XCTAssertEqual(h.create(c, "/q/a", "12345").0, .ok)
            XCTAssertEqual(h.create(c, "/q/b", "").0, .ok)
            // The fourth node, and bytes above 10, exceed the hard limits.
            XCTAssertEqual(h.create(c, "/q/c", "").0, enforced ? .quotaExceeded : .ok, "enforced \(enforced)")
            XCTAssertEqual(
                h.send(c, .setData(path: "/q/b", data: Array("123456".utf8), version: -1)).0, enforced ? .quotaExceeded : .ok)
            // Shrinking never trips a limit; a refused write changed nothing.
            XCTAssertEqual(h.send(c, .setData(path: "/q/a", data: Array("1".utf8), version: -1)).0, .ok)
            XCTAssertEqual(stats(&h, c, "/q"), enforced ? "count=3,bytes=1" : "count=4,bytes=7")
            if enforced {
                XCTAssertEqual(h.quotaExceeded.map(\.description), [
                    "Quota exceeded: /q [current count=4, hardCountLimit=3]",
                    "Quota exceeded: /q [current bytes=11, hardByteLimit=10]",
                ])
                // Outside the quota nothing is checked.
                XCTAssertEqual(h.create(c, "/free", String(repeating: "x", count: 100)).0, .ok)
            } else {
                XCTAssertEqual(h.quotaExceeded, [], "without enforceQuota nothing is checked or reported")
            }
        }
    }

    func testSoftLimitsAreOnlyReported() {
        var h = ReplicaHarness { $0.enforceQuota = true }
        let c = h.connect()
        XCTAssertEqual(h.create(c, "/q", "").0, .ok)
        setQuota(&h, c, "/q", limits: "count=2,bytes=4")
        XCTAssertEqual(h.create(c, "/q/a", "1234").0, .ok)
        XCTAssertEqual(h.create(c, "/q/b", "5").0, .ok)
        XCTAssertEqual(stats(&h, c, "/q"), "count=3,bytes=5")
        XCTAssertEqual(h.quotaExceeded, [
            QuotaExceeded(quotaPath: "/q", kind: .count, value: 3, limit: 2, hard: false),
            QuotaExceeded(quotaPath: "/q", kind: .bytes, value: 5, limit: 4, hard: false),
        ])
        XCTAssertEqual(h.quotaExceeded.first?.description, "Quota exceeded: /q [current count=3, softCountLimit=2]")
    }

    /// ZooKeeper checks against its committed tree, so the operations of one multi (or pipelined
    /// creates) could pass a limit together; MiniZK checks each against the prepared tree.
    func testOperationsOfOneMultiSeeEachOthersQuotaUse() {
        var h = ReplicaHarness { $0.enforceQuota = true }
        let c = h.connect()
        XCTAssertEqual(h.create(c, "/q", "").0, .ok)
        setQuota(&h, c, "/q", limits: "count=-1,bytes=-1=;countHardLimit=3")
        let create = { (path: String) in Request.create(CreateRequest(path: path, data: nil, acl: ACL.openUnsafe, flags: 0)) }
        let (_, response) = h.send(c, .multi([create("/q/a"), create("/q/b"), create("/q/c")]))
        XCTAssertEqual(response, .multi([.error(.ok), .error(.ok), .error(.quotaExceeded)]))
        XCTAssertNil(h.stat(c, "/q/a"))
        XCTAssertEqual(stats(&h, c, "/q"), "count=1,bytes=0")
    }

    // MARK: Helpers

    /// What zkCli's `setquota` sends for a new quota: the parents, the limits, then the stats
    /// node with zeros.
    private func setQuota(_ h: inout ReplicaHarness, _ c: ConnectionID, _ path: String, limits: String) {
        var node = Paths.quota
        for name in path.split(separator: "/") {
            node += "/\(name)"
            let code = h.create(c, node).0
            XCTAssertTrue(code == .ok || code == .nodeExists, "create \(node): \(code)")
        }
        XCTAssertEqual(h.create(c, node + "/zookeeper_limits", limits).0, .ok)
        XCTAssertEqual(h.create(c, node + "/zookeeper_stats", "count=0,bytes=0").0, .ok)
    }

    private func stats(_ h: inout ReplicaHarness, _ c: ConnectionID, _ path: String) -> String? {
        guard case (.ok, .getData(let data, _)) = h.send(c, .getData(path: Quotas.statPath(path), watch: false)) else { return nil }
        return String(decoding: data ?? [], as: UTF8.self)
    }
}
