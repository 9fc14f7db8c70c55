import NIOCore
import XCTest

@testable import ZKProtocol

// Helpers shared by the protocol tests: hex in and out, frame splitting, and a seeded generator.

/// Parses hex, ignoring spaces, newlines and `|` separators so golden bytes can be laid out by field.
func bytes(_ hex: String) -> [UInt8] {
    let digits = Array(hex.unicodeScalars.filter { !" \n\t|".unicodeScalars.contains($0) })
    precondition(digits.count % 2 == 0, "odd number of hex digits in \(hex)")
    var result: [UInt8] = []
    result.reserveCapacity(digits.count / 2)
    var index = 0
    while index < digits.count {
        let pair = String(String.UnicodeScalarView(digits[index...index + 1]))
        guard let byte = UInt8(pair, radix: 16) else { preconditionFailure("not hex: \(pair)") }
        result.append(byte)
        index += 2
    }
    return result
}

func buffer(_ hex: String) -> ByteBuffer { ByteBuffer(bytes: bytes(hex)) }

func hex(_ raw: [UInt8]) -> String {
    let digits = Array("0123456789abcdef")
    var text = ""
    text.reserveCapacity(raw.count * 2)
    for byte in raw {
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 0x0f)])
    }
    return text
}

func hex(_ buffer: ByteBuffer) -> String { hex(Array(buffer.readableBytesView)) }

/// Splits exactly one frame off `frame` with `ZKFrameDecoder` and returns its payload.
func payload(ofFrame frame: [UInt8], file: StaticString = #filePath, line: UInt = #line) throws -> ByteBuffer {
    var stream = ByteBuffer(bytes: frame)
    var decoder = ZKFrameDecoder()
    guard let payload = try decoder.decode(buffer: &stream) else {
        XCTFail("incomplete frame \(hex(frame))", file: file, line: line)
        throw ProtocolError.truncated(what: "test frame")
    }
    XCTAssertEqual(stream.readableBytes, 0, "bytes after the frame", file: file, line: line)
    return payload
}

func payload(ofFrame frameHex: String, file: StaticString = #filePath, line: UInt = #line) throws -> ByteBuffer {
    try payload(ofFrame: bytes(frameHex), file: file, line: line)
}

/// Frame bytes produced by one of the encoders.
func encoded(_ write: (inout ByteBuffer) -> Void) -> [UInt8] {
    var out = ByteBuffer()
    write(&out)
    return Array(out.readableBytesView)
}

func encodedRequest(xid: Int32, _ request: Request) -> [UInt8] {
    encoded { ClientMessageEncoder.encode(xid: xid, request, into: &$0) }
}

func encodedFrame(_ frame: ServerFrame) -> [UInt8] {
    encoded { frame.encode(into: &$0) }
}

/// Random bytes for the tests, from the package's seeded generator (every random test replays).
extension SplitMix64 {
    mutating func bytes(count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &self) }
    }
}

/// A Stat with a distinct value in every field, so a swapped field cannot go unnoticed.
let sampleStat = Stat(
    czxid: 0x1_0000_0001, mzxid: 0x1_0000_0002, ctime: 1_795_965_411_051, mtime: 1_795_965_411_110,
    version: 3, cversion: -1, aversion: 0, ephemeralOwner: 0x0100_0003_6488_0000, dataLength: 5,
    numChildren: 2, pzxid: 0x1_0000_0009
)

/// `sampleStat` as Python's `struct.pack('>qqqqiiiqiiq', ...)` lays it out.
let sampleStatHex =
    "0000000100000001 0000000100000002 000001a227e15eeb 000001a227e15f26 00000003 ffffffff 00000000"
    + " 0100000364880000 00000005 00000002 0000000100000009"

/// Decodes a golden request frame, compares it with `expected`, then re-encodes the value and
/// compares the bytes: both directions of the codec against the same golden.
func assertRequestGolden(
    _ frameHex: String, xid: Int32, _ expected: Request, file: StaticString = #filePath, line: UInt = #line
) throws {
    var body = try payload(ofFrame: frameHex, file: file, line: line)
    let (header, request) = try ClientMessageDecoder.decodeRequest(&body)
    XCTAssertEqual(header, RequestHeader(xid: xid, type: expected.opcode), file: file, line: line)
    XCTAssertEqual(request, expected, file: file, line: line)
    XCTAssertEqual(body.readableBytes, 0, "record shorter than the payload", file: file, line: line)
    XCTAssertEqual(hex(encodedRequest(xid: xid, request)), hex(bytes(frameHex)), file: file, line: line)
}

/// The same for a reply or notification frame; `opcode` is the request it answers.
func assertReplyGolden(
    _ frameHex: String, opcode: Int32, _ expected: ServerFrame, file: StaticString = #filePath, line: UInt = #line
) throws {
    var body = try payload(ofFrame: frameHex, file: file, line: line)
    let frame = try ServerMessageDecoder.decodeReply(&body, opcode: opcode)
    XCTAssertEqual(frame, expected, file: file, line: line)
    XCTAssertEqual(hex(encodedFrame(frame)), hex(bytes(frameHex)), file: file, line: line)
}

func assertConnectRequestGolden(
    _ frameHex: String, _ expected: ConnectRequest, file: StaticString = #filePath, line: UInt = #line
) throws {
    var body = try payload(ofFrame: frameHex, file: file, line: line)
    let request = try ClientMessageDecoder.decodeConnectRequest(&body)
    XCTAssertEqual(request, expected, file: file, line: line)
    XCTAssertEqual(hex(encoded { ClientMessageEncoder.encode(request, into: &$0) }), hex(bytes(frameHex)), file: file, line: line)
}

func assertConnectResponseGolden(
    _ frameHex: String, _ expected: ConnectResponse, file: StaticString = #filePath, line: UInt = #line
) throws {
    var body = try payload(ofFrame: frameHex, file: file, line: line)
    let response = try ServerMessageDecoder.decodeConnectResponse(&body)
    XCTAssertEqual(response, expected, file: file, line: line)
    XCTAssertEqual(hex(encodedFrame(.connect(response))), hex(bytes(frameHex)), file: file, line: line)
}
