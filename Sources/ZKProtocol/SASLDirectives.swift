/// The text of DIGEST-MD5 tokens (RFC 2831): comma-separated `key=value` directives, values
/// optionally quoted with `\` escapes, empty list elements allowed. Shared by the server's and
/// the client's side of the exchange.
public enum SASLDirectives {
    /// What a key given twice means.
    public enum Repeated: Sendable {
        /// The token is malformed (a client's response names each directive once).
        case reject
        /// The values are joined by commas (a challenge may offer several realms or qops).
        case join
    }

    /// The directives of `token`, keys lower-cased; nil when it is malformed.
    public static func parse(_ token: [UInt8], repeated: Repeated) -> [String: String]? {
        var fields: [String: String] = [:]
        var index = 0
        func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }
        func skipSpace() { while index < token.count, isSpace(token[index]) { index += 1 } }
        while true {
            while index < token.count, isSpace(token[index]) || token[index] == UInt8(ascii: ",") { index += 1 }
            if index >= token.count { break }
            var key: [UInt8] = []
            while index < token.count, token[index] != UInt8(ascii: "=") {
                if token[index] == UInt8(ascii: ",") { return nil }
                key.append(token[index])
                index += 1
            }
            guard index < token.count else { return nil }
            index += 1  // "="
            skipSpace()
            var value: [UInt8] = []
            if index < token.count, token[index] == UInt8(ascii: "\"") {
                index += 1
                var closed = false
                while index < token.count {
                    let byte = token[index]
                    index += 1
                    if byte == UInt8(ascii: "\\"), index < token.count {
                        value.append(token[index])
                        index += 1
                    } else if byte == UInt8(ascii: "\"") {
                        closed = true
                        break
                    } else {
                        value.append(byte)
                    }
                }
                guard closed else { return nil }
                skipSpace()
                guard index >= token.count || token[index] == UInt8(ascii: ",") else { return nil }
            } else {
                while index < token.count, token[index] != UInt8(ascii: ",") {
                    value.append(token[index])
                    index += 1
                }
                while let last = value.last, isSpace(last) { value.removeLast() }
            }
            while let first = key.first, isSpace(first) { key.removeFirst() }
            while let last = key.last, isSpace(last) { key.removeLast() }
            let name = String(decoding: key, as: UTF8.self).lowercased()
            guard !name.isEmpty else { return nil }
            let text = String(decoding: value, as: UTF8.self)
            if let earlier = fields[name] {
                guard repeated == .join else { return nil }
                fields[name] = "\(earlier),\(text)"
            } else {
                fields[name] = text
            }
        }
        return fields
    }

    /// Lower-case hexadecimal, as digests are written.
    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A quoted-string value.
    public static func quote(_ value: String) -> String {
        var out = "\""
        for character in value {
            if character == "\"" || character == "\\" { out.append("\\") }
            out.append(character)
        }
        return out + "\""
    }
}
