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

    /// Three members with `globalOutstandingLimit` 5 and long ticks (the leader must not give up
    /// on followers a test pauses); nil when no leader was found.
    private func startEnsemble(group: any EventLoopGroup) async throws -> (Ensemble, MiniZKServer, [MiniZKServer])? {
        var config = ReplicaConfig()
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
        return leader.map { (ensemble, $0, followers) }
    }

    func testAboveTheLimitSocketsAreNotReadUntilRequestsAreAnswered() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        guard let (ensemble, leader, followers) = try await startEnsemble(group: group) else { return XCTFail("no leader") }

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
        // Decoding stops at the limit too: the other four wait, read but undecoded.
        XCTAssertEqual(throttling.outstandingRequests, 6)

        // A new client's ConnectRequest waits in its socket, unread.
        let late = try await RawClient.connect(port: leader.localPort, group: group)
        var handshake = ByteBuffer()
        ClientMessageEncoder.encode(ConnectRequest(timeoutMs: 10_000), into: &handshake)
        try await late.send(handshake)
        try await Task.sleep(for: .milliseconds(300))
        throttling = try await leader.clientThrottling()
        XCTAssertEqual(throttling.outstandingRequests, 6, "a request was read while throttled")
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
        XCTAssertGreaterThanOrEqual(throttling.throttleCount, 1, "throttled again each time the rest of the burst was decoded")
        await writer.close()
        await late.close()
        try await ensemble.shutdown()
        try await group.shutdownGracefully()
    }

    /// A burst read in one go does not queue ahead of everyone else: its requests are decoded up to
    /// the limit, and the connections waiting are served in the order they started to wait. A
    /// client that asks while a 100-create burst is throttled gets its create committed long
    /// before the burst's last one.
    func testABurstDoesNotQueueAheadOfAClientThatAskedMeanwhile() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        guard let (ensemble, leader, followers) = try await startEnsemble(group: group) else { return XCTFail("no leader") }
        let burst = try await RawClient.connect(port: leader.localPort, group: group)
        _ = try await burst.handshake()
        let other = try await RawClient.connect(port: leader.localPort, group: group)
        _ = try await other.handshake()

        for follower in followers { try await follower.pause() }
        var buffer = ByteBuffer()
        for index in 1...100 {
            let create = Request.create(CreateRequest(path: "/b\(index)", data: [1], acl: ACL.openUnsafe, flags: 0))
            ClientMessageEncoder.encode(xid: Int32(index), create, into: &buffer)
        }
        try await burst.send(buffer)
        var throttling = try await leader.clientThrottling()
        for _ in 0..<500 where !throttling.isThrottled {
            try await Task.sleep(for: .milliseconds(10))
            throttling = try await leader.clientThrottling()
        }
        XCTAssertTrue(throttling.isThrottled, "\(throttling)")
        XCTAssertEqual(throttling.outstandingRequests, 6, "more of the burst was decoded than the limit allows")
        var late = ByteBuffer()
        ClientMessageEncoder.encode(
            xid: 1, .create(CreateRequest(path: "/late", data: [1], acl: ACL.openUnsafe, flags: 0)), into: &late)
        try await other.send(late)
        try await Task.sleep(for: .milliseconds(100))
        for follower in followers { try await follower.resume() }

        for index in 1...100 {
            guard try await burst.nextFrame(timeout: .seconds(20)) != nil else { return XCTFail("closed before reply \(index)") }
        }
        guard try await other.nextFrame(timeout: .seconds(20)) != nil else { return XCTFail("no reply to /late") }
        let lateZxid = try await other.czxid("/late", xid: 2)
        let lastOfBurst = try await other.czxid("/b100", xid: 3)
        let sixthOfBurst = try await other.czxid("/b6", xid: 4)
        XCTAssertGreaterThan(lateZxid, sixthOfBurst, "the create asked while throttled went before what was already decoded")
        XCTAssertLessThan(lateZxid, lastOfBurst, "the create asked while throttled waited behind the whole burst")
        await burst.close()
        await other.close()
        try await ensemble.shutdown()
        try await group.shutdownGracefully()
    }
}
