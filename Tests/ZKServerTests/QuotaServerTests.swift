import Foundation
import Logging
import NIOCore
import NIOPosix
import XCTest
import ZKCore
import ZKProtocol
import ZKServer
import ZKStorage

/// Quotas over real sockets: counted identically on every member of an ensemble, enforced
/// whichever member a client writes through, and kept across restarts from the log and from
/// snapshots.
final class QuotaServerTests: XCTestCase {
    var logger: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = .error
        return logger
    }

    private final class Caller {
        let client: RawClient
        var xid: Int32 = 0
        init(_ client: RawClient) { self.client = client }

        func call(_ request: Request) async throws -> (ErrorCode, Response) {
            xid += 1
            guard case .reply(let header, let body) = try await client.call(xid: xid, request) else {
                throw TestTimeout(what: "a reply to \(request.opcode)")
            }
            return (ErrorCode(rawValue: header.err) ?? .systemError, body)
        }

        func create(_ path: String, _ data: String = "") async throws -> ErrorCode {
            try await call(.create(CreateRequest(path: path, data: Array(data.utf8), acl: ACL.openUnsafe, flags: 0))).0
        }

        func data(_ path: String) async throws -> String? {
            guard case (.ok, .getData(let data, _)) = try await call(.getData(path: path, watch: false)) else { return nil }
            return String(decoding: data ?? [], as: UTF8.self)
        }

        /// zkCli's `setquota` on a path without a quota: parents, limits, stats with zeros.
        func setQuota(_ path: String, limits: String) async throws {
            var node = Paths.quota
            for name in path.split(separator: "/") {
                node += "/\(name)"
                let code = try await create(node)
                XCTAssertTrue(code == .ok || code == .nodeExists, "\(node): \(code)")
            }
            let limitsCode = try await create(node + "/" + Quotas.limitNode, limits)
            XCTAssertEqual(limitsCode, .ok)
            let statsCode = try await create(node + "/" + Quotas.statNode, "count=0,bytes=0")
            XCTAssertEqual(statsCode, .ok)
        }
    }

    private func connect(port: Int, group: any EventLoopGroup) async throws -> Caller {
        let client = try await RawClient.connect(port: port, group: group)
        _ = try await client.handshake()
        return Caller(client)
    }

    func testAnEnsembleCountsOnEveryMemberAndRefusesThroughAnyMember() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        var config = ReplicaConfig()
        config.tickMs = 100
        config.enforceQuota = true
        let ensemble = try await Ensemble.start(nodes: 3, config: config, group: group, logger: logger)
        let serving = try await ensemble.waitUntilServing()
        XCTAssertTrue(serving)

        let admin = try await connect(port: ensemble.servers[0].localPort, group: group)
        let createQ = try await admin.create("/q")
        XCTAssertEqual(createQ, .ok)
        try await admin.setQuota("/q", limits: "count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=4")
        // Creates through each member in turn, until the fourth node of /q's subtree.
        var codes: [ErrorCode] = []
        for index in 0..<6 {
            let writer = try await connect(port: ensemble.servers[index % 3].localPort, group: group)
            codes.append(try await writer.create("/q/n\(index)", "ab"))
            await writer.client.close()
        }
        XCTAssertEqual(codes, [.ok, .ok, .ok, .quotaExceeded, .quotaExceeded, .quotaExceeded])

        for server in ensemble.servers {
            let reader = try await connect(port: server.localPort, group: group)
            _ = try await reader.call(.sync(path: "/"))
            let stats = try await reader.data(Quotas.statPath("/q"))
            XCTAssertEqual(stats, "count=4,bytes=6", "member on \(server.localPort)")
            await reader.client.close()
        }
        var digests: Set<UInt64> = []
        for server in ensemble.servers { digests.insert(try await server.status().digest) }
        XCTAssertEqual(digests.count, 1, "replica trees differ")
        await admin.client.close()
        try await ensemble.shutdown()
        try await group.shutdownGracefully()
    }

    func testStatsAndLimitsSurviveRestartsFromTheLogAndFromSnapshots() async throws {
        let directory = NSTemporaryDirectory() + "minizk-quota-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let logger = self.logger
        func start(snapshotEvery: Int) async throws -> MiniZKServer {
            var config = ReplicaConfig()
            config.tickMs = 200
            config.dataDir = directory
            config.enforceQuota = true
            var storeOptions = SQLiteStore.Options()
            storeOptions.forceSync = false
            var options = ServerOptions()
            options.snapshotEveryTransactions = snapshotEvery
            options.snapshotSeed = 3
            return try await MiniZKServer.start(
                config: config, host: "127.0.0.1", port: 0, group: group, logger: logger, options: options,
                store: try SQLiteStore(directory: directory, options: storeOptions))
        }

        // First life: the log only.
        let first = try await start(snapshotEvery: 1_000_000)
        var client = try await connect(port: first.localPort, group: group)
        let createQ = try await client.create("/q", "1234")
        XCTAssertEqual(createQ, .ok)
        try await client.setQuota("/q", limits: "count=-1,bytes=-1=;byteHardLimit=10;countHardLimit=-1")
        let createA = try await client.create("/q/a", "12345")
        XCTAssertEqual(createA, .ok)
        await client.client.close()
        try await first.shutdown()

        // Second life: replayed from the log; then enough writes for snapshots.
        let second = try await start(snapshotEvery: 10)
        client = try await connect(port: second.localPort, group: group)
        let replayed = try await client.data(Quotas.statPath("/q"))
        XCTAssertEqual(replayed, "count=2,bytes=9")
        let refused = try await client.create("/q/b", "xy")
        XCTAssertEqual(refused, .quotaExceeded, "9 + 2 bytes is above the hard limit of 10")
        for index in 0..<30 {
            let code = try await client.create("/other\(index)")
            XCTAssertEqual(code, .ok)
        }
        let createB = try await client.create("/q/b", "x")
        XCTAssertEqual(createB, .ok)
        var written: Int64 = 0
        for _ in 0..<1000 where written == 0 {
            written = try await second.snapshot().storage.snapshotsWritten
            if written == 0 { try await Task.sleep(for: .milliseconds(10)) }
        }
        XCTAssertGreaterThan(written, 0, "no snapshot was taken")
        await client.client.close()
        try await second.shutdown()

        // Third life: from a snapshot (and what followed it).
        let third = try await start(snapshotEvery: 1_000_000)
        client = try await connect(port: third.localPort, group: group)
        let restored = try await client.data(Quotas.statPath("/q"))
        XCTAssertEqual(restored, "count=3,bytes=10")
        let limits = try await client.data(Quotas.limitPath("/q"))
        XCTAssertEqual(limits, "count=-1,bytes=-1=;byteHardLimit=10;countHardLimit=-1")
        let over = try await client.create("/q/c", "z")
        XCTAssertEqual(over, .quotaExceeded)
        let empty = try await client.create("/q/c")
        XCTAssertEqual(empty, .ok, "a node without data adds no bytes")
        await client.client.close()
        try await third.shutdown()
        try await group.shutdownGracefully()
    }
}
