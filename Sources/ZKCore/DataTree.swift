import HashTreeCollections
import ZKProtocol

/// What applying one transaction (or one operation of a multi) produced.
public enum ApplyOutcome: Sendable, Hashable {
    case created(path: String, stat: Stat)
    case deleted
    case dataSet(stat: Stat)
    case aclSet(stat: Stat)
    case checked
    case sessionCreated
    case sessionClosed
    case failed(ErrorCode)
    case failedMulti([ErrorCode])
    case multi([ApplyOutcome])
}

/// A change that may fire watches: `path` changed in the way `type` says.
public struct WatchTrigger: Sendable, Hashable {
    public var path: String
    public var type: EventType
    /// The ACL of the node the event is about (of the parent, for NodeChildrenChanged): only
    /// connections with READ on it are told, as in ZooKeeper since the fix of CVE-2024-23944.
    public var acl: [ACL]
}

/// The replicated state of a replica: the znode tree and the table of live sessions.
///
/// A value type on persistent (structurally shared) maps, so `let copy = tree` is an exact,
/// cheap point-in-time copy. Each node holds its children in a persistent map by name, so a path
/// is stored once, as the names along it, and a change copies only the nodes on the way to it
/// that another copy of the tree still shares. The replica keeps two trees: the committed tree
/// that reads see and the prepared tree (committed plus outstanding transactions) that new
/// writes are checked against. `apply` is deterministic and never fails for a transaction that
/// was prepared against the same state; a transaction that does not fit is a broken invariant
/// and stops the replica.
public struct DataTree: Sendable {
    private(set) var root: DataNode
    public private(set) var nodeCount: Int
    /// Live sessions and their negotiated timeouts.
    public private(set) var sessions: TreeDictionary<Int64, Int64> = [:]
    /// Ephemeral paths per owning session.
    public private(set) var ephemerals: TreeDictionary<Int64, TreeSet<String>> = [:]
    /// Containers and TTL nodes, checked periodically for removal.
    public private(set) var containers: TreeSet<String> = []
    public private(set) var ttlNodes: TreeSet<String> = []
    public private(set) var lastZxid: Zxid = 0
    public internal(set) var dataBytes: Int = 0
    /// ACL lists of recent creates: a new node with an equal list shares its storage.
    private var recentACLs: [[ACL]] = []

    public init() {
        var zookeeper = DataNode.system(acl: ACL.openUnsafe)
        zookeeper.insertChild("quota", .system(acl: ACL.openUnsafe))
        zookeeper.insertChild("config", .system(acl: ACL.readUnsafe, aversion: -1))
        root = .system(acl: ACL.openUnsafe)
        root.insertChild("zookeeper", zookeeper)
        nodeCount = 4
    }

    init(root: DataNode, nodeCount: Int) {
        self.root = root
        self.nodeCount = nodeCount
    }

    /// Looks a path up the way ZooKeeper does: the empty string is the root.
    public func node(_ path: String) -> DataNode? {
        let utf8 = path.utf8
        guard let first = utf8.first else { return root }
        guard first == Paths.slash else { return nil }
        var start = utf8.index(after: utf8.startIndex)
        if start == utf8.endIndex { return root }
        var node = root
        while true {
            let end = utf8[start...].firstIndex(of: Paths.slash) ?? utf8.endIndex
            guard start != end, let child = node.childMap[NodeName(String(path[start..<end]))] else { return nil }
            if end == utf8.endIndex { return child }
            node = child
            start = utf8.index(after: end)
        }
    }

    /// Calls `body` on the node at `path` in place; nil when there is none. Nodes on the way that
    /// another copy of the tree shares are copied first.
    mutating func modify<R>(_ path: String, _ body: (inout DataNode) -> R) -> R? {
        let utf8 = path.utf8
        guard let first = utf8.first, first == Paths.slash else { return nil }
        let start = utf8.index(after: utf8.startIndex)
        if start == utf8.endIndex { return body(&root) }
        return Self.descend(&root, path, from: start, body)
    }

    private static func descend<R>(
        _ node: inout DataNode, _ path: String, from start: String.Index, _ body: (inout DataNode) -> R
    ) -> R? {
        let utf8 = path.utf8
        let end = utf8[start...].firstIndex(of: Paths.slash) ?? utf8.endIndex
        guard start != end else { return nil }
        let name = NodeName(String(path[start..<end]))
        guard node.childMap[name] != nil else { return nil }
        return node.update { header in
            header.children.updateValue(forKey: name) { (child: inout DataNode?) -> R? in
                if end == utf8.endIndex { return body(&child!) }
                return descend(&child!, path, from: utf8.index(after: end), body)
            }
        }
    }

    /// Visits every node with its path, parents before their children.
    public func forEachNode(_ body: (String, DataNode) throws -> Void) rethrows {
        var iterator = makeNodeIterator()
        while let (path, node) = iterator.next() { try body(path, node) }
    }

    /// Every node with its path, sorted by path.
    public var allNodes: [(path: String, node: DataNode)] {
        var result: [(path: String, node: DataNode)] = []
        result.reserveCapacity(nodeCount)
        forEachNode { result.append(($0, $1)) }
        return result.sorted { $0.path < $1.path }
    }

    public func makeNodeIterator() -> NodeIterator { NodeIterator(root: root) }

    /// Whether both trees hold the same nodes (paths, data, ACLs and Stat fields).
    public func sameNodes(as other: DataTree) -> Bool { nodeCount == other.nodeCount && root == other.root }

    public var ephemeralCount: Int { ephemerals.values.reduce(0) { $0 + $1.count } }

    public func ephemerals(of session: Int64) -> TreeSet<String> { ephemerals[session] ?? [] }

    /// Number of descendants of `path` (not counting itself).
    public func descendantCount(_ path: String) -> Int {
        guard let node = node(path) else { return 0 }
        func count(_ node: DataNode) -> Int {
            node.childMap.values.reduce(0) { $0 + 1 + count($1) }
        }
        return count(node)
    }

    /// Applies a transaction, returning what it did and which watches it may fire, in order.
    @discardableResult
    public mutating func apply(_ txn: Transaction, triggers: inout [WatchTrigger]) -> ApplyOutcome {
        precondition(txn.zxid > lastZxid || txn.zxid == 0, "zxid \(txn.zxid) applied after \(lastZxid)")
        let outcome = apply(txn.body, zxid: txn.zxid, timeMs: txn.timeMs, sessionId: txn.sessionId, triggers: &triggers)
        if txn.zxid > lastZxid { lastZxid = txn.zxid }
        return outcome
    }

    /// Applies one transaction body. Used for whole transactions and, by `Prepare`, on a scratch
    /// copy for the operations of a multi.
    mutating func apply(
        _ body: TransactionBody, zxid: Zxid, timeMs: Int64, sessionId: Int64, triggers: inout [WatchTrigger]
    ) -> ApplyOutcome {
        switch body {
        case .createSession(let timeoutMs):
            sessions[sessionId] = timeoutMs
            return .sessionCreated
        case .closeSession(let paths):
            for path in paths {
                removeNode(path, zxid: zxid, triggers: &triggers)
            }
            sessions[sessionId] = nil
            ephemerals[sessionId] = nil
            return .sessionClosed
        case .create(let path, let data, let acl, let kind):
            return .created(path: path, stat: createNode(path, data: data, acl: acl, kind: kind, zxid: zxid, timeMs: timeMs, triggers: &triggers))
        case .delete(let path):
            removeNode(path, zxid: zxid, triggers: &triggers)
            return .deleted
        case .setData(let path, let data, let version):
            let updated = modify(path) { node -> (stat: Stat, delta: Int, acl: [ACL]) in
                let delta = (data?.count ?? 0) - node.dataLength
                var header = node.storage.header
                header.version = version
                header.mzxid = zxid
                header.mtime = timeMs
                node.storage = data.withUnsafeOptionalBytes { NodeStorage.make(header, data: $0) }
                return (node.stat, delta, header.acl)
            }
            guard let updated else { preconditionFailure("setData of missing \(path) at zxid \(zxid)") }
            dataBytes += updated.delta
            if let prefix = quotaPrefix(of: path) { updateQuotaStats(prefix, countDelta: 0, bytesDelta: Int64(updated.delta)) }
            triggers.append(WatchTrigger(path: path, type: .nodeDataChanged, acl: updated.acl))
            return .dataSet(stat: updated.stat)
        case .setACL(let path, let acl, let version):
            let acl = interned(acl)
            let stat = modify(path) { node -> Stat in
                node.update {
                    $0.acl = acl
                    $0.aversion = version
                }
                return node.stat
            }
            guard let stat else { preconditionFailure("setACL of missing \(path) at zxid \(zxid)") }
            return .aclSet(stat: stat)
        case .check:
            return .checked
        case .multi(let bodies):
            var outcomes: [ApplyOutcome] = []
            outcomes.reserveCapacity(bodies.count)
            for body in bodies {
                outcomes.append(apply(body, zxid: zxid, timeMs: timeMs, sessionId: sessionId, triggers: &triggers))
            }
            return .multi(outcomes)
        case .error(let code):
            return .failed(code)
        case .failedMulti(let codes):
            return .failedMulti(codes)
        }
    }

    /// An ACL list equal to `acl`, sharing storage with a recent equal one where there is one:
    /// most nodes of a tree carry one of a few lists.
    private mutating func interned(_ acl: [ACL]) -> [ACL] {
        if let index = recentACLs.firstIndex(of: acl) {
            if index > 0 { recentACLs.swapAt(0, index) }
            return recentACLs[0]
        }
        if recentACLs.count >= 4 { recentACLs.removeLast() }
        recentACLs.insert(acl, at: 0)
        return acl
    }

    private mutating func createNode(
        _ path: String, data: [UInt8]?, acl: [ACL], kind: NodeKind, zxid: Zxid, timeMs: Int64, triggers: inout [WatchTrigger]
    ) -> Stat {
        guard let parentPath = Paths.parent(of: path) else { preconditionFailure("create of \(path) without a parent at zxid \(zxid)") }
        let name = NodeName(Paths.name(of: path))
        let node = DataNode(
            data: data, acl: interned(acl), czxid: zxid, mzxid: zxid, ctime: timeMs, mtime: timeMs, version: 0, aversion: 0,
            childCreates: 0, pzxid: zxid, kind: kind)
        let insertedUnder = modify(parentPath) { parent -> [ACL]? in
            parent.update { header in
                guard header.children.updateValue(node, forKey: name) == nil else { return nil }
                header.childCreates &+= 1
                header.pzxid = zxid
                return header.acl
            }
        }
        guard let insertedUnder else { preconditionFailure("create of \(path) without a parent at zxid \(zxid)") }
        guard let parentACL = insertedUnder else { preconditionFailure("create of existing \(path) at zxid \(zxid)") }
        nodeCount += 1
        dataBytes += data?.count ?? 0
        switch kind {
        case .ephemeral(let owner): ephemerals[owner, default: []].insert(path)
        case .container: containers.insert(path)
        case .ttl: ttlNodes.insert(path)
        case .persistent: break
        }
        quotaAfterCreate(path, parentPath: parentPath, name: name.string, dataCount: data?.count ?? 0)
        triggers.append(WatchTrigger(path: path, type: .nodeCreated, acl: node.acl))
        triggers.append(WatchTrigger(path: parentPath, type: .nodeChildrenChanged, acl: parentACL))
        return node.stat
    }

    private mutating func removeNode(_ path: String, zxid: Zxid, triggers: inout [WatchTrigger]) {
        guard let parentPath = Paths.parent(of: path) else { preconditionFailure("delete of missing \(path) at zxid \(zxid)") }
        let name = NodeName(Paths.name(of: path))
        let removed = modify(parentPath) { parent -> (node: DataNode, parentACL: [ACL])? in
            guard let child = parent.childMap[name] else { return nil }
            precondition(child.children.isEmpty, "delete of \(path) with children at zxid \(zxid)")
            return parent.update { header in
                header.pzxid = zxid
                return header.children.removeValue(forKey: name).map { ($0, header.acl) }
            }
        }
        guard let removed, let (node, parentACL) = removed.map({ ($0.node, $0.parentACL) }) else {
            preconditionFailure("delete of missing \(path) at zxid \(zxid)")
        }
        nodeCount -= 1
        dataBytes -= node.dataLength
        switch node.kind {
        case .ephemeral(let owner):
            ephemerals[owner]?.remove(path)
            if ephemerals[owner]?.isEmpty == true { ephemerals[owner] = nil }
        case .container: containers.remove(path)
        case .ttl: ttlNodes.remove(path)
        case .persistent: break
        }
        if let prefix = quotaPrefix(of: path) { updateQuotaStats(prefix, countDelta: -1, bytesDelta: -Int64(node.dataLength)) }
        triggers.append(WatchTrigger(path: path, type: .nodeDeleted, acl: node.acl))
        triggers.append(WatchTrigger(path: parentPath, type: .nodeChildrenChanged, acl: parentACL))
    }
}

extension DataNode {
    /// Adds a child while building a tree; false when the name is taken.
    @discardableResult
    mutating func insertChild(_ name: NodeName, _ child: DataNode) -> Bool {
        update { $0.children.updateValue(child, forKey: name) == nil }
    }
}

extension Optional where Wrapped == [UInt8] {
    func withUnsafeOptionalBytes<R>(_ body: (UnsafeRawBufferPointer?) throws -> R) rethrows -> R {
        guard let self else { return try body(nil) }
        return try self.withUnsafeBytes { try body($0) }
    }
}

/// Walks a tree's nodes with their paths, each parent before its children (a pre-order), one
/// node at a time.
public struct NodeIterator: IteratorProtocol {
    private var pendingRoot: DataNode?
    private var stack: [(prefix: String, children: ChildMap.Iterator)] = []

    init(root: DataNode) { pendingRoot = root }

    public mutating func next() -> (path: String, node: DataNode)? {
        if let root = pendingRoot {
            pendingRoot = nil
            if !root.children.isEmpty { stack.append(("", root.childMap.makeIterator())) }
            return (Paths.root, root)
        }
        while !stack.isEmpty {
            guard let (name, child) = stack[stack.count - 1].children.next() else {
                stack.removeLast()
                continue
            }
            let path = stack[stack.count - 1].prefix + "/" + name.string
            if !child.children.isEmpty { stack.append((path, child.childMap.makeIterator())) }
            return (path, child)
        }
        return nil
    }
}

extension DataTree {
    /// A digest of every node's path, data, ACL and Stat, independent of insertion order; equal on
    /// replicas whose trees are equal.
    public var digest: UInt64 {
        var total: UInt64 = 0
        forEachNode { path, node in
            var hash = FNV1a()
            hash.add(path.utf8)
            node.withData { hash.add($0 ?? UnsafeRawBufferPointer(start: nil, count: 0)) }
            hash.add(node.hasData ? 1 : 0)
            for entry in node.acl {
                hash.add(UInt64(UInt32(bitPattern: entry.perms.rawValue)))
                hash.add(entry.id.scheme.utf8)
                hash.add(entry.id.id.utf8)
            }
            let stat = node.stat
            for value in [stat.czxid, stat.mzxid, stat.ctime, stat.mtime, stat.pzxid, stat.ephemeralOwner] {
                hash.add(UInt64(bitPattern: value))
            }
            for value in [stat.version, stat.cversion, stat.aversion, stat.numChildren] {
                hash.add(UInt64(UInt32(bitPattern: value)))
            }
            total &+= hash.value
        }
        for (id, timeout) in sessions {
            var hash = FNV1a()
            hash.add(UInt64(bitPattern: id))
            hash.add(UInt64(bitPattern: timeout))
            total &+= hash.value
        }
        return total
    }
}

/// 64-bit FNV-1a, for digests (not for security).
struct FNV1a {
    private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325
    mutating func add<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        for byte in bytes {
            value ^= UInt64(byte)
            value = value &* 0x100_0000_01B3
        }
    }
    mutating func add(_ word: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) { add(CollectionOfOne(UInt8(truncatingIfNeeded: word >> UInt64(shift)))) }
    }
}

extension DataTree {
    /// Sets the text of `/zookeeper/config` without a transaction: every member derives it from
    /// the same configuration.
    public mutating func setConfigData(_ data: [UInt8]) {
        let delta = modify(Paths.config) { node -> Int in
            let delta = data.count - node.dataLength
            node.data = data
            return delta
        }
        dataBytes += delta ?? 0
    }

    mutating func restoreIndexes(
        dataBytes: Int, ephemerals: TreeDictionary<Int64, TreeSet<String>>, containers: TreeSet<String>, ttlNodes: TreeSet<String>
    ) {
        self.dataBytes = dataBytes
        self.ephemerals = ephemerals
        self.containers = containers
        self.ttlNodes = ttlNodes
    }

    mutating func restoreSession(_ id: Int64, timeoutMs: Int64) { sessions[id] = timeoutMs }

    /// Moves the tree's zxid forward without a transaction (after installing a snapshot).
    public mutating func setLastZxid(_ zxid: Zxid) { lastZxid = zxid }
}
