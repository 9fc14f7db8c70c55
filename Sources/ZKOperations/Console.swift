import Foundation
import ZKCore
import ZKProtocol
import ZKServer

/// One member of the ensemble a console shows: where it serves and, while it runs, its server.
public struct ConsoleMember: Sendable {
    public var id: Int64
    public var host: String
    public var clientPort: Int
    /// nil while the member does not run (killed or stopped).
    public var server: MiniZKServer?

    public init(id: Int64, host: String, clientPort: Int, server: MiniZKServer?) {
        self.id = id
        self.host = host
        self.clientPort = clientPort
        self.server = server
    }
}

/// The web console's data: the members of an ensemble, read through their servers, and what a
/// monitor sampled from them over time (request rate, latencies, fsync time, leader changes).
///
/// Read-only: it reads snapshots of each replica's state (taken on the replica's event loop, one
/// short turn each) and the committed tree (an O(1) copy; listing and sorting children happen
/// off the event loop, and a page holds at most `maximumPageSize` children).
public final class Console: Sendable {
    public typealias Members = @Sendable () async -> [ConsoleMember]

    public static let defaultPageSize = 100
    public static let maximumPageSize = 1000
    /// Data beyond this many bytes is not sent to the page (its length still is).
    public static let maximumDataBytes = 64 * 1024

    public let members: Members
    public let monitor: ConsoleMonitor

    /// `members` lists every member the console shows, each time it is asked (a killed member
    /// comes back with `server` nil). The monitor samples them every `sampleIntervalMs`.
    public init(members: @escaping Members, sampleIntervalMs: Int = 1000, samplesKept: Int = 300) {
        self.members = members
        self.monitor = ConsoleMonitor(members: members, intervalMs: sampleIntervalMs, capacity: samplesKept)
    }

    /// Members of a fixed list of servers (ids 1...n in order).
    public convenience init(servers: [MiniZKServer], sampleIntervalMs: Int = 1000) {
        let members = servers.enumerated().map { index, server in
            ConsoleMember(id: Int64(index + 1), host: server.host, clientPort: server.localPort, server: server)
        }
        self.init(members: { members }, sampleIntervalMs: sampleIntervalMs)
    }

    // MARK: - The ensemble

    /// What one member reports, or nil when it does not run.
    struct MemberState: Sendable {
        var member: ConsoleMember
        var snapshot: OperationsSnapshot?
    }

    /// `watchesByConnection` adds every connection's watched paths (O(watches)).
    func states(watchesByConnection: Bool = false) async -> [MemberState] {
        var states: [MemberState] = []
        for member in await members() {
            let snapshot = try? await member.server?.operationsSnapshot(watchesByConnection: watchesByConnection)
            states.append(MemberState(member: member, snapshot: snapshot))
        }
        return states
    }

    /// The member that leads and serves (or a standalone one), if any.
    static func leader(of states: [MemberState]) -> MemberState? {
        states.first { state in
            guard let status = state.snapshot?.fourLetterWords.status else { return false }
            return status.serving && (status.mode == "leader" || status.mode == "standalone")
        }
    }

    /// `/console/api/ensemble`: every member with its role, epoch, zxid and how many transactions
    /// it is behind the leader (null when it does not run, there is no leader, or it is in
    /// another epoch than the leader's).
    public func ensemble(selfId: Int64?) async -> JSONValue {
        let states = await states()
        let leader = Self.leader(of: states)
        let leaderZxid = leader?.snapshot?.fourLetterWords.status.lastZxid
        let members: [JSONValue] = states.map { state in
            var pairs: [(String, JSONValue)] = [
                ("id", .int(state.member.id)),
                ("address", .string("\(state.member.host):\(state.member.clientPort)")),
                ("running", .bool(state.snapshot != nil)),
            ]
            guard let o = state.snapshot else {
                return .object(pairs + [("mode", .string("not running")), ("serving", .bool(false))])
            }
            let s = o.fourLetterWords
            let zxid = s.status.lastZxid
            var lag: JSONValue = .null
            if let leaderZxid, leaderZxid >> 32 == zxid >> 32 { lag = .int(max(0, leaderZxid - zxid)) }
            pairs += [
                ("mode", .string(s.status.mode)),
                ("serving", .bool(s.status.serving)),
                ("leaderId", s.status.leaderId < 0 ? .null : .int(s.status.leaderId)),
                ("epoch", .int(s.status.currentEpoch)),
                ("lastZxid", .string(Self.hex(zxid))),
                ("zxidEpoch", .int(zxid >> 32)),
                ("zxidCounter", .int(zxid & 0xFFFF_FFFF)),
                ("lagTransactions", lag),
                ("nodeCount", .int(Int64(s.status.nodeCount))),
                ("sessions", .int(Int64(s.status.sessions.count))),
                ("connections", .int(Int64(s.connections.count))),
                ("watches", .int(Int64(s.status.watchCount))),
                ("outstandingRequests", .int(Int64(s.status.outstandingRequests))),
                ("followers", .int(Int64(s.status.followers))),
                ("syncedFollowers", .int(Int64(s.status.syncedFollowers))),
                ("packetsReceived", .int(s.server.packetsReceived)),
                ("uptimeMs", .int(max(0, s.nowMs - s.startedAtMs))),
            ]
            return .object(pairs)
        }
        return .object([
            ("self", selfId.map(JSONValue.int) ?? .null),
            ("leader", leader.map { .int($0.member.id) } ?? .null),
            ("members", .array(members)),
        ])
    }

    // MARK: - The tree

    public enum TreeError: Error, CustomStringConvertible {
        case badPath(String)
        case noMember
        public var description: String {
            switch self {
            case .badPath(let path): return "not a znode path: \(path)"
            case .noMember: return "no running member to read the tree from"
            }
        }
    }

    /// `/console/api/tree`: the znode at `path` on member `memberId` (default: the leader, else
    /// the first running member): its Stat, ACL, data (the first `maximumDataBytes`, base64) and
    /// one page of its children, sorted, from `offset`, at most `limit`. `found` is false when
    /// the node does not exist.
    public func tree(path: String, memberId: Int64?, offset: Int, limit: Int) async throws -> JSONValue {
        guard path == "/" || (path.hasPrefix("/") && !path.hasSuffix("/") && !path.contains("//")) else {
            throw TreeError.badPath(path)
        }
        let member: ConsoleMember?
        if let memberId {
            member = await members().first { $0.id == memberId && $0.server != nil }
        } else {
            // Not `MiniZKServer.status()`: it computes the tree's digest, an O(n) walk.
            let states = await states()
            member = (Self.leader(of: states) ?? states.first { $0.snapshot != nil })?.member
        }
        guard let member, let server = member.server else { throw TreeError.noMember }
        let tree = try await server.committedTree()
        let limit = min(max(1, limit), Self.maximumPageSize)
        let offset = max(0, offset)
        var pairs: [(String, JSONValue)] = [
            ("member", .int(member.id)),
            ("path", .string(path)),
            ("treeZxid", .string(Self.hex(tree.lastZxid))),
        ]
        guard let node = tree.node(path) else {
            return .object(pairs + [("found", .bool(false))])
        }
        let stat = node.stat
        let data = node.data ?? []
        let shown = Array(data.prefix(Self.maximumDataBytes))
        let names = node.children.sorted()
        let page = names.dropFirst(offset).prefix(limit)
        let children: [JSONValue] = page.map { name in
            let childPath = path == "/" ? "/" + name : path + "/" + name
            let child = tree.node(childPath)
            return .object([
                ("name", .string(name)),
                ("numChildren", .int(Int64(child?.children.count ?? 0))),
                ("dataLength", .int(Int64(child?.dataLength ?? 0))),
                ("ephemeral", .bool((child?.stat.ephemeralOwner ?? 0) != 0)),
            ])
        }
        pairs += [
            ("found", .bool(true)),
            ("stat", Self.stat(stat)),
            ("acl", .array(node.acl.map { acl in
                .object([
                    ("scheme", .string(acl.id.scheme)), ("id", .string(acl.id.id)),
                    ("perms", .string(acl.perms.letters)), ("permsValue", .int(Int64(acl.perms.rawValue))),
                ])
            })),
            ("hasData", .bool(node.hasData)),
            ("dataBase64", .string(Data(shown).base64EncodedString())),
            ("dataTruncated", .bool(shown.count < data.count)),
            ("totalChildren", .int(Int64(names.count))),
            ("offset", .int(Int64(offset))),
            ("limit", .int(Int64(limit))),
            ("children", .array(children)),
        ]
        return .object(pairs)
    }

    static func stat(_ stat: Stat) -> JSONValue {
        .object([
            ("czxid", .string(hex(stat.czxid))), ("mzxid", .string(hex(stat.mzxid))),
            ("pzxid", .string(hex(stat.pzxid))), ("ctime", .int(stat.ctime)), ("mtime", .int(stat.mtime)),
            ("version", .int(Int64(stat.version))), ("cversion", .int(Int64(stat.cversion))),
            ("aversion", .int(Int64(stat.aversion))), ("ephemeralOwner", .string(hex(stat.ephemeralOwner))),
            ("dataLength", .int(Int64(stat.dataLength))), ("numChildren", .int(Int64(stat.numChildren))),
        ])
    }


    static func hex(_ value: Int64) -> String { "0x" + String(UInt64(bitPattern: value), radix: 16) }

    // MARK: - Sessions

    /// `/console/api/sessions`: the sessions the ensemble knows (from the leader, else any running
    /// member), each with its ephemerals, the member and address it is connected to, and the
    /// paths it watches there.
    public func sessions() async -> JSONValue {
        let states = await states(watchesByConnection: true)
        guard let source = Self.leader(of: states) ?? states.first(where: { $0.snapshot != nil }),
            let known = source.snapshot?.fourLetterWords.status.sessions
        else {
            return .object([("from", .null), ("sessions", .array([]))])
        }
        struct Connected { var member: Int64; var address: String; var watches: [String] }
        var connected: [Int64: Connected] = [:]
        for state in states {
            guard let s = state.snapshot?.fourLetterWords else { continue }
            let addresses = Dictionary(s.connections.map { ($0.id, "\($0.peerAddress):\($0.peerPort)") }, uniquingKeysWith: { a, _ in a })
            for connection in s.status.connections where connection.sessionId != 0 {
                connected[connection.sessionId] = Connected(
                    member: state.member.id, address: addresses[connection.id] ?? "",
                    watches: (s.status.watchesByConnection[connection.id] ?? []).sorted())
            }
        }
        let sessions: [JSONValue] = known.sorted { $0.id < $1.id }.map { session in
            let connection = connected[session.id]
            return .object([
                ("id", .string(Self.hex(session.id))),
                ("timeoutMs", .int(session.timeoutMs)),
                ("ephemerals", .array(session.ephemerals.sorted().map(JSONValue.string))),
                ("member", connection.map { .int($0.member) } ?? .null),
                ("address", connection.map { .string($0.address) } ?? .null),
                ("watches", .array((connection?.watches ?? []).map(JSONValue.string))),
            ])
        }
        return .object([("from", .int(source.member.id)), ("sessions", .array(sessions))])
    }
}

/// Samples the members of a console at an interval: per member, the requests per second, the
/// mean read and update latency and the mean fsync time over the interval (from the deltas of
/// ZooKeeper's summaries), and the leader changes as events. Keeps the last `capacity` samples
/// and the last 200 events.
public actor ConsoleMonitor {
    public struct MemberSample: Sendable {
        public var id: Int64
        public var running: Bool
        public var requestsPerSecond: Double?
        public var readLatencyMs: Double?
        public var updateLatencyMs: Double?
        public var fsyncMs: Double?
        public var lastZxid: Int64?
    }

    public struct Sample: Sendable {
        public var atMs: Int64
        public var members: [MemberSample]
    }

    public struct Event: Sendable {
        public var atMs: Int64
        /// `leader` (a member leads), `no-leader`, `member-down`, `member-up`.
        public var kind: String
        public var member: Int64?
        /// For `leader`: the member that led before (nil at the first election seen).
        public var previous: Int64?
        public var epoch: Int64?
        public var text: String
    }

    private struct Counters {
        var server: ObjectIdentifier
        var atMs: Int64
        var reads: (count: Int64, sum: Int64)
        var updates: (count: Int64, sum: Int64)
        var fsyncs: (count: Int64, sum: Int64)
    }

    private let members: Console.Members
    public nonisolated let intervalMs: Int
    private let capacity: Int
    public private(set) var samples: [Sample] = []
    public private(set) var events: [Event] = []
    private var counters: [Int64: Counters] = [:]
    private var running: [Int64: Bool] = [:]
    private var currentLeader: Int64?
    private var lastLeader: Int64?
    private var started = false
    private var task: Task<Void, Never>?

    init(members: @escaping Console.Members, intervalMs: Int, capacity: Int) {
        self.members = members
        self.intervalMs = intervalMs
        self.capacity = capacity
    }

    /// Samples now and then every interval until `stop()`.
    public func start() {
        guard task == nil else { return }
        let interval = UInt64(intervalMs) * 1_000_000
        task = Task { [weak self] in
            while !Task.isCancelled {
                guard let self else { return }
                await self.sample()
                try? await Task.sleep(nanoseconds: interval)
            }
        }
    }

    public func stop() {
        task?.cancel()
        task = nil
    }

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// Takes one sample of every member.
    public func sample() async {
        let now = Self.nowMs()
        var memberSamples: [MemberSample] = []
        var leader: (id: Int64, epoch: Int64)?
        for member in await members() {
            guard let server = member.server, let o = try? await server.operationsSnapshot() else {
                memberSamples.append(MemberSample(id: member.id, running: false))
                counters[member.id] = nil
                noteRunning(member.id, false, at: now)
                continue
            }
            noteRunning(member.id, true, at: now)
            let status = o.fourLetterWords.status
            if status.serving, status.mode == "leader" || status.mode == "standalone" {
                leader = (member.id, status.currentEpoch)
            }
            let s = o.summaries
            let next = Counters(
                server: ObjectIdentifier(server), atMs: now,
                reads: (s.readLatency.count, s.readLatency.sum), updates: (s.updateLatency.count, s.updateLatency.sum),
                fsyncs: (s.fsyncTime.count, s.fsyncTime.sum))
            var sample = MemberSample(id: member.id, running: true, lastZxid: status.lastZxid)
            if let before = counters[member.id], before.server == next.server, next.atMs > before.atMs,
                next.reads.count >= before.reads.count, next.updates.count >= before.updates.count,
                next.fsyncs.count >= before.fsyncs.count
            {
                let seconds = Double(next.atMs - before.atMs) / 1000
                let reads = next.reads.count - before.reads.count
                let updates = next.updates.count - before.updates.count
                let fsyncs = next.fsyncs.count - before.fsyncs.count
                sample.requestsPerSecond = Double(reads + updates) / seconds
                sample.readLatencyMs = reads == 0 ? nil : Double(next.reads.sum - before.reads.sum) / Double(reads)
                sample.updateLatencyMs = updates == 0 ? nil : Double(next.updates.sum - before.updates.sum) / Double(updates)
                sample.fsyncMs = fsyncs == 0 ? nil : Double(next.fsyncs.sum - before.fsyncs.sum) / Double(fsyncs)
            }
            counters[member.id] = next
            memberSamples.append(sample)
        }
        samples.append(Sample(atMs: now, members: memberSamples))
        if samples.count > capacity { samples.removeFirst(samples.count - capacity) }
        noteLeader(leader, at: now)
    }

    private func noteRunning(_ id: Int64, _ isRunning: Bool, at now: Int64) {
        let before = running[id]
        running[id] = isRunning
        if before == nil, isRunning { return }
        if before == isRunning { return }
        record(Event(
            atMs: now, kind: isRunning ? "member-up" : "member-down", member: id, previous: nil, epoch: nil,
            text: isRunning ? "member \(id) runs again" : "member \(id) is not running"))
    }

    private func noteLeader(_ leader: (id: Int64, epoch: Int64)?, at now: Int64) {
        guard leader?.id != currentLeader || !started else { return }
        started = true
        if let leader {
            let text: String
            if let lastLeader, lastLeader != leader.id {
                text = "leader changed: member \(leader.id) leads (epoch \(leader.epoch)) after member \(lastLeader)"
            } else if lastLeader == leader.id {
                text = "member \(leader.id) leads again (epoch \(leader.epoch))"
            } else {
                text = "member \(leader.id) leads (epoch \(leader.epoch))"
            }
            record(Event(atMs: now, kind: "leader", member: leader.id, previous: lastLeader, epoch: leader.epoch, text: text))
            lastLeader = leader.id
        } else {
            record(Event(
                atMs: now, kind: "no-leader", member: nil, previous: currentLeader, epoch: nil,
                text: currentLeader.map { "no leader: member \($0) no longer leads" } ?? "no leader"))
        }
        currentLeader = leader?.id
    }

    private func record(_ event: Event) {
        events.append(event)
        if events.count > 200 { events.removeFirst(events.count - 200) }
    }

    /// `/console/api/series`: the samples taken after `sinceMs`.
    public func seriesJSON(sinceMs: Int64) -> JSONValue {
        func number(_ value: Double?) -> JSONValue { value.map { .double(($0 * 1000).rounded() / 1000) } ?? .null }
        let chosen = samples.filter { $0.atMs > sinceMs }
        return .object([
            ("intervalMs", .int(Int64(intervalMs))),
            ("samples", .array(chosen.map { sample in
                .object([
                    ("t", .int(sample.atMs)),
                    ("members", .array(sample.members.map { m in
                        .object([
                            ("id", .int(m.id)), ("running", .bool(m.running)),
                            ("requestsPerSecond", number(m.requestsPerSecond)),
                            ("readLatencyMs", number(m.readLatencyMs)),
                            ("updateLatencyMs", number(m.updateLatencyMs)),
                            ("fsyncMs", number(m.fsyncMs)),
                        ])
                    })),
                ])
            })),
        ])
    }

    /// `/console/api/events`: the events, oldest first.
    public func eventsJSON() -> JSONValue {
        .object([("events", .array(events.map { event in
            .object([
                ("t", .int(event.atMs)), ("kind", .string(event.kind)),
                ("member", event.member.map(JSONValue.int) ?? .null),
                ("previous", event.previous.map(JSONValue.int) ?? .null),
                ("epoch", event.epoch.map(JSONValue.int) ?? .null),
                ("text", .string(event.text)),
            ])
        }))])
    }
}
