import XCTest
import ZKCore
import ZKProtocol
import ZKSimulator

/// Dynamic reconfiguration on simulated ensembles. Each test names the property it checks.
final class ReconfigTests: XCTestCase {
    static let superDigest = ACLs.digest("super:test")

    /// `server.N` lines for the given participants and observers, with made-up addresses.
    static func configText(voters: [Int64], observers: [Int64] = []) -> String {
        let servers = voters.map { line($0, .participant) } + observers.map { line($0, .observer) }
        return EnsembleConfig(servers: servers).text
    }

    static func line(_ id: Int64, _ role: EnsembleConfig.Role) -> EnsembleConfig.Server {
        EnsembleConfig.Server(
            id: id, host: "127.0.0.1", peerPort: 2000 + Int(id), electionPort: 3000 + Int(id), role: role,
            clientHost: "127.0.0.1", clientPort: 4000 + Int(id))
    }

    /// A cluster whose members start with the configuration `configs[id]` (default: `initial`).
    func cluster(members: [Int64], initial: String, configs: [Int64: String] = [:], reconfigEnabled: Bool = true) -> Cluster {
        var options = Cluster.Options()
        options.configure = { config in
            config.ensembleConfigText = configs[config.serverId] ?? initial
            config.reconfigEnabled = reconfigEnabled
            config.superDigest = ReconfigTests.superDigest
        }
        let cluster = Cluster(members: members, options: options)
        cluster.start()
        XCTAssertTrue(cluster.awaitStable(), "no stable leader")
        return cluster
    }

    func client(_ cluster: Cluster, _ node: Int64, superUser: Bool = true) -> ConnectionID {
        let client = cluster.connectClient(to: node)
        XCTAssertTrue(cluster.run(untilMs: 2000) { $0.session(client) != nil }, "no session from \(node)")
        if superUser {
            // The reply to auth carries the request's xid, as every reply does.
            let xid = cluster.send(client, .auth(type: 0, scheme: "digest", auth: Array("super:test".utf8)))
            XCTAssertTrue(cluster.run(untilMs: 2000) { $0.reply(client, xid: xid) != nil }, "no auth reply")
            XCTAssertEqual(cluster.reply(client, xid: xid)?.0, .ok)
        }
        return client
    }

    @discardableResult
    func call(_ cluster: Cluster, _ client: ConnectionID, _ request: Request, limitMs: Int64 = 3000) -> (ErrorCode, Response)? {
        let xid = cluster.send(client, request)
        cluster.run(untilMs: limitMs) { $0.reply(client, xid: xid) != nil }
        return cluster.reply(client, xid: xid)
    }

    func reconfig(joining: String? = nil, leaving: String? = nil, newMembers: String? = nil, from version: Int64 = -1) -> Request {
        .reconfig(ReconfigRequest(joiningServers: joining, leavingServers: leaving, newMembers: newMembers, currentConfigId: version))
    }

    func create(_ path: String) -> Request {
        .create(CreateRequest(path: path, data: [], acl: ACL.openUnsafe, flags: 0))
    }

    func configData(_ response: Response?) -> String? {
        guard case .getData(let data, _)? = response, let data else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    func voters(_ cluster: Cluster, _ id: Int64) -> [Int64]? {
        guard let node = cluster.replica(id).tree.node("/zookeeper/config"), let data = node.data else { return nil }
        return (try? EnsembleConfig(parsing: String(decoding: data, as: UTF8.self)))?.voters
    }

    // MARK: - Adding

    func testAJoinedParticipantIsSyncedFirstAndCountsInTheQuorumOnceTheReconfigCommits() {
        let initial = Self.configText(voters: [1, 2, 3])
        let cluster = cluster(
            members: [1, 2, 3, 4], initial: initial, configs: [4: Self.configText(voters: [1, 2, 3, 4])])
        // Server 4 is not in the ensemble's configuration: it follows, without a vote.
        XCTAssertTrue(cluster.replica(4).isServing)
        XCTAssertFalse(cluster.leaders.contains(4))
        let admin = client(cluster, 1)
        let (err, response) = call(cluster, admin, reconfig(joining: "server.4=" + Self.line(4, .participant).spec)) ?? (.systemError, nil)
        XCTAssertEqual(err, .ok)
        let text = configData(response) ?? ""
        XCTAssertTrue(text.contains("server.4=127.0.0.1:2004:3004:participant;127.0.0.1:4004"), text)
        let config = try? EnsembleConfig(parsing: text)
        XCTAssertEqual(config?.voters, [1, 2, 3, 4])
        XCTAssertNotEqual(config?.version, 0, "the version is the reconfiguration's zxid")
        cluster.run(forMs: 500)
        for id in cluster.members { XCTAssertEqual(voters(cluster, id), [1, 2, 3, 4], "replica \(id)") }

        // Quorum of four is three: with two of the first three down, the remaining one and
        // server 4 cannot commit; with one down they can.
        let survivors: [Int64] = cluster.leaders == [1] ? [1, 4] : [cluster.leaders[0], 4]
        let down = [Int64]([1, 2, 3].filter { !survivors.contains($0) })
        cluster.crash(down[0])
        XCTAssertTrue(cluster.awaitStable())
        let writer = client(cluster, 4, superUser: false)
        XCTAssertEqual(call(cluster, writer, create("/three-of-four"))?.0, .ok)
        cluster.crash(down[1])
        let xid = cluster.send(writer, create("/two-of-four"))
        cluster.run(forMs: 3000)
        XCTAssertNotEqual(cluster.reply(writer, xid: xid)?.0, .ok, "two of four voters committed a write")
    }

    func testAnObserverFollowsAndServesButItsAcknowledgementsNeverMakeAQuorum() {
        let text = Self.configText(voters: [1, 2, 3], observers: [4])
        let cluster = cluster(members: [1, 2, 3, 4], initial: text)
        XCTAssertEqual(cluster.replica(4).status().mode, "observer")
        XCTAssertFalse(cluster.replica(4).isLeader)
        let writer = client(cluster, 4, superUser: false)
        XCTAssertEqual(call(cluster, writer, create("/via-observer"))?.0, .ok)
        XCTAssertNotNil(cluster.replica(4).tree.node("/via-observer"))
        // Leave one voter and the observer: no quorum of voters, no commit.
        let leader = cluster.leaders[0]
        for id in [1, 2, 3] as [Int64] where id != leader { cluster.crash(id) }
        let xid = cluster.send(writer, create("/no-quorum"))
        cluster.run(forMs: 3000)
        XCTAssertNotEqual(cluster.reply(writer, xid: xid)?.0, .ok, "a voter and an observer committed a write")
        XCTAssertTrue(cluster.leaders.isEmpty, "a leader without a quorum of voters kept leading")
    }

    func testAnObserverIsNeverElected() {
        // Server 4 has the newest history (it is the highest id too) but does not vote.
        let text = Self.configText(voters: [1, 2, 3], observers: [4])
        for _ in 0..<3 {
            let cluster = cluster(members: [1, 2, 3, 4], initial: text)
            XCTAssertNotEqual(cluster.leaders, [4])
            cluster.crash(cluster.leaders[0])
            XCTAssertTrue(cluster.awaitStable())
            XCTAssertEqual(cluster.leaders.count, 1)
            XCTAssertNotEqual(cluster.leaders, [4])
        }
    }

    // MARK: - Removing

    func testRemovingTheLeaderHandsLeadershipToARemainingVoter() {
        let cluster = cluster(members: [1, 2, 3], initial: Self.configText(voters: [1, 2, 3]))
        let leader = cluster.leaders[0]
        let follower = cluster.members.first { $0 != leader }!
        let admin = client(cluster, follower)
        XCTAssertEqual(call(cluster, admin, create("/before"))?.0, .ok)
        let (err, response) = call(cluster, admin, reconfig(leaving: "\(leader)")) ?? (.systemError, nil)
        XCTAssertEqual(err, .ok)
        XCTAssertFalse(configData(response)?.contains("server.\(leader)=") ?? true)
        let remaining = cluster.members.filter { $0 != leader }
        XCTAssertTrue(cluster.run(untilMs: 5000) { c in c.leaders.count == 1 && remaining.contains(c.leaders[0]) })
        let writer = client(cluster, remaining[1], superUser: false)
        var written = false
        for attempt in 0..<10 where !written {
            written = call(cluster, writer, create("/after-\(attempt)"), limitMs: 500)?.0 == .ok
            if !written { cluster.run(forMs: 200) }
        }
        XCTAssertTrue(written, "no write after the leader left")
        for id in remaining { XCTAssertEqual(voters(cluster, id), remaining, "replica \(id)") }
        // The removed server follows without a vote (mode observer) and still has every write.
        XCTAssertTrue(cluster.run(untilMs: 3000) { $0.replica(leader).isServing })
        XCTAssertNotNil(cluster.replica(leader).tree.node("/before"))
    }

    func testANonIncrementalReconfigReplacesTheWholeMembership() {
        let cluster = cluster(members: [1, 2, 3], initial: Self.configText(voters: [1, 2, 3]))
        let admin = client(cluster, 1)
        // Commas or newlines separate the entries, as in ZooKeeper.
        let members = ["server.1=" + Self.line(1, .participant).spec, "server.2=" + Self.line(2, .participant).spec,
                       "server.3=" + Self.line(3, .observer).spec].joined(separator: ",")
        let (err, response) = call(cluster, admin, reconfig(newMembers: members)) ?? (.systemError, nil)
        XCTAssertEqual(err, .ok)
        let config = try? EnsembleConfig(parsing: configData(response) ?? "")
        XCTAssertEqual(config?.voters, [1, 2])
        XCTAssertEqual(config?.observers, [3])
        // Had server 3 led, it stepped down and every client reconnects: so does the administrator.
        XCTAssertTrue(cluster.awaitStable())
        for id in cluster.members { XCTAssertEqual(voters(cluster, id), [1, 2], "replica \(id)") }
        XCTAssertFalse(cluster.leaders.contains(3))
        let again = client(cluster, 1)
        XCTAssertEqual(call(cluster, again, reconfig(newMembers: "server.1=" + Self.line(1, .participant).spec))?.0, .badArguments,
                       "one voter is too few")
        XCTAssertEqual(call(cluster, again, reconfig(newMembers: "nonsense"))?.0, .badArguments)
    }

    func testAfterRemovingAFollowerTwoOfTwoVotersAreNeeded() {
        let cluster = cluster(members: [1, 2, 3], initial: Self.configText(voters: [1, 2, 3]))
        let leader = cluster.leaders[0]
        let followers = cluster.members.filter { $0 != leader }
        let admin = client(cluster, leader)
        XCTAssertEqual(call(cluster, admin, reconfig(leaving: "\(followers[0])"))?.0, .ok)
        cluster.run(forMs: 300)
        // {leader, followers[1]} remain; losing followers[1] loses the quorum, losing the removed one does not.
        cluster.crash(followers[0])
        XCTAssertEqual(call(cluster, admin, create("/still-two"))?.0, .ok)
        cluster.crash(followers[1])
        let xid = cluster.send(admin, create("/one-of-two"))
        cluster.run(forMs: 3000)
        XCTAssertNotEqual(cluster.reply(admin, xid: xid)?.0, .ok)
    }

    // MARK: - Checks

    func testReconfigRefusalsInZooKeepersOrder() {
        let initial = Self.configText(voters: [1, 2, 3])
        let cluster = cluster(members: [1, 2, 3], initial: initial)
        let follower = cluster.members.first { !cluster.leaders.contains($0) }!
        let admin = client(cluster, follower)
        let plain = client(cluster, follower, superUser: false)
        let observer = "server.9=127.0.0.1:2009:3009:observer;127.0.0.1:4009"
        XCTAssertEqual(call(cluster, plain, reconfig(joining: observer))?.0, .noAuth)
        XCTAssertEqual(call(cluster, plain, reconfig(joining: "some thing"))?.0, .badArguments, "arguments are checked before permissions")
        XCTAssertEqual(call(cluster, admin, reconfig(joining: "server.9=127.0.0.1:2009:3009:observer"))?.0, .badArguments, "no client port")
        XCTAssertEqual(call(cluster, admin, reconfig(leaving: "1,2"))?.0, .badArguments, "one voter left")
        XCTAssertEqual(call(cluster, admin, reconfig(joining: observer, from: 12345))?.0, .badVersion)
        let nobody = (7...9).map { "server.\($0)=127.0.0.1:20\($0)0:30\($0)0:participant;127.0.0.1:40\($0)0" }.joined(separator: ",")
        XCTAssertEqual(call(cluster, admin, reconfig(joining: nobody))?.0, .newConfigNoQuorum, "three unsynced voters of six")
        // None of those changed anything.
        for id in cluster.members { XCTAssertEqual(voters(cluster, id), [1, 2, 3]) }
        let (err, response) = call(cluster, admin, reconfig(joining: observer, from: 0)) ?? (.systemError, nil)
        XCTAssertEqual(err, .ok)
        let version = (try? EnsembleConfig(parsing: configData(response) ?? ""))?.version ?? 0
        XCTAssertEqual(call(cluster, admin, reconfig(leaving: "9", from: version + 1))?.0, .badVersion)
        XCTAssertEqual(call(cluster, admin, reconfig(leaving: "9", from: version))?.0, .ok)
    }

    func testAWritePipelinedBehindAuthWhileTheSessionIsCreatedCarriesTheNewIdentity() {
        // Found by `minizk sim --reconfig-ms 500`: the administrator sends connect, auth and
        // reconfig at once; the reconfig reached the leader without the super id.
        let cluster = cluster(members: [1, 2, 3], initial: Self.configText(voters: [1, 2, 3]))
        let follower = cluster.members.first { !cluster.leaders.contains($0) }!
        let admin = cluster.connectClient(to: follower)
        cluster.send(admin, .auth(type: 0, scheme: "digest", auth: Array("super:test".utf8)))
        let xid = cluster.send(admin, reconfig(leaving: "\(cluster.leaders[0])"))
        cluster.run(untilMs: 3000) { $0.reply(admin, xid: xid) != nil }
        XCTAssertEqual(cluster.reply(admin, xid: xid)?.0, .ok)
    }

    func testReconfigIsRefusedWhenDisabled() {
        let cluster = cluster(members: [1, 2, 3], initial: Self.configText(voters: [1, 2, 3]), reconfigEnabled: false)
        let admin = client(cluster, 1)
        XCTAssertEqual(call(cluster, admin, reconfig(leaving: "3"))?.0, .reconfigDisabled)
    }

    func testTheConfigurationSurvivesARestartOfEveryMember() {
        let cluster = cluster(members: [1, 2, 3], initial: Self.configText(voters: [1, 2, 3]))
        let admin = client(cluster, 1)
        XCTAssertEqual(call(cluster, admin, reconfig(joining: "server.3=" + Self.line(3, .observer).spec))?.0, .ok)
        cluster.run(forMs: 300)
        for id in cluster.members { cluster.crash(id) }
        for id in cluster.members { cluster.restart(id) }
        XCTAssertTrue(cluster.awaitStable())
        for id in cluster.members { XCTAssertEqual(voters(cluster, id), [1, 2], "replica \(id)") }
        XCTAssertEqual(cluster.replica(3).status().mode, "observer")
        XCTAssertFalse(cluster.leaders.contains(3))
    }

    // MARK: - Format

    func testConfigTextRoundTripsInZooKeepersFormat() throws {
        let text = "server.1=127.0.0.1:2888:3888:participant;127.0.0.1:2181\nserver.100=0.0.0.0:1:2:observer;0.0.0.0:3\nversion=10000000a"
        let config = try EnsembleConfig(parsing: text)
        XCTAssertEqual(config.voters, [1])
        XCTAssertEqual(config.observers, [100])
        XCTAssertEqual(config.version, 0x1_0000_000a)
        XCTAssertEqual(config.text, text)
        // Role and client host are optional; a bare client port listens everywhere.
        let short = try EnsembleConfig.parseServerLine("server.2=h:1:2;9")
        XCTAssertEqual(short.spec, "h:1:2:participant;0.0.0.0:9")
        for bad in ["server.x=h:1:2", "server.2=h:1", "server.2=h:1:2:leader", "server.2=h:1:2;a:b:c", "some thing", "server.2=h:99999:2"] {
            XCTAssertThrowsError(try EnsembleConfig.parseServerLine(bad), bad)
        }
        let changed = try config.changed(joining: "server.2=127.0.0.1:2889:3889;2182", leaving: "100")
        XCTAssertEqual(changed.ids, [1, 2])
        XCTAssertThrowsError(try config.changed(joining: "server.3=127.0.0.1:2888:1:participant;5", leaving: nil), "address taken")
    }
}
