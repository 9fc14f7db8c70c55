import ArgumentParser
import Foundation
import ZKCore
import ZKProtocol
import ZKStorage

/// `minizk inspect DIR`: what a replica's SQLite store holds, read without changing it.
///
/// The summary verifies what recovery would read (the newest snapshot and the log after it,
/// checksums and zxid contiguity included), so a store that `inspect` accepts is one a server
/// would start from, and a damaged one gets the same message a server would refuse to start with.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a replica's store: hard state, snapshots, log range; or dump its transactions or its tree.",
        discussion: """
            Zxids are given in hex (0x100000003) or decimal. The store is opened read-only and may be
            inspected while a server uses it.
            """
    )

    @Argument(help: "A replica's data directory (the one holding minizk.sqlite3).")
    var directory: String

    @Flag(help: "Print the logged transactions, one per line.")
    var transactions = false

    @Option(help: "With --transactions: start after this zxid.")
    var from: String?

    @Option(help: "With --transactions: print at most this many.")
    var limit: Int = Int.max

    @Flag(help: "Print the tree: every znode with its Stat, and its data when printable.")
    var tree = false

    @Option(help: "With --tree: the tree as of this zxid (the newest snapshot at or before it, plus the log up to it).")
    var at: String?

    func validate() throws {
        if transactions && tree { throw ValidationError("--transactions and --tree exclude each other") }
        if from != nil && !transactions { throw ValidationError("--from goes with --transactions") }
        if at != nil && !tree { throw ValidationError("--at goes with --tree") }
        guard limit > 0 else { throw ValidationError("--limit must be positive") }
        if let from, Self.parseZxid(from) == nil { throw ValidationError("--from \(from) is not a zxid") }
        if let at, Self.parseZxid(at) == nil { throw ValidationError("--at \(at) is not a zxid") }
    }

    func run() throws {
        do {
            var options = SQLiteStore.Options()
            options.readOnly = true
            let store = try SQLiteStore(directory: directory, options: options)
            if transactions {
                try printTransactions(store)
            } else if tree {
                try printTree(store)
            } else {
                try printSummary(store)
            }
        } catch let error as StorageError {
            printError("minizk inspect: \(error.isDamage ? "damaged store" : "cannot read the store"): \(error)")
            throw ExitCode.failure
        }
    }

    static func parseZxid(_ text: String) -> Zxid? {
        if text.lowercased().hasPrefix("0x") { return Int64(text.dropFirst(2), radix: 16) }
        return Int64(text)
    }

    // MARK: - Summary

    private func printSummary(_ store: SQLiteStore) throws {
        let summary = try store.summary()
        let hard = summary.hardState
        print("store: \(store.path)")
        print("hard state: currentEpoch=\(hard.currentEpoch) acceptedEpoch=\(hard.acceptedEpoch) lastVote=(server \(hard.lastVoteServer), zxid \(hex(hard.lastVoteZxid)), epoch \(hard.lastVoteEpoch))")
        if summary.snapshots.isEmpty {
            print("snapshots: none")
        } else {
            print("snapshots: \(summary.snapshots.count)")
            for snapshot in summary.snapshots {
                print("  zxid \(hex(snapshot.zxid))  chunks \(snapshot.chunks)  bytes \(snapshot.bytes)")
            }
        }
        if let first = summary.logFirst, let last = summary.logLast {
            print("log: \(summary.logCount) transactions, zxid \(hex(first)) to \(hex(last))")
        } else {
            print("log: empty")
        }
        // What recovery would read, verified the way recovery verifies it.
        let recovered = try store.recover()
        print(
            "recovery: snapshot at \(hex(recovered.tree.lastZxid)) with \(recovered.tree.nodeCount) znodes and \(recovered.tree.sessions.count) sessions, then \(recovered.log.count) logged transactions up to \(hex(recovered.lastZxid)): verified"
        )
    }

    // MARK: - Transactions

    private func printTransactions(_ store: SQLiteStore) throws {
        let start = from.flatMap(Self.parseZxid) ?? 0
        var printed = 0
        try store.forEachTransaction(after: start, limit: limit) { txn in
            print(Self.describe(txn))
            printed += 1
        }
        if printed == 0 { printError("no logged transactions after \(hex(start))") }
    }

    static func describe(_ txn: Transaction) -> String {
        let time = Date(timeIntervalSince1970: Double(txn.timeMs) / 1000)
        return "\(hex(txn.zxid)) \(isoTime(time)) session \(hex(txn.sessionId)) cxid \(txn.cxid) \(describe(txn.body))"
    }

    static func describe(_ body: TransactionBody) -> String {
        switch body {
        case .createSession(let timeoutMs): return "createSession timeout=\(timeoutMs)ms"
        case .closeSession(let ephemerals): return "closeSession ephemerals=[\(ephemerals.joined(separator: ","))]"
        case .create(let path, let data, let acl, let kind):
            return "create \(path) \(describe(data: data)) acl=\(describe(acl)) \(describe(kind))"
        case .delete(let path): return "delete \(path)"
        case .setData(let path, let data, let version): return "setData \(path) \(describe(data: data)) version=\(version)"
        case .setACL(let path, let acl, let version): return "setACL \(path) acl=\(describe(acl)) aversion=\(version)"
        case .check(let path): return "check \(path)"
        case .multi(let bodies): return "multi[" + bodies.map { describe($0) }.joined(separator: "; ") + "]"
        case .error(let code): return "error \(code)"
        case .failedMulti(let codes): return "failedMulti[\(codes.map { "\($0)" }.joined(separator: ","))]"
        }
    }

    static func describe(_ kind: NodeKind) -> String {
        switch kind {
        case .persistent: return "persistent"
        case .ephemeral(let owner): return "ephemeral(owner \(hex(owner)))"
        case .container: return "container"
        case .ttl(let ms): return "ttl(\(ms)ms)"
        }
    }

    static func describe(_ acl: [ACL]) -> String {
        acl.map { entry in
            var perms = ""
            for (bit, letter) in [(Perms.create, "c"), (.delete, "d"), (.read, "r"), (.write, "w"), (.admin, "a")]
            where entry.perms.contains(bit) {
                perms += letter
            }
            return "\(entry.id.scheme):\(entry.id.id):\(perms)"
        }.joined(separator: ",")
    }

    /// `data(N)="text"` when the bytes are printable UTF-8, `data(N)=0x...` (first 32 bytes)
    /// otherwise, `data=null` for null.
    static func describe(data: [UInt8]?) -> String {
        guard let data else { return "data=null" }
        if let text = printableText(data) {
            return "data(\(data.count))=\"\(text)\""
        }
        let shown = data.prefix(32).map { String(format: "%02x", $0) }.joined()
        return "data(\(data.count))=0x\(shown)\(data.count > 32 ? "..." : "")"
    }

    static func printableText(_ data: [UInt8]) -> String? {
        guard let text = String(validating: data, as: UTF8.self) else { return nil }
        guard text.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else { return nil }
        return text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
    }

    // MARK: - Tree

    private func printTree(_ store: SQLiteStore) throws {
        let target = at.flatMap(Self.parseZxid) ?? Int64.max
        let snapshots = try store.snapshotList()
        var tree = DataTree()
        var base: Zxid = 0
        if let snapshot = snapshots.last(where: { $0.zxid <= target }) {
            tree = try store.loadSnapshot(zxid: snapshot.zxid, chunks: snapshot.chunks)
            base = snapshot.zxid
        } else if let oldest = snapshots.first {
            printError("minizk inspect: history before \(hex(oldest.zxid)) was compacted away; the oldest tree available is at \(hex(oldest.zxid))")
            throw ExitCode.failure
        }
        var last = base
        var replayed = 0
        var triggers: [WatchTrigger] = []
        try store.forEachTransaction(after: base) { (txn) throws(StorageError) in
            guard txn.zxid <= target else { return }
            tree.apply(txn, triggers: &triggers)
            triggers.removeAll(keepingCapacity: true)
            last = txn.zxid
            replayed += 1
        }
        print("tree at zxid \(hex(last)): snapshot at \(hex(base)) plus \(replayed) logged transactions; \(tree.nodeCount) znodes, \(tree.sessions.count) sessions")
        for (id, timeoutMs) in tree.sessions.sorted(by: { $0.key < $1.key }) {
            print("session \(hex(id)) timeout=\(timeoutMs)ms")
        }
        for (path, node) in tree.allNodes {
            let stat = node.stat
            print(
                "\(path) \(Self.describe(data: node.data)) czxid=\(hex(stat.czxid)) mzxid=\(hex(stat.mzxid)) pzxid=\(hex(stat.pzxid)) ctime=\(stat.ctime) mtime=\(stat.mtime) version=\(stat.version) cversion=\(stat.cversion) aversion=\(stat.aversion) ephemeralOwner=\(hex(stat.ephemeralOwner)) dataLength=\(stat.dataLength) numChildren=\(stat.numChildren)"
            )
        }
    }
}

func hex(_ value: Int64) -> String {
    "0x" + String(UInt64(bitPattern: value), radix: 16)
}

/// `2026-11-29T15:38:07.123Z`, in UTC.
func isoTime(_ date: Date) -> String {
    let ms = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
    var seconds = time_t(ms / 1000)
    var parts = tm()
    gmtime_r(&seconds, &parts)
    return String(
        format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
        Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), Int(ms % 1000))
}
