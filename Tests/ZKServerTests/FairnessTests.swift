import Logging
import NIOCore
import NIOPosix
import XCTest
import ZKCore
import ZKProtocol

@testable import ZKServer

/// `readBytesPerTurn` and `requestsPerTurn`: a connection that pipelines a burst reads and decodes
/// a turn's share at a time, so a request another client sends meanwhile does not wait behind
/// the whole burst; `requestsPerLook`: many such connections together decode a look's worth
/// between two looks at the sockets, so it does not wait behind a turn of each of them either.
final class FairnessTests: XCTestCase {
    func testDefaults() {
        let options = ServerOptions()
        XCTAssertEqual(options.readBytesPerTurn, 4096)
        XCTAssertEqual(options.requestsPerTurn, 64)
        XCTAssertEqual(options.requestsPerLook, 4096)
    }

    /// Many connections pipelining at once (`requestsPerLook`): between two looks at the sockets
    /// the server answers about a look's worth of their requests, not a turn of each busy
    /// connection, so a create another client sends once they have all sent theirs is read and
    /// committed within a few rounds. Each busy connection first watches for the create, so the
    /// place of the watch event among its replies counts its reads answered before the create
    /// committed: about 1,200 of the 40,000 reads here, against about 17,500 with a turn of each
    /// busy connection per look (`requestsPerLook` 0), and with 1,000 connections such a look
    /// took over a second.
    func testManyBurstsDoNotMakeALookLongForAClientThatAsksMeanwhile() async throws {
        // The clients on a loop of their own: sending the bursts does not wait for the server's.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var logger = Logger(label: "test")
        logger.logLevel = .error
        var options = ServerOptions()
        options.outstandingRequestsMax = 0
        options.connectionsPerClientAddressMax = 0
        options.requestsPerLook = 256
        var config = ReplicaConfig()
        config.outstandingRequestsPerConnectionMax = 100_000
        let server = try await MiniZKServer.start(
            config: config, host: "127.0.0.1", port: 0, group: group, logger: logger, options: options)
        let connections = 100, perConnection = 400
        var bursts: [RawClient] = []
        for _ in 0..<connections {
            let client = try await RawClient.connect(port: server.localPort, group: clientGroup)
            _ = try await client.handshake()
            guard case .reply(let header, _) = try await client.call(xid: 1, .exists(path: "/late", watch: true)),
                header.err == ErrorCode.noNode.rawValue
            else { return XCTFail("exists /late") }
            bursts.append(client)
        }
        let other = try await RawClient.connect(port: server.localPort, group: clientGroup)
        _ = try await other.handshake()

        var burst = ByteBuffer()
        for request in 1...perConnection {
            ClientMessageEncoder.encode(xid: Int32(request + 1), .getData(path: "/", watch: false), into: &burst)
        }
        for client in bursts { try await client.send(burst) }
        var late = ByteBuffer()
        ClientMessageEncoder.encode(
            xid: 1, .create(CreateRequest(path: "/late", data: [1], acl: ACL.openUnsafe, flags: 0)), into: &late)
        try await other.send(late)
        guard try await other.nextFrame(timeout: .seconds(60)) != nil else { return XCTFail("no reply to /late") }
        var answeredBefore = 0
        for client in bursts {
            var sawEvent = false
            for _ in 0...perConnection {
                guard let frame = try await client.nextFrame(timeout: .seconds(60)) else { return XCTFail("closed") }
                if frame.getInteger(at: frame.readerIndex, as: Int32.self) == -1 {
                    sawEvent = true
                } else if !sawEvent {
                    answeredBefore += 1
                }
            }
            XCTAssertTrue(sawEvent, "no NodeCreated event for /late")
        }
        let total = connections * perConnection
        XCTAssertLessThan(
            answeredBefore, total / 8,
            "the create sent after the bursts committed after \(answeredBefore) of their \(total) reads")
        for client in bursts { await client.close() }
        await other.close()
        try await server.shutdown()
        try await group.shutdownGracefully()
        try await clientGroup.shutdownGracefully()
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
