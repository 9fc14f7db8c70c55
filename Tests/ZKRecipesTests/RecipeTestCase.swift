import Foundation
import Logging
import NIOPosix
import XCTest
import ZKClient
import ZKCore
import ZKServer

/// Where the recipe tests connect: an in-process MiniZK started per test, or the server named by
/// `ZKCLIENT_TEST_SERVER=host:port` (e.g. Apache ZooKeeper 3.8), as the client tests do. Each
/// test works under its own base node.
class RecipeTestCase: XCTestCase {
    static let externalServer = ProcessInfo.processInfo.environment["ZKCLIENT_TEST_SERVER"]
    var group: MultiThreadedEventLoopGroup!
    var server: MiniZKServer?
    var connectString = ""
    var base = ""
    var clients: [ZooKeeperClient] = []

    override func setUp() async throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        if let external = Self.externalServer {
            connectString = external
        } else {
            var config = ReplicaConfig()
            config.tickMs = 200
            config.extendedTypesEnabled = true
            var logger = Logger(label: "test")
            logger.logLevel = .warning
            let server = try await MiniZKServer.start(config: config, host: "127.0.0.1", port: 0, group: group, logger: logger)
            self.server = server
            connectString = "127.0.0.1:\(server.localPort)"
        }
        base = "/zkrecipes-test-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        let admin = try await client()
        try await admin.create(base)
    }

    override func tearDown() async throws {
        if let admin = try? await client() { await deleteTree(base, admin) }
        for client in clients { await client.close() }
        clients.removeAll()
        try? await server?.shutdown()
        try? await group.shutdownGracefully()
    }

    func client(sessionTimeout: Duration = .seconds(6)) async throws -> ZooKeeperClient {
        var configuration = ZooKeeperClient.Configuration(connectString: connectString, sessionTimeout: sessionTimeout)
        configuration.initialConnectTimeout = .seconds(10)
        let client = try await ZooKeeperClient.connect(configuration: configuration)
        clients.append(client)
        return client
    }

    func deleteTree(_ path: String, _ client: ZooKeeperClient) async {
        if let children = try? await client.getChildren(path) {
            for child in children { await deleteTree("\(path)/\(child)", client) }
        }
        try? await client.delete(path)
    }

    /// Runs `body` with a deadline that only turns a hang into a failure (nothing is timed).
    func within<T: Sendable>(_ seconds: Double = 60, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: .seconds(seconds))
                return nil
            }
            guard let result = try await group.next() ?? nil else {
                group.cancelAll()
                throw TimedOut(seconds: seconds)
            }
            group.cancelAll()
            return result
        }
    }
}

/// A test step that did not finish in time (a failure, never a skip).
struct TimedOut: Error, CustomStringConvertible {
    var seconds: Double
    var description: String { "timed out after \(seconds)s" }
}

/// Records holders entering and leaving a critical section; counts overlaps.
actor Occupancy {
    var inside = 0
    var maxInside = 0
    var entries = 0
    var tokens: [Int64] = []

    func enter(_ token: Int64? = nil) {
        inside += 1
        entries += 1
        maxInside = max(maxInside, inside)
        if let token { tokens.append(token) }
    }

    func exit() { inside -= 1 }
}
