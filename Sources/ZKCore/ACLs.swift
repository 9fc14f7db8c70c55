import Crypto
import Foundation
import ZKProtocol

/// Authentication and ACL checks, with ZooKeeper's schemes:
///
/// - `world:anyone` matches everyone;
/// - `digest:user:base64(sha1(user:password))`, attached to a connection by an `auth` packet
///   carrying `user:password`;
/// - `ip:address` or `ip:address/bits`, matched against the connection's peer address, which
///   every connection carries implicitly;
/// - `sasl:user`, attached to a connection by a successful SASL DIGEST-MD5 exchange;
/// - `auth` in an ACL being set stands for every authenticated id of the connection (digest and
///   sasl, not ip);
/// - `super` (a digest equal to the configured super digest) passes every check.
public enum ACLs {
    /// ZooKeeper's digest of `user:password`: `user:` followed by base64 of the SHA-1 of the whole
    /// string.
    public static func digest(_ idPassword: String) -> String {
        let user = idPassword.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        let hash = Insecure.SHA1.hash(data: Array(idPassword.utf8))
        return user + ":" + Data(hash).base64EncodedString()
    }

    /// The ids an `auth` packet attaches to a connection, or nil when the scheme is not supported
    /// (the server then answers AUTHFAILED and closes the connection).
    public static func authenticate(scheme: String, auth: [UInt8], peerAddress: String, superDigest: String?) -> [Id]? {
        switch scheme {
        case "digest":
            let id = digest(String(decoding: auth, as: UTF8.self))
            var ids = [Id(scheme: "digest", id: id)]
            if let superDigest, id == superDigest { ids.append(Id(scheme: "super", id: "")) }
            return ids
        case "ip":
            return [Id(scheme: "ip", id: peerAddress)]
        default:
            return nil
        }
    }

    /// Whether `authIds` grant `perm` on a node with `acl`.
    public static func check(_ acl: [ACL], _ perm: Perms, authIds: [Id]) -> Bool {
        if acl.isEmpty { return true }
        if authIds.contains(where: { $0.scheme == "super" }) { return true }
        for entry in acl where entry.perms.rawValue & perm.rawValue != 0 {
            if entry.id.scheme == "world" && entry.id.id == "anyone" { return true }
            for auth in authIds where auth.scheme == entry.id.scheme {
                switch auth.scheme {
                case "digest":
                    if auth.id == entry.id.id { return true }
                case "ip":
                    if ipMatches(address: auth.id, pattern: entry.id.id) { return true }
                default:
                    if auth.id == entry.id.id { return true }
                }
            }
        }
        return false
    }

    /// Validates an ACL list for create/setACL and expands `auth` entries. Throws INVALIDACL.
    public static func fixup(_ acl: [ACL]?, authIds: [Id]) throws(ErrorCode) -> [ACL] {
        guard let acl, !acl.isEmpty else { throw .invalidACL }
        var result: [ACL] = []
        func add(_ entry: ACL) {
            if !result.contains(entry) { result.append(entry) }
        }
        for entry in acl {
            switch entry.id.scheme {
            case "world":
                guard entry.id.id == "anyone" else { throw .invalidACL }
                add(entry)
            case "auth":
                let authenticated = authIds.filter { $0.scheme == "digest" || $0.scheme == "sasl" }
                guard !authenticated.isEmpty else { throw .invalidACL }
                for id in authenticated { add(ACL(perms: entry.perms, id: id)) }
            case "digest":
                guard entry.id.id.split(separator: ":", omittingEmptySubsequences: false).count == 2 else { throw .invalidACL }
                add(entry)
            case "ip":
                guard isValidIPPattern(entry.id.id) else { throw .invalidACL }
                add(entry)
            case "sasl":
                guard !entry.id.id.isEmpty else { throw .invalidACL }
                add(entry)
            default:
                throw .invalidACL
            }
        }
        return result
    }

    /// getACL without ADMIN shows digest ids as `user:x`.
    public static func masked(_ acl: [ACL]) -> [ACL] {
        acl.map { entry in
            guard entry.id.scheme == "digest" else { return entry }
            let user = entry.id.id.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            return ACL(perms: entry.perms, id: Id(scheme: "digest", id: user + ":x"))
        }
    }

    /// whoAmI's view of an id.
    public static func clientInfo(_ id: Id) -> ClientInfo {
        switch id.scheme {
        case "digest":
            let user = id.id.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            return ClientInfo(authScheme: "digest", user: user)
        default:
            return ClientInfo(authScheme: id.scheme, user: id.id)
        }
    }

    static func ipv4(_ text: Substring) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard let byte = UInt8(part) else { return nil }
            value = value << 8 | UInt32(byte)
        }
        return value
    }

    static func isValidIPPattern(_ pattern: String) -> Bool {
        let pieces = pattern.split(separator: "/", omittingEmptySubsequences: false)
        guard pieces.count <= 2, ipv4(pieces[0]) != nil else { return false }
        if pieces.count == 2 {
            guard let bits = Int(pieces[1]), bits >= 0, bits <= 32 else { return false }
        }
        return true
    }

    static func ipMatches(address: String, pattern: String) -> Bool {
        let pieces = pattern.split(separator: "/", omittingEmptySubsequences: false)
        guard let want = ipv4(pieces[0]), let have = ipv4(Substring(address)) else { return address == pattern }
        let bits = pieces.count == 2 ? (Int(pieces[1]) ?? 32) : 32
        guard bits > 0 else { return true }
        let mask: UInt32 = bits >= 32 ? .max : ~(UInt32.max >> UInt32(bits))
        return want & mask == have & mask
    }
}
