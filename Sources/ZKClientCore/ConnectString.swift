// Connect strings and chroot paths.
//
//   connectString = host-port ("," host-port)* [chroot]
//   host-port     = host [":" port]         port defaults to 2181; an IPv6 host is written [addr]
//   chroot        = "/" path                applies to every path of the session
//
// This is the format of ZooKeeper's `ConnectStringParser`: the chroot follows the last host, and
// "/" alone means no chroot.

/// One server of a connect string.
public struct HostAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// A parsed connect string.
public struct ConnectString: Sendable, Hashable {
    public static let defaultPort = 2181
    public var hosts: [HostAddress]
    /// The chroot without a trailing slash, or nil for none.
    public var chroot: String?

    public init(hosts: [HostAddress], chroot: String? = nil) {
        self.hosts = hosts
        self.chroot = chroot
    }

    /// Parses `host:port,host:port/chroot`. Throws `ConnectStringError` for an empty host list, a
    /// bad port or an invalid chroot.
    public init(parsing text: String) throws {
        var hostPart = Substring(text)
        var chroot: String? = nil
        if let slash = text.firstIndex(of: "/") {
            hostPart = text[..<slash]
            let root = String(text[slash...])
            if root != "/" {
                guard PathRules.isValid(root) else { throw ConnectStringError.invalidChroot(root) }
                chroot = root
            }
        }
        var hosts: [HostAddress] = []
        for entry in hostPart.split(separator: ",") {
            let trimmed = entry.trimmingSpaces()
            if trimmed.isEmpty { continue }
            var host = Substring(trimmed)
            var port = ConnectString.defaultPort
            if host.hasPrefix("[") {
                guard let close = host.firstIndex(of: "]") else { throw ConnectStringError.invalidHost(String(trimmed)) }
                let rest = host[host.index(after: close)...]
                host = host[host.index(after: host.startIndex)..<close]
                if rest.hasPrefix(":") {
                    guard let value = Int(rest.dropFirst()), (0...65535).contains(value) else {
                        throw ConnectStringError.invalidPort(String(trimmed))
                    }
                    port = value
                }
            } else if let colon = host.lastIndex(of: ":") {
                guard let value = Int(host[host.index(after: colon)...]), (0...65535).contains(value) else {
                    throw ConnectStringError.invalidPort(String(trimmed))
                }
                port = value
                host = host[..<colon]
            }
            guard !host.isEmpty else { throw ConnectStringError.invalidHost(String(trimmed)) }
            hosts.append(HostAddress(host: String(host), port: port))
        }
        guard !hosts.isEmpty else { throw ConnectStringError.noHosts(text) }
        self.hosts = hosts
        self.chroot = chroot
    }
}

public enum ConnectStringError: Error, Sendable, Hashable, CustomStringConvertible {
    case noHosts(String)
    case invalidHost(String)
    case invalidPort(String)
    case invalidChroot(String)
    public var description: String {
        switch self {
        case .noHosts(let text): return "connect string \"\(text)\" names no host"
        case .invalidHost(let host): return "invalid host \"\(host)\""
        case .invalidPort(let host): return "invalid port in \"\(host)\""
        case .invalidChroot(let root): return "invalid chroot \"\(root)\""
        }
    }
}

extension Substring {
    fileprivate func trimmingSpaces() -> Substring {
        var result = self
        while result.first == " " { result = result.dropFirst() }
        while result.last == " " { result = result.dropLast() }
        return result
    }
}

/// The client-side path check of ZooKeeper's `PathUtils.validatePath`: absolute, no empty, "." or
/// ".." component, no trailing slash (except the root), no NUL or control characters.
public enum PathRules {
    public static func isValid(_ path: String, sequential: Bool = false) -> Bool {
        guard path.hasPrefix("/") else { return false }
        if path == "/" { return true }
        // A sequential create may end in "/": the server appends the counter.
        let checked = sequential && path.hasSuffix("/") ? String(path.dropLast()) + "x" : path
        if checked.hasSuffix("/") { return false }
        for component in checked.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            if component.isEmpty || component == "." || component == ".." { return false }
            for scalar in component.unicodeScalars {
                let value = scalar.value
                if value == 0 || (value > 0 && value < 0x20) || (value >= 0x7F && value <= 0x9F)
                    || (value >= 0xD800 && value <= 0xF8FF) || (value >= 0xFFF0 && value <= 0xFFFF)
                {
                    return false
                }
            }
        }
        return true
    }

    /// `path` as the server knows it under `chroot`.
    public static func prefix(_ path: String, chroot: String?) -> String {
        guard let chroot else { return path }
        return path == "/" ? chroot : chroot + path
    }

    /// `path` as the program knows it under `chroot` (the inverse of `prefix`). A server path
    /// outside the chroot is returned unchanged.
    public static func strip(_ path: String, chroot: String?) -> String {
        guard let chroot else { return path }
        if path == chroot { return "/" }
        if path.hasPrefix(chroot + "/") { return String(path.dropFirst(chroot.count)) }
        return path
    }
}
