import HashTreeCollections
import ZKProtocol

/// One znode.
///
/// `childCreates` is ZooKeeper's internal cversion: the number of children ever created under
/// the node. It names sequential children and decides whether a container was ever used. The
/// cversion clients see is `2 * childCreates - numChildren` (creates plus deletes), exactly as
/// ZooKeeper reports it; so a fresh `/` shows cversion -1 and `/zookeeper` shows -2.
public struct DataNode: Sendable, Hashable {
    public var data: [UInt8]?
    public var acl: [ACL]
    public var czxid: Int64
    public var mzxid: Int64
    public var ctime: Int64
    public var mtime: Int64
    public var version: Int32
    public var aversion: Int32
    public var childCreates: Int32
    public var pzxid: Int64
    public var kind: NodeKind
    public var children: TreeSet<String>

    public init(
        data: [UInt8]?, acl: [ACL], czxid: Int64, mzxid: Int64, ctime: Int64, mtime: Int64, version: Int32,
        aversion: Int32, childCreates: Int32, pzxid: Int64, kind: NodeKind, children: TreeSet<String>
    ) {
        self.data = data
        self.acl = acl
        self.czxid = czxid
        self.mzxid = mzxid
        self.ctime = ctime
        self.mtime = mtime
        self.version = version
        self.aversion = aversion
        self.childCreates = childCreates
        self.pzxid = pzxid
        self.kind = kind
        self.children = children
    }

    public var stat: Stat {
        Stat(
            czxid: czxid, mzxid: mzxid, ctime: ctime, mtime: mtime, version: version,
            cversion: childCreates &* 2 &- Int32(children.count), aversion: aversion,
            ephemeralOwner: kind.visibleEphemeralOwner, dataLength: Int32(data?.count ?? 0),
            numChildren: Int32(children.count), pzxid: pzxid)
    }

    static func system(acl: [ACL], children: [String], aversion: Int32 = 0) -> DataNode {
        DataNode(
            data: [], acl: acl, czxid: 0, mzxid: 0, ctime: 0, mtime: 0, version: 0, aversion: aversion,
            childCreates: 0, pzxid: 0, kind: .persistent, children: TreeSet(children))
    }
}

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
}

/// The replicated state of a replica: the znode tree and the table of live sessions.
///
/// A value type on persistent (structurally shared) maps, so `let copy = tree` is an exact,
/// cheap point-in-time copy. The replica keeps two: the committed tree that reads see and the
/// prepared tree (committed plus outstanding transactions) that new writes are checked against.
/// `apply` is deterministic and never fails for a transaction that was prepared against the same
/// state; a transaction that does not fit is a broken invariant and stops the replica.
public struct DataTree: Sendable {
    public private(set) var nodes: TreeDictionary<String, DataNode>
    /// Live sessions and their negotiated timeouts.
    public private(set) var sessions: TreeDictionary<Int64, Int64> = [:]
    /// Ephemeral paths per owning session.
    public private(set) var ephemerals: TreeDictionary<Int64, TreeSet<String>> = [:]
    /// Containers and TTL nodes, checked periodically for removal.
    public private(set) var containers: TreeSet<String> = []
    public private(set) var ttlNodes: TreeSet<String> = []
    public private(set) var lastZxid: Zxid = 0
    public private(set) var dataBytes: Int = 0

    public init() {
        nodes = [:]
        nodes[Paths.root] = .system(acl: ACL.openUnsafe, children: ["zookeeper"])
        nodes[Paths.zookeeper] = .system(acl: ACL.openUnsafe, children: ["quota", "config"])
        nodes[Paths.quota] = .system(acl: ACL.openUnsafe, children: [])
        nodes[Paths.config] = .system(acl: ACL.readUnsafe, children: [], aversion: -1)
    }

    /// Looks a path up the way ZooKeeper does: the empty string is the root.
    public func node(_ path: String) -> DataNode? {
        nodes[path.isEmpty ? Paths.root : path]
    }

    public var nodeCount: Int { nodes.count }

    public var ephemeralCount: Int { ephemerals.values.reduce(0) { $0 + $1.count } }

    public func ephemerals(of session: Int64) -> TreeSet<String> { ephemerals[session] ?? [] }

    /// Number of descendants of `path` (not counting itself).
    public func descendantCount(_ path: String) -> Int {
        guard let node = node(path) else { return 0 }
        let base = path.isEmpty ? Paths.root : path
        var count = 0
        for name in node.children {
            count += 1 + descendantCount(Paths.child(name, of: base))
        }
        return count
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
            guard var node = nodes[path] else { preconditionFailure("setData of missing \(path) at zxid \(zxid)") }
            dataBytes += (data?.count ?? 0) - (node.data?.count ?? 0)
            node.data = data
            node.version = version
            node.mzxid = zxid
            node.mtime = timeMs
            nodes[path] = node
            triggers.append(WatchTrigger(path: path, type: .nodeDataChanged))
            return .dataSet(stat: node.stat)
        case .setACL(let path, let acl, let version):
            guard var node = nodes[path] else { preconditionFailure("setACL of missing \(path) at zxid \(zxid)") }
            node.acl = acl
            node.aversion = version
            nodes[path] = node
            return .aclSet(stat: node.stat)
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

    private mutating func createNode(
        _ path: String, data: [UInt8]?, acl: [ACL], kind: NodeKind, zxid: Zxid, timeMs: Int64, triggers: inout [WatchTrigger]
    ) -> Stat {
        guard let parentPath = Paths.parent(of: path), var parent = nodes[parentPath] else {
            preconditionFailure("create of \(path) without a parent at zxid \(zxid)")
        }
        precondition(nodes[path] == nil, "create of existing \(path) at zxid \(zxid)")
        parent.children.insert(Paths.name(of: path))
        parent.childCreates &+= 1
        parent.pzxid = zxid
        nodes[parentPath] = parent
        let node = DataNode(
            data: data, acl: acl, czxid: zxid, mzxid: zxid, ctime: timeMs, mtime: timeMs, version: 0, aversion: 0,
            childCreates: 0, pzxid: zxid, kind: kind, children: [])
        nodes[path] = node
        dataBytes += data?.count ?? 0
        switch kind {
        case .ephemeral(let owner): ephemerals[owner, default: []].insert(path)
        case .container: containers.insert(path)
        case .ttl: ttlNodes.insert(path)
        case .persistent: break
        }
        triggers.append(WatchTrigger(path: path, type: .nodeCreated))
        triggers.append(WatchTrigger(path: parentPath, type: .nodeChildrenChanged))
        return node.stat
    }

    private mutating func removeNode(_ path: String, zxid: Zxid, triggers: inout [WatchTrigger]) {
        guard let node = nodes[path], let parentPath = Paths.parent(of: path), var parent = nodes[parentPath] else {
            preconditionFailure("delete of missing \(path) at zxid \(zxid)")
        }
        precondition(node.children.isEmpty, "delete of \(path) with children at zxid \(zxid)")
        nodes[path] = nil
        parent.children.remove(Paths.name(of: path))
        parent.pzxid = zxid
        nodes[parentPath] = parent
        dataBytes -= node.data?.count ?? 0
        switch node.kind {
        case .ephemeral(let owner):
            ephemerals[owner]?.remove(path)
            if ephemerals[owner]?.isEmpty == true { ephemerals[owner] = nil }
        case .container: containers.remove(path)
        case .ttl: ttlNodes.remove(path)
        case .persistent: break
        }
        triggers.append(WatchTrigger(path: path, type: .nodeDeleted))
        triggers.append(WatchTrigger(path: parentPath, type: .nodeChildrenChanged))
    }
}

extension DataTree {
    /// Rebuilds a tree from a snapshot: nodes in any order with their children left out (they are
    /// derived from the paths), the live sessions and the zxid the snapshot was taken at. Returns
    /// nil when the nodes do not form a tree (a node without its parent).
    public init?(restoring nodes: [(path: String, node: DataNode)], sessions: [(id: Int64, timeoutMs: Int64)], lastZxid: Zxid) {
        self.init()
        // Children are grouped per parent first and each child set is built once: inserting them
        // one by one into sets held inside the map copied a path of the set for every child.
        var childNames: [String: [String]] = [:]
        var hasRoot = false
        for (path, node) in nodes {
            if path == Paths.root {
                hasRoot = true
                continue
            }
            guard let parent = Paths.parent(of: path) else { return nil }
            childNames[parent, default: []].append(Paths.name(of: path))
            dataBytes += node.data?.count ?? 0
            switch node.kind {
            case .ephemeral(let owner): ephemerals[owner, default: []].insert(path)
            case .container: containers.insert(path)
            case .ttl: ttlNodes.insert(path)
            case .persistent: break
            }
        }
        guard hasRoot else { return nil }
        var map = TreeDictionary<String, DataNode>()
        for (path, node) in nodes {
            var node = node
            if let names = childNames[path] { node.children = TreeSet(names) } else { node.children = [] }
            map[path] = node
        }
        // A repeated path, or a child whose parent is missing, is not a tree.
        guard map.count == nodes.count else { return nil }
        for parent in childNames.keys where map[parent] == nil { return nil }
        self.nodes = map
        for (id, timeoutMs) in sessions { self.sessions[id] = timeoutMs }
        self.lastZxid = lastZxid
    }

    /// Moves the tree's zxid forward without a transaction (after installing a snapshot).
    public mutating func setLastZxid(_ zxid: Zxid) { lastZxid = zxid }
}

extension DataTree {
    /// A digest of every node's path, data, ACL and Stat, independent of insertion order; equal on
    /// replicas whose trees are equal.
    public var digest: UInt64 {
        var total: UInt64 = 0
        for (path, node) in nodes {
            var hash = FNV1a()
            hash.add(path.utf8)
            hash.add(node.data ?? [])
            hash.add(node.data == nil ? 0 : 1)
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
        guard var node = nodes[Paths.config] else { return }
        dataBytes += data.count - (node.data?.count ?? 0)
        node.data = data
        nodes[Paths.config] = node
    }
}
