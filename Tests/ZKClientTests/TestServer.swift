import Foundation
import Logging
import NIOCore
import NIOPosix
import XCTest
import ZKClient
import ZKCore
import ZKServer

/// Where the client tests connect: an in-process MiniZK started per test, or the server named by
/// `ZKCLIENT_TEST_SERVER=host:port` (e.g. Apache ZooKeeper 3.8, see
/// scripts/client-tests-against-zk.sh). Every test works under its own base node so that runs
/// against a shared server do not see each other.
class ClientTestCase: XCTestCase {
    static let externalServer = ProcessInfo.processInfo.environment["ZKCLIENT_TEST_SERVER"]
    /// The SASL DIGEST-MD5 users of the server (its JAAS `Server` section). An external server has
    /// them when `ZKCLIENT_TEST_SASL=1` (scripts/client-tests-against-zk.sh configures ZooKeeper so).
    static let saslUsers = ["jaasuser": "jaas_password", "bob": "bob_secret"]
    var serverHasSASL: Bool { !isExternal || ProcessInfo.processInfo.environment["ZKCLIENT_TEST_SASL"] == "1" }
    var group: MultiThreadedEventLoopGroup!
    var server: MiniZKServer?
    var connectString = ""
    /// This test's base node, e.g. /zkclient-test-1a2b3c4d.
    var base = ""
    var clients: [ZooKeeperClient] = []

    var isExternal: Bool { Self.externalServer != nil }

    var logger: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        return logger
    }

    override func setUp() async throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        if let external = Self.externalServer {
            connectString = external
        } else {
            var config = ReplicaConfig()
            config.tickMs = 200
            config.extendedTypesEnabled = true
            config.saslUsers = Self.saslUsers
            let server = try await MiniZKServer.start(config: config, host: "127.0.0.1", port: 0, group: group, logger: logger)
            self.server = server
            connectString = "127.0.0.1:\(server.localPort)"
        }
        base = "/zkclient-test-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        let admin = try await client()
        try await admin.create(base)
    }

    override func tearDown() async throws {
        if let admin = try? await client() {
            await deleteTree(base, admin)
        }
        for client in clients { await client.close() }
        clients.removeAll()
        try? await server?.shutdown()
        try? await group.shutdownGracefully()
    }

    /// A connected client, closed at tearDown.
    func client(chroot: String = "", sessionTimeout: Duration = .seconds(4), configure: (inout ZooKeeperClient.Configuration) -> Void = { _ in })
        async throws -> ZooKeeperClient
    {
        var configuration = ZooKeeperClient.Configuration(connectString: connectString + chroot, sessionTimeout: sessionTimeout)
        configuration.initialConnectTimeout = .seconds(10)
        if ProcessInfo.processInfo.environment["ZKCLIENT_TEST_LOG"] != nil {
            var logger = Logger(label: "client\(clients.count)")
            logger.logLevel = .debug
            configuration.logger = logger
        }
        configure(&configuration)
        let client = try await ZooKeeperClient.connect(configuration: configuration)
        clients.append(client)
        return client
    }

    func deleteTree(_ path: String, _ client: ZooKeeperClient) async {
        if let children = try? await client.getChildren(path) {
            for child in children { await deleteTree(path == "/" ? "/\(child)" : "\(path)/\(child)", client) }
        }
        try? await client.delete(path)
    }

    /// Waits for `condition` on a stream element, failing after `seconds` (only turns a hang into
    /// a failure; nothing is timed).
    func first<S: AsyncSequence & Sendable>(
        _ sequence: S, within seconds: Double = 20, where condition: @escaping @Sendable (S.Element) -> Bool
    ) async throws -> S.Element? where S.Element: Sendable {
        try await withThrowingTaskGroup(of: S.Element?.self) { group in
            group.addTask {
                for try await element in sequence where condition(element) { return element }
                return nil
            }
            group.addTask {
                try await Task.sleep(for: .seconds(seconds))
                return nil
            }
            let result = try await group.next() ?? nil
            group.cancelAll()
            return result
        }
    }

    /// Awaits a one-shot watch's event, failing after `seconds`.
    func event(_ watch: OneShotWatch?, within seconds: Double = 20) async throws -> WatchEvent? {
        guard let watch else { XCTFail("no watch"); return nil }
        return try await withThrowingTaskGroup(of: WatchEvent?.self) { group in
            group.addTask { try await watch.event() }
            group.addTask {
                try await Task.sleep(for: .seconds(seconds))
                return nil
            }
            let result = try await group.next() ?? nil
            group.cancelAll()
            return result
        }
    }

    /// The first `count` events of a persistent watch, failing after `seconds`.
    func collect(_ watch: PersistentWatch, count: Int, within seconds: Double = 20) async throws -> [WatchEvent] {
        try await withThrowingTaskGroup(of: [WatchEvent]?.self) { group in
            group.addTask {
                var events: [WatchEvent] = []
                for try await event in watch {
                    events.append(event)
                    if events.count == count { break }
                }
                return events
            }
            group.addTask {
                try await Task.sleep(for: .seconds(seconds))
                return nil
            }
            let result = try await group.next() ?? nil
            group.cancelAll()
            guard let result else {
                XCTFail("timed out waiting for \(count) events on \(watch.path)")
                return []
            }
            return result
        }
    }

    /// Whether a persistent watch's sequence ends (after removal) within `seconds`; the events
    /// still buffered are skipped.
    func ends(_ watch: PersistentWatch, within seconds: Double = 20) async throws -> Bool {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                for try await _ in watch {}
                return true
            }
            group.addTask {
                try await Task.sleep(for: .seconds(seconds))
                return false
            }
            let result = try await group.next() ?? false
            group.cancelAll()
            return result
        }
    }

    /// How a one-shot watch ends: its event or its error, failing after `seconds`.
    func outcome(_ watch: OneShotWatch?, within seconds: Double = 20) async -> Result<WatchEvent, ZooKeeperError>? {
        guard let watch else { XCTFail("no watch"); return nil }
        return await withTaskGroup(of: Result<WatchEvent, ZooKeeperError>?.self) { group in
            group.addTask {
                do { return .success(try await watch.event()) } catch { return .failure(error as? ZooKeeperError ?? .systemError) }
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(seconds))
                return nil
            }
            let result = await group.next() ?? nil
            group.cancelAll()
            return result
        }
    }

    func assertThrows<T>(_ expected: ZooKeeperError, _ body: () async throws -> T, file: StaticString = #filePath, line: UInt = #line) async {
        do {
            _ = try await body()
            XCTFail("expected \(expected)", file: file, line: line)
        } catch {
            XCTAssertEqual(error as? ZooKeeperError, expected, "\(error)", file: file, line: line)
        }
    }
}
