import Foundation
import ZKCore
import ZKProtocol

// The four-letter words: plain-text administration commands on the client port.
//
// A connection whose first four bytes spell a known command is not a ZooKeeper session: the server
// writes one plain-text answer and closes it. Tools parse these answers line by line (kazoo's
// `server_version()` reads `zookeeper.version=` from `envi`, monitoring agents split `mntr` on
// tabs), so the formats follow ZooKeeper 3.8 character for character where they are known.
//
// Where MiniZK differs from ZooKeeper, on purpose:
// - The version is "3.8.0-MiniZK-<version>" so that clients which parse the leading digits see the
//   ZooKeeper version whose protocol MiniZK speaks.
// - `dump` lists connections plainly instead of ZooKeeper's connection-expiry sets: the shell has
//   no connection expiry of its own (sessions expire inside the replica).
// - `hash` reports the digest of the committed tree with its zxid (`Digest history:` then
//   `zxid-hex: digest`): equal on replicas that applied the same transactions.
//
// This file only formats. Everything it prints comes in a `FourLetterWordSnapshot`, so answers can
// be checked in tests without sockets and without a clock.

/// ZooKeeper's `4lw.commands.whitelist`: the four-letter words a server answers.
///
/// The default is ZooKeeper's: `srvr` only (its own scripts need it), and `isro` too when
/// read-only mode is on. Any other word is answered "<word> is not executed because it is not in
/// the whitelist." and the connection is closed, as ZooKeeper does. `*` enables every word.
public struct FourLetterWordWhitelist: Sendable, Equatable {
    /// The words named; `srvr` (and `isro` in read-only mode) are served whatever this holds.
    public var words: Set<FourLetterWord>

    public init(_ words: Set<FourLetterWord>) {
        self.words = words
    }

    /// `srvr` only, as ZooKeeper.
    public static let `default` = FourLetterWordWhitelist([.srvr])
    /// Every word (`*`).
    public static let all = FourLetterWordWhitelist(Set(FourLetterWord.allCases))

    /// Reads ZooKeeper's syntax: words separated by commas, blanks around them ignored; `*`
    /// anywhere enables every word. Words MiniZK does not know are ignored, as ZooKeeper ignores
    /// words it does not know.
    public init(parsing text: String) {
        var words: Set<FourLetterWord> = [.srvr]
        for piece in text.split(separator: ",") {
            let name = piece.trimmingCharacters(in: .whitespaces)
            if name == "*" {
                words = Set(FourLetterWord.allCases)
                break
            }
            if let word = FourLetterWord(rawValue: name) { words.insert(word) }
        }
        self.words = words
    }

    /// Whether `word` is answered.
    public func allows(_ word: FourLetterWord, readOnlyModeEnabled: Bool) -> Bool {
        word == .srvr || words.contains(word) || (word == .isro && readOnlyModeEnabled)
    }

    /// ZooKeeper's answer to a word that is not allowed.
    public static func refusal(_ word: FourLetterWord) -> String {
        "\(word.rawValue) is not executed because it is not in the whitelist.\n"
    }
}

/// The version MiniZK reports wherever ZooKeeper reports its own.
public enum MiniZKVersion {
    /// The ZooKeeper release whose client protocol MiniZK implements.
    public static let protocolVersion = "3.8.0"
    /// MiniZK's own version.
    public static let version = "0.1"
    /// What `srvr` prints after "Zookeeper version: " and `envi` after `zookeeper.version=`.
    /// SwiftPM offers no build stamp, so the date is the fixed one of this version.
    public static let fullVersion = "\(protocolVersion)-MiniZK-\(version), built on 2026-01-01 00:00 UTC"
}

/// One `key=value` line of `envi`.
public struct EnvironmentEntry: Sendable, Hashable {
    public var key: String
    public var value: String
    public init(_ key: String, _ value: String) {
        self.key = key
        self.value = value
    }
}

/// Everything a four-letter word may print, captured at one instant on the replica's event loop.
public struct FourLetterWordSnapshot: Sendable {
    public var status: ReplicaStatus
    public var config: ReplicaConfig
    public var server: ServerStatistics
    /// Live connections in the order they were accepted (the asking connection included, as in
    /// ZooKeeper).
    public var connections: [ConnectionStatistics]
    /// `envi` lines after `zookeeper.version`.
    public var environment: [EnvironmentEntry]
    public var storage: StorageStatistics
    /// Bytes of the files in the data directory (0 when storage is in memory).
    public var dataDirectoryBytes: Int64
    public var nowMs: Int64
    public var startedAtMs: Int64
    /// -1 when the platform does not tell.
    public var openFileDescriptorCount: Int
    /// -1 when the platform does not tell.
    public var maxFileDescriptorCount: Int
    public var traceMask: Int64
    /// `maxClientCnxns` as configured (0: no limit).
    public var connectionsPerClientAddressMax: Int = 0

    public init(
        status: ReplicaStatus, config: ReplicaConfig, server: ServerStatistics = ServerStatistics(),
        connections: [ConnectionStatistics] = [], environment: [EnvironmentEntry] = [],
        storage: StorageStatistics = StorageStatistics(), dataDirectoryBytes: Int64 = 0, nowMs: Int64 = 0,
        startedAtMs: Int64 = 0, openFileDescriptorCount: Int = -1, maxFileDescriptorCount: Int = -1,
        traceMask: Int64 = FourLetterWordResponder.defaultTraceMask
    ) {
        self.status = status
        self.config = config
        self.server = server
        self.connections = connections
        self.environment = environment
        self.storage = storage
        self.dataDirectoryBytes = dataDirectoryBytes
        self.nowMs = nowMs
        self.startedAtMs = startedAtMs
        self.openFileDescriptorCount = openFileDescriptorCount
        self.maxFileDescriptorCount = maxFileDescriptorCount
        self.traceMask = traceMask
    }
}

/// Formats the answer to a four-letter word. Pure: no I/O, no clock.
public enum FourLetterWordResponder {
    /// ZooKeeper's default trace mask (client requests, server packets, sessions, warnings).
    public static let defaultTraceMask: Int64 = 0b1_0011_0010

    public static func respond(to word: FourLetterWord, snapshot s: FourLetterWordSnapshot) -> String {
        switch word {
        case .ruok: return "imok"
        case .isro: return s.status.mode == "read-only" ? "ro" : "rw"
        case .srvr: return serverSummary(s, withClients: false)
        case .stat: return serverSummary(s, withClients: true)
        case .mntr: return monitor(s)
        case .conf: return configuration(s)
        case .cons: return connections(s)
        case .crst: return "Connection stats reset.\n"
        case .srst: return "Server stats reset.\n"
        case .dump: return dump(s)
        case .wchs: return watchSummary(s)
        case .wchc: return watchesByConnection(s)
        case .wchp: return watchesByPath(s)
        case .envi: return environment(s)
        case .dirs: return "datadir_size: \(s.dataDirectoryBytes)\nlogdir_size: \(s.dataDirectoryBytes)\n"
        case .gtmk, .stmk: return String(s.traceMask)
        case .hash: return "Digest history:\n\(String(s.status.lastZxid, radix: 16)): \(s.status.digest)\n"
        }
    }

    /// ZooKeeper's answer to most words while it does not serve.
    public static let notServing = "This ZooKeeper instance is not currently serving requests\n"

    /// The answer of a replica whose store failed: `ruok`, `conf`, `envi` and `dirs` as usual
    /// (the process runs), `mntr` with `zk_server_state` `not_serving` and the failure
    /// (`zk_store_failed`, `zk_store_failure`), and ZooKeeper's "not currently serving" otherwise.
    public static func respondNotServing(to word: FourLetterWord, snapshot s: FourLetterWordSnapshot, storeFailure: String) -> String {
        switch word {
        case .ruok, .conf, .envi, .dirs, .gtmk, .stmk, .crst, .srst:
            return respond(to: word, snapshot: s)
        case .mntr:
            var failed = s
            failed.status.mode = "not_serving"
            // One line each: the reason is free text.
            let reason = storeFailure.map { $0 == "\n" || $0 == "\t" ? " " : $0 }
            return monitor(failed) + "zk_store_failed\t1\nzk_store_failure\t\(String(reason))\n"
        default:
            return notServing
        }
    }

    // MARK: - srvr, stat

    static func serverSummary(_ s: FourLetterWordSnapshot, withClients: Bool) -> String {
        var out = "Zookeeper version: \(MiniZKVersion.fullVersion)\n"
        if s.status.mode == "read-only" {
            out += "READ-ONLY mode; serving only read-only clients\n"
        }
        if withClients {
            out += "Clients:\n"
            for connection in s.connections {
                out += connectionLine(connection, session: nil, brief: true) + "\n"
            }
            out += "\n"
        }
        let latency = s.server.latency
        out += "Latency min/avg/max: \(latency.minMs)/\(javaDouble(latency.averageMs))/\(latency.maxMs)\n"
        out += "Received: \(s.server.packetsReceived)\n"
        out += "Sent: \(s.server.packetsSent)\n"
        out += "Connections: \(s.connections.count)\n"
        out += "Outstanding: \(s.status.outstandingRequests)\n"
        out += "Zxid: 0x\(hex(s.status.lastZxid))\n"
        out += "Mode: \(s.status.mode)\n"
        out += "Node count: \(s.status.nodeCount)\n"
        return out
    }

    // MARK: - mntr

    static func monitor(_ s: FourLetterWordSnapshot) -> String {
        let latency = s.server.latency
        var lines: [(String, String)] = [
            ("version", MiniZKVersion.fullVersion),
            ("server_state", s.status.mode),
            ("avg_latency", javaDouble(latency.averageMs)),
            ("max_latency", String(latency.maxMs)),
            ("min_latency", String(latency.minMs)),
            ("packets_received", String(s.server.packetsReceived)),
            ("packets_sent", String(s.server.packetsSent)),
            ("num_alive_connections", String(s.connections.count)),
            ("outstanding_requests", String(s.status.outstandingRequests)),
            ("znode_count", String(s.status.nodeCount)),
            ("watch_count", String(s.status.watchCount)),
            ("ephemerals_count", String(s.status.ephemeralsCount)),
            ("approximate_data_size", String(s.status.approximateDataSize)),
            ("open_file_descriptor_count", String(s.openFileDescriptorCount)),
            ("max_file_descriptor_count", String(s.maxFileDescriptorCount)),
            ("uptime", String(max(0, s.nowMs - s.startedAtMs))),
            ("last_zxid", String(s.status.lastZxid)),
            ("global_sessions", String(s.status.sessions.count)),
            ("current_epoch", String(s.status.currentEpoch)),
            ("fsync_batches", String(s.storage.fsyncBatches)),
            ("fsync_batches_on_event_loop", String(s.storage.batchesWrittenOnLoop)),
            ("logged_transactions", String(s.storage.loggedTransactions)),
            ("group_commit_steps", String(s.storage.persistedSteps)),
            ("group_commit_max_transactions", String(s.storage.batchTransactionsMax)),
            ("fsync_batch_max_ms", String(s.storage.batchWriteMsMax)),
            ("snapshot_piece_max_ms", String(s.storage.snapshotPieceMsMax)),
            ("snapshots_written", String(s.storage.snapshotsWritten)),
            ("last_snapshot_zxid", String(s.storage.lastSnapshotZxid)),
            ("data_dir_size", String(s.dataDirectoryBytes)),
        ]
        if s.status.mode == "leader" {
            lines.append(("followers", String(s.status.followers)))
            lines.append(("synced_followers", String(s.status.syncedFollowers)))
            lines.append(("pending_syncs", String(s.status.pendingSyncs)))
        }
        return lines.map { "zk_\($0.0)\t\($0.1)\n" }.joined()
    }

    // MARK: - conf, envi

    static func configuration(_ s: FourLetterWordSnapshot) -> String {
        let c = s.config
        return """
            clientPort=\(c.clientPort)
            secureClientPort=-1
            dataDir=\(c.dataDir)
            dataDirSize=\(s.dataDirectoryBytes)
            dataLogDir=\(c.dataDir)
            dataLogSize=\(s.dataDirectoryBytes)
            tickTime=\(c.tickMs)
            maxClientCnxns=\(s.connectionsPerClientAddressMax)
            minSessionTimeout=\(c.sessionTimeoutMsMin)
            maxSessionTimeout=\(c.sessionTimeoutMsMax)
            clientPortListenBacklog=-1
            serverId=\(c.serverId)

            """ + quorumConfiguration(s)
    }

    /// What an ensemble member adds to `conf`, as ZooKeeper 3.5+: limits, its own ports and role
    /// (0 participant, 1 observer), then the committed configuration after `membership: `.
    static func quorumConfiguration(_ s: FourLetterWordSnapshot) -> String {
        guard let ensemble = s.status.ensemble else { return "" }
        let me = ensemble.servers[s.config.serverId]
        return """
            initLimit=\(s.config.initLimitTicks)
            syncLimit=\(s.config.syncLimitTicks)
            electionAlg=3
            electionPort=\(me?.electionPort ?? 0)
            quorumPort=\(me?.peerPort ?? 0)
            peerType=\(me?.role == .observer ? 1 : 0)
            membership: \n\(ensemble.text)
            """
    }

    static func environment(_ s: FourLetterWordSnapshot) -> String {
        var out = "Environment:\nzookeeper.version=\(MiniZKVersion.fullVersion)\n"
        for entry in s.environment {
            out += "\(entry.key)=\(entry.value)\n"
        }
        return out
    }

    // MARK: - cons

    static func connections(_ s: FourLetterWordSnapshot) -> String {
        let sessions = Dictionary(s.status.connections.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        var out = ""
        for connection in s.connections {
            out += connectionLine(connection, session: sessions[connection.id], brief: false) + "\n"
        }
        return out + "\n"
    }

    /// One connection as ZooKeeper's `dumpConnectionInfo` prints it; the session part only for a
    /// connection that has a session and only when not brief.
    static func connectionLine(
        _ c: ConnectionStatistics, session: ReplicaStatus.Connection?, brief: Bool
    ) -> String {
        var out = " /\(c.peerAddress):\(c.peerPort)[\(c.isReading ? 1 : 0)]"
        out += "(queued=\(c.queuedRequests),recved=\(c.packetsReceived),sent=\(c.packetsSent)"
        if !brief, let session, session.sessionId != 0 {
            out += ",sid=0x\(hex(session.sessionId))"
            out += ",lop=\(c.lastOperation)"
            out += ",est=\(c.establishedAtMs)"
            out += ",to=\(session.sessionTimeoutMs)"
            if c.lastCxid >= 0 {
                out += ",lcxid=0x\(hex(c.lastCxid))"
            }
            out += ",lzxid=0x\(hex(c.lastZxid))"
            out += ",lresp=\(c.lastResponseAtMs)"
            out += ",llat=\(c.lastLatencyMs)"
            out += ",minlat=\(c.latency.minMs)"
            out += ",avglat=\(Int64(c.latency.averageMs))"
            out += ",maxlat=\(c.latency.maxMs)"
        }
        return out + ")"
    }

    // MARK: - wchs, wchc, wchp

    static func watchSummary(_ s: FourLetterWordSnapshot) -> String {
        return "\(s.status.watchingConnectionCount) connections watching \(s.status.watchedPathCount) paths\n"
            + "Total watches:\(s.status.watchCount)\n\n"
    }

    /// Watched paths grouped by the session of the watching connection, as `wchc` prints them.
    static func watchesByConnection(_ s: FourLetterWordSnapshot) -> String {
        var out = ""
        for (sessionId, paths) in watchedPathsBySession(s) {
            out += "0x\(hex(sessionId))\n"
            for path in paths { out += "\t\(path)\n" }
        }
        return out + "\n"
    }

    /// Watching sessions grouped by path, as `wchp` prints them.
    static func watchesByPath(_ s: FourLetterWordSnapshot) -> String {
        var sessionsByPath: [String: [Int64]] = [:]
        for (sessionId, paths) in watchedPathsBySession(s) {
            for path in paths { sessionsByPath[path, default: []].append(sessionId) }
        }
        var out = ""
        for path in sessionsByPath.keys.sorted() {
            out += "\(path)\n"
            for sessionId in sessionsByPath[path]! { out += "\t0x\(hex(sessionId))\n" }
        }
        return out + "\n"
    }

    private static func watchedPathsBySession(_ s: FourLetterWordSnapshot) -> [(Int64, [String])] {
        let sessionOf = Dictionary(
            s.status.connections.map { ($0.id, $0.sessionId) }, uniquingKeysWith: { first, _ in first })
        return s.status.watchesByConnection
            .filter { !$0.value.isEmpty }
            .sorted { $0.key < $1.key }
            .map { (sessionOf[$0.key] ?? 0, $0.value.sorted()) }
    }

    // MARK: - dump

    static func dump(_ s: FourLetterWordSnapshot) -> String {
        var out = "SessionTracker dump:\n"
        let buckets = Dictionary(grouping: s.status.sessions, by: \.expiresAtMs)
        out += "Session Sets (\(buckets.count))/(\(s.status.sessions.count)):\n"
        for expiresAtMs in buckets.keys.sorted() {
            let sessions = buckets[expiresAtMs]!.sorted { $0.id < $1.id }
            out += "\(sessions.count) expire at \(javaDate(ms: expiresAtMs)):\n"
            for session in sessions { out += "\t0x\(hex(session.id))\n" }
        }
        out += "ephemeral nodes dump:\n"
        let owners = s.status.sessions.filter { !$0.ephemerals.isEmpty }.sorted { $0.id < $1.id }
        out += "Sessions with Ephemerals (\(owners.count)):\n"
        for session in owners {
            out += "0x\(hex(session.id)):\n"
            for path in session.ephemerals.sorted() { out += "\t\(path)\n" }
        }
        out += "Connections dump:\n"
        let sessionOf = Dictionary(
            s.status.connections.map { ($0.id, $0.sessionId) }, uniquingKeysWith: { first, _ in first })
        for connection in s.connections {
            out += "\t/\(connection.peerAddress):\(connection.peerPort) sid=0x\(hex(sessionOf[connection.id] ?? 0))\n"
        }
        return out
    }

    // MARK: - Formatting the way Java prints

    /// A signed 64-bit value as `Long.toHexString` prints it (two's complement, lower case).
    static func hex(_ value: Int64) -> String {
        String(UInt64(bitPattern: value), radix: 16)
    }

    /// A double rounded to four decimals and printed as Java's `Double.toString` would print it
    /// ("0.0", "2.5", "2.5313").
    static func javaDouble(_ value: Double) -> String {
        let rounded = (value * 10_000).rounded() / 10_000
        if rounded == rounded.rounded(.towardZero), abs(rounded) < 1e15 {
            return "\(Int64(rounded)).0"
        }
        return "\(rounded)"
    }

    /// Wall-clock milliseconds as `java.util.Date.toString` prints them in UTC:
    /// "Sat Nov 29 15:11:00 UTC 2026".
    static func javaDate(ms: Int64) -> String {
        let seconds = ms >= 0 ? ms / 1000 : (ms - 999) / 1000
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        let weekday = Int(((days % 7) + 7 + 4) % 7)  // 1970-01-01 was a Thursday.
        let weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let time = "\(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60))"
        return "\(weekdays[weekday]) \(months[Int(month) - 1]) \(two(day)) \(time) UTC \(year)"
    }
}
