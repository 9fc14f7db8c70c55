import XCTest
import ZKClient

/// Every operation of `ZooKeeperClient` against a real server (in-process MiniZK, or the one in
/// ZKCLIENT_TEST_SERVER).
final class ClientOperationTests: ClientTestCase {
    func testCreateReadUpdateDeleteAndTheirErrors() async throws {
        let zk = try await client()
        let path = "\(base)/node"
        let (created, stat) = try await zk.create(path, data: Array("one".utf8))
        XCTAssertEqual(created, path)
        XCTAssertEqual(stat.version, 0)
        XCTAssertEqual(stat.dataLength, 3)
        XCTAssertGreaterThan(stat.czxid, 0)
        let (data, readStat) = try await zk.getData(path)
        XCTAssertEqual(String(decoding: data, as: UTF8.self), "one")
        XCTAssertEqual(readStat, stat)
        let value1 = try await zk.exists(path)
        XCTAssertEqual(value1, stat)
        let value2 = try await zk.exists("\(base)/missing")
        XCTAssertNil(value2)

        let updated = try await zk.setData(path, data: Array("two".utf8), version: 0)
        XCTAssertEqual(updated.version, 1)
        await assertThrows(.badVersion) { try await zk.setData(path, data: [], version: 0) }
        await assertThrows(.nodeExists) { try await zk.create(path) }
        await assertThrows(.noNode) { try await zk.getData("\(base)/missing") }
        await assertThrows(.noNode) { try await zk.create("\(base)/missing/child") }
        try await zk.create("\(path)/child")
        await assertThrows(.notEmpty) { try await zk.delete(path) }
        await assertThrows(.badVersion) { try await zk.delete("\(path)/child", version: 5) }
        try await zk.delete("\(path)/child", version: 0)
        try await zk.delete(path)
        let value3 = try await zk.exists(path)
        XCTAssertNil(value3)
        await assertThrows(.badArguments) { try await zk.create("no-slash") }
        await assertThrows(.badArguments) { try await zk.getData("/a//b") }
        do {
            _ = try await zk.getData("\(base)/missing")
        } catch ZooKeeperError.noNode {
            // `catch ZooKeeperError.code` matches on the code.
        }
    }

    func testSequentialEphemeralContainerAndTTLNodes() async throws {
        let zk = try await client()
        let (first, _) = try await zk.create("\(base)/job-", mode: .persistentSequential)
        let (second, _) = try await zk.create("\(base)/job-", mode: .persistentSequential)
        XCTAssertEqual(first, "\(base)/job-0000000000")
        XCTAssertEqual(second, "\(base)/job-0000000001")
        let (ephemeral, ephemeralStat) = try await zk.create("\(base)/eph", mode: .ephemeral)
        XCTAssertEqual(ephemeralStat.ephemeralOwner, zk.sessionId)
        await assertThrows(.noChildrenForEphemerals) { try await zk.create("\(ephemeral)/child") }
        let (sequentialEphemeral, _) = try await zk.create("\(base)/lock-", mode: .ephemeralSequential)
        XCTAssertTrue(sequentialEphemeral.hasPrefix("\(base)/lock-"))
        let value4 = try await zk.getEphemerals(base).sorted()
        XCTAssertEqual(value4, [ephemeral, sequentialEphemeral].sorted())

        let (container, containerStat) = try await zk.create("\(base)/container", mode: .container)
        XCTAssertEqual(container, "\(base)/container")
        XCTAssertEqual(containerStat.ephemeralOwner, 0, "ZooKeeper 3.8 reports 0, not its internal container marker")
        let (ttl, ttlStat) = try await zk.create("\(base)/ttl", mode: .persistentWithTTL, ttl: .seconds(60))
        XCTAssertEqual(ttl, "\(base)/ttl")
        XCTAssertEqual(ttlStat.ephemeralOwner, 0, "ZooKeeper 3.8 reports 0, not the TTL it keeps in ephemeralOwner")

        let value5 = try await zk.getAllChildrenNumber(base)
        XCTAssertEqual(value5, 6)
        let (children, parentStat, _) = try await zk.getChildrenWithStat(base)
        XCTAssertEqual(children.count, 6)
        XCTAssertEqual(parentStat.numChildren, 6)

        // The session's ephemerals go with it.
        await zk.close()
        let other = try await client()
        let value6 = try await other.exists(ephemeral)
        XCTAssertNil(value6)
        let value7 = try await other.exists(sequentialEphemeral)
        XCTAssertNil(value7)
        let value8 = try await other.exists(first)
        XCTAssertNotNil(value8)
        await assertThrows(.sessionExpired) { try await zk.exists(first) }
    }

    func testMultiAppliesAllOrNothingWithPerOperationResults() async throws {
        let zk = try await client()
        try await zk.create("\(base)/b", data: [1])
        var txn = Transaction()
        txn.create("\(base)/a", data: [7])
        txn.check("\(base)/b", version: 0)
        txn.setData("\(base)/b", data: [2], version: 0)
        txn.create("\(base)/c-", mode: .persistentSequential)
        let results = try await zk.multi(txn)
        XCTAssertEqual(results.count, 4)
        XCTAssertEqual(results[0], .created(path: "\(base)/a", stat: nil))
        XCTAssertEqual(results[1], .checked)
        guard case .dataSet(let stat) = results[2] else { return XCTFail("\(results)") }
        XCTAssertEqual(stat.version, 1)
        XCTAssertEqual(results[3], .created(path: "\(base)/c-0000000002", stat: nil))

        var failing = Transaction()
        failing.create("\(base)/d")
        failing.check("\(base)/b", version: 0)
        failing.delete("\(base)/a")
        do {
            try await zk.multi(failing)
            XCTFail("the multi should fail")
        } catch let error as ZooKeeperError {
            XCTAssertEqual(error, .badVersion)
            XCTAssertEqual(error.path, "\(base)/b")
            XCTAssertEqual(error.results?.map(\.error), [.ok, .badVersion, .runtimeInconsistency])
        }
        let value9 = try await zk.exists("\(base)/d")
        XCTAssertNil(value9, "nothing of a failed multi is applied")
        let value10 = try await zk.exists("\(base)/a")
        XCTAssertNotNil(value10)
        let value11 = try await zk.multi(Transaction())
        XCTAssertEqual(value11, [])

        var reads = ReadTransaction()
        reads.getData("\(base)/b")
        reads.getChildren(base)
        reads.getData("\(base)/missing")
        let answers = try await zk.multiRead(reads)
        XCTAssertEqual(answers.count, 3)
        guard case .data(let data, _) = answers[0] else { return XCTFail("\(answers)") }
        XCTAssertEqual(data, [2])
        guard case .children(let children) = answers[1] else { return XCTFail("\(answers)") }
        XCTAssertEqual(children.sorted(), ["a", "b", "c-0000000002"])
        XCTAssertEqual(answers[2], .failed(.noNode))
    }

    func testChrootPrefixesRequestsAndStripsReplies() async throws {
        let root = try await client()
        let zk = try await client(chroot: base)
        let (created, _) = try await zk.create("/x", data: [1])
        XCTAssertEqual(created, "/x")
        let value12 = try await root.exists("\(base)/x")
        XCTAssertNotNil(value12)
        let (sequential, _) = try await zk.create("/s-", mode: .ephemeralSequential)
        XCTAssertTrue(sequential.hasPrefix("/s-"), sequential)
        let value13 = try await zk.getEphemerals()
        XCTAssertEqual(value13, [sequential])
        let value14 = try await zk.getChildren("/").sorted()
        XCTAssertEqual(value14, ["s-0000000001", "x"])
        let value15 = try await zk.sync("/x")
        XCTAssertEqual(value15, "/x")
        var txn = Transaction()
        txn.create("/y")
        let value16 = try await zk.multi(txn)
        XCTAssertEqual(value16, [.created(path: "/y", stat: nil)])
        let (_, _, watch) = try await zk.getData("/x", watch: true)
        try await root.setData("\(base)/x", data: [2])
        let event = try await event(watch)
        XCTAssertEqual(event, WatchEvent(type: .nodeDataChanged, path: "/x"))
        let (config, _, _) = try await zk.getConfig()
        _ = config  // /zookeeper/config is read outside the chroot (it may be empty standalone).
    }

    func testAuthDigestACLsAndWhoAmI() async throws {
        let owner = try await client()
        try await owner.addAuth(scheme: "digest", auth: Array("alice:secret".utf8))
        let path = "\(base)/private"
        try await owner.create(path, data: [1], acl: ACL.creatorAll)
        let (acl, aclStat) = try await owner.getACL(path)
        XCTAssertEqual(acl.count, 1)
        XCTAssertEqual(acl.first?.id.scheme, "digest")
        XCTAssertEqual(acl.first?.id.id.hasPrefix("alice:"), true)
        XCTAssertEqual(aclStat.aversion, 0)
        let value17 = try await owner.getData(path).data
        XCTAssertEqual(value17, [1])
        let identities = try await owner.whoAmI()
        XCTAssertTrue(identities.contains(ClientInfo(authScheme: "digest", user: "alice")), "\(identities)")

        let stranger = try await client()
        await assertThrows(.noAuth) { try await stranger.getData(path) }
        await assertThrows(.noAuth) { try await stranger.setData(path, data: [2]) }
        let friend = try await client { $0.authInfo = [(scheme: "digest", auth: Array("alice:secret".utf8))] }
        let value18 = try await friend.getData(path).data
        XCTAssertEqual(value18, [1])

        let opened = try await owner.setACL(path, acl: ACL.readUnsafe, version: 0)
        XCTAssertEqual(opened.aversion, 1)
        let value19 = try await stranger.getData(path).data
        XCTAssertEqual(value19, [1])
        await assertThrows(.noAuth) { try await stranger.setData(path, data: [2]) }
    }

    func testRetryPolicyRetriesOnlyRetryableErrors() async throws {
        let zk = try await client()
        let policy = RetryPolicy(attempts: 3, baseDelay: .milliseconds(1), maxDelay: .milliseconds(4))
        XCTAssertEqual(policy.delay(beforeRetry: 0), .milliseconds(1))
        XCTAssertEqual(policy.delay(beforeRetry: 1), .milliseconds(2))
        XCTAssertEqual(policy.delay(beforeRetry: 5), .milliseconds(4))
        let path = "\(base)/missing"
        // noNode is an answer, not a failure to get one: no retry.
        await assertThrows(.noNode) { try await policy.run { try await zk.getData(path) } }
        try await zk.create(path, data: [3])
        let data = try await policy.run { try await zk.getData(path).data }
        XCTAssertEqual(data, [3])
    }
}
