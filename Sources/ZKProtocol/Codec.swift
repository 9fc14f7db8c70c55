import NIOCore

// API of the jute codec. The formats are written down at the top of `Jute.swift` (types and
// records), `RequestCodec.swift` (client → server) and `ResponseCodec.swift` (server → client);
// this file holds the public entry points and the framing.
//
//   stream = frame*
//   frame  = int length (big-endian, bytes that follow, 0 ... frameBytesMax), payload[length]
//
// The first four bytes of a connection may instead spell a four-letter word (`FourLetterWord`);
// the server looks at them before it hands the stream to `ZKFrameDecoder`, which would reject
// them as an oversized length (every word reads as a length of over 1.6 GB).

/// Why bytes could not be decoded. Decoding never traps on hostile input; it throws one of these.
public enum ProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A frame announced more bytes than the configured maximum.
    case frameTooLarge(length: Int, max: Int)
    /// A frame announced a negative length.
    case negativeLength(Int32)
    /// The payload ended before the record did.
    case truncated(what: String)
    /// A length or value inside the payload is impossible (negative count other than -1, ...).
    case invalid(what: String)
    /// Bytes were left after the record that should have ended the payload.
    case trailingBytes(count: Int)

    public var description: String {
        switch self {
        case .frameTooLarge(let length, let max): return "frame of \(length) bytes exceeds the maximum of \(max)"
        case .negativeLength(let length): return "frame announces a negative length \(length)"
        case .truncated(let what): return "payload ended inside \(what)"
        case .invalid(let what): return "invalid \(what)"
        case .trailingBytes(let count): return "\(count) unexpected bytes after the record"
        }
    }
}

/// Splits a byte stream into length-prefixed payloads (the 4-byte big-endian length excluded).
/// `nil` means more bytes are needed; the reader index is then left untouched. A length above
/// `frameBytesMax` or below zero throws before anything is allocated.
public struct ZKFrameDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer
    public static let defaultFrameBytesMax = 1_048_575
    public let frameBytesMax: Int
    public init(frameBytesMax: Int = ZKFrameDecoder.defaultFrameBytesMax) {
        self.frameBytesMax = frameBytesMax
    }
    public mutating func decode(buffer: inout ByteBuffer) throws -> ByteBuffer? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: Int32.self) else {
            return nil
        }
        guard length >= 0 else { throw ProtocolError.negativeLength(length) }
        guard Int(length) <= self.frameBytesMax else {
            throw ProtocolError.frameTooLarge(length: Int(length), max: self.frameBytesMax)
        }
        // A slice shares the cumulation buffer's storage: nothing is copied or allocated here.
        guard let payload = buffer.getSlice(at: buffer.readerIndex + 4, length: Int(length)) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4 + Int(length))
        return payload
    }
    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> ByteBuffer? {
        try decode(buffer: &buffer)
    }
}

/// Four-letter words are recognised when the first four bytes of a connection spell one.
public enum FourLetterWord: String, Sendable, CaseIterable {
    case ruok, srvr, stat, mntr, conf, cons, crst, srst, dump, wchs, wchc, wchp, envi, isro, dirs, gtmk, stmk, hash
    /// Interprets the first four bytes of a connection (the would-be length prefix).
    public static func detect(_ first4: Int32) -> FourLetterWord? {
        let bits = UInt32(bitPattern: first4)
        var word = ""
        for shift: UInt32 in [24, 16, 8, 0] {
            let byte = UInt8(truncatingIfNeeded: bits >> shift)
            // Every word is four lower-case ASCII letters; anything else cannot match.
            guard byte >= UInt8(ascii: "a"), byte <= UInt8(ascii: "z") else { return nil }
            word.unicodeScalars.append(Unicode.Scalar(byte))
        }
        return FourLetterWord(rawValue: word)
    }
}

/// Server side: decoding what clients send.
public enum ClientMessageDecoder {
    /// Decodes a ConnectRequest payload, with or without the trailing read-only byte.
    public static func decodeConnectRequest(_ payload: inout ByteBuffer) throws -> ConnectRequest {
        try RequestCodec.decodeConnectRequest(&payload)
    }
    /// Decodes a request payload: the header then the op's record. An unknown opcode gives
    /// `.unknown(opcode:)`, not an error. Throws when the record is malformed.
    public static func decodeRequest(_ payload: inout ByteBuffer) throws -> (RequestHeader, Request) {
        try RequestCodec.decodeRequest(&payload)
    }
}

extension ServerFrame {
    /// Appends the length prefix and the payload of this frame.
    public func encode(into buffer: inout ByteBuffer) { ResponseCodec.encode(self, into: &buffer) }
}

/// Client side: encoding requests and decoding what servers send (used by tests and the Swift
/// client).
public enum ClientMessageEncoder {
    /// Appends a length-prefixed ConnectRequest (the read-only byte only when not nil).
    public static func encode(_ request: ConnectRequest, into buffer: inout ByteBuffer) {
        RequestCodec.encode(request, into: &buffer)
    }
    /// Appends a length-prefixed request: header then record.
    public static func encode(xid: Int32, _ request: Request, into buffer: inout ByteBuffer) {
        RequestCodec.encode(xid: xid, request, into: &buffer)
    }
}

public enum ServerMessageDecoder {
    public static func decodeConnectResponse(_ payload: inout ByteBuffer) throws -> ConnectResponse {
        try ResponseCodec.decodeConnectResponse(&payload)
    }
    /// Decodes a reply payload. `opcode` is the opcode of the request this reply answers (the
    /// client knows it from its pending queue); it is ignored for notifications (xid -1), which
    /// come back as `.notification`.
    public static func decodeReply(_ payload: inout ByteBuffer, opcode: Int32) throws -> ServerFrame {
        try ResponseCodec.decodeReply(&payload, opcode: opcode)
    }
}
