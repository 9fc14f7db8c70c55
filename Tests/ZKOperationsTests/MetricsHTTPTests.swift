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

/// The metrics endpoint and the admin server over real HTTP, against real servers on loopback,
/// with traffic from a real client.
final class OperationsEndpointTests: XCTestCase {
    private var logger: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return logger
    }

    /// GET `url`: status, content type and body.
    private func get(_ url: String) async throws -> (status: Int, contentType: String, body: String) {
        let (data, response) = try await URLSession.shared.data(from: URL(string: url)!)
        let http = response as! HTTPURLResponse
        return (http.statusCode, http.value(forHTTPHeaderField: "Content-Type") ?? "", String(decoding: data, as: UTF8.self))
    }

    private func getJSON(_ url: String) async throws -> [String: Any] {
        let (status, type, body) = try await get(url)
        XCTAssertEqual(status, 200)
        XCTAssertEqual(type, "application/json")
        return try JSONSerialization.jsonObject(with: Data(body.utf8)) as! [String: Any]
    }

    private func withServer(
        _ body: (MiniZKServer, OperationsHTTPServer, OperationsHTTPServer, any EventLoopGroup) async throws -> Void
    ) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var config = ReplicaConfig()
        config.tickMs = 200
        let server = try await MiniZKServer.start(config: config, host: "127.0.0.1", port: 0, group: group, logger: logger)
        let metrics = try await OperationsHTTPServer.start(
            router: MetricsEndpoint.router(server), host: "127.0.0.1", port: 0, logger: logger)
        let admin = try await OperationsHTTPServer.start(
            router: AdminEndpoint.router(server, context: .init(initialConfiguration: "tickTime=200\n")),
            host: "127.0.0.1", port: 0, logger: logger)
        do {
            try await body(server, metrics, admin, group)
        } catch {
            await metrics.stop()
            await admin.stop()
            try? await server.shutdown()
            try? await group.shutdownGracefully()
            throw error
        }
        await metrics.stop()
        await admin.stop()
        try await server.shutdown()
        try await group.shutdownGracefully()
    }

    // MARK: - Metrics

    func testMetricsCarryZooKeeperNamesTypesAndValues() async throws {
        try await withServer { server, metrics, _, group in
            let client = try await TestClient.connect(port: server.localPort, group: group)
            _ = try await client.create("/app", data: Array("hello".utf8))
            _ = try await client.create("/app/member", ephemeral: true)
            for _ in 0..<10 { _ = try await client.get("/app", watch: true) }
            try await client.setData("/app", Array("bye".utf8))
            _ = try await client.nextNotification()

            let (status, contentType, text) = try await get("\(metrics.url)/metrics")
            XCTAssertEqual(status, 200)
            XCTAssertEqual(contentType, MetricsEndpoint.contentType)
            let exposition = try PrometheusText(text)
            let snapshot = try await server.snapshot()

            for name in [
                "znode_count", "watch_count", "ephemerals_count", "approximate_data_size", "outstanding_requests",
                "num_alive_connections", "avg_latency", "min_latency", "max_latency", "packets_received", "packets_sent",
                "global_sessions", "uptime", "open_file_descriptor_count", "max_file_descriptor_count",
            ] {
                XCTAssertEqual(exposition.types[name], "gauge", name)
            }
            XCTAssertEqual(exposition.value("znode_count"), Double(snapshot.status.nodeCount))
            XCTAssertEqual(exposition.value("ephemerals_count"), 1)
            XCTAssertEqual(exposition.value("global_sessions"), 1)
            XCTAssertEqual(exposition.value("num_alive_connections"), 1)

            for name in ["readlatency", "updatelatency", "fsynctime", "snapshottime", "election_time", "sync_processor_batch_size"] {
                XCTAssertEqual(exposition.types[name], "summary", name)
            }
            XCTAssertNotNil(exposition.value("readlatency", labels: ["quantile": "0.99"]))
            // 10 gets; the creates, the set and the session's creation are updates.
            XCTAssertEqual(exposition.value("readlatency_count"), 10)
            XCTAssertEqual(exposition.value("updatelatency_count"), 4)
            // In memory every batch still goes through the storage thread's accounting.
            XCTAssertGreaterThanOrEqual(exposition.value("fsynctime_count") ?? 0, 1)

            for name in ["bytes_received_count", "response_bytes", "connection_request_count", "looking_count"] {
                XCTAssertEqual(exposition.types[name], "counter", name)
            }
            XCTAssertEqual(exposition.value("connection_request_count"), 1)
            XCTAssertGreaterThan(exposition.value("bytes_received_count") ?? 0, 100)
            XCTAssertGreaterThan(exposition.value("response_bytes") ?? 0, 100)
            XCTAssertEqual(exposition.value("looking_count"), 0, "a standalone server never looks for a leader")

            XCTAssertEqual(exposition.types["minizk_group_commit_batch_transactions"], "histogram")
            XCTAssertEqual(exposition.types["minizk_group_commit_write_seconds"], "histogram")
            XCTAssertEqual(
                exposition.value("minizk_group_commit_batch_transactions_sum"), exposition.value("minizk_logged_transactions_total"))
            XCTAssertEqual(exposition.value("minizk_last_zxid"), Double(snapshot.status.lastZxid))
            try await client.close()
        }
    }

    func testEnsembleMetricsCountElectionsAndFollowers() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        var config = ReplicaConfig()
        config.tickMs = 100
        let ensemble = try await Ensemble.start(nodes: 3, config: config, group: group, logger: logger)
        let serving = try await ensemble.waitUntilServing()
        XCTAssertTrue(serving)
        var leaders = 0
        for server in ensemble.servers {
            let exposition = try PrometheusText(try await server.prometheusText())
            XCTAssertGreaterThanOrEqual(exposition.value("looking_count") ?? 0, 1)
            XCTAssertEqual(exposition.value("election_time_count"), 1)
            if try await server.status().mode == "leader" {
                leaders += 1
                XCTAssertEqual(exposition.types["learners"], "gauge")
                XCTAssertEqual(exposition.value("learners"), 2)
                XCTAssertEqual(exposition.value("synced_followers"), 2)
            } else {
                XCTAssertNil(exposition.types["learners"], "only a leader reports learners")
            }
        }
        XCTAssertEqual(leaders, 1)
        let leader = ensemble.servers.first { _ in true }!
        let snapshot = try await leader.operationsSnapshot()
        let zab = AdminCommands.answer("zabstate", snapshot: snapshot)!
        XCTAssertEqual(zab["zabstate"], .string("broadcast"))
        XCTAssertEqual(zab["myid"], .int(1))
        let view = AdminCommands.answer("voting_view", snapshot: snapshot)!
        guard case .object(let members)? = view["current_config"] else { return XCTFail("no current_config") }
        XCTAssertEqual(members.map(\.0), ["1", "2", "3"])
        let lead = AdminCommands.answer("lead", snapshot: snapshot)!
        XCTAssertEqual(lead["leader_id"], .int(snapshot.fourLetterWords.status.leaderId))
        XCTAssertNotEqual(snapshot.fourLetterWords.status.leaderId, -1)
        try await ensemble.shutdown()
        try await group.shutdownGracefully()
    }

    // MARK: - Admin server

    func testAdminCommandsAnswerWithZooKeeperKeys() async throws {
        try await withServer { server, _, admin, group in
            let client = try await TestClient.connect(port: server.localPort, group: group)
            _ = try await client.create("/a", data: Array("x".utf8))
            _ = try await client.create("/a/e", ephemeral: true)
            _ = try await client.get("/a", watch: true)
            _ = try await client.exists("/b", watch: true)
            let session = client.sessionId

            let (_, type, listing) = try await get("\(admin.url)/commands")
            XCTAssertEqual(type, "text/html")
            for command in ["monitor", "server_stats", "stats", "watches", "zabstate", "voting_view"] {
                XCTAssertTrue(listing.contains("<a href=\"/commands/\(command)\">\(command)</a>"), command)
            }

            // The keys of ZooKeeper 3.8's answers, in its order (captured from its admin server).
            let stats = try await getJSON("\(admin.url)/commands/stats")
            XCTAssertEqual(
                Set(stats.keys),
                ["version", "read_only", "server_stats", "client_response", "node_count", "connections", "secure_connections", "command", "error"])
            let serverStats = stats["server_stats"] as! [String: Any]
            XCTAssertEqual(
                Set(serverStats.keys),
                [
                    "packets_sent", "packets_received", "fsync_threshold_exceed_count", "client_response_stats", "data_dir_size",
                    "log_dir_size", "provider_null", "server_state", "last_processed_zxid", "outstanding_requests", "avg_latency",
                    "max_latency", "min_latency", "num_alive_client_connections", "auth_failed_count", "non_mtlsremote_conn_count",
                    "non_mtlslocal_conn_count", "uptime",
                ])
            XCTAssertEqual(serverStats["server_state"] as? String, "standalone")
            XCTAssertEqual(stats["command"] as? String, "stats")
            XCTAssertTrue(stats["error"] is NSNull)

            let connections = try await getJSON("\(admin.url)/commands/cons")
            let first = (connections["connections"] as! [[String: Any]]).first!
            XCTAssertEqual((first["session_id"] as? NSNumber)?.int64Value, session)
            XCTAssertEqual(first["last_operation"] as? String, "EXIS")

            let watches = try await getJSON("\(admin.url)/commands/wchc")
            XCTAssertEqual(watches["session_id_to_watched_paths"] as? [String: [String]], [String(session): ["/a", "/b"]])
            let byPath = try await getJSON("\(admin.url)/commands/watches_by_path")
            let paths = byPath["path_to_session_ids"] as! [String: [NSNumber]]
            XCTAssertEqual(paths["/a"]?.map(\.int64Value), [session])
            let summary = try await getJSON("\(admin.url)/commands/watch_summary")
            XCTAssertEqual(summary["num_connections"] as? Int, 1)
            XCTAssertEqual(summary["num_paths"] as? Int, 2)
            XCTAssertEqual(summary["num_total_watches"] as? Int, 2)

            let dump = try await getJSON("\(admin.url)/commands/dump")
            XCTAssertEqual(dump["session_id_to_ephemeral_paths"] as? [String: [String]], [String(session): ["/a/e"]])

            let monitor = try await getJSON("\(admin.url)/commands/mntr")
            XCTAssertEqual(monitor["command"] as? String, "monitor")
            XCTAssertEqual(monitor["ephemerals_count"] as? Int, 1)
            XCTAssertEqual(monitor["watch_count"] as? Int, 2)
            XCTAssertEqual(monitor["cnt_readlatency"] as? Int, 2)
            XCTAssertNotNil(monitor["p99_updatelatency"])

            let leader = try await getJSON("\(admin.url)/commands/leader")
            XCTAssertEqual(leader["error"] as? String, "server is not initialized")
            let zab = try await getJSON("\(admin.url)/commands/zabstate")
            XCTAssertEqual(zab["voting"] as? Bool, false)
            XCTAssertEqual(zab["zabstate"] as? String, "")
            let initial = try await getJSON("\(admin.url)/commands/icfg")
            XCTAssertEqual(initial["initial_configuration"] as? String, "tickTime=200\n")

            let unknown = try await getJSON("\(admin.url)/commands/nosuch")
            XCTAssertEqual(unknown["error"] as? String, "Unknown command: nosuch")

            let mask = try await getJSON("\(admin.url)/commands/stmk?traceMask=7")
            XCTAssertEqual(mask["tracemask"] as? Int, 7)
            let readBack = try await getJSON("\(admin.url)/commands/gtmk")
            XCTAssertEqual(readBack["tracemask"] as? Int, 7)

            // srst resets the server's counters.
            _ = try await getJSON("\(admin.url)/commands/srst")
            let reset = try await getJSON("\(admin.url)/commands/srvr")
            XCTAssertEqual((reset["server_stats"] as! [String: Any])["packets_received"] as? Int, 0)
            try await client.close()
        }
    }

    func testJSONIsWrittenAsJacksonPrettyPrintsIt() {
        let value = JSONValue.object([
            ("a", .int(1)), ("b", .array([.int(1), .int(2)])), ("c", .array([])), ("d", .object([])),
            ("e", .object([("f", .string("x\"y"))])), ("g", .null), ("h", .double(3.5)),
        ])
        XCTAssertEqual(
            value.text,
            """
            {
              "a" : 1,
              "b" : [ 1, 2 ],
              "c" : [ ],
              "d" : { },
              "e" : {
                "f" : "x\\"y"
              },
              "g" : null,
              "h" : 3.5
            }
            """)
    }
}

/// A parser of the Prometheus text format (0.0.4) strict enough for these tests: every sample
/// belongs to a family declared by a `# TYPE` line before it, with the suffixes its type allows.
struct PrometheusText {
    struct ParseError: Error, CustomStringConvertible {
        var description: String
    }

    var types: [String: String] = [:]
    var samples: [(name: String, labels: [String: String], value: Double)] = []

    init(_ text: String) throws {
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                guard parts.count == 4 else { throw ParseError(description: "bad TYPE line: \(line)") }
                guard types[String(parts[2])] == nil else { throw ParseError(description: "family declared twice: \(line)") }
                types[String(parts[2])] = String(parts[3])
                continue
            }
            if line.hasPrefix("#") { continue }
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                throw ParseError(description: "bad sample: \(line)")
            }
            var name = String(line[..<space])
            var labels: [String: String] = [:]
            if let brace = name.firstIndex(of: "{") {
                let inner = name[name.index(after: brace)..<name.index(before: name.endIndex)]
                for pair in inner.split(separator: ",") {
                    let kv = pair.split(separator: "=", maxSplits: 1)
                    labels[String(kv[0])] = String(kv[1].dropFirst().dropLast())
                }
                name = String(name[..<brace])
            }
            let family = types[name] != nil ? name : ["_count", "_sum", "_bucket"].compactMap { suffix in
                name.hasSuffix(suffix) ? String(name.dropLast(suffix.count)) : nil
            }.first { types[$0] != nil }
            guard let family, let type = types[family] else {
                throw ParseError(description: "sample of no declared family: \(line)")
            }
            if family != name, type != "summary", type != "histogram" {
                throw ParseError(description: "\(type) \(family) with a suffixed sample: \(line)")
            }
            samples.append((name, labels, value))
        }
    }

    func value(_ name: String, labels: [String: String] = [:]) -> Double? {
        samples.first { $0.name == name && $0.labels == labels }?.value
    }
}

/// The zoo.cfg keys of ZooKeeper's metrics provider and admin server.
final class OperationsConfigTests: XCTestCase {
    func testZooCfgKeysTurnTheEndpointsOnAsZooKeeperReadsThem() throws {
        let prometheus = try ZooConfig(parsing: """
            metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider
            metricsProvider.httpPort=7001
            admin.enableServer=true
            admin.serverPort=8081
            """)
        XCTAssertEqual(prometheus.metricsPort, 7001)
        XCTAssertEqual(prometheus.adminPort, 8081)

        let defaults = try ZooConfig(parsing: """
            metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider
            admin.enableServer=true
            """)
        XCTAssertEqual(defaults.metricsPort, 7000)
        XCTAssertEqual(defaults.adminPort, 8080)

        let silent = try ZooConfig(parsing: "tickTime=200\n")
        XCTAssertNil(silent.metricsPort)
        XCTAssertNil(silent.adminPort, "a zoo.cfg that says nothing of the admin server starts none")

        let disabled = try ZooConfig(parsing: "admin.enableServer=false\nadmin.serverPort=8081\n")
        XCTAssertNil(disabled.adminPort)
        let otherProvider = try ZooConfig(parsing: "metricsProvider.className=org.example.Other\nmetricsProvider.httpPort=7001\n")
        XCTAssertNil(otherProvider.metricsPort)
    }
}
