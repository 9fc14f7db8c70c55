import XCTest
import ZKProtocol

@testable import ZKCore

final class ReplicaTests: XCTestCase {
    func testNewSessionGetsNegotiatedTimeoutAndPassword() {
        var h = ReplicaHarness()
        let c = h.connect(timeoutMs: 100)
        guard case .connect(let response)? = h.frames[c]?.first else { return XCTFail("no connect response") }
        XCTAssertEqual(response.timeoutMs, 400, "clamped up to 2 ticks")
        XCTAssertNotEqual(response.sessionId, 0)
        XCTAssertEqual(response.password.count, 16)
        XCTAssertEqual(response.readOnly, false)
        let d = h.connect(timeoutMs: 1_000_000)
        guard case .connect(let second)? = h.frames[d]?.first else { return XCTFail("no connect response") }
        XCTAssertEqual(second.timeoutMs, 4000, "clamped down to 20 ticks")
        XCTAssertNotEqual(second.sessionId, response.sessionId)
    }

    func testCreateThenGetDataSeesStatFields() {
        var h = ReplicaHarness()
        let c = h.connect()
        let (err, response) = h.create(c, "/a", "hello")
        XCTAssertEqual(err, .ok)
        XCTAssertEqual(response, .create(path: "/a"))
        guard case (.ok, .getData(let data, let stat)) = h.send(c, .getData(path: "/a", watch: false)) else { return XCTFail() }
        XCTAssertEqual(data, Array("hello".utf8))
        XCTAssertEqual(stat.czxid, stat.mzxid)
        XCTAssertEqual(stat.czxid, stat.pzxid)
        XCTAssertEqual(stat.dataLength, 5)
        XCTAssertEqual(stat.version, 0)
        XCTAssertEqual(stat.ctime, h.nowMs)
        let root = h.stat(c, "/")!
        XCTAssertEqual(root.numChildren, 2)
        XCTAssertEqual(root.cversion, 0, "2 * 1 create - 2 children")
        XCTAssertEqual(root.pzxid, stat.czxid)
    }

    func testFreshTreeMatchesZooKeeperSystemNodes() {
        var h = ReplicaHarness()
        let c = h.connect()
        XCTAssertEqual(h.stat(c, "/")?.cversion, -1)
        XCTAssertEqual(h.stat(c, "/zookeeper")?.cversion, -2)
        XCTAssertEqual(h.send(c, .delete(path: "/zookeeper", version: -1)).0, .badArguments)
        XCTAssertEqual(h.send(c, .setData(path: "/zookeeper/config", data: [1], version: -1)).0, .noAuth)
        XCTAssertEqual(h.create(c, "/").0, .nodeExists)
        guard case (.ok, .getACL(let acl, let stat)) = h.send(c, .getACL(path: "/zookeeper/config")) else { return XCTFail() }
        XCTAssertEqual(acl, ACL.readUnsafe)
        XCTAssertEqual(stat.aversion, -1)
    }

    func testSequentialSuffixComesFromChildCreatesNotFromLiveChildren() {
        var h = ReplicaHarness()
        let c = h.connect()
        _ = h.create(c, "/q")
        XCTAssertEqual(h.create(c, "/q/n-", mode: .persistentSequential).1, .create(path: "/q/n-0000000000"))
        XCTAssertEqual(h.create(c, "/q/n-", mode: .persistentSequential).1, .create(path: "/q/n-0000000001"))
        XCTAssertEqual(h.send(c, .delete(path: "/q/n-0000000001", version: -1)).0, .ok)
        XCTAssertEqual(h.create(c, "/q/n-", mode: .persistentSequential).1, .create(path: "/q/n-0000000002"))
        XCTAssertEqual(h.create(c, "/q/", mode: .persistentSequential).1, .create(path: "/q/0000000003"))
        XCTAssertEqual(h.stat(c, "/q")?.cversion, 5, "4 creates + 1 delete")
        XCTAssertEqual(Paths.sequenceSuffix(-2_147_483_648), "-2147483648")
        XCTAssertEqual(Paths.sequenceSuffix(-5), "-000000005")
    }

    func testVersionsAreCheckedAndMinusOneMeansAny() {
        var h = ReplicaHarness()
        let c = h.connect()
        _ = h.create(c, "/v")
        XCTAssertEqual(h.send(c, .setData(path: "/v", data: [1], version: 3)).0, .badVersion)
        guard case (.ok, .stat(let s1)) = h.send(c, .setData(path: "/v", data: [1], version: 0)) else { return XCTFail() }
        XCTAssertEqual(s1.version, 1)
        guard case (.ok, .stat(let s2)) = h.send(c, .setData(path: "/v", data: nil, version: -1)) else { return XCTFail() }
        XCTAssertEqual(s2.version, 2)
        XCTAssertEqual(s2.dataLength, 0)
        guard case (.ok, .getData(let data, _)) = h.send(c, .getData(path: "/v", watch: false)) else { return XCTFail() }
        XCTAssertNil(data, "null data stays null")
        XCTAssertEqual(h.send(c, .setACL(path: "/v", acl: ACL.openUnsafe, version: 1)).0, .badVersion)
        guard case (.ok, .stat(let s3)) = h.send(c, .setACL(path: "/v", acl: ACL.openUnsafe, version: 0)) else { return XCTFail() }
        XCTAssertEqual(s3.aversion, 1)
        XCTAssertEqual(s3.mzxid, s2.mzxid, "setACL leaves mzxid alone")
        XCTAssertEqual(h.send(c, .delete(path: "/v", version: 0)).0, .badVersion)
        XCTAssertEqual(h.send(c, .delete(path: "/v", version: 2)).0, .ok)
    }

    func testCreateErrorsInZooKeeperOrder() {
        var h = ReplicaHarness()
        let c = h.connect()
        XCTAssertEqual(h.create(c, "noslash").0, .badArguments)
        XCTAssertEqual(h.create(c, "/missing/child").0, .noNode)
        XCTAssertEqual(h.create(c, "/bad/").0, .noNode)
        XCTAssertEqual(h.create(c, "/a//b").0, .noNode)
        XCTAssertEqual(h.create(c, "/.").0, .badArguments)
        XCTAssertEqual(h.create(c, "/x", acl: []).0, .invalidACL)
        XCTAssertEqual(h.create(c, "/x", acl: [ACL(perms: .all, id: Id(scheme: "world", id: "foo"))]).0, .invalidACL)
        XCTAssertEqual(h.create(c, "/x", acl: ACL.creatorAll).0, .invalidACL, "auth scheme without credentials")
        XCTAssertEqual(h.send(c, .create(CreateRequest(path: "/x", data: nil, acl: ACL.openUnsafe, flags: 9))).0, .badArguments)
        XCTAssertEqual(h.send(c, .createTTL(CreateRequest(path: "/x", data: nil, acl: ACL.openUnsafe, flags: 5, ttl: 100))).0, .unimplemented)
        _ = h.create(c, "/e", mode: .ephemeral)
        XCTAssertEqual(h.create(c, "/e/child").0, .noChildrenForEphemerals)
        XCTAssertEqual(h.create(c, "/e").0, .nodeExists)
        _ = h.create(c, "/p")
        _ = h.create(c, "/p/c")
        XCTAssertEqual(h.send(c, .delete(path: "/p", version: -1)).0, .notEmpty)
    }

    func testEveryWriteConsumesAZxidEvenWhenItFails() {
        var h = ReplicaHarness()
        let c = h.connect()
        let before = h.replica.tree.lastZxid
        XCTAssertEqual(h.create(c, "/zookeeper").0, .nodeExists)
        XCTAssertEqual(h.replica.tree.lastZxid, before + 1)
    }

    func testMultiIsAtomicWithZooKeeperErrorResults() {
        var h = ReplicaHarness()
        let c = h.connect()
        _ = h.create(c, "/m")
        let failing: Request = .multi([
            .create(CreateRequest(path: "/m/a", data: nil, acl: ACL.openUnsafe, flags: 0)),
            .setData(path: "/m/a", data: [1], version: 0),
            .setData(path: "/m", data: [1], version: 7),
            .delete(path: "/m/a", version: -1),
        ])
        XCTAssertEqual(h.send(c, failing).1, .multi([.error(.ok), .error(.ok), .error(.badVersion), .error(.runtimeInconsistency)]))
        XCTAssertNil(h.stat(c, "/m/a"), "nothing of a failed multi is applied")
        let succeeding: Request = .multi([
            .create(CreateRequest(path: "/m/a", data: nil, acl: ACL.openUnsafe, flags: 0)),
            .setData(path: "/m/a", data: [1], version: 0),
            .check(path: "/m", version: 0),
            .createContainer(CreateRequest(path: "/m/c", data: nil, acl: ACL.openUnsafe, flags: 0)),
        ])
        guard case (.ok, .multi(let results)) = h.send(c, succeeding), results.count == 4 else { return XCTFail() }
        XCTAssertEqual(results[0], .create(path: "/m/a"))
        guard case .setData(let stat) = results[1] else { return XCTFail() }
        XCTAssertEqual(stat.version, 1)
        XCTAssertEqual(results[2], .check)
        // Inside a multi the flags decide, as in ZooKeeper: createContainer with flags 0 is a plain create.
        XCTAssertEqual(results[3], .create(path: "/m/c"))
        XCTAssertEqual(h.stat(c, "/m/c")?.ephemeralOwner, 0)
        XCTAssertEqual(h.send(c, .multi([.getData(path: "/m", watch: false)])).0, .marshallingError)
        guard case (.ok, .multi(let reads)) = h.send(c, .multiRead([.getData(path: "/m/a", watch: false), .getChildren(path: "/nope", watch: false)])) else {
            return XCTFail()
        }
        XCTAssertEqual(reads.count, 2)
        XCTAssertEqual(reads[1], .error(.noNode))
    }

    /// ZooKeeper rebuilds each create inside a multi from its flags, whatever create opcode
    /// carried it: flag 4 makes a container (path and Stat), a TTL flag outside createTTL fails
    /// the whole multi with MARSHALLINGERROR, unknown flags fail that operation with BADARGUMENTS.
    func testMultiRebuildsCreatesFromTheirFlags() {
        var h = ReplicaHarness { $0.extendedTypesEnabled = true }
        let c = h.connect()
        func create(_ path: String, flags: Int32, ttl: Int64? = nil) -> CreateRequest {
            CreateRequest(path: path, data: nil, acl: ACL.openUnsafe, flags: flags, ttl: ttl)
        }
        guard case (.ok, .multi(let results)) = h.send(c, .multi([
            .create(create("/k1", flags: 4)),
            .create2(create("/k2", flags: 1)),
            .createTTL(create("/k3", flags: 0, ttl: 1000)),
            .createTTL(create("/k4", flags: 5, ttl: 1000)),
        ])), results.count == 4 else { return XCTFail() }
        guard case .create2("/k1", _) = results[0] else { return XCTFail("\(results[0])") }
        XCTAssertTrue(h.replica.tree.containers.contains("/k1"), "a container")
        XCTAssertEqual(results[1], .create(path: "/k2"))
        XCTAssertEqual(h.stat(c, "/k2")?.ephemeralOwner, h.sessionId(c))
        XCTAssertEqual(results[2], .create(path: "/k3"))
        XCTAssertEqual(h.stat(c, "/k3")?.ephemeralOwner, 0, "a createTTL without TTL flags loses its TTL")
        guard case .create2("/k4", _) = results[3] else { return XCTFail("\(results[3])") }

        XCTAssertEqual(h.send(c, .multi([.create(create("/t1", flags: 5, ttl: nil))])).0, .marshallingError)
        XCTAssertEqual(h.send(c, .multi([.createContainer(create("/t2", flags: 6))])).0, .marshallingError)
        XCTAssertNil(h.stat(c, "/t1"))
        // ZooKeeper meets the TTL flag only when it prepares that operation: a failure before it wins.
        XCTAssertEqual(
            h.send(c, .multi([.check(path: "/nope", version: 0), .create(create("/t3", flags: 5, ttl: nil))])).1,
            .multi([.error(.noNode), .error(.runtimeInconsistency)]))
        XCTAssertEqual(
            h.send(c, .multi([.check(path: "/nope", version: 0), .nullPath(opcode: OpCode.delete.rawValue)])).1,
            .multi([.error(.noNode), .error(.runtimeInconsistency)]))
        XCTAssertEqual(
            h.send(c, .multi([.create(create("/u", flags: 9)), .delete(path: "/k3", version: -1)])).1,
            .multi([.error(.badArguments), .error(.runtimeInconsistency)]))
    }

    func testDigestACLsDenyOthersAndSuperPassesEverything() {
        let superDigest = ACLs.digest("super:secret")
        var h = ReplicaHarness { $0.superDigest = superDigest }
        XCTAssertEqual(ACLs.digest("bob:secret"), "bob:fyVmFCwVbTJYrznoSu1koqYEYF0=")
        let owner = h.connect()
        XCTAssertEqual(h.send(owner, .auth(type: 0, scheme: "digest", auth: Array("bob:secret".utf8))).0, .ok)
        XCTAssertEqual(h.create(owner, "/secret", "x", acl: ACL.creatorAll).0, .ok)
        guard case (.ok, .getACL(let acl, _)) = h.send(owner, .getACL(path: "/secret")) else { return XCTFail() }
        XCTAssertEqual(acl, [ACL(perms: .all, id: Id(scheme: "digest", id: "bob:fyVmFCwVbTJYrznoSu1koqYEYF0="))])
        let other = h.connect()
        XCTAssertEqual(h.send(other, .getData(path: "/secret", watch: false)).0, .noAuth)
        XCTAssertEqual(h.send(other, .setData(path: "/secret", data: nil, version: -1)).0, .noAuth)
        XCTAssertEqual(h.send(other, .getACL(path: "/secret")).0, .noAuth)
        XCTAssertEqual(h.send(other, .exists(path: "/secret", watch: false)).0, .noAuth, "exists checks READ (3.8.4)")
        let admin = h.connect()
        _ = h.send(admin, .auth(type: 0, scheme: "digest", auth: Array("super:secret".utf8)))
        XCTAssertEqual(h.send(admin, .getData(path: "/secret", watch: false)).0, .ok)
        guard case (.ok, .whoAmI(let infos)) = h.send(owner, .whoAmI) else { return XCTFail() }
        XCTAssertEqual(infos, [ClientInfo(authScheme: "ip", user: "127.0.0.1"), ClientInfo(authScheme: "digest", user: "bob")])
        let bad = h.connect()
        XCTAssertEqual(h.send(bad, .auth(type: 0, scheme: "kerberos", auth: [])).0, .authFailed)
        XCTAssertTrue(h.closed.contains(bad))
    }

    func testWatchesFireAcrossSessionsBeforeTheWritersReply() {
        var h = ReplicaHarness()
        let watcher = h.connect()
        let writer = h.connect()
        _ = h.create(writer, "/w")
        _ = h.send(watcher, .getData(path: "/w", watch: true))
        _ = h.send(watcher, .getChildren(path: "/w", watch: true))
        _ = h.send(watcher, .exists(path: "/w/new", watch: true))
        _ = h.create(writer, "/w/new")
        XCTAssertEqual(h.events(watcher), [WatcherEvent(.nodeCreated, path: "/w/new"), WatcherEvent(.nodeChildrenChanged, path: "/w")])
        _ = h.send(writer, .setData(path: "/w", data: [1], version: -1))
        _ = h.send(writer, .setData(path: "/w", data: [2], version: -1))
        XCTAssertEqual(h.events(watcher).last, WatcherEvent(.nodeDataChanged, path: "/w"))
        XCTAssertEqual(h.events(watcher).count, 3, "one-shot watches fire once")
        // A write's own notifications precede its reply on the same connection.
        _ = h.send(writer, .getData(path: "/w", watch: true))
        _ = h.send(writer, .setData(path: "/w", data: [3], version: -1))
        let tail = h.frames[writer]!.suffix(2)
        guard case .notification = tail.first!, case .reply = tail.last! else { return XCTFail("\(tail)") }
    }

    func testPersistentRecursiveWatchesSeeDescendantsButNoChildEvents() {
        var h = ReplicaHarness()
        let watcher = h.connect()
        let writer = h.connect()
        _ = h.create(writer, "/r")
        XCTAssertEqual(h.send(watcher, .addWatch(path: "/r", mode: 1)).1, .errorResponse(0))
        _ = h.create(writer, "/r/a")
        _ = h.create(writer, "/r/a/b")
        _ = h.send(writer, .setData(path: "/r/a/b", data: [1], version: -1))
        _ = h.send(writer, .delete(path: "/r/a/b", version: -1))
        XCTAssertEqual(
            h.events(watcher),
            [
                WatcherEvent(.nodeCreated, path: "/r/a"), WatcherEvent(.nodeCreated, path: "/r/a/b"),
                WatcherEvent(.nodeDataChanged, path: "/r/a/b"), WatcherEvent(.nodeDeleted, path: "/r/a/b"),
            ])
        XCTAssertEqual(h.send(watcher, .removeWatches(path: "/r", type: 3)).0, .ok)
        XCTAssertEqual(h.send(watcher, .removeWatches(path: "/r", type: 3)).0, .noWatcher)
        _ = h.create(writer, "/r/c")
        XCTAssertEqual(h.events(watcher).count, 4)
        XCTAssertEqual(h.send(watcher, .addWatch(path: "/r", mode: 2)).0, .marshallingError)
    }

    /// addWatch registers in both watch tables, as in ZooKeeper 3.8: removeWatches or
    /// checkWatches of type Data (2) or Children (1) finds the persistent watch and removes that
    /// table's half; the other half keeps firing what it fires.
    func testWatcherTypesFindAndRemoveHalvesOfPersistentWatches() {
        var h = ReplicaHarness()
        let watcher = h.connect()
        let writer = h.connect()
        _ = h.create(writer, "/p")
        XCTAssertEqual(h.send(watcher, .addWatch(path: "/p", mode: 0)).0, .ok)
        XCTAssertEqual(h.send(watcher, .checkWatches(path: "/p", type: 1)).0, .ok)
        XCTAssertEqual(h.send(watcher, .checkWatches(path: "/p", type: 2)).0, .ok)
        // Data half removed: data changes stop, child changes and the deletion still arrive.
        XCTAssertEqual(h.send(watcher, .removeWatches(path: "/p", type: 2)).0, .ok)
        XCTAssertEqual(h.send(watcher, .removeWatches(path: "/p", type: 2)).0, .noWatcher)
        _ = h.send(writer, .setData(path: "/p", data: [1], version: -1))
        _ = h.create(writer, "/p/x")
        XCTAssertEqual(h.events(watcher), [WatcherEvent(.nodeChildrenChanged, path: "/p")])
        XCTAssertEqual(h.send(watcher, .removeWatches(path: "/p", type: 1)).0, .ok)
        XCTAssertEqual(h.send(watcher, .checkWatches(path: "/p", type: 3)).0, .noWatcher)

        // A recursive watch: its child-table half only ever fires deletions.
        _ = h.create(writer, "/r")
        XCTAssertEqual(h.send(watcher, .addWatch(path: "/r", mode: 1)).0, .ok)
        XCTAssertEqual(h.send(watcher, .checkWatches(path: "/r", type: 1)).0, .ok)
        XCTAssertEqual(h.send(watcher, .removeWatches(path: "/r", type: 2)).0, .ok)
        _ = h.create(writer, "/r/a")
        _ = h.send(writer, .setData(path: "/r/a", data: [1], version: -1))
        _ = h.send(writer, .delete(path: "/r/a", version: -1))
        XCTAssertEqual(Array(h.events(watcher).dropFirst()), [WatcherEvent(.nodeDeleted, path: "/r/a")])
        XCTAssertEqual(h.send(watcher, .removeWatches(path: "/r", type: 1)).0, .ok)
        XCTAssertEqual(h.send(watcher, .checkWatches(path: "/r", type: 3)).0, .noWatcher)
    }

    /// Since the fix of CVE-2024-23944 ZooKeeper tells a watcher of an event only if it may read
    /// the node the event is about (the parent, for NodeChildrenChanged); the one-shot watch is
    /// used up all the same.
    func testWatchEventsNeedReadOnTheirNode() {
        var h = ReplicaHarness { $0.extendedTypesEnabled = true }
        let watcher = h.connect()
        let owner = h.connect()
        XCTAssertEqual(h.send(owner, .auth(type: 0, scheme: "digest", auth: Array("u1:pw".utf8))).0, .ok)
        let onlyU1 = [ACL(perms: .all, id: Id(scheme: "digest", id: ACLs.digest("u1:pw")))]
        _ = h.create(owner, "/open")
        XCTAssertEqual(h.send(watcher, .addWatch(path: "/open", mode: 1)).0, .ok)
        _ = h.create(owner, "/open/hidden", acl: onlyU1)
        _ = h.create(owner, "/open/seen")
        XCTAssertEqual(h.events(watcher), [WatcherEvent(.nodeCreated, path: "/open/seen")])

        // exists needs READ on a node that exists (3.8.4), none on a missing one: the watch is set
        // before the node is created with an ACL the watcher does not pass.
        XCTAssertEqual(h.send(watcher, .exists(path: "/closed", watch: true)).0, .noNode)
        _ = h.create(owner, "/closed", acl: onlyU1)
        XCTAssertEqual(h.events(watcher).count, 1, "no NodeCreated for a node the watcher cannot read")
        XCTAssertEqual(h.send(watcher, .checkWatches(path: "/closed", type: 2)).0, .noWatcher, "the watch was used up")
    }

    /// Corners ZooKeeper 3.8 answers in its own way: checkWatches of a path without a slash fails
    /// (MARSHALLINGERROR), removeWatches of a null path finds nothing, a container cannot carry
    /// TTL flags, and a null path inside a multi fails the whole request.
    func testWatchAndCreateCornersAnswerAsZooKeeper() {
        var h = ReplicaHarness { $0.extendedTypesEnabled = true }
        let c = h.connect()
        XCTAssertEqual(h.send(c, .checkWatches(path: "f", type: 3)).0, .marshallingError)
        XCTAssertEqual(h.send(c, .checkWatches(path: "", type: 3)).0, .noWatcher)
        XCTAssertEqual(h.send(c, .removeWatches(path: "f", type: 3)).0, .noWatcher)
        XCTAssertEqual(h.send(c, .nullPath(opcode: OpCode.removeWatches.rawValue)).0, .noWatcher)
        _ = h.create(c, "/w")
        XCTAssertEqual(h.send(c, .addWatch(path: "/w", mode: 1)).0, .ok)
        XCTAssertEqual(h.send(c, .checkWatches(path: "a/b", type: 1)).0, .marshallingError, "walks up to a relative parent")
        XCTAssertEqual(h.send(c, .checkWatches(path: "/w", type: 1)).0, .ok)
        let ttlContainer = CreateRequest(path: "/k", data: nil, acl: ACL.openUnsafe, flags: 5)
        XCTAssertEqual(h.send(c, .createContainer(ttlContainer)).0, .badArguments)
        XCTAssertEqual(h.send(c, .multi([.nullPath(opcode: OpCode.delete.rawValue)])).0, .marshallingError)
        XCTAssertEqual(h.send(c, .multiRead([.nullPath(opcode: OpCode.getData.rawValue)])).0, .marshallingError)
    }

    func testClosingASessionDeletesItsEphemeralsInOneTransaction() {
        var h = ReplicaHarness()
        let owner = h.connect()
        let watcher = h.connect()
        _ = h.create(owner, "/e1", mode: .ephemeral)
        _ = h.create(owner, "/e2", mode: .ephemeralSequential)
        XCTAssertEqual(h.stat(watcher, "/e1")?.ephemeralOwner, h.sessionId(owner))
        guard case (.ok, .getEphemerals(let paths)) = h.send(owner, .getEphemerals(prefixPath: "/")) else { return XCTFail() }
        XCTAssertEqual(paths, ["/e1", "/e20000000001"])
        _ = h.send(watcher, .exists(path: "/e1", watch: true))
        _ = h.send(watcher, .getChildren(path: "/", watch: true))
        let zxidBefore = h.replica.tree.lastZxid
        XCTAssertEqual(h.send(owner, .closeSession).0, .ok)
        XCTAssertTrue(h.closed.contains(owner))
        XCTAssertEqual(h.replica.tree.lastZxid, zxidBefore + 1, "one transaction for all ephemerals")
        XCTAssertNil(h.stat(watcher, "/e1"))
        XCTAssertNil(h.stat(watcher, "/e20000000001"))
        XCTAssertEqual(h.events(watcher), [WatcherEvent(.nodeDeleted, path: "/e1"), WatcherEvent(.nodeChildrenChanged, path: "/")])
    }

    func testSessionsExpireFromTicksAndCannotBeResumed() {
        var h = ReplicaHarness()
        let c = h.connect(timeoutMs: 1000)
        _ = h.create(c, "/eph", mode: .ephemeral)
        let id = h.sessionId(c)
        let password = h.replica.password(for: id)
        h.advance(ms: 600)
        _ = h.send(c, .ping)  // keeps the session alive
        h.advance(ms: 600)
        XCTAssertNotNil(h.replica.tree.node("/eph"))
        h.step(.connectionClosed(c))
        h.advance(ms: 1400)
        XCTAssertNil(h.replica.tree.node("/eph"), "expired session's ephemerals are gone")
        let d = h.nextConnection
        h.nextConnection += 1
        h.step(.connectionOpened(d, peerAddress: "127.0.0.1", peerPort: 1))
        h.step(.connect(d, ConnectRequest(timeoutMs: 1000, sessionId: id, password: password)))
        guard case .connect(let response)? = h.frames[d]?.first else { return XCTFail() }
        XCTAssertEqual(response.timeoutMs, 0)
        XCTAssertTrue(h.closed.contains(d))
    }

    func testResumingASessionMovesItAndClosesTheOldConnection() {
        var h = ReplicaHarness()
        let c = h.connect()
        let id = h.sessionId(c)
        _ = h.create(c, "/eph", mode: .ephemeral)
        let d = h.nextConnection
        h.nextConnection += 1
        h.step(.connectionOpened(d, peerAddress: "127.0.0.1", peerPort: 1))
        h.step(.connect(d, ConnectRequest(timeoutMs: 4000, sessionId: id, password: h.replica.password(for: id), readOnly: nil)))
        guard case .connect(let response)? = h.frames[d]?.first else { return XCTFail() }
        XCTAssertEqual(response.sessionId, id)
        XCTAssertNil(response.readOnly, "echoes a client that sent no read-only byte")
        XCTAssertTrue(h.closed.contains(c))
        XCTAssertNotNil(h.stat(d, "/eph"))
        let e = h.nextConnection
        h.nextConnection += 1
        h.step(.connectionOpened(e, peerAddress: "127.0.0.1", peerPort: 2))
        h.step(.connect(e, ConnectRequest(timeoutMs: 4000, sessionId: id, password: [UInt8](repeating: 1, count: 16))))
        guard case .connect(let refused)? = h.frames[e]?.first else { return XCTFail() }
        XCTAssertEqual(refused.timeoutMs, 0)
    }

    func testRepliesLeaveInRequestOrderWhileWritesAreOutstanding() {
        var h = ReplicaHarness()
        let c = h.connect()
        // Hold persistence back: feed requests without acknowledging durability.
        let w1 = h.replica.step(.request(c, RequestHeader(xid: 1, type: 1), .create(CreateRequest(path: "/o", data: nil, acl: ACL.openUnsafe, flags: 0))), nowMs: h.nowMs)
        XCTAssertTrue(w1.frames.isEmpty, "no reply before the write is durable")
        let r = h.replica.step(.request(c, RequestHeader(xid: 2, type: 4), .getData(path: "/o", watch: false)), nowMs: h.nowMs)
        XCTAssertTrue(r.frames.isEmpty, "a read waits behind the session's write")
        let w2 = h.replica.step(.request(c, RequestHeader(xid: 3, type: 5), .setData(path: "/o", data: [1], version: 0)), nowMs: h.nowMs)
        XCTAssertEqual(w2.persist.count, 1, "pipelined write prepared against the outstanding create")
        let done = h.replica.step(.persisted(upTo: w2.persist[0].zxid, through: w2.storageSequence), nowMs: h.nowMs)
        let xids = done.frames.compactMap { frame -> Int32? in
            if case .reply(let header, _) = frame.frame { return header.xid }
            return nil
        }
        XCTAssertEqual(xids, [1, 2, 3])
        guard case .reply(let header, .getData(_, let stat)) = done.frames[1].frame else { return XCTFail() }
        XCTAssertEqual(header.err, 0)
        XCTAssertEqual(stat.version, 0, "the read sees the create but not the later setData")
    }

    func testContainersAreReapedOnlyAfterLosingAllChildren() {
        var h = ReplicaHarness { $0.containerCheckIntervalMs = 1000 }
        let c = h.connect()
        _ = h.send(c, .createContainer(CreateRequest(path: "/box", data: nil, acl: ACL.openUnsafe, flags: 0)))
        XCTAssertEqual(h.stat(c, "/box")?.ephemeralOwner, 0)
        h.advance(ms: 2000)
        XCTAssertNotNil(h.stat(c, "/box"), "never-used containers stay")
        _ = h.create(c, "/box/item")
        _ = h.send(c, .delete(path: "/box/item", version: -1))
        h.advance(ms: 2000)
        XCTAssertNil(h.stat(c, "/box"))
    }

    func testTTLNodesExpireWhenEnabled() {
        var h = ReplicaHarness {
            $0.containerCheckIntervalMs = 500
            $0.extendedTypesEnabled = true
        }
        let c = h.connect()
        XCTAssertEqual(h.send(c, .createTTL(CreateRequest(path: "/ttl", data: nil, acl: ACL.openUnsafe, flags: 5, ttl: 1000))).0, .ok)
        XCTAssertEqual(h.send(c, .createTTL(CreateRequest(path: "/x", data: nil, acl: ACL.openUnsafe, flags: 0, ttl: -1))).0, .badArguments)
        XCTAssertEqual(h.send(c, .create(CreateRequest(path: "/x", data: nil, acl: ACL.openUnsafe, flags: 5))).0, .badArguments)
        h.advance(ms: 600)
        XCTAssertNotNil(h.stat(c, "/ttl"))
        h.advance(ms: 1200)
        XCTAssertNil(h.stat(c, "/ttl"))
    }

    func testSetWatchesFiresWhatWasMissed() {
        var h = ReplicaHarness()
        let c = h.connect()
        _ = h.create(c, "/changed")
        _ = h.create(c, "/same")
        let since = h.replica.tree.lastZxid
        _ = h.send(c, .setData(path: "/changed", data: [1], version: -1))
        let d = h.connect()
        _ = h.send(d, .setWatches(SetWatchesRequest(relativeZxid: since, dataWatches: ["/changed", "/same", "/gone"], existWatches: ["/same", "/later"], childWatches: ["/"])))
        XCTAssertEqual(
            h.events(d),
            [
                WatcherEvent(.nodeDataChanged, path: "/changed"), WatcherEvent(.nodeDeleted, path: "/gone"),
                WatcherEvent(.nodeCreated, path: "/same"),
            ], "the child watch on / is registered: no child of / changed since")
        _ = h.create(c, "/later")
        XCTAssertEqual(h.events(d).suffix(2), [WatcherEvent(.nodeCreated, path: "/later"), WatcherEvent(.nodeChildrenChanged, path: "/")])
    }

    func testUnknownOpcodeGetsUnimplementedAndTheConnectionStays() {
        var h = ReplicaHarness()
        let c = h.connect()
        XCTAssertEqual(h.send(c, .unknown(opcode: 77)).0, .unimplemented)
        XCTAssertFalse(h.closed.contains(c))
        XCTAssertEqual(h.create(c, "/still").0, .ok)
    }

    func testGetAllChildrenNumberCountsDescendants() {
        var h = ReplicaHarness()
        let c = h.connect()
        _ = h.create(c, "/n")
        _ = h.create(c, "/n/a")
        _ = h.create(c, "/n/a/b")
        XCTAssertEqual(h.send(c, .getAllChildrenNumber(path: "/n")).1, .getAllChildrenNumber(2))
        XCTAssertEqual(h.send(c, .getAllChildrenNumber(path: "/")).1, .getAllChildrenNumber(6))
    }

    func testPathValidation() {
        for valid in ["/", "/a", "/a/b", "/...", "/a.b", "/.x", "/zookeeper"] { XCTAssertTrue(Paths.isValid(valid), valid) }
        for invalid in ["", "a", "/a/", "//", "/a//b", "/.", "/..", "/a/.", "/a/../b", "/a\u{0}", "/\u{1}", "/\u{7F}", "/\u{E000}", "/\u{FFF5}", "/😀"] {
            XCTAssertFalse(Paths.isValid(invalid), invalid.debugDescription)
        }
    }
}
