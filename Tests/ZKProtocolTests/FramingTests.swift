import NIOCore
import XCTest

@testable import ZKProtocol

/// `ZKFrameDecoder` and four-letter-word detection.
final class FramingTests: XCTestCase {
    /// Several frames of different shapes, back to back, as a client would stream them.
    var stream: [UInt8] {
        var out = ByteBuffer()
        ClientMessageEncoder.encode(ConnectRequest(timeoutMs: 10_000), into: &out)
        ClientMessageEncoder.encode(
            xid: 1, .create(CreateRequest(path: "/a", data: [1, 2, 3], acl: ACL.openUnsafe, flags: 0)), into: &out)
        ClientMessageEncoder.encode(xid: SpecialXid.ping, .ping, into: &out)
        out.writeBytes([0, 0, 0, 0])  // an empty payload is a legal frame
        ClientMessageEncoder.encode(
            xid: 2, .multi([.delete(path: "/a", version: -1), .check(path: "/", version: 0)]), into: &out)
        return Array(out.readableBytesView)
    }

    /// The payloads of `stream`, cut by hand from the length prefixes.
    var expectedPayloads: [[UInt8]] {
        var rest = self.stream[...]
        var payloads: [[UInt8]] = []
        while !rest.isEmpty {
            let length = rest.prefix(4).reduce(0) { $0 << 8 | Int($1) }
            payloads.append(Array(rest.dropFirst(4).prefix(length)))
            rest = rest.dropFirst(4 + length)
        }
        return payloads
    }

    func testFeedingOneByteAtATimeYieldsEveryPayloadAndLeavesTheReaderIndexAloneUntilComplete() throws {
        var decoder = ZKFrameDecoder()
        var cumulation = ByteBuffer()
        var payloads: [[UInt8]] = []
        for byte in self.stream {
            cumulation.writeInteger(byte)
            while true {
                let readerIndexBefore = cumulation.readerIndex
                guard let payload = try decoder.decode(buffer: &cumulation) else {
                    XCTAssertEqual(cumulation.readerIndex, readerIndexBefore, "nil must not consume bytes")
                    break
                }
                payloads.append(Array(payload.readableBytesView))
            }
        }
        XCTAssertEqual(payloads, self.expectedPayloads)
        XCTAssertEqual(payloads.count, 5)
        XCTAssertEqual(cumulation.readableBytes, 0)
        XCTAssertNil(try decoder.decodeLast(buffer: &cumulation, seenEOF: true))
    }

    func testFeedingEverythingAtOnceYieldsTheSamePayloads() throws {
        var decoder = ZKFrameDecoder()
        var cumulation = ByteBuffer(bytes: self.stream)
        var payloads: [[UInt8]] = []
        while let payload = try decoder.decodeLast(buffer: &cumulation, seenEOF: true) {
            payloads.append(Array(payload.readableBytesView))
        }
        XCTAssertEqual(payloads, self.expectedPayloads)
    }

    /// Only the four length bytes are present: the decoder must throw from the length alone
    /// rather than wait for (and buffer) the announced bytes.
    func testOversizedLengthThrowsFrameTooLargeFromTheLengthAlone() {
        for (length, max) in [(0x7fff_ffff, ZKFrameDecoder.defaultFrameBytesMax), (1_048_576, 1_048_575), (101, 100)] {
            var decoder = ZKFrameDecoder(frameBytesMax: max)
            var input = ByteBuffer()
            input.writeInteger(Int32(length))
            XCTAssertThrowsError(try decoder.decode(buffer: &input)) {
                XCTAssertEqual($0 as? ProtocolError, .frameTooLarge(length: length, max: max))
            }
        }
    }

    func testALengthOfExactlyTheMaximumIsAcceptedAndAwaited() throws {
        var decoder = ZKFrameDecoder(frameBytesMax: 8)
        var input = buffer("00000008 fffffffe")
        XCTAssertNil(try decoder.decode(buffer: &input))
        XCTAssertEqual(input.readerIndex, 0)
        input.writeBytes(bytes("0000000b"))
        XCTAssertEqual(try decoder.decode(buffer: &input).map(hex), "fffffffe0000000b")
    }

    func testNegativeLengthThrows() {
        for length: Int32 in [-1, -2, Int32.min] {
            var decoder = ZKFrameDecoder()
            var input = ByteBuffer()
            input.writeInteger(length)
            XCTAssertThrowsError(try decoder.decode(buffer: &input)) {
                XCTAssertEqual($0 as? ProtocolError, .negativeLength(length))
            }
        }
    }

    func testFewerThanFourBytesNeedMore() throws {
        var decoder = ZKFrameDecoder()
        var input = buffer("0000")
        XCTAssertNil(try decoder.decode(buffer: &input))
        XCTAssertEqual(input.readableBytes, 2)
    }

    // MARK: Four-letter words

    func testEveryFourLetterWordIsDetectedFromItsBytes() {
        for word in FourLetterWord.allCases {
            let raw = Array(word.rawValue.utf8)
            let first4 = raw.reduce(Int32(0)) { $0 << 8 | Int32($1) }
            XCTAssertEqual(FourLetterWord.detect(first4), word)
        }
    }

    func testOtherFirstWordsAreNotFourLetterWords() {
        let ruok = Int32(bitPattern: 0x7275_6f6b)
        XCTAssertEqual(FourLetterWord.detect(ruok), .ruok)
        XCTAssertNil(FourLetterWord.detect(Int32(bitPattern: 0x5255_4f4b)))  // "RUOK"
        XCTAssertNil(FourLetterWord.detect(Int32(bitPattern: 0x6162_6364)))  // "abcd"
        XCTAssertNil(FourLetterWord.detect(45))  // kazoo's ConnectRequest length
        XCTAssertNil(FourLetterWord.detect(-1))
        var random = SplitMix64(seed: 4)
        for _ in 0..<10_000 {
            let value = Int32.random(in: Int32.min...Int32.max, using: &random)
            if let word = FourLetterWord.detect(value) {
                XCTAssertEqual(Array(word.rawValue.utf8), withUnsafeBytes(of: value.bigEndian) { Array($0) })
            }
        }
    }
}
