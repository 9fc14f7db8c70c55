import Foundation
import Logging
import NIOCore
import NIOPosix
import XCTest
import ZKCore
import ZKOperations
import ZKProtocol
import ZKServer
import ZKTesting

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The web console's page and JSON over real HTTP, served by the admin servers of a real
/// in-process ensemble of three, with traffic from a real client.
final class ConsoleHTTPTests: XCTestCase {
    private var logger: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return logger
    }

    /// The servers the console sees; a killed member is taken out (as a test ensemble does).
    private final class Members: @unchecked Sendable {
        private let lock = NSLock()
        private var servers: [MiniZKServer?]
        init(_ servers: [MiniZKServer]) { self.servers = servers }
        func remove(_ id: Int64) { lock.withLock { servers[Int(id) - 1] = nil } }
        var list: [ConsoleMember] {
            lock.withLock {
                servers.enumerated().map { index, server in
                    ConsoleMember(id: Int64(index + 1), host: "127.0.0.1", clientPort: server?.localPort ?? 0, server: server)
                }
            }
        }
    }

    private func get(_ url: String) async throws -> (status: Int, contentType: String, body: String) {
        let (data, response) = try await URLSession.shared.data(from: URL(string: url)!)
        let http = response as! HTTPURLResponse
        return (http.statusCode, http.value(forHTTPHeaderField: "Content-Type") ?? "", String(decoding: data, as: UTF8.self))
    }

    private func getJSON(_ url: String, status expected: Int = 200) async throws -> [String: Any] {
        let (status, type, body) = try await get(url)
        XCTAssertEqual(status, expected, url)
        XCTAssertEqual(type, "application/json")
        return try JSONSerialization.jsonObject(with: Data(body.utf8)) as! [String: Any]
    }

    private func waitFor(_ what: String, timeout: Duration = .seconds(15), _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        XCTFail("timed out waiting for \(what)")
    }

    func testConsoleShowsTheEnsembleTheTreeSessionsActivityAndLeaderChanges() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        var config = ReplicaConfig()
        config.tickMs = 100
        let ensemble = try await Ensemble.start(nodes: 3, config: config, group: group, logger: logger)
        let servingAtStart = try await ensemble.waitUntilServing()
        XCTAssertTrue(servingAtStart)
        let members = Members(ensemble.servers)
        // Sampled by hand below (a long interval keeps the background sampler out of the way).
        let console = Console(members: { members.list }, sampleIntervalMs: 3_600_000)
        var admins: [OperationsHTTPServer] = []
        for (index, server) in ensemble.servers.enumerated() {
            admins.append(try await OperationsHTTPServer.start(
                router: AdminEndpoint.router(server, context: .init(), console: console, selfId: Int64(index + 1)),
                host: "127.0.0.1", port: 0, logger: logger))
        }
        var client: TestClient?
        do {
            // The page itself: self-contained (nothing fetched from elsewhere).
            let (status, type, page) = try await get("\(admins[0].url)/console")
            XCTAssertEqual(status, 200)
            XCTAssertEqual(type, "text/html; charset=utf-8")
            XCTAssertTrue(page.contains("<title>MiniZK console</title>"))
            XCTAssertTrue(page.contains("/console/api/ensemble"))
            XCTAssertFalse(page.contains("http://") && page.contains("<script src"), "the page loads no script from elsewhere")
            XCTAssertFalse(page.contains("https://"))

            // The ensemble: three members, one leader, the others following in its epoch.
            var leaderId: Int64 = -1
            for server in ensemble.servers where try await server.status().mode == "leader" {
                leaderId = try await server.status().leaderId
            }
            let view = try await getJSON("\(admins[1].url)/console/api/ensemble")
            XCTAssertEqual(view["self"] as? Int, 2)
            XCTAssertEqual((view["leader"] as? NSNumber)?.int64Value, leaderId)
            let rows = view["members"] as! [[String: Any]]
            XCTAssertEqual(rows.map { $0["id"] as? Int }, [1, 2, 3])
            XCTAssertEqual(rows.filter { $0["mode"] as? String == "leader" }.count, 1)
            XCTAssertEqual(rows.filter { $0["mode"] as? String == "follower" }.count, 2)
            for row in rows {
                XCTAssertEqual(row["running"] as? Bool, true)
                XCTAssertEqual((row["leaderId"] as? NSNumber)?.int64Value, leaderId)
                XCTAssertEqual(row["address"] as? String, "127.0.0.1:\(ensemble.servers[(row["id"] as! Int) - 1].localPort)")
                XCTAssertNotNil(row["lagTransactions"] as? Int, "a follower in the leader's epoch has a lag")
                XCTAssertTrue((row["lastZxid"] as? String)?.hasPrefix("0x") ?? false)
            }
            let leaderRow = rows.first { $0["mode"] as? String == "leader" }!
            XCTAssertEqual(leaderRow["lagTransactions"] as? Int, 0)
            XCTAssertEqual(leaderRow["followers"] as? Int, 2)

            // A client's writes, watches and an ephemeral, on member 3.
            let connected = try await TestClient.connect(port: ensemble.servers[2].localPort, group: group)
            client = connected
            _ = try await connected.create("/app", data: Array(#"{"service":"orders"}"#.utf8))
            for name in ["e", "c", "a", "d", "b"] { _ = try await connected.create("/app/\(name)", data: Array(name.utf8)) }
            _ = try await connected.create("/app/b/deeper")
            _ = try await connected.create("/session-node", ephemeral: true)
            _ = try await connected.get("/app", watch: true)
            _ = try await connected.exists("/missing", watch: true)
            let session = "0x" + String(UInt64(bitPattern: connected.sessionId), radix: 16)

            // The tree (from the leader by default): the node's data, Stat, ACL and one page of children.
            let tree = try await getJSON("\(admins[0].url)/console/api/tree?path=/app&offset=1&limit=2")
            XCTAssertEqual((tree["member"] as? NSNumber)?.int64Value, leaderId)
            XCTAssertEqual(tree["found"] as? Bool, true)
            XCTAssertEqual(tree["hasData"] as? Bool, true)
            let data = Data(base64Encoded: tree["dataBase64"] as! String)!
            XCTAssertEqual(String(decoding: data, as: UTF8.self), #"{"service":"orders"}"#)
            let stat = tree["stat"] as! [String: Any]
            XCTAssertEqual(stat["numChildren"] as? Int, 5)
            XCTAssertEqual(stat["dataLength"] as? Int, 20)
            XCTAssertEqual(stat["version"] as? Int, 0)
            XCTAssertEqual(stat["ephemeralOwner"] as? String, "0x0")
            let acl = tree["acl"] as! [[String: Any]]
            XCTAssertEqual(acl.count, 1)
            XCTAssertEqual(acl[0]["scheme"] as? String, "world")
            XCTAssertEqual(acl[0]["id"] as? String, "anyone")
            XCTAssertEqual(acl[0]["perms"] as? String, "cdrwa")
            XCTAssertEqual(tree["totalChildren"] as? Int, 5)
            let page1 = tree["children"] as! [[String: Any]]
            XCTAssertEqual(page1.map { $0["name"] as? String }, ["b", "c"], "sorted, from offset 1, at most 2")
            XCTAssertEqual(page1[0]["numChildren"] as? Int, 1)
            XCTAssertEqual(page1[1]["dataLength"] as? Int, 1)

            // From a chosen member, the same tree once it has applied the writes.
            try await waitFor("member 3 to apply the writes") {
                let view = try await self.getJSON("\(admins[0].url)/console/api/tree?path=/session-node&member=3")
                return view["found"] as? Bool == true
            }
            let ephemeral = try await getJSON("\(admins[0].url)/console/api/tree?path=/session-node&member=3")
            XCTAssertEqual(ephemeral["member"] as? Int, 3)
            XCTAssertEqual((ephemeral["stat"] as! [String: Any])["ephemeralOwner"] as? String, session)
            XCTAssertEqual(ephemeral["hasData"] as? Bool, true)
            let root = try await getJSON("\(admins[0].url)/console/api/tree?path=/&limit=1000")
            XCTAssertEqual((root["children"] as! [[String: Any]]).map { $0["name"] as? String }, ["app", "session-node", "zookeeper"])
            let missing = try await getJSON("\(admins[0].url)/console/api/tree?path=/nope")
            XCTAssertEqual(missing["found"] as? Bool, false)
            let bad = try await getJSON("\(admins[0].url)/console/api/tree?path=app/", status: 400)
            XCTAssertEqual(bad["error"] as? String, "not a znode path: app/")
            // The page size is bounded whatever is asked.
            let bounded = try await getJSON("\(admins[0].url)/console/api/tree?path=/app&limit=1000000")
            XCTAssertEqual(bounded["limit"] as? Int, Console.maximumPageSize)

            // Sessions: the client's, with its ephemeral, the member it is connected to, its watches.
            let sessions = try await getJSON("\(admins[2].url)/console/api/sessions")
            let mine = (sessions["sessions"] as! [[String: Any]]).first { $0["id"] as? String == session }
            XCTAssertNotNil(mine)
            XCTAssertEqual(mine?["ephemerals"] as? [String], ["/session-node"])
            XCTAssertEqual(mine?["member"] as? Int, 3)
            XCTAssertEqual(mine?["watches"] as? [String], ["/app", "/missing"])
            XCTAssertTrue((mine?["address"] as? String)?.hasPrefix("127.0.0.1:") ?? false)

            // Activity: the delta between two samples is the traffic between them.
            await console.monitor.sample()
            for _ in 0..<20 { _ = try await connected.get("/app") }
            try await connected.setData("/app", Array("v2".utf8))
            try await Task.sleep(for: .milliseconds(20))
            await console.monitor.sample()
            let series = try await getJSON("\(admins[0].url)/console/api/series")
            let samples = series["samples"] as! [[String: Any]]
            XCTAssertEqual(samples.count, 2)
            let last = (samples[1]["members"] as! [[String: Any]])
            let member3 = last.first { $0["id"] as? Int == 3 }!
            XCTAssertGreaterThan(member3["requestsPerSecond"] as? Double ?? 0, 0, "21 requests on member 3 between the samples")
            XCTAssertNotNil(member3["readLatencyMs"] as? Double)
            XCTAssertNotNil(member3["updateLatencyMs"] as? Double)
            let leaderSample = last.first { ($0["id"] as? NSNumber)?.int64Value == leaderId }!
            XCTAssertNotNil(leaderSample["fsyncMs"] as? Double, "the leader logged the setData")
            let later = try await getJSON("\(admins[0].url)/console/api/series?since=\(samples[1]["t"] as! Int)")
            XCTAssertEqual((later["samples"] as! [Any]).count, 0)

            // Leader changes: the first leader, then a kill, no leader, and a new one.
            var events = try await getJSON("\(admins[0].url)/console/api/events")["events"] as! [[String: Any]]
            XCTAssertEqual(events.count, 1)
            XCTAssertEqual(events[0]["kind"] as? String, "leader")
            XCTAssertEqual((events[0]["member"] as? NSNumber)?.int64Value, leaderId)
            XCTAssertTrue(events[0]["previous"] is NSNull)

            try await client?.close()
            client = nil
            members.remove(leaderId)
            try await ensemble.servers[Int(leaderId) - 1].kill()
            await console.monitor.sample()
            var newLeader: Int64?
            try await waitFor("a new leader") {
                let view = try await self.getJSON("\(admins[0].url)/console/api/ensemble")
                newLeader = (view["leader"] as? NSNumber)?.int64Value
                return newLeader != nil
            }
            XCTAssertNotEqual(newLeader, leaderId)
            await console.monitor.sample()
            let after = try await getJSON("\(admins[0].url)/console/api/ensemble")
            let killed = (after["members"] as! [[String: Any]]).first { ($0["id"] as? NSNumber)?.int64Value == leaderId }!
            XCTAssertEqual(killed["running"] as? Bool, false)
            XCTAssertEqual(killed["mode"] as? String, "not running")

            events = try await getJSON("\(admins[0].url)/console/api/events")["events"] as! [[String: Any]]
            let kinds = events.map { $0["kind"] as? String ?? "" }
            XCTAssertEqual(kinds.first, "leader")
            XCTAssertTrue(kinds.contains("member-down"), "\(kinds)")
            let change = events.last { $0["kind"] as? String == "leader" }!
            XCTAssertEqual((change["member"] as? NSNumber)?.int64Value, newLeader)
            XCTAssertEqual((change["previous"] as? NSNumber)?.int64Value, leaderId)
            XCTAssertEqual(
                change["text"] as? String,
                "leader changed: member \(newLeader!) leads (epoch \(change["epoch"] as! Int)) after member \(leaderId)")
            XCTAssertGreaterThan(change["epoch"] as! Int, events[0]["epoch"] as! Int)
        } catch {
            try? await client?.close()
            for admin in admins { await admin.stop() }
            try? await ensemble.shutdown()
            try? await group.shutdownGracefully()
            throw error
        }
        await console.monitor.stop()
        for admin in admins { await admin.stop() }
        for member in members.list { try await member.server?.shutdown() }
        try await group.shutdownGracefully()
    }

    func testStandaloneConsoleShowsItsMemberAndZkCliPermissionLetters() async throws {
        // A single standalone server: the console shows that member only.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var config = ReplicaConfig()
        config.tickMs = 200
        let server = try await MiniZKServer.start(config: config, host: "127.0.0.1", port: 0, group: group, logger: logger)
        let console = Console(servers: [server], sampleIntervalMs: 3_600_000)
        let admin = try await OperationsHTTPServer.start(
            router: AdminEndpoint.router(server, context: .init(), console: console, selfId: 1), host: "127.0.0.1", port: 0,
            logger: logger)
        do {
            let client = try await TestClient.connect(port: server.localPort, group: group)
            _ = try await client.create("/readonly", data: [0, 1, 255], acl: [ACL(perms: [.read, .admin], id: .anyone)])
            let view = try await getJSON("\(admin.url)/console/api/tree?path=/readonly")
            XCTAssertEqual((view["acl"] as! [[String: Any]]).first?["perms"] as? String, "ra")
            XCTAssertEqual(Data(base64Encoded: view["dataBase64"] as! String), Data([0, 1, 255]))
            let ensembleView = try await getJSON("\(admin.url)/console/api/ensemble")
            let rows = ensembleView["members"] as! [[String: Any]]
            XCTAssertEqual(rows.count, 1)
            XCTAssertEqual(rows[0]["mode"] as? String, "standalone")
            XCTAssertEqual(ensembleView["leader"] as? Int, 1, "a standalone server counts as its own leader")
            try await client.close()
        } catch {
            await admin.stop()
            try? await server.shutdown()
            try? await group.shutdownGracefully()
            throw error
        }
        await admin.stop()
        try await server.shutdown()
        try await group.shutdownGracefully()
    }
}
