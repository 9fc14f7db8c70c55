import Logging
import NIOCore
import NIOPosix
import XCTest
import ZKCore
import ZKProtocol

@testable import ZKServer

/// `globalOutstandingLimit`: above it the server stops reading client sockets, and reads them
/// again once requests are answered; nothing is dropped.
final class ThrottlingTests: XCTestCase {
    func testDefaultIsZooKeepers() {
        XCTAssertEqual(ServerOptions().outstandingRequestsMax, 1000)
    }

    func testAboveTheLimitSocketsAreNotReadUntilRequestsAreAnswered() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        var config = ReplicaConfig()
        // Long ticks: the leader must not give up on its paused followers during the test.
        config.tickMs = 1000
        var options = ServerOptions()
        options.outstandingRequestsMax = 5
        var logger = Logger(label: "test")
        logger.logLevel = .error
        let ensemble = try await Ensemble.start(nodes: 3, config: config, group: group, logger: logger, options: options)
        let serving = try await ensemble.waitUntilServing()
        XCTAssertTrue(serving)
        var leader: MiniZKServer? = nil
        var followers: [MiniZKServer] = []
        for server in ensemble.servers {
            if try await server.status().mode == "leader" { leader = server } else { followers.append(server) }
        }
        guard let leader else { return XCTFail("no leader") }

        let writer = try await RawClient.connect(port: leader.localPort, group: group)
        _ = try await writer.handshake()
        // Without its followers the leader cannot commit: ten creates stay outstanding.
        for follower in followers { try await follower.pause() }
        var buffer = ByteBuffer()
        for index in 1...10 {
            let create = Request.create(CreateRequest(path: "/t\(index)", data: [1], acl: ACL.openUnsafe, flags: 0))
            ClientMessageEncoder.encode(xid: Int32(index), create, into: &buffer)
        }
        try await writer.send(buffer)
        var throttling = try await leader.clientThrottling()
        for _ in 0..<500 where !throttling.isThrottled {
            try await Task.sleep(for: .milliseconds(10))
            throttling = try await leader.clientThrottling()
        }
        XCTAssertTrue(throttling.isThrottled, "\(throttling)")
        XCTAssertEqual(throttling.outstandingRequests, 10)

        // A new client's ConnectRequest waits in its socket, unread.
        let late = try await RawClient.connect(port: leader.localPort, group: group)
        var handshake = ByteBuffer()
        ClientMessageEncoder.encode(ConnectRequest(timeoutMs: 10_000), into: &handshake)
        try await late.send(handshake)
        try await Task.sleep(for: .milliseconds(300))
        throttling = try await leader.clientThrottling()
        XCTAssertEqual(throttling.outstandingRequests, 10, "a request was read while throttled")
        XCTAssertTrue(throttling.isThrottled)

        // The followers come back: every create is answered, in order, then the late client is read.
        for follower in followers { try await follower.resume() }
        for index in Int32(1)...10 {
            guard var payload = try await writer.nextFrame(timeout: .seconds(20)) else { return XCTFail("closed before reply \(index)") }
            let frame = try ServerMessageDecoder.decodeReply(&payload, opcode: OpCode.create.rawValue)
            guard case .reply(let header, .create(let path)) = frame else { return XCTFail("unexpected \(frame)") }
            XCTAssertEqual(header.xid, index)
            XCTAssertEqual(header.err, 0)
            XCTAssertEqual(path, "/t\(index)")
        }
        guard var connectPayload = try await late.nextFrame(timeout: .seconds(20)) else { return XCTFail("late client closed") }
        let response = try ServerMessageDecoder.decodeConnectResponse(&connectPayload)
        XCTAssertNotEqual(response.sessionId, 0)
        throttling = try await leader.clientThrottling()
        XCTAssertFalse(throttling.isThrottled)
        XCTAssertEqual(throttling.throttleCount, 1)
        await writer.close()
        await late.close()
        try await ensemble.shutdown()
        try await group.shutdownGracefully()
    }
}
