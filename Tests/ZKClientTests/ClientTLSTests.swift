import Foundation
import Logging
import NIOPosix
import NIOSSL
import XCTest
import ZKClient
import ZKCore
import ZKServer

/// The client over TLS to MiniZK's secure client port (the certificates of ZKServerTests).
final class ClientTLSTests: ClientTestCase {
    static func fixture(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../ZKServerTests/Fixtures/tls/\(name)").standardized.path
    }

    func testOperationsAndWatchesOverTLS() async throws {
        if isExternal {
            throw XCTSkip("needs an in-process MiniZK with a TLS port (ZKCLIENT_TEST_SERVER is set)")
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let secure = try MiniZKServer.SecureClientPort.pem(
            port: 0, certificateChainFile: Self.fixture("server-cert.pem"), privateKeyFile: Self.fixture("server-key.pem"),
            trustedCAFile: Self.fixture("ca-cert.pem"))
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let server = try await MiniZKServer.start(config: ReplicaConfig(), host: "127.0.0.1", port: 0, group: group, logger: logger, secure: secure)
        let securePort = try XCTUnwrap(server.secureLocalPort)

        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(Self.fixture("ca-cert.pem"))
        tls.certificateVerification = .noHostnameVerification
        tls.certificateChain = try NIOSSLCertificate.fromPEMFile(Self.fixture("client-cert.pem")).map { .certificate($0) }
        tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: Self.fixture("client-key.pem"), format: .pem))
        var configuration = ZooKeeperClient.Configuration(connectString: "127.0.0.1:\(securePort)", sessionTimeout: .seconds(10))
        configuration.tls = tls
        let zk = try await ZooKeeperClient.connect(configuration: configuration)
        let writer = try await ZooKeeperClient.connect(configuration: configuration)
        try await zk.create("/secure", data: Array("tls".utf8))
        let (data, _, watch) = try await zk.getData("/secure", watch: true)
        XCTAssertEqual(data, Array("tls".utf8))
        try await writer.setData("/secure", data: [1])
        let event = try await event(watch)
        XCTAssertEqual(event, WatchEvent(type: .nodeDataChanged, path: "/secure"))

        // Without a client certificate the server refuses the handshake: connect gives up.
        var refused = configuration
        refused.tls?.certificateChain = []
        refused.tls?.privateKey = nil
        refused.initialConnectTimeout = .seconds(1)
        refused.reconnectDelay = .milliseconds(100)
        do {
            _ = try await ZooKeeperClient.connect(configuration: refused)
            XCTFail("served without a client certificate")
        } catch {
            XCTAssertEqual(error as? ZooKeeperError, .connectionLoss)
        }

        await zk.close()
        await writer.close()
        try await server.shutdown()
        try await group.shutdownGracefully()
    }
}
