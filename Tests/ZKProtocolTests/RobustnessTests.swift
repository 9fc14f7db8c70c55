import NIOCore
import XCTest

@testable import ZKProtocol

/// Hostile input: decoding must throw or return, never trap, and never trust a length. A trap
/// here would kill the test process, so "the test finished" is itself the main assertion.
/// All randomness is seeded; a failure message carries the seed and the input to replay it.
final class RobustnessTests: XCTestCase {
    static let knownOpcodes: [Int32] = OpCode.allCases.map(\.rawValue)

    struct Corpus {
        var connectRequests: [[UInt8]] = []
        var connectResponses: [[UInt8]] = []
        var requests: [(payload: [UInt8], request: Request)] = []
        var replies: [(payload: [UInt8], opcode: Int32)] = []
    }

    /// Every valid payload the other tests know: captured traffic, hand-written goldens and the
    /// round-trip samples.
    static let corpus: Corpus = {
        var corpus = Corpus()
        func payloadBytes(_ frame: [UInt8]) -> [UInt8] { Array(frame.dropFirst(4)) }
        for connection in CapturedTrafficTests.connections {
            for (index, exchange) in connection.enumerated() {
                let request = payloadBytes(bytes(exchange.request))
                if index == 0 {
                    corpus.connectRequests.append(request)
                    corpus.connectResponses += exchange.replies.map { payloadBytes(bytes($0)) }
                    continue
                }
                var body = ByteBuffer(bytes: request)
                guard let (header, decoded) = try? ClientMessageDecoder.decodeRequest(&body) else {
                    preconditionFailure("captured request does not decode: \(exchange.label)")
                }
                corpus.requests.append((request, decoded))
                corpus.replies += exchange.replies.map { (payloadBytes(bytes($0)), header.type) }
            }
        }
        corpus.connectRequests.append(payloadBytes(bytes(GoldenBytesTests.kazooConnectRequest)))
        corpus.connectResponses.append(payloadBytes(bytes(GoldenBytesTests.zooKeeperConnectResponse)))
        corpus.replies.append((payloadBytes(bytes(GoldenBytesTests.notification)), OpCode.getData.rawValue))
        for (index, request) in RoundTripTests.requests.enumerated() {
            corpus.requests.append((payloadBytes(encodedRequest(xid: Int32(index), request)), request))
        }
        for sample in RoundTripTests.responses {
            let frame = ServerFrame.reply(ReplyHeader(xid: sample.xid, zxid: 5, err: 0), sample.response)
            corpus.replies.append((payloadBytes(encodedFrame(frame)), sample.opcode.rawValue))
        }
        return corpus
    }()

    /// Requests whose record runs to the end of the payload, so some of their prefixes are valid
    /// requests too: deleteContainer's bare path, unknown opcodes, a multi cut short by an
    /// unknown operation type.
    static func hasOpenEndedRecord(_ request: Request) -> Bool {
        switch request {
        case .deleteContainer, .unknown: return true
        case .multi(let operations), .multiRead(let operations): return operations.contains(where: hasOpenEndedRecord)
        default: return false
        }
    }

    func testCorpusIsLarge() {
        XCTAssertGreaterThan(Self.corpus.requests.count, 60)
        XCTAssertGreaterThan(Self.corpus.replies.count, 60)
        XCTAssertGreaterThanOrEqual(Self.corpus.connectRequests.count, 10)
    }

    // MARK: Truncation

    func testEveryTruncationOfAValidRequestThrows() {
        for (payload, request) in Self.corpus.requests {
            let openEnded = Self.hasOpenEndedRecord(request)
            for length in 0..<payload.count {
                var prefix = ByteBuffer(bytes: payload.prefix(length))
                let decoded = try? ClientMessageDecoder.decodeRequest(&prefix)
                if !openEnded {
                    XCTAssertNil(decoded, "prefix \(length) of \(hex(payload)) decoded")
                } else if length < 8 {
                    XCTAssertNil(decoded, "a prefix without a whole header decoded: \(hex(Array(payload.prefix(length))))")
                }
            }
        }
    }

    func testEveryTruncationOfAValidReplyThrows() {
        for (payload, opcode) in Self.corpus.replies {
            for length in 0..<payload.count {
                var prefix = ByteBuffer(bytes: payload.prefix(length))
                XCTAssertThrowsError(
                    try ServerMessageDecoder.decodeReply(&prefix, opcode: opcode), "prefix \(length) of \(hex(payload)) for \(opcode)")
            }
        }
    }

    /// The only valid prefix of a connect message is the one that drops the optional readOnly byte.
    func testEveryTruncationOfAConnectMessageThrowsExceptDroppingTheReadOnlyByte() throws {
        for payload in Self.corpus.connectRequests {
            var whole = ByteBuffer(bytes: payload)
            let hasReadOnly = try ClientMessageDecoder.decodeConnectRequest(&whole).readOnly != nil
            for length in 0..<payload.count {
                var prefix = ByteBuffer(bytes: payload.prefix(length))
                let decoded = try? ClientMessageDecoder.decodeConnectRequest(&prefix)
                if hasReadOnly && length == payload.count - 1 {
                    XCTAssertEqual(decoded?.readOnly, .some(nil))
                } else {
                    XCTAssertNil(decoded, "prefix \(length) of \(hex(payload))")
                }
            }
        }
        for payload in Self.corpus.connectResponses {
            var whole = ByteBuffer(bytes: payload)
            let hasReadOnly = try ServerMessageDecoder.decodeConnectResponse(&whole).readOnly != nil
            for length in 0..<payload.count {
                var prefix = ByteBuffer(bytes: payload.prefix(length))
                let decoded = try? ServerMessageDecoder.decodeConnectResponse(&prefix)
                if hasReadOnly && length == payload.count - 1 {
                    XCTAssertEqual(decoded?.readOnly, .some(nil))
                } else {
                    XCTAssertNil(decoded, "prefix \(length) of \(hex(payload))")
                }
            }
        }
    }

    /// A frame cut anywhere is simply incomplete: the frame decoder asks for more bytes.
    func testEveryTruncationOfAFrameNeedsMoreBytes() throws {
        for (payload, _) in Self.corpus.requests {
            var frame = ByteBuffer()
            frame.writeJuteFrame { $0.writeBytes(payload) }
            let whole = Array(frame.readableBytesView)
            for length in 0..<whole.count {
                var decoder = ZKFrameDecoder()
                var prefix = ByteBuffer(bytes: whole.prefix(length))
                XCTAssertNil(try decoder.decode(buffer: &prefix))
                XCTAssertEqual(prefix.readerIndex, 0)
            }
        }
    }

    // MARK: Random bytes

    func testRandomPayloadsNeverTrap() {
        let seed: UInt64 = 0x5EED_0001
        var random = SplitMix64(seed: seed)
        var decodedRequests = 0
        for _ in 0..<5_000 {
            let raw = random.bytes(count: Int.random(in: 0...96, using: &random))
            var request = ByteBuffer(bytes: raw)
            if (try? ClientMessageDecoder.decodeRequest(&request)) != nil { decodedRequests += 1 }
            var connect = ByteBuffer(bytes: raw)
            _ = try? ClientMessageDecoder.decodeConnectRequest(&connect)
            var connectResponse = ByteBuffer(bytes: raw)
            _ = try? ServerMessageDecoder.decodeConnectResponse(&connectResponse)
            let opcode = Self.knownOpcodes.randomElement(using: &random) ?? 0
            var reply = ByteBuffer(bytes: raw)
            _ = try? ServerMessageDecoder.decodeReply(&reply, opcode: opcode)
        }
        // Random opcodes are almost all unknown, which decode fine: the loop did reach the decoder.
        XCTAssertGreaterThan(decodedRequests, 0, "seed \(seed)")
    }

    /// Random bodies behind a valid header reach every body decoder, not just the header reader.
    func testRandomBodiesBehindEveryOpcodeNeverTrap() {
        let seed: UInt64 = 0x5EED_0002
        var random = SplitMix64(seed: seed)
        for opcode in Self.knownOpcodes {
            for _ in 0..<300 {
                // Small numbers are likelier to be plausible lengths and counts than uniform bytes.
                let body = (0..<Int.random(in: 0...64, using: &random)).map { _ -> UInt8 in
                    random.next() % 3 == 0 ? UInt8.random(in: 0...255, using: &random) : UInt8.random(in: 0...4, using: &random)
                }
                var request = ByteBuffer()
                request.writeJuteRequestHeader(RequestHeader(xid: 1, type: opcode))
                request.writeBytes(body)
                _ = try? ClientMessageDecoder.decodeRequest(&request)
                var reply = ByteBuffer()
                reply.writeJuteReplyHeader(ReplyHeader(xid: 1, zxid: 1, err: 0))
                reply.writeBytes(body)
                _ = try? ServerMessageDecoder.decodeReply(&reply, opcode: opcode)
            }
        }
    }

    /// Valid messages with a few bytes overwritten: lengths and counts become hostile while the
    /// surrounding structure stays plausible.
    func testMutatedValidMessagesNeverTrap() {
        let seed: UInt64 = 0x5EED_0003
        var random = SplitMix64(seed: seed)
        let interesting: [UInt8] = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff]
        for _ in 0..<20 {
            for (payload, _) in Self.corpus.requests where !payload.isEmpty {
                var request = ByteBuffer(bytes: Self.mutate(payload, interesting, &random))
                _ = try? ClientMessageDecoder.decodeRequest(&request)
            }
            for (payload, opcode) in Self.corpus.replies where !payload.isEmpty {
                var reply = ByteBuffer(bytes: Self.mutate(payload, interesting, &random))
                _ = try? ServerMessageDecoder.decodeReply(&reply, opcode: opcode)
            }
            for payload in Self.corpus.connectRequests {
                var connect = ByteBuffer(bytes: Self.mutate(payload, interesting, &random))
                _ = try? ClientMessageDecoder.decodeConnectRequest(&connect)
            }
        }
    }

    static func mutate(_ payload: [UInt8], _ interesting: [UInt8], _ random: inout SplitMix64) -> [UInt8] {
        var mutated = payload
        for _ in 0..<Int.random(in: 1...4, using: &random) {
            let index = Int.random(in: 0..<mutated.count, using: &random)
            mutated[index] = interesting.randomElement(using: &random) ?? 0
        }
        return mutated
    }

    func testRandomStreamsThroughTheFrameDecoderNeverTrap() {
        let seed: UInt64 = 0x5EED_0004
        var random = SplitMix64(seed: seed)
        for _ in 0..<2_000 {
            var decoder = ZKFrameDecoder(frameBytesMax: 64)
            var stream = ByteBuffer(bytes: random.bytes(count: Int.random(in: 0...128, using: &random)))
            while let payload = try? decoder.decode(buffer: &stream) {
                XCTAssertLessThanOrEqual(payload.readableBytes, 64)
            }
        }
    }
}
