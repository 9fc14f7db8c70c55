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
///     4lw.commands.whitelist=srvr,ruok,mntr  (four-letter words answered; `*` for all; default srvr)
///     minSessionTimeout=… maxSessionTimeout=…
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
    /// `4lw.commands.whitelist`, as written; nil when absent (ZooKeeper's default: `srvr` only).
    public var fourLetterWordWhitelist: String?
    /// `enforceQuota` (ZooKeeper's system property `zookeeper.enforceQuota`, which its zoo.cfg
    /// sets as `enforceQuota=true`).
    public var enforceQuota = false
    /// `maxClientCnxns` and `maxCnxns` (ServerOptions' connection limits), when given.
    public var maxClientCnxns: Int?
    public var maxCnxns: Int?
    /// `globalOutstandingLimit` (ServerOptions.outstandingRequestsMax), when given.
    public var globalOutstandingLimit: Int?
    /// `metricsProvider.className`, `metricsProvider.httpPort`, `metricsProvider.httpHost`.
    public var metricsProviderClassName: String?
    public var metricsHTTPPort: Int?
    public var metricsHTTPHost: String?
    /// `admin.enableServer`, `admin.serverPort`, `admin.serverAddress`.
    public var adminEnableServer: Bool?
    public var adminServerPort: Int?
    public var adminServerAddress: String?

    /// The port of the Prometheus endpoint: ZooKeeper's `metricsProvider.httpPort` (default 7000)
    /// when `metricsProvider.className` names its Prometheus provider; nil otherwise.
    public var metricsPort: Int? {
        guard let className = metricsProviderClassName, className.hasSuffix("PrometheusMetricsProvider") else { return nil }
        return metricsHTTPPort ?? 7000
    }

    /// The port of the admin server: `admin.serverPort` (default 8080) when `admin.enableServer`
    /// is true, or when a port is given and the server is not disabled. Unlike ZooKeeper, a
    /// zoo.cfg that says nothing of it starts none.
    public var adminPort: Int? {
        if adminEnableServer == false { return nil }
        if adminEnableServer == true { return adminServerPort ?? 8080 }
        return adminServerPort
    }

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
            case "4lw.commands.whitelist": fourLetterWordWhitelist = value
            case "enforceQuota", "zookeeper.enforceQuota": enforceQuota = value == "true"
            case "maxClientCnxns": maxClientCnxns = Int(try integer())
            case "maxCnxns", "zookeeper.maxCnxns": maxCnxns = Int(try integer())
            case "globalOutstandingLimit", "zookeeper.globalOutstandingLimit": globalOutstandingLimit = Int(try integer())
            case "metricsProvider.className": metricsProviderClassName = value
            case "metricsProvider.httpPort": metricsHTTPPort = Int(try integer())
            case "metricsProvider.httpHost": metricsHTTPHost = value
            case "admin.enableServer": adminEnableServer = value == "true"
            case "admin.serverPort": adminServerPort = Int(try integer())
            case "admin.serverAddress": adminServerAddress = value
            default:
                if key.hasPrefix("server.") {
                    servers.append(try Self.parseServer(key: key, value, lineNumber: index + 1, line: line))
                }
                // Other ZooKeeper settings are accepted and ignored.
            }
        }
        servers.sort { $0.id < $1.id }
        for index in servers.indices where servers[index].clientPort == 0 {
            servers[index].clientPort = clientPort ?? 0
        }
    }

    /// One `server.N` line, in the grammar `/zookeeper/config` uses (`EnsembleConfig`); a client
    /// address listening everywhere is reached on the loopback address, a missing client port is
    /// filled in from `clientPort` once the file is read.
    private static func parseServer(key: String, _ value: String, lineNumber: Int, line: String) throws -> Server {
        let parsed: EnsembleConfig.Server
        do {
            parsed = try EnsembleConfig.parseServerLine("\(key)=\(value)")
        } catch {
            throw ParseError.invalidLine(number: lineNumber, line: line, reason: error.message)
        }
        let clientHost = parsed.clientHost.flatMap { $0 == "0.0.0.0" ? nil : $0 } ?? "127.0.0.1"
        return Server(
            id: parsed.id, host: parsed.host, peerPort: parsed.peerPort, electionPort: parsed.electionPort,
            clientHost: clientHost, clientPort: parsed.clientPort ?? 0, role: parsed.role)
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
        config.enforceQuota = enforceQuota
        config.dataDir = dataDir ?? ""
        if servers.count > 1 { config.ensembleConfigText = dynamicConfigText }
        return config
    }

    /// `/zookeeper/config` in ZooKeeper's format.
    public var dynamicConfigText: String {
        EnsembleConfig(servers: servers.map {
            EnsembleConfig.Server(
                id: $0.id, host: $0.host, peerPort: $0.peerPort, electionPort: $0.electionPort, role: $0.role,
                clientHost: $0.clientHost, clientPort: $0.clientPort)
        }).text
    }
}
