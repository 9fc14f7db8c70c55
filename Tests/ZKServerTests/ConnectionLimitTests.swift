import Logging
import NIOCore
import NIOPosix
import XCTest
import ZKCore
import ZKProtocol

@testable import ZKServer

/// `maxClientCnxns` (per client address) and `maxCnxns` (in all) over real sockets: a connection
/// beyond a limit is closed with a logged reason and the others carry on.
final class ConnectionLimitTests: XCTestCase {
    private func withServer(
        options: ServerOptions,
        _ body: (MiniZKServer, any EventLoopGroup, RecordingLogHandler.Storage) async throws -> Void
    ) async throws {
        var options = options
        options.fourLetterWords = .all  // ruok and conf tell what the server admits
        try await withStandaloneServer(options: options, body)
    }

    private func session(port: Int, group: any EventLoopGroup) async throws -> RawClient {
        let client = try await RawClient.connect(port: port, group: group)
        _ = try await client.handshake()
        return client
    }

    private func assertServes(_ client: RawClient, xid: Int32, file: StaticString = #filePath, line: UInt = #line) async throws {
        let reply = try await client.call(xid: xid, .exists(path: "/", watch: false))
        guard case .reply(let header, _) = reply else { return XCTFail("unexpected \(reply)", file: file, line: line) }
        XCTAssertEqual(header.err, 0, file: file, line: line)
    }

    /// Connects and returns what the server sent before closing the connection. The server may
    /// close it before the client's pipeline is even set up, which counts as closed with nothing.
    private func textUntilRefused(port: Int, group: any EventLoopGroup) async throws -> String {
        let client: RawClient
        do {
            client = try await RawClient.connect(port: port, group: group)
        } catch ChannelPipelineError.notFound {
            return ""
        }
        try? await client.send(bytes: Array("ruok".utf8))
        return try await client.textUntilClosed()
    }

    func testDefaultsAreZooKeepers() {
        let options = ServerOptions()
        XCTAssertEqual(options.connectionsPerClientAddressMax, 60)
        XCTAssertEqual(options.connectionsMax, 0)
    }

    func testZooCfgKeysAreZooKeepers() throws {
        let config = try ZooConfig(parsing: """
            tickTime=200
            maxClientCnxns=10
            maxCnxns=500
            globalOutstandingLimit=2000
            enforceQuota=true
            """)
        XCTAssertEqual(config.maxClientCnxns, 10)
        XCTAssertEqual(config.maxCnxns, 500)
        XCTAssertEqual(config.globalOutstandingLimit, 2000)
        XCTAssertTrue(config.enforceQuota)
        XCTAssertTrue(config.replicaConfig(for: 1).enforceQuota)
        let defaults = try ZooConfig(parsing: "tickTime=200\n")
        XCTAssertNil(defaults.maxClientCnxns)
        XCTAssertFalse(defaults.replicaConfig(for: 1).enforceQuota)
    }

    func testConnectionsOverThePerAddressLimitAreClosedAndTheOthersServe() async throws {
        var options = ServerOptions()
        options.connectionsPerClientAddressMax = 3
        try await withServer(options: options) { server, group, logs in
            var clients: [RawClient] = []
            for _ in 0..<3 { clients.append(try await session(port: server.localPort, group: group)) }
            // Closed without an answer, whatever it sends.
            let text = try await textUntilRefused(port: server.localPort, group: group)
            XCTAssertEqual(text, "")
            let entry = try await logs.first { $0.message.hasPrefix("Too many connections from") }
            XCTAssertEqual(entry.message, "Too many connections from 127.0.0.1 - max is 3")
            XCTAssertEqual(entry.level, .warning)
            for (index, client) in clients.enumerated() { try await assertServes(client, xid: Int32(index + 1)) }

            // A closed connection frees its place.
            await clients.removeLast().close()
            var admitted: Bool? = nil
            for _ in 0..<200 where admitted == nil {
                if try await textUntilRefused(port: server.localPort, group: group) == "imok" {
                    admitted = true
                } else {
                    try await Task.sleep(for: .milliseconds(10))  // the close may not have reached the server yet
                }
            }
            XCTAssertNotNil(admitted, "no connection admitted after one closed")
            let conf = try await RawClient.connect(port: server.localPort, group: group)
            try await conf.send(bytes: Array("conf".utf8))
            let configuration = try await conf.textUntilClosed()
            XCTAssertTrue(configuration.contains("maxClientCnxns=3\n"), configuration)
            for client in clients { await client.close() }
        }
    }

    func testConnectionsOverTheTotalLimitAreClosed() async throws {
        var options = ServerOptions()
        options.connectionsPerClientAddressMax = 0
        options.connectionsMax = 2
        try await withServer(options: options) { server, group, logs in
            let first = try await session(port: server.localPort, group: group)
            let second = try await session(port: server.localPort, group: group)
            let text = try await textUntilRefused(port: server.localPort, group: group)
            XCTAssertEqual(text, "")
            let entry = try await logs.first { $0.message.hasPrefix("Too many connections") }
            XCTAssertEqual(entry.message, "Too many connections max allowed is 2")
            try await assertServes(first, xid: 1)
            try await assertServes(second, xid: 1)
            await first.close()
            await second.close()
        }
    }
}
