import NIOCore
import XCTest
import ZKCore
import ZKProtocol

@testable import ZKStorage

/// The peer protocol's bytes (`PeerCodec.swift`): one golden frame per kind of message, written
/// out field by field from the grammar, and the same stream decoded whole and a byte at a time.
final class PeerCodecTests: XCTestCase {
    /// Hex digits, spaces ignored.
    private func bytes(_ hex: String) -> [UInt8] {
        let digits = Array(hex.filter { !$0.isWhitespace })
        precondition(digits.count % 2 == 0, "odd hex \(hex)")
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
    }

    private func encoded(_ message: PeerMessage) -> [UInt8] {
        var buffer = ByteBuffer()
        PeerCodec.encode(message, into: &buffer)
        return Array(buffer.readableBytesView)
    }

    private static let deleteA = Transaction(zxid: 0x3_0000_0001, timeMs: 1000, sessionId: 0x11, cxid: 7, body: .delete(path: "/a"))
    private static let createSession = Transaction(
        zxid: 0x3_0000_0002, timeMs: 1000, sessionId: 0x12, cxid: 0, body: .createSession(timeoutMs: 4000))

    /// Every kind of message (and every sync and forward kind but a snapshot, tested below), with
    /// its frame: length (without itself), tag, fields.
    private var goldens: [(name: String, message: PeerMessage, frame: [UInt8])] {
        [
            (
                "notification",
                .notification(Notification(vote: Vote(leader: 1, zxid: 0x1_0000_0002, epoch: 1), round: 3, state: .looking)),
                bytes(
                    "00000028 00000001  0000000000000001 0000000100000002 0000000000000001  0000000000000003 00000000")
            ),
            (
                "followerInfo", .followerInfo(acceptedEpoch: 2, lastZxid: 0x2_0000_0005),
                bytes("00000014 00000002  0000000000000002 0000000200000005")
            ),
            ("leaderInfo", .leaderInfo(epoch: 3), bytes("0000000c 00000003  0000000000000003")),
            (
                "ackEpoch", .ackEpoch(currentEpoch: 2, lastZxid: 0x2_0000_0005),
                bytes("00000014 00000004  0000000000000002 0000000200000005")
            ),
            (
                "sync diff", .sync(SyncPlan(kind: .diff, transactions: [Self.deleteA], epoch: 3)),
                bytes(
                    """
                    0000003a 00000005  00000000 0000000000000003 00000001
                    0000000300000001 00000000000003e8 0000000000000011 00000007  00000004 00000002 2f61
                    """)
            ),
            (
                "sync trunc", .sync(SyncPlan(kind: .trunc(after: 0x2_0000_0004), transactions: [], epoch: 3)),
                bytes("0000001c 00000005  00000001 0000000200000004 0000000000000003 00000000")
            ),
            ("ackNewLeader", .ackNewLeader(epoch: 3), bytes("0000000c 00000006  0000000000000003")),
            ("upToDate", .upToDate(commitZxid: 0x3_0000_0001), bytes("0000000c 00000007  0000000300000001")),
            (
                "propose", .propose(Self.createSession),
                bytes("0000002c 00000008  0000000300000002 00000000000003e8 0000000000000012 00000000  00000001 0000000000000fa0")
            ),
            ("ack", .ack(0x3_0000_0002), bytes("0000000c 00000009  0000000300000002")),
            ("commit", .commit(0x3_0000_0002), bytes("0000000c 0000000a  0000000300000002")),
            (
                "forward createSession", .forward(.createSession(sessionId: 0x12, timeoutMs: 4000)),
                bytes("00000018 0000000b  00000000 0000000000000012 0000000000000fa0")
            ),
            (
                "forward request",
                .forward(
                    .request(
                        sessionId: 0x12, header: RequestHeader(xid: 5, type: 2), request: .delete(path: "/a", version: -1),
                        authIds: [Id(scheme: "digest", id: "u:p")])),
                bytes(
                    """
                    0000003b 0000000b  00000001 0000000000000012
                    00000012 00000005 00000002 00000002 2f61 ffffffff
                    00000001 00000006 646967657374 00000003 753a70
                    """)
            ),
            ("ping", .ping(touchedSessions: [0x12, 0x13]), bytes("00000018 0000000c  00000002 0000000000000012 0000000000000013")),
            ("barrier", .barrier(token: 9), bytes("0000000c 0000000d  0000000000000009")),
            ("barrierDone", .barrierDone(token: 9), bytes("0000000c 0000000e  0000000000000009")),
            (
                "revalidate", .revalidate(sessionId: 0x12, timeoutMs: 4000),
                bytes("00000014 0000000f  0000000000000012 0000000000000fa0")
            ),
            ("revalidated", .revalidated(sessionId: 0x12, valid: true), bytes("0000000d 00000010  0000000000000012 01")),
        ]
    }

    func testEveryKindEncodesToItsGoldenBytes() {
        for golden in goldens {
            XCTAssertEqual(encoded(golden.message), golden.frame, golden.name)
        }
    }

    /// The golden bytes decode to the message they stand for: field by field for a few, and for
    /// every one back to the same bytes.
    func testGoldenBytesDecode() throws {
        for golden in goldens {
            var buffer = ByteBuffer(bytes: golden.frame)
            let message = try XCTUnwrap(try PeerCodec.decodeFrame(&buffer), golden.name)
            XCTAssertEqual(buffer.readableBytes, 0, golden.name)
            XCTAssertEqual(encoded(message), golden.frame, golden.name)
        }
        var notification = ByteBuffer(bytes: goldens[0].frame)
        guard case .notification(let n)? = try PeerCodec.decodeFrame(&notification) else { return XCTFail("not a notification") }
        XCTAssertEqual(n, Notification(vote: Vote(leader: 1, zxid: 0x1_0000_0002, epoch: 1), round: 3, state: .looking))
        var diff = ByteBuffer(bytes: goldens[4].frame)
        guard case .sync(let plan)? = try PeerCodec.decodeFrame(&diff), case .diff = plan.kind else { return XCTFail("not a DIFF") }
        XCTAssertEqual(plan.epoch, 3)
        XCTAssertEqual(plan.transactions, [Self.deleteA])
        var forward = ByteBuffer(bytes: goldens[12].frame)
        guard case .forward(let write)? = try PeerCodec.decodeFrame(&forward) else { return XCTFail("not a forward") }
        XCTAssertEqual(
            write,
            .request(
                sessionId: 0x12, header: RequestHeader(xid: 5, type: 2), request: .delete(path: "/a", version: -1),
                authIds: [Id(scheme: "digest", id: "u:p")]))
    }

    /// A SNAP carries the snapshot in the grammar of `SnapshotCodec`, as a length-prefixed buffer.
    func testSnapCarriesTheSnapshotGrammar() throws {
        var tree = DataTree()
        var triggers: [WatchTrigger] = []
        tree.apply(Self.createSession, triggers: &triggers)
        tree.apply(
            Transaction(
                zxid: 0x3_0000_0003, timeMs: 1000, sessionId: 0x12, cxid: 1,
                body: .create(path: "/a", data: [1, 2], acl: ACL.openUnsafe, kind: .ephemeral(owner: 0x12))),
            triggers: &triggers)
        var snapshot: [UInt8] = []
        SnapshotCodec.encode(tree) { snapshot.append(contentsOf: $0.readableBytesView) }
        let frame = encoded(.sync(SyncPlan(kind: .snap(tree), transactions: [], epoch: 3)))
        let length = 4 + 4 + 4 + snapshot.count + 8 + 4
        XCTAssertEqual(Array(frame[0..<4]), bytes(String(format: "%08x", length)))
        XCTAssertEqual(Array(frame[4..<12]), bytes("00000005 00000002"))
        XCTAssertEqual(Array(frame[12..<16]), bytes(String(format: "%08x", snapshot.count)))
        XCTAssertEqual(Array(frame[16..<(16 + snapshot.count)]), snapshot)
        XCTAssertEqual(Array(frame[(16 + snapshot.count)...]), bytes("0000000000000003 00000000"))

        var buffer = ByteBuffer(bytes: frame)
        guard case .sync(let plan)? = try PeerCodec.decodeFrame(&buffer), case .snap(let decoded) = plan.kind else {
            return XCTFail("not a SNAP")
        }
        XCTAssertEqual(decoded.lastZxid, 0x3_0000_0003)
        XCTAssertEqual(decoded.node("/a")?.data, [1, 2])
        XCTAssertEqual(decoded.sessions[0x12], 4000)
    }

    /// A connection's stream (the hello, then every golden frame) fed one byte at a time: nothing
    /// decodes before its last byte arrives, nothing is consumed meanwhile, and what decodes is the
    /// same stream.
    func testByteByByteDecoding() throws {
        var stream = ByteBuffer()
        PeerCodec.encodeHello(serverId: 0x0102_0304_0506_0708, into: &stream)
        XCTAssertEqual(Array(stream.readableBytesView), bytes("4d5a4b50 0102030405060708"))
        let frames = goldens.map(\.frame)
        for frame in frames { stream.writeBytes(frame) }
        let all = Array(stream.readableBytesView)

        var received = ByteBuffer()
        var hello: Int64?
        var messages: [PeerMessage] = []
        var frameEnds: [Int] = []
        var offset = 12
        for frame in frames {
            offset += frame.count
            frameEnds.append(offset)
        }
        for (index, byte) in all.enumerated() {
            received.writeInteger(byte)
            if hello == nil {
                hello = try PeerCodec.decodeHello(&received)
                XCTAssertEqual(hello != nil, index == 11, "hello after byte \(index)")
                continue
            }
            let before = received.readerIndex
            if let message = try PeerCodec.decodeFrame(&received) {
                XCTAssertEqual(index + 1, frameEnds[messages.count], "message \(messages.count) decoded early or late")
                messages.append(message)
                received.discardReadBytes()
            } else {
                XCTAssertEqual(received.readerIndex, before, "a partial frame consumed bytes")
            }
        }
        XCTAssertEqual(hello, 0x0102_0304_0506_0708)
        XCTAssertEqual(messages.count, frames.count)
        XCTAssertEqual(messages.map(encoded), frames)
        XCTAssertEqual(received.readableBytes, 0)
    }

    func testDamageIsRefused() {
        // A hello with another magic.
        var hello = ByteBuffer(bytes: bytes("4d5a4b51 0000000000000001"))
        XCTAssertThrowsError(try PeerCodec.decodeHello(&hello))
        // An unknown tag, an unknown sync kind, a bad server state.
        for hex in ["0000000c 00000063 0000000000000001", "0000001c 00000005 00000007 0000000200000004 0000000000000003 00000000",
                    "00000028 00000001 0000000000000001 0000000100000002 0000000000000001 0000000000000003 00000009"] {
            var buffer = ByteBuffer(bytes: bytes(hex))
            XCTAssertThrowsError(try PeerCodec.decodeFrame(&buffer), hex)
        }
        // A byte after the message inside its frame.
        var trailing = ByteBuffer(bytes: bytes("0000000d 00000009 0000000300000002 00"))
        XCTAssertThrowsError(try PeerCodec.decodeFrame(&trailing))
        // A frame shorter than its message.
        var short = ByteBuffer(bytes: bytes("0000000b 00000009 00000003000000"))
        XCTAssertThrowsError(try PeerCodec.decodeFrame(&short))
        // A small kind announcing more than its limit fails on its first eight bytes.
        var oversized = ByteBuffer(bytes: bytes("00200000 00000009"))
        XCTAssertThrowsError(try PeerCodec.decodeFrame(&oversized))
        // Every truncation of every golden frame waits for more, consuming nothing.
        for golden in goldens {
            for cut in 0..<golden.frame.count {
                var buffer = ByteBuffer(bytes: golden.frame[0..<cut])
                XCTAssertNil(try PeerCodec.decodeFrame(&buffer), "\(golden.name) cut at \(cut)")
                XCTAssertEqual(buffer.readableBytes, cut)
            }
        }
    }
}
