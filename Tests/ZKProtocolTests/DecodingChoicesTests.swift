import NIOCore
import XCTest

@testable import ZKProtocol

/// The places where the grammar leaves room and the codec makes a documented choice.
final class DecodingChoicesTests: XCTestCase {
    func decodeRequest(_ payloadHex: String) throws -> (RequestHeader, Request) {
        var payload = buffer(payloadHex)
        return try ClientMessageDecoder.decodeRequest(&payload)
    }

    func testBytesAfterARequestRecordAreIgnoredAsZooKeeperDoes() throws {
        XCTAssertEqual(try decodeRequest("00000001 00000003 00000002 2f61 01 deadbeef").1, .exists(path: "/a", watch: true))
        XCTAssertEqual(try decodeRequest("fffffffe 0000000b 00").1, .ping)
        var connect = buffer("00000000 0000000000000000 00002710 0000000000000000 00000000 01 ff ff")
        XCTAssertEqual(try ClientMessageDecoder.decodeConnectRequest(&connect), ConnectRequest(timeoutMs: 10_000, password: [], readOnly: true))
    }

    func testNullPathsAndSchemesDecodeAsEmptyNullDataAndACLsStayNil() throws {
        // A null path of a top-level request is answered MARSHALLINGERROR, as ZooKeeper does.
        XCTAssertEqual(try decodeRequest("00000001 00000004 ffffffff 00").1, .nullPath(opcode: 4))
        XCTAssertEqual(try decodeRequest("00000001 00000001 ffffffff ffffffff ffffffff 00000000").1, .nullPath(opcode: 1))
        // Inside a multi the operation is read past and marked (ZooKeeper fails the whole multi);
        // what follows it is still read.
        XCTAssertEqual(
            try decodeRequest(
                "00000001 0000000e 00000001 00 ffffffff ffffffff ffffffff ffffffff 00000000 "
                    + "00000002 00 ffffffff 00000002 2f61 00000000 ffffffff 01 ffffffff"
            ).1,
            .multi([.nullPath(opcode: 1), .delete(path: "/a", version: 0)]))
        // Encoded again (a follower forwards it to its leader), it reads back the same.
        for opcode in RequestCodec.pathFirstOpcodes.intersection(RequestCodec.multiOperationTypes).sorted() {
            let multi: Request = .multi([.nullPath(opcode: opcode), .delete(path: "/a", version: 3)])
            var frame = ByteBuffer()
            ClientMessageEncoder.encode(xid: 7, multi, into: &frame)
            frame.moveReaderIndex(forwardBy: 4)
            XCTAssertEqual(try ClientMessageDecoder.decodeRequest(&frame).1, multi, "opcode \(opcode)")
        }
        XCTAssertEqual(try decodeRequest("fffffffc 00000064 00000000 ffffffff ffffffff").1, .auth(type: 0, scheme: "", auth: []))
        XCTAssertEqual(
            try decodeRequest("fffffff8 00000065 0000000000000000 ffffffff ffffffff ffffffff").1,
            .setWatches(SetWatchesRequest(relativeZxid: 0)))
        XCTAssertEqual(
            try decodeRequest("00000001 00000010 ffffffff ffffffff ffffffff ffffffffffffffff").1,
            .reconfig(ReconfigRequest(joiningServers: nil, leavingServers: nil, newMembers: nil, currentConfigId: -1)))
    }

    func testUnknownAndServerInternalOpcodesDecodeAsUnknown() throws {
        for opcode: Int32 in [10, 23, 99, 108, -10, -1, 0, Int32.min] {
            var payload = ByteBuffer()
            payload.writeJuteRequestHeader(RequestHeader(xid: 3, type: opcode))
            payload.writeBytes([1, 2, 3])
            let (header, request) = try ClientMessageDecoder.decodeRequest(&payload)
            XCTAssertEqual(header.type, opcode)
            XCTAssertEqual(request, .unknown(opcode: opcode))
        }
    }

    /// Reads inside multi (14) and writes inside multiRead (22) decode: telling the client it
    /// mixed them (MARSHALLINGERROR) is the server's decision, as in ZooKeeper.
    func testMultiAndMultiReadDecodeAllNineOperationTypes() throws {
        let (_, mixed) = try decodeRequest(
            "00000001 0000000e | 00000004 00 ffffffff 00000002 2f61 00 | 00000002 00 ffffffff 00000002 2f61 ffffffff"
                + " | ffffffff 01 ffffffff")
        XCTAssertEqual(mixed, .multi([.getData(path: "/a", watch: false), .delete(path: "/a", version: -1)]))
        let (_, readWithWrite) = try decodeRequest(
            "00000001 00000016 | 0000000d 00 ffffffff 00000002 2f61 00000000 | ffffffff 01 ffffffff")
        XCTAssertEqual(readWithWrite, .multiRead([.check(path: "/a", version: 0)]))
    }

    /// An operation type outside the nine cannot be skipped (its layout is unknown): the list
    /// ends with it and the server answers MARSHALLINGERROR. A nested multi is one of these.
    func testMultiStopsAtAnOperationTypeItCannotDecode() throws {
        let (_, unknown) = try decodeRequest(
            "00000001 0000000e | 00000002 00 ffffffff 00000002 2f61 ffffffff | 00000003 00 ffffffff 00000002 2f61 00"
                + " | ffffffff 01 ffffffff")
        XCTAssertEqual(unknown, .multi([.delete(path: "/a", version: -1), .unknown(opcode: 3)]))
        let (_, nested) = try decodeRequest("00000001 0000000e | 0000000e 00 ffffffff | ffffffff 01 ffffffff | ffffffff 01 ffffffff")
        XCTAssertEqual(nested, .multi([.unknown(opcode: 14)]))
    }

    func testMultiWithoutItsTerminatorIsTruncated() {
        XCTAssertThrowsError(try decodeRequest("00000001 0000000e | 00000002 00 ffffffff 00000002 2f61 ffffffff")) {
            guard case .truncated = $0 as? ProtocolError else { return XCTFail("\($0)") }
        }
    }

    /// The done flag ends the list whatever the type and err fields of that header say.
    func testMultiEndsAtAnyHeaderWithDoneSet() throws {
        XCTAssertEqual(try decodeRequest("00000001 0000000e | 00000001 02 00000000").1, .multi([]))
    }

    func testRepliesWithTrailingBytesAreRejectedByTheClientDecoder() {
        var reply = buffer("00000001 0000000000000002 00000000 00")
        XCTAssertThrowsError(try ServerMessageDecoder.decodeReply(&reply, opcode: OpCode.delete.rawValue)) {
            XCTAssertEqual($0 as? ProtocolError, .trailingBytes(count: 1))
        }
        var connect = buffer("00000000 00000fa0 0000000000000001 00000000 00 00")
        XCTAssertThrowsError(try ServerMessageDecoder.decodeConnectResponse(&connect)) {
            XCTAssertEqual($0 as? ProtocolError, .trailingBytes(count: 1))
        }
    }

    /// ZooKeeper follows a failed multiRead's header with an empty MultiResponse; a client that
    /// sees err != 0 reads no body.
    func testErrorRepliesIgnoreAnyBody() throws {
        var reply = buffer("00000001 0000000000000002 fffffffb ffffffff 01 ffffffff")
        XCTAssertEqual(
            try ServerMessageDecoder.decodeReply(&reply, opcode: OpCode.multiRead.rawValue),
            .reply(ReplyHeader(xid: 1, zxid: 2, err: ErrorCode.marshallingError.rawValue), .empty))
    }

    func testPingAndAuthRepliesHaveNoBodyWhateverTheCallerExpects() throws {
        var ping = buffer("fffffffe 0000000000000002 00000000")
        XCTAssertEqual(
            try ServerMessageDecoder.decodeReply(&ping, opcode: OpCode.getData.rawValue),
            .reply(ReplyHeader(xid: -2, zxid: 2, err: 0), .empty))
        var auth = buffer("fffffffc 0000000000000000 00000000")
        XCTAssertEqual(
            try ServerMessageDecoder.decodeReply(&auth, opcode: OpCode.create.rawValue),
            .reply(ReplyHeader(xid: -4, zxid: 0, err: 0), .empty))
    }

    func testMultiResultsWithUnknownTypesOrCodesAreInvalid() {
        var badType = buffer("00000001 0000000000000002 00000000 | 00000003 00 00000000 | ffffffff 01 ffffffff")
        XCTAssertThrowsError(try ServerMessageDecoder.decodeReply(&badType, opcode: OpCode.multi.rawValue)) {
            guard case .invalid = $0 as? ProtocolError else { return XCTFail("\($0)") }
        }
        var badCode = buffer("00000001 0000000000000002 00000000 | ffffffff 00 fffffc18 fffffc18 | ffffffff 01 ffffffff")
        XCTAssertThrowsError(try ServerMessageDecoder.decodeReply(&badCode, opcode: OpCode.multi.rawValue)) {
            guard case .invalid = $0 as? ProtocolError else { return XCTFail("\($0)") }
        }
    }
}
