import Logging
import NIOCore
import NIOPosix
import XCTest
import ZKCore
import ZKProtocol

@testable import ZKServer

/// `readBytesPerTurn` and `requestsPerTurn`: a connection that pipelines a burst reads and decodes
/// a turn's share at a time, so a request another client sends meanwhile does not wait behind
/// the whole burst.
final class FairnessTests: XCTestCase {
    func testDefaults() {
        let options = ServerOptions()
        XCTAssertEqual(options.readBytesPerTurn, 4096)
        XCTAssertEqual(options.requestsPerTurn, 64)
    }

    /// 20,000 creates sent in one go (about 1 MB), then one create from another connection: it
    /// commits long before the burst's middle. (Reading all a connection had sent before looking
    /// at the others put it behind the whole burst; throttling is off here, so only the turns
    /// bound what goes first.)
    func testABurstDoesNotQueueAheadOfAClientThatAsksMeanwhile() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var logger = Logger(label: "test")
        logger.logLevel = .error
        var options = ServerOptions()
        options.outstandingRequestsMax = 0
        var config = ReplicaConfig()
        config.outstandingRequestsPerConnectionMax = 100_000
        let server = try await MiniZKServer.start(
            config: config, host: "127.0.0.1", port: 0, group: group, logger: logger, options: options)
        let burst = try await RawClient.connect(port: server.localPort, group: group)
        _ = try await burst.handshake()
        let other = try await RawClient.connect(port: server.localPort, group: group)
        _ = try await other.handshake()

        let count = 20_000
        var buffer = ByteBuffer()
        for index in 1...count {
            let create = Request.create(CreateRequest(path: "/b\(index)", data: [1], acl: ACL.openUnsafe, flags: 0))
            ClientMessageEncoder.encode(xid: Int32(index), create, into: &buffer)
        }
        try await burst.send(buffer)
        var late = ByteBuffer()
        ClientMessageEncoder.encode(
            xid: 1, .create(CreateRequest(path: "/late", data: [1], acl: ACL.openUnsafe, flags: 0)), into: &late)
        try await other.send(late)
        guard try await other.nextFrame(timeout: .seconds(30)) != nil else { return XCTFail("no reply to /late") }
        for index in 1...count {
            guard try await burst.nextFrame(timeout: .seconds(30)) != nil else { return XCTFail("closed before reply \(index)") }
        }
        let lateZxid = try await other.czxid("/late", xid: 2)
        let middleOfBurst = try await other.czxid("/b\(count / 2)", xid: 3)
        XCTAssertLessThan(lateZxid, middleOfBurst, "the create sent after the burst waited behind half of it")
        await burst.close()
        await other.close()
        try await server.shutdown()
        try await group.shutdownGracefully()
    }
}
