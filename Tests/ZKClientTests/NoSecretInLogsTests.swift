import Foundation
import Logging
import NIOPosix
import NIOSSL
import XCTest
import ZKClient
import ZKClientCore
import ZKCore
import ZKProtocol
import ZKServer
import ZKTesting

/// No secret ever reaches a log line: the server and the clients log at trace level through a
/// capturing handler while every path that handles one runs — digest auth (right, wrong, super),
/// SASL DIGEST-MD5 (right and wrong password), session resumption with the session password, a
/// connection with a bad password, the TLS port with its private key — and no entry, message or
/// metadata, holds a password, a session password, the super digest or the TLS key.
final class NoSecretInLogsTests: XCTestCase {
    /// Every entry logged, flattened to one string each.
    final class Capture: @unchecked Sendable {
        private let lock = NSLock()
        private var lines: [String] = []

        func append(_ line: String) {
            lock.lock()
            lines.append(line)
            lock.unlock()
        }

        var all: [String] {
            lock.lock()
            defer { lock.unlock() }
            return lines
        }

        func logger(_ label: String) -> Logger {
            var logger = Logger(label: label) { label in CapturingLogHandler(label: label, capture: self) }
            logger.logLevel = .trace
            return logger
        }
    }

    struct CapturingLogHandler: LogHandler {
        let label: String
        let capture: Capture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            let fields = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            capture.append("\(label) \(event.level) \(event.message) \(fields) \(event.source) \(event.file)")
        }
    }

    static func fixture(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../ZKServerTests/Fixtures/tls/\(name)").standardized.path
    }

    static let alicePassword = "Alice-Secret-pw-1"
    static let superPassword = "Sup3r-Secret-pw-2"
    static let jaasPassword = "Jaas-Secret-pw-3"
    static let wrongPassword = "Wrong-Secret-pw-4"

    func testNoSecretReachesALogLine() async throws {
        let capture = Capture()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var config = ReplicaConfig()
        config.tickMs = 200
        let superDigest = ACLs.digest("super:" + Self.superPassword)
        config.superDigest = superDigest
        config.saslUsers = ["jaasuser": Self.jaasPassword]
        let secure = try MiniZKServer.SecureClientPort.pem(
            port: 0, certificateChainFile: Self.fixture("server-cert.pem"), privateKeyFile: Self.fixture("server-key.pem"),
            trustedCAFile: Self.fixture("ca-cert.pem"))
        let server = try await MiniZKServer.start(
            config: config, host: "127.0.0.1", port: 0, group: group, logger: capture.logger("server"), secure: secure)
        let plain = "127.0.0.1:\(server.localPort)"
        var sessionPasswords: [[UInt8]] = []
        defer { if ProcessInfo.processInfo.environment["MINIZK_PRINT_LOG"] != nil { for line in capture.all { print(line) } } }

        func configuration(_ label: String, _ connectString: String = plain) -> ZooKeeperClient.Configuration {
            var configuration = ZooKeeperClient.Configuration(connectString: connectString, sessionTimeout: .seconds(10))
            configuration.initialConnectTimeout = .seconds(10)
            configuration.logger = capture.logger(label)
            return configuration
        }

        // Digest auth, a node only its owner reads, a wrong password and super.
        var aliceConfiguration = configuration("alice")
        aliceConfiguration.authInfo = [(scheme: "digest", auth: Array("alice:\(Self.alicePassword)".utf8))]
        let alice = try await ZooKeeperClient.connect(configuration: aliceConfiguration)
        _ = try await alice.create("/secret", data: Array("x".utf8), acl: ACL.creatorAll)
        let intruder = try await ZooKeeperClient.connect(configuration: configuration("intruder"))
        try await intruder.addAuth(scheme: "digest", auth: Array("alice:\(Self.wrongPassword)".utf8))
        do {
            _ = try await intruder.getData("/secret")
            XCTFail("a wrong password read the node")
        } catch {
            XCTAssertEqual(error as? ZooKeeperError, .noAuth)
        }
        try await intruder.addAuth(scheme: "digest", auth: Array("super:\(Self.superPassword)".utf8))
        _ = try await intruder.getData("/secret")

        // A session taken over by another client with its id and password (the first connection
        // is a raw one that does not reconnect), and a take-over with a wrong password.
        let owner = try await TestClient.connect(port: server.localPort, group: group)
        sessionPasswords.append(owner.password)
        var resumeConfiguration = configuration("resumer")
        resumeConfiguration.sessionId = owner.sessionId
        resumeConfiguration.sessionPassword = owner.password
        let resumer = try await ZooKeeperClient.connect(configuration: resumeConfiguration)
        XCTAssertEqual(resumer.sessionId, owner.sessionId)
        _ = try await resumer.exists("/")
        try await owner.waitUntilClosed()
        var forgedConfiguration = configuration("forger")
        forgedConfiguration.sessionId = resumer.sessionId
        forgedConfiguration.sessionPassword = Array(repeating: 0x5a, count: 16)
        forgedConfiguration.initialConnectTimeout = .seconds(3)
        if let forged = try? await ZooKeeperClient.connect(configuration: forgedConfiguration) {
            XCTAssertNotEqual(forged.sessionId, resumer.sessionId, "a forged password resumed the session")
            await forged.close()
        }
        await resumer.close()
        sessionPasswords.append(alice.sessionPassword)
        sessionPasswords.append(intruder.sessionPassword)

        // SASL: the right password, then a wrong one.
        var saslConfiguration = configuration("sasl")
        saslConfiguration.sasl = SASLCredentials(user: "jaasuser", password: Self.jaasPassword)
        let sasl = try await ZooKeeperClient.connect(configuration: saslConfiguration)
        sessionPasswords.append(sasl.sessionPassword)
        _ = try await sasl.exists("/")
        var wrongSASL = configuration("sasl-wrong")
        wrongSASL.sasl = SASLCredentials(user: "jaasuser", password: Self.wrongPassword)
        wrongSASL.initialConnectTimeout = .seconds(3)
        do {
            _ = try await ZooKeeperClient.connect(configuration: wrongSASL)
            XCTFail("SASL accepted a wrong password")
        } catch {
            XCTAssertEqual(error as? ZooKeeperError, .authFailed)
        }

        // The TLS port.
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(Self.fixture("ca-cert.pem"))
        tls.certificateVerification = .noHostnameVerification
        tls.certificateChain = try NIOSSLCertificate.fromPEMFile(Self.fixture("client-cert.pem")).map { .certificate($0) }
        tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: Self.fixture("client-key.pem"), format: .pem))
        var tlsConfiguration = configuration("tls", "127.0.0.1:\(try XCTUnwrap(server.secureLocalPort))")
        tlsConfiguration.tls = tls
        let overTLS = try await ZooKeeperClient.connect(configuration: tlsConfiguration)
        sessionPasswords.append(overTLS.sessionPassword)
        _ = try await overTLS.exists("/")

        await overTLS.close()
        await sasl.close()
        await intruder.close()
        await alice.close()
        try await server.shutdown()
        try await group.shutdownGracefully()

        var secrets = [
            Self.alicePassword, Self.superPassword, Self.jaasPassword, Self.wrongPassword,
            // The digests stand for passwords in ACLs and the super user's configuration.
            String(superDigest.split(separator: ":")[1]), String(ACLs.digest("alice:\(Self.alicePassword)").split(separator: ":")[1]),
        ]
        for password in sessionPasswords where password.contains(where: { $0 != 0 }) {
            secrets.append(password.map { String(format: "%02x", $0) }.joined())
            secrets.append(Data(password).base64EncodedString())
            secrets.append("\(password)")
        }
        for key in ["server-key.pem", "client-key.pem"] {
            let pem = try String(contentsOfFile: Self.fixture(key), encoding: .utf8)
            // Each line of the key's body: a log line would hold at least one whole.
            secrets += pem.split(separator: "\n").filter { !$0.hasPrefix("-----") && $0.count >= 32 }.map(String.init)
        }
        let lines = capture.all
        XCTAssertGreaterThan(lines.count, 10, "the paths above log: \(lines)")
        XCTAssertTrue(lines.contains { $0.contains("SASL authentication failed") }, "the refusal is logged, without the password")
        for line in lines {
            for secret in secrets where line.contains(secret) {
                XCTFail("a secret in a log line: \(line)")
            }
        }
    }
}
