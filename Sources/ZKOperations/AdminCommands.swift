import ZKCore
import ZKProtocol
import ZKServer

/// The admin server's commands (`/commands/<name>`), answered as ZooKeeper 3.8's `Commands` answer
/// them: the same names and aliases, the same keys in the same order, then `command` (the
/// primary name) and `error` (null, or why the command failed).
///
/// Pure: every answer is computed from an `OperationsSnapshot`; the side effects of the reset
/// commands are the caller's (`AdminServer`).
public enum AdminCommands {
    /// One command: its names (the first is primary, as `/commands` lists it) and whether it is
    /// answered from the server's state.
    public struct Command: Sendable {
        public var names: [String]
        public var primary: String { names[0] }
    }

    /// ZooKeeper 3.8's commands that MiniZK answers, in its registration order.
    public static let commands: [Command] = [
        Command(names: ["connection_stat_reset", "crst"]),
        Command(names: ["configuration", "conf", "config"]),
        Command(names: ["connections", "cons"]),
        Command(names: ["hash"]),
        Command(names: ["dirs"]),
        Command(names: ["dump"]),
        Command(names: ["environment", "env", "envi"]),
        Command(names: ["get_trace_mask", "gtmk"]),
        Command(names: ["initial_configuration", "icfg"]),
        Command(names: ["is_read_only", "isro"]),
        Command(names: ["last_snapshot", "lsnp"]),
        Command(names: ["leader", "lead"]),
        Command(names: ["monitor", "mntr"]),
        Command(names: ["ruok"]),
        Command(names: ["set_trace_mask", "stmk"]),
        Command(names: ["server_stats", "srvr"]),
        Command(names: ["stats", "stat"]),
        Command(names: ["stat_reset", "srst"]),
        Command(names: ["voting_view"]),
        Command(names: ["watches", "wchc"]),
        Command(names: ["watches_by_path", "wchp"]),
        Command(names: ["watch_summary", "wchs"]),
        Command(names: ["zabstate"]),
    ]

    /// The command a name or alias stands for.
    public static func command(named name: String) -> Command? {
        commands.first { $0.names.contains(name) }
    }

    /// What the server was started with, for `configuration`'s companions.
    public struct Context: Sendable {
        /// The zoo.cfg text the server was started from ("" without one), for `initial_configuration`.
        public var initialConfiguration: String
        /// The address the client port is bound to.
        public var clientHost: String
        public init(initialConfiguration: String = "", clientHost: String = "127.0.0.1") {
            self.initialConfiguration = initialConfiguration
            self.clientHost = clientHost
        }
    }

    /// The answer to `name` (primary or alias), or nil for an unknown command. `arguments` are
    /// the query parameters (`set_trace_mask` takes `traceMask`).
    public static func answer(
        _ name: String, snapshot o: OperationsSnapshot, context: Context = Context(), arguments: [String: String] = [:]
    ) -> JSONValue? {
        guard let command = command(named: name) else { return nil }
        var body: [(String, JSONValue)]
        var error: JSONValue = .null
        let s = o.fourLetterWords
        switch command.primary {
        case "connection_stat_reset", "stat_reset", "ruok":
            body = []
        case "configuration":
            body = configuration(s)
        case "connections":
            body = [
                ("connections", .array(connectionInfo(s, brief: false))),
                ("secure_connections", .array([])),
            ]
        case "hash":
            body = [("digests", .array([.object([
                ("zxid", .int(s.status.lastZxid)), ("digest_version", .int(2)),
                ("digest", .int(Int64(bitPattern: s.status.digest))),
            ])]))]
        case "dirs":
            body = [("datadir_size", .int(s.dataDirectoryBytes)), ("logdir_size", .int(s.dataDirectoryBytes))]
        case "dump":
            body = dump(s)
        case "environment":
            body = [("zookeeper.version", .string(MiniZKVersion.fullVersion))]
                + s.environment.map { ($0.key, .string($0.value)) }
        case "get_trace_mask":
            body = [("tracemask", .int(s.traceMask))]
        case "initial_configuration":
            body = [("initial_configuration", .string(context.initialConfiguration))]
        case "is_read_only":
            body = [("read_only", .bool(s.status.mode == "read-only"))]
        case "last_snapshot":
            body = [
                ("zxid", .string(String(s.storage.lastSnapshotZxid, radix: 16))),
                ("timestamp", .int(o.lastSnapshotAtMs.map { $0 / 1000 } ?? -1)),
            ]
        case "leader":
            if s.status.ensemble == nil {
                // ZooKeeper puts the error first here, and no null error after it.
                return .object([("error", .string("server is not initialized")), ("command", .string("leader"))])
            }
            let leader = s.status.leaderId
            let leaderServer = s.status.ensemble?.servers[leader]
            body = [
                ("is_leader", .bool(s.status.mode == "leader")),
                ("leader_id", .int(leader)),
                ("leader_ip", .string(leaderServer.map { $0.host } ?? "")),
            ]
        case "monitor":
            body = monitor(o)
        case "set_trace_mask":
            guard let text = arguments["traceMask"] else {
                body = []
                error = .string("setTraceMask requires long traceMask argument")
                break
            }
            guard let mask = Int64(text) else {
                body = []
                error = .string("setTraceMask requires long traceMask argument, got \(text)")
                break
            }
            body = [("tracemask", .int(mask))]
        case "server_stats":
            body = serverStats(o)
        case "stats":
            body = serverStats(o) + [
                ("connections", .array(connectionInfo(s, brief: true))),
                ("secure_connections", .array([])),
            ]
        case "voting_view":
            body = [("current_config", votingView(s))]
        case "watches":
            body = [("session_id_to_watched_paths", .object(watchedPathsBySession(s).map { (String($0.0), .array($0.1.map(JSONValue.string))) }))]
        case "watches_by_path":
            var sessionsByPath: [String: [Int64]] = [:]
            for (sessionId, paths) in watchedPathsBySession(s) {
                for path in paths { sessionsByPath[path, default: []].append(sessionId) }
            }
            body = [("path_to_session_ids", .object(sessionsByPath.keys.sorted().map { path in
                (path, .array(sessionsByPath[path]!.map(JSONValue.int)))
            }))]
        case "watch_summary":
            body = [
                ("num_connections", .int(Int64(s.status.watchingConnectionCount))),
                ("num_paths", .int(Int64(s.status.watchedPathCount))),
                ("num_total_watches", .int(Int64(s.status.watchCount))),
            ]
        case "zabstate":
            body = zabState(s)
        default:
            return nil
        }
        return .object(body + [("command", .string(command.primary)), ("error", error)])
    }

    /// The answer to a name no command has, as ZooKeeper gives it (with status 200).
    public static func unknown(_ name: String) -> JSONValue {
        .object([("command", .string(name)), ("error", .string("Unknown command: \(name)"))])
    }

    // MARK: - Answers

    static func configuration(_ s: FourLetterWordSnapshot) -> [(String, JSONValue)] {
        let c = s.config
        return [
            ("client_port", .int(Int64(c.clientPort))),
            ("data_dir", .string(c.dataDir)),
            ("data_log_dir", .string(c.dataDir)),
            ("tick_time", .int(c.tickMs)),
            ("max_client_cnxns", .int(Int64(s.connectionsPerClientAddressMax))),
            ("min_session_timeout", .int(c.sessionTimeoutMsMin)),
            ("max_session_timeout", .int(c.sessionTimeoutMsMax)),
            ("server_id", .int(s.status.ensemble == nil ? 0 : c.serverId)),
            ("client_port_listen_backlog", .int(-1)),
        ]
    }

    static func connectionInfo(_ s: FourLetterWordSnapshot, brief: Bool) -> [JSONValue] {
        let sessions = Dictionary(s.status.connections.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        return s.connections.map { c in
            var pairs: [(String, JSONValue)] = [
                ("remote_socket_address", .string("\(c.peerAddress):\(c.peerPort)")),
                ("interest_ops", .int(c.isReading ? 1 : 0)),
                ("outstanding_requests", .int(Int64(c.queuedRequests))),
                ("packets_received", .int(c.packetsReceived)),
                ("packets_sent", .int(c.packetsSent)),
            ]
            if !brief, let session = sessions[c.id], session.sessionId != 0 {
                pairs += [
                    ("session_id", .int(session.sessionId)),
                    ("last_operation", .string(c.lastOperation)),
                    ("established", .int(c.establishedAtMs)),
                    ("session_timeout", .int(session.sessionTimeoutMs)),
                    ("last_cxid", .int(c.lastCxid)),
                    ("last_zxid", .int(c.lastZxid)),
                    ("last_response_time", .int(c.lastResponseAtMs)),
                    ("last_latency", .int(c.lastLatencyMs)),
                    ("min_latency", .int(c.latency.minMs)),
                    ("avg_latency", .int(Int64(c.latency.averageMs))),
                    ("max_latency", .int(c.latency.maxMs)),
                ]
            }
            return .object(pairs)
        }
    }

    static func dump(_ s: FourLetterWordSnapshot) -> [(String, JSONValue)] {
        let buckets = Dictionary(grouping: s.status.sessions, by: \.expiresAtMs)
        let expiry: [(String, JSONValue)] = buckets.keys.sorted().map { at in
            (String(at), .array(buckets[at]!.map(\.id).sorted().map(JSONValue.int)))
        }
        let ephemerals: [(String, JSONValue)] = s.status.sessions
            .filter { !$0.ephemerals.isEmpty }
            .sorted { $0.id < $1.id }
            .map { (String($0.id), .array($0.ephemerals.sorted().map(JSONValue.string))) }
        return [("expiry_time_to_session_ids", .object(expiry)), ("session_id_to_ephemeral_paths", .object(ephemerals))]
    }

    static func clientResponse(_ o: OperationsSnapshot) -> JSONValue {
        .object([
            ("last_buffer_size", .int(Int64(o.responseSizes.last))),
            ("min_buffer_size", .int(Int64(o.responseSizes.min))),
            ("max_buffer_size", .int(Int64(o.responseSizes.max))),
        ])
    }

    static func serverStats(_ o: OperationsSnapshot) -> [(String, JSONValue)] {
        let s = o.fourLetterWords
        let latency = s.server.latency
        let stats: [(String, JSONValue)] = [
            ("packets_sent", .int(s.server.packetsSent)),
            ("packets_received", .int(s.server.packetsReceived)),
            ("fsync_threshold_exceed_count", .int(o.fsyncThresholdExceeded)),
            ("client_response_stats", clientResponse(o)),
            ("data_dir_size", .int(s.dataDirectoryBytes)),
            ("log_dir_size", .int(s.dataDirectoryBytes)),
            ("provider_null", .bool(false)),
            ("server_state", .string(s.status.mode)),
            ("last_processed_zxid", .int(s.status.lastZxid)),
            ("outstanding_requests", .int(Int64(s.status.outstandingRequests))),
            ("avg_latency", .double((latency.averageMs * 10_000).rounded() / 10_000)),
            ("max_latency", .int(latency.maxMs)),
            ("min_latency", .int(latency.minMs)),
            ("num_alive_client_connections", .int(Int64(s.connections.count))),
            ("auth_failed_count", .int(0)),
            ("non_mtlsremote_conn_count", .int(0)),
            ("non_mtlslocal_conn_count", .int(0)),
            ("uptime", .int(max(0, s.nowMs - s.startedAtMs))),
        ]
        return [
            ("version", .string(MiniZKVersion.fullVersion)),
            ("read_only", .bool(s.status.mode == "read-only")),
            ("server_stats", .object(stats)),
            ("client_response", clientResponse(o)),
            ("node_count", .int(Int64(s.status.nodeCount))),
        ]
    }

    /// `mntr`'s values typed (numbers as numbers), then the summaries as ZooKeeper's `mntr` lists
    /// them (`avg_`, `min_`, `max_`, `cnt_`, `sum_` and, for the detailed ones, `p50_` ... `p999_`).
    static func monitor(_ o: OperationsSnapshot) -> [(String, JSONValue)] {
        let text = FourLetterWordResponder.respond(to: .mntr, snapshot: o.fourLetterWords)
        var pairs: [(String, JSONValue)] = []
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "\t", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let key = String(parts[0].dropFirst(3))  // "zk_"
            let value = String(parts[1])
            if let int = Int64(value) {
                pairs.append((key, .int(int)))
            } else if let double = Double(value), key.hasSuffix("latency") {
                pairs.append((key, .double(double)))
            } else {
                pairs.append((key, .string(value)))
            }
        }
        pairs += [
            ("local_sessions", .int(0)),
            ("connection_drop_probability", .double(0)),
            ("last_client_response_size", .int(Int64(o.responseSizes.last))),
            ("max_client_response_size", .int(Int64(o.responseSizes.max))),
            ("min_client_response_size", .int(Int64(o.responseSizes.min))),
            ("fsync_threshold_exceed_count", .int(o.fsyncThresholdExceeded)),
        ]
        for (name, quantiles, summary) in o.summaries.all {
            pairs += [
                ("avg_\(name)", .double((summary.average * 10_000).rounded() / 10_000)),
                ("min_\(name)", .int(summary.min)),
                ("max_\(name)", .int(summary.max)),
                ("cnt_\(name)", .int(summary.count)),
                ("sum_\(name)", .int(summary.sum)),
            ]
            if quantiles.count > 1 {
                for (label, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999)] {
                    let value = summary.quantile(q)
                    pairs.append(("\(label)_\(name)", .int(value.isNaN ? 0 : Int64(value))))
                }
            }
        }
        return pairs
    }

    static func votingView(_ s: FourLetterWordSnapshot) -> JSONValue {
        guard let ensemble = s.status.ensemble else { return .object([]) }
        return .object(ensemble.servers.keys.sorted().compactMap { id in
            let server = ensemble.servers[id]!
            guard server.role == .participant else { return nil }
            let client = server.clientPort.map { "\(server.clientHost ?? "0.0.0.0"):\($0)" } ?? ""
            return (String(id), .object([
                ("serverAddresses", .array([.string("\(server.host):\(server.peerPort)")])),
                ("electionAddresses", .array([.string("\(server.host):\(server.electionPort)")])),
                ("clientAddress", .string(client)),
                ("learnerType", .string("participant")),
            ]))
        })
    }

    static func zabState(_ s: FourLetterWordSnapshot) -> [(String, JSONValue)] {
        guard let ensemble = s.status.ensemble else {
            return [("voting", .bool(false)), ("zabstate", .string(""))]
        }
        let me = ensemble.servers[s.config.serverId]
        let zxid = s.status.lastZxid
        let state: String
        switch s.status.mode {
        case "leader", "follower", "observer": state = s.status.serving ? "broadcast" : "synchronization"
        default: state = "election"
        }
        return [
            ("myid", .int(s.config.serverId)),
            ("is_leader", .bool(s.status.mode == "leader")),
            ("quorum_address", .string(me.map { "\($0.host):\($0.peerPort)" } ?? "")),
            ("election_address", .string(me.map { "\($0.host):\($0.electionPort)" } ?? "")),
            ("client_address", .string(me.flatMap { server in server.clientPort.map { "\(server.clientHost ?? "0.0.0.0"):\($0)" } } ?? "")),
            ("voting", .bool(me?.role == .participant)),
            ("last_zxid", .string("0x" + String(UInt64(bitPattern: zxid), radix: 16))),
            ("zab_epoch", .int(zxid >> 32)),
            ("zab_counter", .int(zxid & 0xFFFF_FFFF)),
            ("zabstate", .string(state)),
        ]
    }

    private static func watchedPathsBySession(_ s: FourLetterWordSnapshot) -> [(Int64, [String])] {
        let sessionOf = Dictionary(
            s.status.connections.map { ($0.id, $0.sessionId) }, uniquingKeysWith: { first, _ in first })
        var bySession: [Int64: Set<String>] = [:]
        for (connection, paths) in s.status.watchesByConnection where !paths.isEmpty {
            bySession[sessionOf[connection] ?? 0, default: []].formUnion(paths)
        }
        return bySession.keys.sorted().map { ($0, bySession[$0]!.sorted()) }
    }
}
