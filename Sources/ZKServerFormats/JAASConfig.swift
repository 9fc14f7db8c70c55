/// The part of a JAAS login configuration that ZooKeeper's SASL DIGEST-MD5 uses: the users of
/// the `Server` section, one `user_NAME="PASSWORD"` option each.
///
///     Server {
///         org.apache.zookeeper.server.auth.DigestLoginModule required
///         user_super="super_secret"
///         user_alice="alice_password";
///     };
///
/// Other sections (`Client`, `QuorumServer`, ...) and other options are ignored.
public enum JAASConfig {
    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// The users of the `Server` section (`section`), name → password.
    public static func serverUsers(in text: String, section: String = "Server") throws(ParseError) -> [String: String] {
        let uncommented = stripComments(text)
        guard let body = sectionBody(named: section, in: uncommented) else {
            throw ParseError(description: "no \(section) { ... }; section")
        }
        var users: [String: String] = [:]
        var rest = Substring(body)
        while let range = rest.range(of: "user_") {
            // An option name starts after whitespace (not inside another word).
            let before = rest[..<range.lowerBound].last
            rest = rest[range.upperBound...]
            guard before == nil || before!.isWhitespace else { continue }
            let name = rest.prefix { !$0.isWhitespace && $0 != "=" }
            var after = rest.dropFirst(name.count).drop { $0.isWhitespace }
            guard !name.isEmpty, after.first == "=" else { throw ParseError(description: "user_\(name) has no value") }
            after = after.dropFirst().drop { $0.isWhitespace }
            guard after.first == "\"" else { throw ParseError(description: "the password of \(name) is not quoted") }
            after = after.dropFirst()
            var password = ""
            var escaped = false
            var closed = false
            while let character = after.first {
                after = after.dropFirst()
                if escaped {
                    password.append(character)
                    escaped = false
                } else if character == "\\" {
                    escaped = true
                } else if character == "\"" {
                    closed = true
                    break
                } else {
                    password.append(character)
                }
            }
            guard closed else { throw ParseError(description: "the password of \(name) is not closed") }
            users[String(name)] = password
            rest = after
        }
        return users
    }

    private static func stripComments(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> Substring in
            let trimmed = line.drop { $0.isWhitespace }
            if trimmed.hasPrefix("//") || trimmed.hasPrefix("#") { return "" }
            return line
        }.joined(separator: "\n")
    }

    private static func sectionBody(named section: String, in text: String) -> String? {
        var search = Substring(text)
        while let range = search.range(of: section) {
            let before = search[..<range.lowerBound].last
            let after = search[range.upperBound...].drop { $0.isWhitespace }
            search = search[range.upperBound...]
            guard before == nil || before!.isWhitespace || before == ";" || before == "}", after.first == "{" else { continue }
            let body = after.dropFirst()
            guard let end = body.firstIndex(of: "}") else { return nil }
            return String(body[..<end])
        }
        return nil
    }
}
