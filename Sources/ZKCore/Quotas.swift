import ZKProtocol

// Quotas, as ZooKeeper 3.7+ keeps and enforces them.
//
// A quota on a path P is two ordinary znodes under `/zookeeper/quota`:
//
//     /zookeeper/quota/P/zookeeper_limits   "count=N,bytes=N=;byteHardLimit=N;countHardLimit=N"
//     /zookeeper/quota/P/zookeeper_stats    "count=N,bytes=N"
//
// Clients (zkCli's `setquota`, `delquota`) write the limits; the server keeps the stats. A node is
// covered by the deepest P that is a prefix of its path (by whole names) and has a limits node;
// the root is never covered. Every replica updates the stats of the covering quota when it
// applies a create (+1 node, +its bytes), a delete (-1, -bytes) or a setData (the change in
// bytes), and recounts the subtree of P when the stats node itself is created, so the stats are
// part of the replicated tree: the same on every replica, in snapshots and after restarts.
// Only the stats node's data changes, never its version or mzxid (ZooKeeper writes it in place).
//
// With `enforceQuota` (ZooKeeper's `zookeeper.enforceQuota`, off by default) the leader checks
// each create and setData when it prepares it: a write that takes the covered count or bytes
// above a hard limit (`countHardLimit`, `byteHardLimit`) becomes an error transaction
// QUOTAEXCEEDED; one above a soft limit (`count`, `bytes`, used when no hard limit of that kind
// is set) is logged and goes ahead. Without `enforceQuota` nothing is checked or logged, as in
// ZooKeeper 3.8.
//
// Where MiniZK differs: ZooKeeper checks against its committed tree, so pipelined creates (or the
// operations of one multi) can all pass a limit that only one of them fits under; MiniZK checks
// against the prepared tree (committed plus outstanding transactions), whose stats already count
// the writes ahead, so a hard limit holds exactly. Stats or limits text that ZooKeeper's parser
// would throw on (a key without `=`, a value that is not a number) is read leniently here: the
// bad pair is ignored, so a client that writes garbage there cannot stop a replica.

/// ZooKeeper's `StatsTrack`: the `key=value` text of a limits or stats node.
///
/// Grammar (ZooKeeper 3.8): pairs separated by `,` or `;`, each `key=value`; written as
/// `count=C,bytes=B`, followed, when there are other keys, by `=` and `;key=value` for each of
/// them in name order. A missing key reads as -1 (no limit).
public struct StatsTrack: Sendable, Hashable {
    public private(set) var values: [String: Int64] = [:]

    public init() {}

    public init(parsing text: String) {
        for pair in text.split(whereSeparator: { $0 == "," || $0 == ";" }) {
            var parts = pair.split(separator: "=", omittingEmptySubsequences: false)
            // Java's String.split drops trailing empty strings ("bytes=-1=" is bytes and -1).
            while let last = parts.last, last.isEmpty, parts.count > 1 { parts.removeLast() }
            guard parts.count >= 2 else { continue }
            if parts[1].isEmpty {
                values[String(parts[0])] = -1
            } else if let value = Int64(parts[1]) {
                values[String(parts[0])] = value
            }
        }
    }

    public init(bytes: [UInt8]?) { self.init(parsing: String(decoding: bytes ?? [], as: UTF8.self)) }

    public subscript(_ key: String) -> Int64 {
        get { values[key] ?? -1 }
        set { values[key] = newValue }
    }

    public var count: Int64 {
        get { self["count"] }
        set { self["count"] = newValue }
    }
    public var bytes: Int64 {
        get { self["bytes"] }
        set { self["bytes"] = newValue }
    }
    public var countHardLimit: Int64 {
        get { self["countHardLimit"] }
        set { self["countHardLimit"] = newValue }
    }
    public var byteHardLimit: Int64 {
        get { self["byteHardLimit"] }
        set { self["byteHardLimit"] = newValue }
    }

    public var text: String {
        var text = "count=\(count),bytes=\(bytes)"
        let rest = values.keys.filter { $0 != "count" && $0 != "bytes" }.sorted()
        if !rest.isEmpty {
            text += "="
            for key in rest { text += ";\(key)=\(values[key]!)" }
        }
        return text
    }

    public var encoded: [UInt8] { Array(text.utf8) }
}

/// A write that took a quota's count or bytes above a limit, for the log (ZooKeeper's
/// "Quota exceeded: ..." line). A hard one also refused the write with QUOTAEXCEEDED.
public struct QuotaExceeded: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable { case count, bytes }
    /// The path the quota is set on.
    public var quotaPath: String
    public var kind: Kind
    /// The count or bytes the write would have made.
    public var value: Int64
    public var limit: Int64
    public var hard: Bool

    public var description: String {
        let name = kind == .count ? "count" : "bytes"
        let limitName = kind == .count ? "CountLimit" : "ByteLimit"
        return "Quota exceeded: \(quotaPath) [current \(name)=\(value), \(hard ? "hard" : "soft")\(limitName)=\(limit)]"
    }
}

public enum Quotas {
    public static let limitNode = "zookeeper_limits"
    public static let statNode = "zookeeper_stats"

    public static func limitPath(_ path: String) -> String { Paths.quota + path + "/" + limitNode }
    public static func statPath(_ path: String) -> String { Paths.quota + path + "/" + statNode }

    /// Checks a create (`countDelta` 1) or setData (`countDelta` 0) of `bytesDelta` bytes on
    /// `path` against the quota covering it, as ZooKeeper's `ZooKeeperServer.checkQuota`: a limit
    /// is exceeded when the new total is above it; the hard limit of a kind, when set, replaces
    /// the soft one. Appends what was exceeded to `exceeded`; throws QUOTAEXCEEDED for a hard limit.
    static func check(
        _ path: String, bytesDelta: Int64, countDelta: Int64, tree: DataTree, exceeded: inout [QuotaExceeded]
    ) throws(ErrorCode) {
        guard let prefix = tree.quotaPrefix(of: path), let limitsNode = tree.node(limitPath(prefix)) else { return }
        let limits = StatsTrack(bytes: limitsNode.data)
        let checkCount = countDelta != 0 && (limits.count > -1 || limits.countHardLimit > -1)
        let checkBytes = bytesDelta != 0 && (limits.bytes > -1 || limits.byteHardLimit > -1)
        guard checkCount || checkBytes, let statsNode = tree.node(statPath(prefix)) else { return }
        let stats = StatsTrack(bytes: statsNode.data)
        var refused = false
        if checkCount {
            let value = stats.count &+ countDelta
            let hard = limits.countHardLimit > -1
            let limit = hard ? limits.countHardLimit : limits.count
            if value > limit {
                exceeded.append(QuotaExceeded(quotaPath: prefix, kind: .count, value: value, limit: limit, hard: hard))
                // ZooKeeper throws at the first hard limit exceeded, before it looks at bytes.
                if hard { throw .quotaExceeded }
            }
        }
        if checkBytes {
            let value = stats.bytes &+ bytesDelta
            let hard = limits.byteHardLimit > -1
            let limit = hard ? limits.byteHardLimit : limits.bytes
            if value > limit {
                exceeded.append(QuotaExceeded(quotaPath: prefix, kind: .bytes, value: value, limit: limit, hard: hard))
                refused = hard
            }
        }
        if refused { throw .quotaExceeded }
    }
}

extension DataTree {
    /// The deepest path with a quota (a `zookeeper_limits` node under `/zookeeper/quota`) that is
    /// `path` or an ancestor of it; nil when there is none or it would be the root. ZooKeeper's
    /// `getMaxPrefixWithQuota`, read from the tree itself rather than from an index beside it, so
    /// snapshots, SNAP and restarts need nothing rebuilt. With no quota set this is two lookups.
    public func quotaPrefix(of path: String) -> String? {
        guard let zookeeper = root.childMap[NodeName("zookeeper")], var node = zookeeper.childMap[NodeName("quota")],
            !node.children.isEmpty
        else { return nil }
        var deepest: String? = nil
        var end = path.startIndex
        for name in path.split(separator: "/") {
            guard let child = node.childMap[NodeName(String(name))] else { break }
            end = name.endIndex
            if child.childMap[NodeName(Quotas.limitNode)] != nil { deepest = String(path[..<end]) }
            node = child
        }
        return deepest
    }

    /// Node count and data bytes of the subtree at `path`, itself included (0, 0 when missing).
    func subtreeCounts(_ path: String) -> (count: Int64, bytes: Int64) {
        guard let top = node(path) else { return (0, 0) }
        var count: Int64 = 0
        var bytes: Int64 = 0
        var pending = [top]
        while let next = pending.popLast() {
            count += 1
            bytes += Int64(next.dataLength)
            pending.append(contentsOf: next.childMap.values)
        }
        return (count, bytes)
    }

    /// Adds to the stats of the quota on `prefix` (ZooKeeper's `updateQuotaStat`).
    mutating func updateQuotaStats(_ prefix: String, countDelta: Int64, bytesDelta: Int64) {
        replaceQuotaStats(prefix) { stats in
            stats.count &+= countDelta
            stats.bytes &+= bytesDelta
        }
    }

    /// Rewrites the stats node of `prefix` in place: data only, the Stat's version and mzxid stay.
    private mutating func replaceQuotaStats(_ prefix: String, _ change: (inout StatsTrack) -> Void) {
        let delta = modify(Quotas.statPath(prefix)) { node -> Int in
            var stats = StatsTrack(bytes: node.data)
            change(&stats)
            let before = node.dataLength
            node.data = stats.encoded
            return node.dataLength - before
        }
        dataBytes += delta ?? 0
    }

    /// Quota bookkeeping after a node was created.
    mutating func quotaAfterCreate(_ path: String, parentPath: String, name: String, dataCount: Int) {
        if name == Quotas.statNode, parentPath.hasPrefix(Paths.quota) {
            // A new stats node starts from the subtree as it is (ZooKeeper's updateQuotaForPath).
            let counts = subtreeCounts(String(parentPath.dropFirst(Paths.quota.count)))
            replaceQuotaStats(String(parentPath.dropFirst(Paths.quota.count))) { stats in
                stats = StatsTrack()
                stats.count = counts.count
                stats.bytes = counts.bytes
            }
        }
        if let prefix = quotaPrefix(of: path) { updateQuotaStats(prefix, countDelta: 1, bytesDelta: Int64(dataCount)) }
    }
}
