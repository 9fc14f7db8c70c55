import ZKProtocol

/// The members of an ensemble as `/zookeeper/config` describes them, in ZooKeeper's dynamic
/// configuration format:
///
///     server.1=127.0.0.1:2888:3888:participant;127.0.0.1:2181
///     server.4=127.0.0.1:2891:3891:observer;0.0.0.0:2184
///     version=100000003
///
/// A server line is `server.ID=HOST:PEERPORT:ELECTIONPORT[:participant|:observer][;[CLIENTHOST:]CLIENTPORT]`;
/// participants vote, observers only follow. `version` (hexadecimal) is the zxid of the
/// reconfiguration that made the configuration (0 for the one a replica starts with).
public struct EnsembleConfig: Sendable, Hashable, CustomStringConvertible {
    public enum Role: String, Sendable, Hashable {
        case participant
        case observer
    }

    public struct Server: Sendable, Hashable {
        public var id: Int64
        public var host: String
        public var peerPort: Int
        public var electionPort: Int
        public var role: Role
        public var clientHost: String?
        public var clientPort: Int?
        public init(id: Int64, host: String, peerPort: Int, electionPort: Int, role: Role = .participant, clientHost: String? = nil, clientPort: Int? = nil) {
            self.id = id
            self.host = host
            self.peerPort = peerPort
            self.electionPort = electionPort
            self.role = role
            self.clientHost = clientHost
            self.clientPort = clientPort
        }

        /// The line's value, as ZooKeeper writes it (the role always, the client address when known).
        public var spec: String {
            var text = "\(host):\(peerPort):\(electionPort):\(role.rawValue)"
            if let clientPort { text += ";\(clientHost ?? "0.0.0.0"):\(clientPort)" }
            return text
        }
    }

    public struct ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        public var message: String
        public init(_ message: String) { self.message = message }
        public var description: String { message }
    }

    /// By id.
    public let servers: [Int64: Server]
    public var version: Zxid
    /// Participants, by id (kept: the leader counts them at every acknowledgement).
    public let voters: [Int64]
    public let observers: [Int64]

    public init(servers: [Server], version: Zxid = 0) {
        let byId = Dictionary(servers.map { ($0.id, $0) }, uniquingKeysWith: { _, last in last })
        self.servers = byId
        self.version = version
        self.voters = byId.values.filter { $0.role == .participant }.map(\.id).sorted()
        self.observers = byId.values.filter { $0.role == .observer }.map(\.id).sorted()
    }

    /// A configuration of voters known only by id (a simulated ensemble without addresses).
    public init(voters: [Int64]) {
        self.init(servers: voters.map { Server(id: $0, host: "127.0.0.1", peerPort: 0, electionPort: 0) })
    }

    /// Parses the text of `/zookeeper/config` (lines separated by newlines or commas).
    public init(parsing text: String) throws(ParseError) {
        var servers: [Server] = []
        var version: Zxid = 0
        for line in Self.entries(text) {
            guard let equals = line.firstIndex(of: "=") else { throw ParseError("expected key=value, got \"\(line)\"") }
            let key = line[..<equals].trimmed
            let value = line[line.index(after: equals)...].trimmed
            if key == "version" {
                guard let parsed = UInt64(value, radix: 16) else { throw ParseError("version must be hexadecimal, got \"\(value)\"") }
                version = Zxid(bitPattern: parsed)
            } else if key.hasPrefix("server.") {
                servers.append(try Self.parseServer(key: key, value: value))
            } else {
                throw ParseError("unknown key \"\(key)\"")
            }
        }
        let ids = servers.map(\.id)
        guard Set(ids).count == ids.count else { throw ParseError("a server id appears twice") }
        self.init(servers: servers, version: version)
    }

    /// One `server.ID=SPEC` entry.
    public static func parseServerLine(_ line: String) throws(ParseError) -> Server {
        guard let equals = line.firstIndex(of: "=") else { throw ParseError("expected server.ID=SPEC, got \"\(line)\"") }
        return try parseServer(key: line[..<equals].trimmed, value: line[line.index(after: equals)...].trimmed)
    }

    private static func parseServer(key: String, value: String) throws(ParseError) -> Server {
        guard key.hasPrefix("server."), let id = Int64(key.dropFirst("server.".count)), id >= 0 else {
            throw ParseError("expected server.ID with a numeric id, got \"\(key)\"")
        }
        let halves = value.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).map { String($0).trimmed }
        let parts = halves[0].split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3 || parts.count == 4, !parts[0].isEmpty, let peerPort = port(parts[1]), let electionPort = port(parts[2]) else {
            throw ParseError("server.\(id): expected HOST:PEERPORT:ELECTIONPORT[:ROLE], got \"\(halves[0])\"")
        }
        var role = Role.participant
        if parts.count == 4 {
            guard let named = Role(rawValue: parts[3].lowercased()) else {
                throw ParseError("server.\(id): role must be participant or observer, got \"\(parts[3])\"")
            }
            role = named
        }
        var server = Server(id: id, host: parts[0], peerPort: peerPort, electionPort: electionPort, role: role)
        if halves.count == 2 {
            let client = halves[1].split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            if client.count == 1, let clientPort = port(client[0]) {
                server.clientHost = "0.0.0.0"
                server.clientPort = clientPort
            } else if client.count == 2, !client[0].isEmpty, let clientPort = port(client[1]) {
                server.clientHost = client[0]
                server.clientPort = clientPort
            } else {
                throw ParseError("server.\(id): expected [CLIENTHOST:]CLIENTPORT after ';', got \"\(halves[1])\"")
            }
        }
        return server
    }

    private static func port(_ text: String) -> Int? {
        guard let value = Int(text), (0...65535).contains(value) else { return nil }
        return value
    }

    private static func entries(_ text: String) -> [String] {
        text.split(whereSeparator: { $0 == "\n" || $0 == "," || $0 == "\r" }).map { String($0).trimmed }.filter { !$0.isEmpty }
    }

    public var ids: [Int64] { servers.keys.sorted() }

    public func isVoter(_ id: Int64) -> Bool { servers[id]?.role == .participant }

    /// Whether `ids` hold a majority of the voters.
    public func isQuorum<S: Sequence<Int64>>(_ ids: S) -> Bool {
        let count = Set(ids).filter { servers[$0]?.role == .participant }.count
        return count > voters.count / 2
    }

    /// The highest zxid that a majority of the voters hold, given what each holds.
    public func quorumZxid(_ holdings: [Int64: Zxid]) -> Zxid {
        let held = voters.map { holdings[$0] ?? 0 }.sorted(by: >)
        guard !held.isEmpty else { return 0 }
        return held[held.count / 2]
    }

    /// The text of `/zookeeper/config`: servers by id, then the version in hexadecimal.
    public var text: String {
        var lines = ids.map { "server.\($0)=\(servers[$0]!.spec)" }
        lines.append("version=\(String(UInt64(bitPattern: version), radix: 16))")
        return lines.joined(separator: "\n")
    }

    public var description: String { text }

    /// An incremental change: the servers in `leaving` (ids, comma-separated) go, those in
    /// `joining` (`server.ID=SPEC` entries, comma-separated, each with a client port, as
    /// ZooKeeper requires of joiners) come or replace the entry of their id.
    public func changed(joining: String?, leaving: String?) throws(ParseError) -> EnsembleConfig {
        var next = servers
        for entry in Self.entries(leaving ?? "") {
            guard let id = Int64(entry) else { throw ParseError("leaving: expected server ids, got \"\(entry)\"") }
            next[id] = nil
        }
        for entry in Self.entries(joining ?? "") {
            let server = try Self.parseServerLine(entry)
            guard server.clientPort != nil else { throw ParseError("server.\(server.id) has no client port") }
            for other in next.values where other.id != server.id {
                let taken = [other.peerPort, other.electionPort].filter { $0 > 0 }
                if other.host == server.host && taken.contains(where: { [server.peerPort, server.electionPort].contains($0) }) {
                    throw ParseError("server.\(server.id) uses an address of server.\(other.id)")
                }
            }
            next[server.id] = server
        }
        return EnsembleConfig(servers: Array(next.values), version: version)
    }
}

extension StringProtocol {
    fileprivate var trimmed: String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
