import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest
import ZKCore
import ZKProtocol
import ZKServerFormats

@testable import ZKServer

/// Per-kind limits on peer frames: only a sync may be large; a frame announcing more than its
/// kind allows closes the connection as soon as its length and tag arrive, before any of the
/// announced bytes are waited for or buffered.
final class PeerFrameLimitTests: XCTestCase {
    func testOnlySyncMayBeLarge() {
        XCTAssertEqual(PeerCodec.frameBytesMax(tag: 5), 1 << 30, "sync (a snapshot)")
        for tag: Int32 in [8, 11] { XCTAssertEqual(PeerCodec.frameBytesMax(tag: tag), 64 << 20, "tag \(tag)") }
        XCTAssertEqual(PeerCodec.frameBytesMax(tag: 12), 64 << 20, "ping")
        for tag: Int32 in [1, 2, 3, 4, 6, 7, 9, 10, 13, 14, 15, 16, 99] {
            XCTAssertEqual(PeerCodec.frameBytesMax(tag: tag), 4096, "tag \(tag)")
        }
        // Every small message, encoded, fits its kind's limit with room to spare.
        let small: [PeerMessage] = [
            .notification(Notification(vote: Vote(leader: .max, zxid: .max, epoch: .max), round: .max, state: .looking)),
            .followerInfo(acceptedEpoch: .max, lastZxid: .max), .leaderInfo(epoch: .max), .ackEpoch(currentEpoch: .max, lastZxid: .max),
            .ackNewLeader(epoch: .max), .upToDate(commitZxid: .max), .ack(.max), .commit(.max), .barrier(token: .max),
            .barrierDone(token: .max), .revalidate(sessionId: .max, timeoutMs: .max), .revalidated(sessionId: .max, valid: true),
        ]
        for message in small {
            var buffer = ByteBuffer()
            PeerCodec.encode(message, into: &buffer)
            let tag: Int32 = buffer.getInteger(at: 4)!
            XCTAssertLessThanOrEqual(buffer.readableBytes - 4, PeerCodec.frameBytesMax(tag: tag) / 16, "\(message)")
        }
    }

    func testAnOversizedFrameOfASmallKindClosesThePeerConnectionAtOnce() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let probe = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
        let port = probe.localAddress!.port!
        try await probe.close()
        let transport = TCPPeerTransport(serverId: 1, peers: [], group: group, logger: logger)
        try await transport.listen(host: "127.0.0.1", port: port)
        let received = NIOLockedValueBox<[ReplicaInput]>([])
        transport.attach(serverId: 1) { inputs in received.withLockedValue { $0.append(contentsOf: inputs) } }

        func hello(_ id: Int64) -> ByteBuffer {
            var buffer = ByteBuffer()
            buffer.writeInteger(PeerCodec.helloMagic)
            buffer.writeInteger(id)
            return buffer
        }

        // An ack announcing 2 MiB: closed on its first eight bytes.
        let hostile = try await RawClient.connect(port: port, group: group)
        var frame = hello(2)
        frame.writeInteger(Int32(2 << 20))
        frame.writeInteger(Int32(9))
        try await hostile.send(frame)
        try await hostile.waitUntilClosed()

        // A well-formed ack from another peer is delivered.
        let honest = try await RawClient.connect(port: port, group: group)
        var good = hello(3)
        PeerCodec.encode(.ack(42), into: &good)
        try await honest.send(good)
        var delivered = false
        for _ in 0..<500 where !delivered {
            delivered = received.withLockedValue { inputs in
                inputs.contains { input in
                    if case .peerMessage(from: 3, .ack(42)) = input { return true }
                    return false
                }
            }
            if !delivered { try await Task.sleep(for: .milliseconds(10)) }
        }
        XCTAssertTrue(delivered)
        await honest.close()
        transport.detach(serverId: 1)
        try await group.shutdownGracefully()
    }
}
