import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import XCTest
import ZKCore
import ZKProtocol
import ZKServer

/// The TLS client port (`MiniZKServer.SecureClientPort`) with real TLS on both ends.
final class TLSClientPortTests: XCTestCase {
    static func fixture(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/tls/\(name)").path
    }

    func clientContext(certificate: String?, key: String?) throws -> NIOSSLContext {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(Self.fixture("ca-cert.pem"))
        tls.certificateVerification = .noHostnameVerification
        if let certificate, let key {
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(Self.fixture(certificate)).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: Self.fixture(key), format: .pem))
        }
        return try NIOSSLContext(configuration: tls)
    }

    func testClientsWithACertificateTheCASignedAreServedOthersAreRefusedAndThePlainPortGoesOn() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let secure = try MiniZKServer.SecureClientPort.pem(
            port: 0, certificateChainFile: Self.fixture("server-cert.pem"), privateKeyFile: Self.fixture("server-key.pem"),
            trustedCAFile: Self.fixture("ca-cert.pem"))
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let server = try await MiniZKServer.start(
            config: ReplicaConfig(), host: "127.0.0.1", port: 0, group: group, logger: logger, secure: secure)
        let securePort = try XCTUnwrap(server.secureLocalPort)
        XCTAssertNotEqual(securePort, server.localPort)

        let client = try await RawClient.connect(
            port: securePort, group: group, tls: try clientContext(certificate: "client-cert.pem", key: "client-key.pem"))
        _ = try await client.handshake()
        let create = Request.create(CreateRequest(path: "/over-tls", data: Array("x".utf8), acl: ACL.openUnsafe, flags: 0))
        guard case .reply(let header, _) = try await client.call(xid: 1, create) else { return XCTFail("no reply") }
        XCTAssertEqual(header.err, 0)
        await client.close()

        // No certificate, or one another CA signed: the handshake fails and nothing is served.
        for (certificate, key) in [(nil, nil), ("stranger-cert.pem", "client-key.pem")] as [(String?, String?)] {
            let context = try clientContext(certificate: certificate, key: key)
            // The server may end the handshake before the client is fully set up: refused too.
            guard let refused = try? await RawClient.connect(port: securePort, group: group, tls: context) else { continue }
            var payload = ByteBuffer()
            ClientMessageEncoder.encode(ConnectRequest(timeoutMs: 10_000), into: &payload)
            try? await refused.send(payload)
            let frame = try? await refused.nextFrame(timeout: .seconds(5))
            XCTAssertNil(frame ?? nil, "served a client with \(certificate ?? "no certificate")")
            await refused.close()
        }

        // The plain port serves the same tree.
        let plain = try await RawClient.connect(port: server.localPort, group: group)
        _ = try await plain.handshake()
        guard case .reply(let existsHeader, _) = try await plain.call(xid: 1, .exists(path: "/over-tls", watch: false)) else {
            return XCTFail("no reply")
        }
        XCTAssertEqual(existsHeader.err, 0)
        await plain.close()
        try await server.shutdown()
        try await group.shutdownGracefully()
    }
}
