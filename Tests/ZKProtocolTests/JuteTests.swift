import NIOCore
import XCTest

@testable import ZKProtocol

/// The jute primitives and records: exact wire forms, null encodings, and the rule that every
/// length is checked against the remaining bytes before anything is allocated.
final class JuteTests: XCTestCase {
    func testBooleanIsWrittenAsExactlyZeroOrOneAndAnyNonZeroReadsAsTrue() throws {
        XCTAssertEqual(encoded { $0.writeJuteBool(true) }, [1])
        XCTAssertEqual(encoded { $0.writeJuteBool(false) }, [0])
        var input = buffer("00 01 02 ff")
        XCTAssertEqual(try input.readJuteBool("b"), false)
        XCTAssertEqual(try input.readJuteBool("b"), true)
        XCTAssertEqual(try input.readJuteBool("b"), true)
        XCTAssertEqual(try input.readJuteBool("b"), true)
        XCTAssertThrowsError(try input.readJuteBool("b")) { XCTAssertEqual($0 as? ProtocolError, .truncated(what: "b")) }
    }

    func testIntegersAreBigEndianTwosComplement() throws {
        XCTAssertEqual(hex(encoded { $0.writeJuteInt(-2) }), "fffffffe")
        XCTAssertEqual(hex(encoded { $0.writeJuteLong(0x0100_0003_6488_0000) }), "0100000364880000")
        var input = buffer("fffffff8 ffffffffffffffff")
        XCTAssertEqual(try input.readJuteInt("i"), -8)
        XCTAssertEqual(try input.readJuteLong("l"), -1)
        var short = buffer("000000")
        XCTAssertThrowsError(try short.readJuteInt("i"))
        var shortLong = buffer("00000000000000")
        XCTAssertThrowsError(try shortLong.readJuteLong("l"))
    }

    func testNullBufferStringAndVectorAreMinusOne() throws {
        XCTAssertEqual(hex(encoded { $0.writeJuteBuffer(nil) }), "ffffffff")
        XCTAssertEqual(hex(encoded { $0.writeJuteString(nil) }), "ffffffff")
        XCTAssertEqual(hex(encoded { $0.writeJuteACLs(nil) }), "ffffffff")
        XCTAssertEqual(hex(encoded { $0.writeJuteBuffer([]) }), "00000000")
        XCTAssertEqual(hex(encoded { $0.writeJuteString("") }), "00000000")
        var input = buffer("ffffffff ffffffff ffffffff 00000000")
        XCTAssertNil(try input.readJuteBuffer("buffer"))
        XCTAssertNil(try input.readJuteString("string"))
        XCTAssertNil(try input.readJuteACLs("acl"))
        XCTAssertEqual(try input.readJuteBuffer("buffer"), [])
    }

    func testNegativeLengthOtherThanMinusOneIsInvalid() {
        for raw in ["fffffffe", "80000000"] {
            var asBuffer = buffer(raw + "00000000")
            XCTAssertThrowsError(try asBuffer.readJuteBuffer("data")) {
                guard case .invalid = $0 as? ProtocolError else { return XCTFail("\($0)") }
            }
            var asString = buffer(raw)
            XCTAssertThrowsError(try asString.readJuteString("path")) {
                guard case .invalid = $0 as? ProtocolError else { return XCTFail("\($0)") }
            }
            var asVector = buffer(raw)
            XCTAssertThrowsError(try asVector.readJuteStrings("children")) {
                guard case .invalid = $0 as? ProtocolError else { return XCTFail("\($0)") }
            }
        }
    }

    /// A hostile length of 2^31-1 in a tiny payload must be refused from the length alone: the
    /// decoder would otherwise try to reserve gigabytes.
    func testLengthsLongerThanTheRemainingBytesAreRefusedBeforeAllocation() {
        var data = buffer("7fffffff 0102")
        XCTAssertThrowsError(try data.readJuteBuffer("data")) { XCTAssertEqual($0 as? ProtocolError, .truncated(what: "data")) }
        var path = buffer("00000003 2f61")
        XCTAssertThrowsError(try path.readJuteString("path")) { XCTAssertEqual($0 as? ProtocolError, .truncated(what: "path")) }
        // Each string element needs at least its 4-byte length: 3 elements cannot fit in 8 bytes.
        var children = buffer("00000003 00000000 00000000")
        XCTAssertThrowsError(try children.readJuteStrings("children")) {
            XCTAssertEqual($0 as? ProtocolError, .truncated(what: "children"))
        }
        // An ACL needs at least 12 bytes.
        var acls = buffer("7fffffff" + String(repeating: "00", count: 100))
        XCTAssertThrowsError(try acls.readJuteACLs("acl")) { XCTAssertEqual($0 as? ProtocolError, .truncated(what: "acl")) }
    }

    func testInvalidUTF8IsRepairedNotRejected() throws {
        var input = buffer("00000004 2f ff fe 61")
        XCTAssertEqual(try input.readJuteString("path"), "/\u{FFFD}\u{FFFD}a")
    }

    /// A character outside the Basic Multilingual Plane is written as Java writes it, two
    /// surrogates of three bytes each, and read back as the character (Java would read two
    /// replacement characters): what one replica writes, another reads back equal.
    func testACharacterOutsideTheBMPIsWrittenAsJavaDoesAndReadBackWhole() throws {
        let wire = encoded { $0.writeJuteString("u\u{1F600}v") }
        XCTAssertEqual(wire, bytes("00000008 75 eda0bd edb880 76"))
        var input = ByteBuffer(bytes: wire)
        XCTAssertEqual(try input.readJuteString("id"), "u\u{1F600}v")
        // Plain UTF-8 from a client that is not Java reads the same.
        var plain = buffer("00000006 75 f09f9880 76")
        XCTAssertEqual(try plain.readJuteString("id"), "u\u{1F600}v")
        for scalar: UInt32 in [0x10000, 0x1E000, 0x1E446, 0x10FFFF] {
            let string = "/" + String(Character(Unicode.Scalar(scalar)!)) + "é"
            var again = ByteBuffer(bytes: encoded { $0.writeJuteString(string) })
            XCTAssertEqual(try again.readJuteString("path"), string, "U+\(String(scalar, radix: 16))")
        }
    }

    func testALoneSurrogateIsStillRepaired() throws {
        // A high surrogate without its low half, then a low one alone.
        var input = buffer("00000007 eda0bd 61 edb880")
        let read = try input.readJuteString("path")
        XCTAssertEqual(read?.unicodeScalars.filter { $0 == "\u{FFFD}" }.isEmpty, false)
        XCTAssertEqual(read?.contains("a"), true)
        XCTAssertEqual(read?.unicodeScalars.contains { $0.value > 0xFFFF }, false)
    }

    func testStringsAreCountedInUTF8Bytes() throws {
        XCTAssertEqual(encoded { $0.writeJuteString("/é") }, bytes("00000003 2fc3a9"))
        var input = buffer("00000003 2fc3a9")
        XCTAssertEqual(try input.readJuteString("path"), "/é")
    }

    func testStatIs68BytesInStructOrderQQQQIIIQIIQ() throws {
        let wire = encoded { $0.writeJuteStat(sampleStat) }
        XCTAssertEqual(wire.count, 68)
        XCTAssertEqual(wire, bytes(sampleStatHex))
        var input = buffer(sampleStatHex)
        XCTAssertEqual(try input.readJuteStat(), sampleStat)
        XCTAssertEqual(input.readableBytes, 0)
        var short = ByteBuffer(bytes: wire.dropLast())
        XCTAssertThrowsError(try short.readJuteStat())
    }

    func testIdAndACLRecords() throws {
        let acl = ACL(perms: .all, id: .anyone)
        let wire = "0000001f 00000005 776f726c64 00000006 616e796f6e65"
        XCTAssertEqual(encoded { $0.writeJuteACL(acl) }, bytes(wire))
        var input = buffer(wire)
        XCTAssertEqual(try input.readJuteACL(), acl)
        // kazoo sends the empty id of `auth` as a null string; it reads back as "".
        var kazooAuth = buffer("0000001f 00000004 61757468 ffffffff")
        XCTAssertEqual(try kazooAuth.readJuteACL(), ACL(perms: .all, id: Id(scheme: "auth", id: "")))
    }

    func testWatcherEventClientInfoAndMultiHeaderRecords() throws {
        let event = WatcherEvent(.nodeDataChanged, path: "/w")
        XCTAssertEqual(encoded { $0.writeJuteWatcherEvent(event) }, bytes("00000003 00000003 00000002 2f77"))
        let info = ClientInfo(authScheme: "ip", user: "127.0.0.1")
        var infoWire = buffer("00000002 6970 00000009 3132372e302e302e31")
        XCTAssertEqual(try infoWire.readJuteClientInfo(), info)
        XCTAssertEqual(encoded { $0.writeJuteMultiHeader(.terminator) }, bytes("ffffffff 01 ffffffff"))
        var header = buffer("00000001 00 ffffffff")
        XCTAssertEqual(try header.readJuteMultiHeader(), MultiHeader(type: 1, done: false, err: -1))
    }

    func testFrameLengthIsBackFilledAroundThePayload() {
        let frame = encoded { $0.writeJuteFrame { $0.writeJuteInt(-2); $0.writeJuteInt(11) } }
        XCTAssertEqual(hex(frame), "00000008fffffffe0000000b")
        // Writing after existing bytes fills the right slot.
        var out = ByteBuffer(bytes: [0xAA])
        out.writeJuteFrame { $0.writeJuteBool(true) }
        XCTAssertEqual(hex(out), "aa0000000101")
    }
}
