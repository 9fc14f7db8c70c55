import Crypto
import Foundation
import ZKProtocol

/// The server side of SASL DIGEST-MD5 (RFC 2831) as ZooKeeper's clients speak it: realm and
/// server name `zk-sasl-md5`, service `zookeeper`, quality of protection `auth` only.
///
/// The exchange on one connection: the client's first token (empty) is answered with a
/// challenge carrying a nonce; the client's digest response is checked against the user's
/// password; a good one is answered with `rspauth` (the proof that the server knows the password
/// too) and the connection is authenticated as `sasl:<user>`. Pure: the nonce comes from the
/// caller.
public struct SASLDigestServer: Sendable {
    public static let realm = "zk-sasl-md5"
    public static let digestURI = "zookeeper/zk-sasl-md5"

    /// user name → password, as a JAAS `Server` section's `user_NAME="PASSWORD"` entries give them.
    public var users: [String: String]

    public init(users: [String: String]) {
        self.users = users
    }

    /// The challenge for `nonce`.
    public static func challenge(nonce: String) -> [UInt8] {
        Array("realm=\"\(realm)\",nonce=\"\(nonce)\",qop=\"auth\",charset=utf-8,algorithm=md5-sess".utf8)
    }

    public enum Failure: Error, Equatable, Sendable {
        case malformed(String)
        case unknownUser(String)
        case wrongDigest
    }

    /// Checks the client's response to the challenge with `nonce`. Returns the authenticated user
    /// and the final token (`rspauth=...`).
    public func verify(response token: [UInt8], nonce: String) -> Result<(user: String, token: [UInt8]), Failure> {
        guard let fields = Self.parse(token) else { return .failure(.malformed("unparseable response")) }
        guard let user = fields["username"], !user.isEmpty else { return .failure(.malformed("no username")) }
        guard fields["nonce"] == nonce else { return .failure(.malformed("nonce does not match")) }
        guard let cnonce = fields["cnonce"], !cnonce.isEmpty else { return .failure(.malformed("no cnonce")) }
        guard let nc = fields["nc"], nc.count == 8, UInt32(nc, radix: 16) != nil else {
            return .failure(.malformed("bad nonce count"))
        }
        let qop = fields["qop"] ?? "auth"
        guard qop == "auth" else { return .failure(.malformed("unsupported qop \(qop)")) }
        guard let uri = fields["digest-uri"], uri == Self.digestURI else {
            return .failure(.malformed("digest-uri is not \(Self.digestURI)"))
        }
        guard let clientDigest = fields["response"], clientDigest.count == 32 else {
            return .failure(.malformed("no response digest"))
        }
        let realm = fields["realm"] ?? Self.realm
        if let authzid = fields["authzid"], authzid != user {
            return .failure(.malformed("authorization id differs from the user"))
        }
        guard let password = users[user] else { return .failure(.unknownUser(user)) }

        // A1 = MD5(user:realm:password) ":" nonce ":" cnonce [":" authzid]
        var a1 = Array(Insecure.MD5.hash(data: Array("\(user):\(realm):\(password)".utf8)))
        a1 += Array(":\(nonce):\(cnonce)".utf8)
        if let authzid = fields["authzid"] { a1 += Array(":\(authzid)".utf8) }
        let ha1 = Self.hex(Array(Insecure.MD5.hash(data: a1)))
        func digest(a2: String) -> String {
            let ha2 = Self.hex(Array(Insecure.MD5.hash(data: Array(a2.utf8))))
            return Self.hex(Array(Insecure.MD5.hash(data: Array("\(ha1):\(nonce):\(nc):\(cnonce):\(qop):\(ha2)".utf8))))
        }
        guard Self.constantTimeEqual(digest(a2: "AUTHENTICATE:\(uri)"), clientDigest.lowercased()) else {
            return .failure(.wrongDigest)
        }
        return .success((user, Array("rspauth=\(digest(a2: ":\(uri)"))".utf8)))
    }

    /// `key=value` directives; a key given twice makes the response malformed.
    static func parse(_ token: [UInt8]) -> [String: String]? { SASLDirectives.parse(token, repeated: .reject) }

    static func hex(_ bytes: [UInt8]) -> String { SASLDirectives.hex(bytes) }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for i in x.indices { difference |= x[i] ^ y[i] }
        return difference == 0
    }
}
