import Foundation
import ZKCore

/// A ZooKeeper-style `zoo.cfg`, the parts MiniZK uses:
///
///     tickTime=200
///     initLimit=10
///     syncLimit=5
///     dataDir=/var/lib/minizk
///     clientPort=2181                       (used when a server line has no client address)
///     server.1=127.0.0.1:2888:3888;2181     (host:peerPort:electionPort[:role][;[clientHost:]clientPort])
///     server.4=127.0.0.1:2891:3891:observer;2184   (an observer: follows, does not vote)
///     reconfigEnabled=true                  (clients may change the members with reconfig)
///     minSessionTimeout=… maxSessionTimeout=… 4lw.commands.whitelist=… (accepted)
///
/// MiniZK speaks its whole peer protocol on the peer port; the election port is accepted and
/// reported in `/zookeeper/config` but not listened on.
public struct ZooConfig: Sendable, Equatable {
    public struct Server: Sendable, Equatable {
        public var id: Int64
        public var host: String
        public var peerPort: Int
        public var electionPort: Int
        public var clientHost: String
        public var clientPort: Int
        public var role: EnsembleConfig.Role = .participant
    }

    public var tickMs: Int64 = 2000
    public var initLimitTicks: Int64 = 10
    public var syncLimitTicks: Int64 = 5
    public var dataDir: String?
    public var clientPort: Int?
    public var minSessionTimeoutMs: Int64?
    public var maxSessionTimeoutMs: Int64?
    public var servers: [Server] = []
    public var extendedTypesEnabled = false
    public var reconfigEnabled = false

    public enum ParseError: Error, CustomStringConvertible, Equatable {
        case invalidLine(number: Int, line: String, reason: String)
        public var description: String {
            switch self {
            case .invalidLine(let number, let line, let reason): return "zoo.cfg line \(number) \"\(line)\": \(reason)"
            }
        }
    }

    public init() {}

    public init(parsing text: String) throws {
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let equals = line.firstIndex(of: "=") else {
                throw ParseError.invalidLine(number: index + 1, line: line, reason: "expected key=value")
            }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            func integer() throws -> Int64 {
                guard let number = Int64(value) else {
                    throw ParseError.invalidLine(number: index + 1, line: line, reason: "\(key) must be a number")
                }
                return number
            }
            switch key {
            case "tickTime": tickMs = try integer()
            case "initLimit": initLimitTicks = try integer()
            case "syncLimit": syncLimitTicks = try integer()
            case "dataDir": dataDir = value
            case "clientPort": clientPort = Int(try integer())
            case "minSessionTimeout": minSessionTimeoutMs = try integer()
            case "maxSessionTimeout": maxSessionTimeoutMs = try integer()
            case "extendedTypesEnabled": extendedTypesEnabled = value == "true"
            case "reconfigEnabled": reconfigEnabled = value == "true"
            default:
                if key.hasPrefix("server.") {
                    guard let id = Int64(key.dropFirst("server.".count)) else {
                        throw ParseError.invalidLine(number: index + 1, line: line, reason: "server id must be a number")
                    }
                    servers.append(try Self.parseServer(id: id, value, lineNumber: index + 1, line: line, clientPort: clientPort))
                }
                // Other ZooKeeper settings are accepted and ignored.
            }
        }
        servers.sort { $0.id < $1.id }
        for index in servers.indices where servers[index].clientPort == 0 {
            servers[index].clientPort = clientPort ?? 0
        }
    }

    private static func parseServer(id: Int64, _ value: String, lineNumber: Int, line: String, clientPort: Int?) throws -> Server {
        let halves = value.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false)
        let parts = halves[0].split(separator: ":")
        guard parts.count >= 3, let peer = Int(parts[1]), let election = Int(parts[2]) else {
            throw ParseError.invalidLine(number: lineNumber, line: line, reason: "expected host:peerPort:electionPort")
        }
        var server = Server(id: id, host: String(parts[0]), peerPort: peer, electionPort: election, clientHost: "127.0.0.1", clientPort: 0)
        if parts.count >= 4 {
            guard parts.count == 4, let role = EnsembleConfig.Role(rawValue: parts[3].lowercased()) else {
                throw ParseError.invalidLine(number: lineNumber, line: line, reason: "role must be participant or observer")
            }
            server.role = role
        }
        if halves.count == 2 {
            let client = halves[1].split(separator: ":")
            if client.count == 2, let port = Int(client[1]) {
                server.clientHost = String(client[0]) == "0.0.0.0" ? "127.0.0.1" : String(client[0])
                server.clientPort = port
            } else if client.count == 1, let port = Int(client[0]) {
                server.clientPort = port
            } else {
                throw ParseError.invalidLine(number: lineNumber, line: line, reason: "expected [clientHost:]clientPort after ;")
            }
        }
        return server
    }

    /// The replica settings for member `id`.
    public func replicaConfig(for id: Int64) -> ReplicaConfig {
        var config = ReplicaConfig()
        config.serverId = id
        config.members = servers.map(\.id)
        config.tickMs = tickMs
        config.initLimitTicks = initLimitTicks
        config.syncLimitTicks = syncLimitTicks
        config.minSessionTimeoutMs = minSessionTimeoutMs
        config.maxSessionTimeoutMs = maxSessionTimeoutMs
        config.extendedTypesEnabled = extendedTypesEnabled
        config.reconfigEnabled = reconfigEnabled
        config.dataDir = dataDir ?? ""
        if servers.count > 1 { config.ensembleConfigText = dynamicConfigText }
        return config
    }

    /// `/zookeeper/config` in ZooKeeper's format.
    public var dynamicConfigText: String {
        servers.map { "server.\($0.id)=\($0.host):\($0.peerPort):\($0.electionPort):\($0.role.rawValue);\($0.clientHost):\($0.clientPort)" }
            .joined(separator: "\n") + "\nversion=0"
    }
}
