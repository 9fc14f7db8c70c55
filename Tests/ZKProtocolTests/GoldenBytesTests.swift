import NIOCore
import XCTest

@testable import ZKProtocol

/// Golden frames: first the bytes the protocol reference records from real clients and servers,
/// then frames written out by hand, field by field, from the grammar. Each is decoded and compared
/// with the expected value, and the value is re-encoded and compared with the bytes.
final class GoldenBytesTests: XCTestCase {
    // MARK: Bytes recorded in the protocol reference

    /// kazoo 2.11's ConnectRequest: 45-byte payload with the trailing readOnly byte.
    static let kazooConnectRequest = """
        0000002d | 00000000 | 0000000000000000 | 00002710 | 0000000000000000 | 00000010 \
        00000000000000000000000000000000 | 00
        """

    /// ZooKeeper 3.8's ConnectResponse to a client that sent the readOnly byte.
    static let zooKeeperConnectResponse = """
        00000025 | 00000000 | 00000fa0 | 0100000364880000 | 00000010 0a2d5d39cf5af020f86fc1d830c537f3 | 00
        """

    static let ping = "00000008 | fffffffe | 0000000b"
    static let pingReply = "00000010 | fffffffe | 0000000000000008 | 00000000"
    static let notification = "0000001e | ffffffff | ffffffffffffffff | 00000000 | 00000003 | 00000003 | 00000002 2f77"

    func testKazooConnectRequest() throws {
        try assertConnectRequestGolden(
            Self.kazooConnectRequest,
            ConnectRequest(protocolVersion: 0, lastZxidSeen: 0, timeoutMs: 10_000, sessionId: 0, password: Array(repeating: 0, count: 16), readOnly: false)
        )
    }

    func testConnectRequestWithoutTheReadOnlyByteDecodesAsNil() throws {
        // The same request as an old (3.3) client sends it: 44 bytes, no trailing byte.
        let old = "0000002c 00000000 0000000000000000 00002710 0000000000000000 00000010 00000000000000000000000000000000"
        try assertConnectRequestGolden(old, ConnectRequest(timeoutMs: 10_000, readOnly: nil))
    }

    func testZooKeeperConnectResponse() throws {
        try assertConnectResponseGolden(
            Self.zooKeeperConnectResponse,
            ConnectResponse(
                protocolVersion: 0, timeoutMs: 4000, sessionId: 0x0100_0003_6488_0000,
                password: bytes("0a2d5d39cf5af020f86fc1d830c537f3"), readOnly: false
            )
        )
    }

    func testConnectResponseEchoesAnOldClientByOmittingTheReadOnlyByte() throws {
        let old = "00000024 00000000 00000fa0 0100000364880000 00000010 0a2d5d39cf5af020f86fc1d830c537f3"
        try assertConnectResponseGolden(
            old,
            ConnectResponse(timeoutMs: 4000, sessionId: 0x0100_0003_6488_0000, password: bytes("0a2d5d39cf5af020f86fc1d830c537f3"), readOnly: nil)
        )
    }

    func testExpiredConnectResponse() {
        XCTAssertEqual(
            hex(encodedFrame(.connect(.expired(readOnly: true)))),
            hex(bytes("00000025 00000000 00000000 0000000000000000 00000010 00000000000000000000000000000000 00"))
        )
    }

    func testPingAndItsReply() throws {
        try assertRequestGolden(Self.ping, xid: SpecialXid.ping, .ping)
        try assertReplyGolden(
            Self.pingReply, opcode: OpCode.ping.rawValue, .reply(ReplyHeader(xid: SpecialXid.ping, zxid: 8, err: 0), .empty))
    }

    func testNotificationForW() throws {
        // The opcode of whatever the client is waiting for does not matter for xid -1.
        for opcode in [OpCode.getData.rawValue, OpCode.multi.rawValue, 12345] {
            try assertReplyGolden(Self.notification, opcode: opcode, .notification(zxid: -1, WatcherEvent(.nodeDataChanged, path: "/w")))
        }
    }

    func testStatAsStructQQQQIIIQIIQ() throws {
        // An exists reply is a ReplyHeader and a bare Stat.
        try assertReplyGolden(
            "00000054 | 00000009 | 0000000100000009 | 00000000 | " + sampleStatHex,
            opcode: OpCode.exists.rawValue,
            .reply(ReplyHeader(xid: 9, zxid: 0x1_0000_0009, err: 0), .stat(sampleStat))
        )
    }

    // MARK: Frames written by hand from the grammar

    func testCreateWithAnACLVector() throws {
        let frame = """
            0000006e
            00000007 00000001                                   xid 7, create
            0000000b 2f6170702f636f6e666967                     path "/app/config"
            00000002 7631                                       data "v1"
            00000002                                            two ACL entries
            0000001f 00000005 776f726c64 00000006 616e796f6e65  ALL world:anyone
            00000001 00000006 646967657374                      READ digest:
            00000020 626f623a6679566d4643775662544a59727a6e6f5375316b6f7159455946303d
            00000003                                            flags: ephemeral sequential
            """
        let acl = [
            ACL(perms: .all, id: .anyone),
            ACL(perms: .read, id: Id(scheme: "digest", id: "bob:fyVmFCwVbTJYrznoSu1koqYEYF0=")),
        ]
        try assertRequestGolden(
            Self.stripComments(frame), xid: 7,
            .create(CreateRequest(path: "/app/config", data: Array("v1".utf8), acl: acl, flags: CreateMode.ephemeralSequential.rawValue)))
    }

    func testCreateTTL() throws {
        let frame = """
            0000003b
            00000003 00000015                                   xid 3, createTTL
            00000004 2f74746c                                   path "/ttl"
            ffffffff                                            data null
            00000001 0000001f 00000005 776f726c64 00000006 616e796f6e65
            00000005                                            flags: persistent with TTL
            000000000000ea60                                    ttl 60000 ms
            """
        try assertRequestGolden(
            Self.stripComments(frame), xid: 3,
            .createTTL(CreateRequest(path: "/ttl", data: nil, acl: ACL.openUnsafe, flags: 5, ttl: 60_000)))
    }

    func testSetWatches2() throws {
        let frame = """
            00000042
            fffffff8 00000069                                   xid -8, setWatches2
            000000000000001d                                    relativeZxid
            00000001 00000002 2f61                              data ["/a"]
            00000001 00000002 2f62                              exist ["/b"]
            00000000                                            child []
            00000001 00000002 2f63                              persistent ["/c"]
            00000002 00000002 2f64 00000002 2f65                persistentRecursive ["/d", "/e"]
            """
        try assertRequestGolden(
            Self.stripComments(frame), xid: SpecialXid.setWatches,
            .setWatches2(
                SetWatchesRequest(
                    relativeZxid: 0x1d, dataWatches: ["/a"], existWatches: ["/b"], childWatches: [],
                    persistentWatches: ["/c"], persistentRecursiveWatches: ["/d", "/e"])))
    }

    func testFailedMultiReplyIsAListOfErrorResults() throws {
        let frame = """
            0000004d
            0000000b 0000000000000006 00000000                  xid 11, zxid 6, err 0
            ffffffff 00 00000000 00000000                       error 0: rolled back
            ffffffff 00 00000000 00000000                       error 0: rolled back
            ffffffff 00 ffffff99 ffffff99                       error -103: BADVERSION (the failing op)
            ffffffff 00 fffffffe fffffffe                       error -2: RUNTIMEINCONSISTENCY
            ffffffff 01 ffffffff                                terminator
            """
        try assertReplyGolden(
            Self.stripComments(frame), opcode: OpCode.multi.rawValue,
            .reply(
                ReplyHeader(xid: 11, zxid: 6, err: 0),
                .multi([.error(.ok), .error(.ok), .error(.badVersion), .error(.runtimeInconsistency)])))
    }

    func testGetChildren2Reply() throws {
        let frame = """
            00000063
            00000004 0000000000000010 00000000                  xid 4, zxid 0x10, err 0
            00000002 00000001 61 00000002 6262                  children ["a", "bb"]
            """
        try assertReplyGolden(
            Self.stripComments(frame) + " " + sampleStatHex, opcode: OpCode.getChildren2.rawValue,
            .reply(ReplyHeader(xid: 4, zxid: 0x10, err: 0), .getChildren2(children: ["a", "bb"], stat: sampleStat)))
    }

    func testErrorReplyHasNoBody() throws {
        try assertReplyGolden(
            "00000010 0000000e 0000000000000008 ffffff9b", opcode: OpCode.getData.rawValue,
            .reply(ReplyHeader(xid: 14, zxid: 8, err: ErrorCode.noNode.rawValue), .empty))
        // A body given with a non-zero err is not sent.
        XCTAssertEqual(
            encodedFrame(.reply(ReplyHeader(xid: 14, zxid: 8, err: -101), .stat(sampleStat))),
            bytes("00000010 0000000e 0000000000000008 ffffff9b"))
    }

    func testAddWatchAnswersWithAnErrorResponseOfZero() throws {
        try assertReplyGolden(
            "00000014 00000008 000000000000001d 00000000 00000000", opcode: OpCode.addWatch.rawValue,
            .reply(ReplyHeader(xid: 8, zxid: 0x1d, err: 0), .errorResponse(0)))
    }

    func testDeleteContainerPathIsTheBareBytesAndThe39BufferFormIsAlsoAccepted() throws {
        try assertRequestGolden("0000000c 00000005 00000014 2f6b6f6f", xid: 5, .deleteContainer(path: "/koo"))
        var lengthPrefixed = try payload(ofFrame: "00000010 00000005 00000014 00000004 2f6b6f6f")
        let (_, request) = try ClientMessageDecoder.decodeRequest(&lengthPrefixed)
        XCTAssertEqual(request, .deleteContainer(path: "/koo"))
    }

    /// Found by the `request` fuzz target: bare bytes that do not start with '/' but whose first
    /// four read as the length of something else decoded to one string and re-encoded to bytes
    /// that decoded to another. Such a string is now encoded in the length-prefixed form.
    func testDeleteContainerOfAStringThatIsNoPathRoundTrips() throws {
        var fuzzed = try payload(ofFrame: "0000000e 00000005 00000014 00000004 27eb")
        let (header, request) = try ClientMessageDecoder.decodeRequest(&fuzzed)
        XCTAssertEqual(request, .deleteContainer(path: "\0\0\0\u{04}'\u{FFFD}"))
        var buffer = ByteBuffer()
        ClientMessageEncoder.encode(xid: header.xid, request, into: &buffer)
        buffer.moveReaderIndex(forwardBy: 4)
        let (_, again) = try ClientMessageDecoder.decodeRequest(&buffer)
        XCTAssertEqual(again, request)
        for path in ["", "koo", "\0\0\0\u{03}abc"] {
            var encoded = ByteBuffer()
            ClientMessageEncoder.encode(xid: 1, .deleteContainer(path: path), into: &encoded)
            encoded.moveReaderIndex(forwardBy: 4)
            XCTAssertEqual(try ClientMessageDecoder.decodeRequest(&encoded).1, .deleteContainer(path: path), "\(path.debugDescription)")
        }
    }

    /// Removes the prose after each line of an annotated frame, keeping the hex columns.
    static func stripComments(_ annotated: String) -> String {
        annotated.split(separator: "\n").map { line in
            line.split(separator: " ").prefix { word in word.allSatisfy(\.isHexDigit) }.joined(separator: " ")
        }.joined(separator: " ")
    }
}
