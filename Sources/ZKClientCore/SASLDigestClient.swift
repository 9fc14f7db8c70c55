import Crypto

/// Who a session authenticates as with SASL DIGEST-MD5 (what a JAAS `Client` section with
/// `DigestLoginModule` gives ZooKeeper's Java client): a user and password, and the server
/// principal the digest is bound to. ZooKeeper's defaults are service `zookeeper` and server name
/// `zk-sasl-md5` (`ZooKeeperSaslClient`, `SaslServerPrincipal`; system properties
/// `zookeeper.sasl.client.username` and `zookeeper.sasl.client.canonicalize.hostname` do not apply
/// to DIGEST-MD5), so the digest-uri is `zookeeper/zk-sasl-md5`.
public struct SASLCredentials: Sendable, Hashable {
    public var user: String
    public var password: String
    /// The service (protocol) part of the digest-uri.
    public var service: String
    /// The server-name part of the digest-uri, also the realm used when the challenge names none.
    public var host: String

    public init(user: String, password: String, service: String = "zookeeper", host: String = "zk-sasl-md5") {
        self.user = user
        self.password = password
        self.service = service
        self.host = host
    }

    public var digestURI: String { "\(service)/\(host)" }
}

/// The client side of SASL DIGEST-MD5 (RFC 2831) as ZooKeeper's servers speak it: quality of
/// protection `auth`, algorithm `md5-sess`, UTF-8. Pure: the client nonce comes from the caller.
///
/// The exchange, one `GetSASLRequest` / `SetSASLResponse` (opcode 102) per step:
/// 1. the client sends an empty token; the server answers with a challenge (realm, nonce, qop);
/// 2. the client answers with `response(to:)` (user, realm, nonces, the digest proving it knows
///    the password); the server answers with `rspauth=...`, or refuses with AUTHFAILED;
/// 3. the client checks `rspauth` with `verifyFinal` (the proof that the server knows the
///    password too). Nothing more is sent.
public struct SASLDigestClient: Sendable, Hashable {
    public enum Failure: Error, Sendable, Hashable {
        /// The challenge cannot be parsed or lacks a field.
        case malformedChallenge(String)
        /// The challenge offers no quality of protection / algorithm this client speaks.
        case unsupported(String)
    }

    public let credentials: SASLCredentials
    public let cnonce: String
    /// The nonce and realm of the challenge answered, and the expected rspauth.
    public private(set) var expectedProof: String? = nil

    public init(credentials: SASLCredentials, cnonce: String) {
        self.credentials = credentials
        self.cnonce = cnonce
    }

    /// A client nonce from 128 bits of the generator (32 hex digits: no character that needs quoting).
    public static func makeCnonce(using generator: inout some RandomNumberGenerator) -> String {
        var bytes: [UInt8] = []
        for _ in 0..<2 {
            let word = generator.next()
            for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: word >> UInt64(shift))) }
        }
        return hex(bytes)
    }

    /// The digest response to the server's challenge (step 2), in the field order of Java's
    /// DIGEST-MD5 client.
    public mutating func response(to challenge: [UInt8]) -> Result<[UInt8], Failure> {
        guard let fields = Self.parse(challenge) else { return .failure(.malformedChallenge("unparseable")) }
        guard let nonce = fields["nonce"], !nonce.isEmpty else { return .failure(.malformedChallenge("no nonce")) }
        let qops = (fields["qop"] ?? "auth").split(separator: ",").map { $0.trimmingSpaces() }
        guard qops.contains("auth") else { return .failure(.unsupported("qop \(qops)")) }
        if let algorithm = fields["algorithm"], algorithm.lowercased() != "md5-sess" {
            return .failure(.unsupported("algorithm \(algorithm)"))
        }
        let realm = fields["realm"] ?? credentials.host
        let nc = "00000001"
        let uri = credentials.digestURI
        let user = credentials.user
        var a1 = Self.md5(Array("\(user):\(realm):\(credentials.password)".utf8))
        a1 += Array(":\(nonce):\(cnonce)".utf8)
        let ha1 = Self.hex(Self.md5(a1))
        func digest(_ a2: String) -> String {
            let ha2 = Self.hex(Self.md5(Array(a2.utf8)))
            return Self.hex(Self.md5(Array("\(ha1):\(nonce):\(nc):\(cnonce):auth:\(ha2)".utf8)))
        }
        expectedProof = digest(":\(uri)")
        var text = ""
        if fields["charset"]?.lowercased() == "utf-8" { text += "charset=utf-8," }
        text += "username=\(Self.quote(user)),realm=\(Self.quote(realm)),nonce=\(Self.quote(nonce)),nc=\(nc),"
        text += "cnonce=\(Self.quote(cnonce)),digest-uri=\(Self.quote(uri)),maxbuf=65536,"
        text += "response=\(digest("AUTHENTICATE:\(uri)")),qop=auth"
        return .success(Array(text.utf8))
    }

    /// Whether the server's final token (step 3) proves that it knows the password.
    public func verifyFinal(_ token: [UInt8]) -> Bool {
        guard let expectedProof, let fields = Self.parse(token), let proof = fields["rspauth"] else { return false }
        return proof.lowercased() == expectedProof
    }

    // MARK: - Encoding

    static func md5(_ bytes: [UInt8]) -> [UInt8] { Array(Insecure.MD5.hash(data: bytes)) }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func quote(_ value: String) -> String {
        var out = "\""
        for character in value {
            if character == "\"" || character == "\\" { out.append("\\") }
            out.append(character)
        }
        return out + "\""
    }

    /// `key=value` pairs separated by commas; values may be quoted (with `\` escapes). Keys are
    /// lower-cased; a repeated key keeps its values joined by commas (a challenge may offer
    /// several realms or qop values).
    static func parse(_ token: [UInt8]) -> [String: String]? {
        var fields: [String: String] = [:]
        var index = 0
        func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }
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
            index += 1
            while index < token.count, isSpace(token[index]) { index += 1 }
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
                while index < token.count, isSpace(token[index]) { index += 1 }
                guard index >= token.count || token[index] == UInt8(ascii: ",") else { return nil }
            } else {
                while index < token.count, token[index] != UInt8(ascii: ",") {
                    value.append(token[index])
                    index += 1
                }
                while let last = value.last, isSpace(last) { value.removeLast() }
            }
            let name = String(decoding: key, as: UTF8.self).trimmingSpaces().lowercased()
            guard !name.isEmpty else { return nil }
            let text = String(decoding: value, as: UTF8.self)
            fields[name] = fields[name].map { "\($0),\(text)" } ?? text
        }
        return fields
    }
}

extension StringProtocol {
    fileprivate func trimmingSpaces() -> String {
        String(self.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
