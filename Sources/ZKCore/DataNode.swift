import HashTreeCollections
import ZKProtocol

/// The fixed-size part of a znode. It lives in the same allocation as the node's data bytes,
/// which follow it (see `NodeStorage`).
struct NodeHeader {
    var czxid: Int64
    var mzxid: Int64
    var ctime: Int64
    var mtime: Int64
    var pzxid: Int64
    var acl: [ACL]
    /// The children by name, in a box of their own that only nodes with children have: a leaf
    /// (most nodes) saves the map's 24 bytes, which keeps a node of 100 bytes of data within a
    /// smaller allocation size.
    private var childBox: ChildBox?
    var version: Int32
    var aversion: Int32
    var childCreates: Int32
    /// Number of data bytes after the header; -1 for null data.
    var dataCount: Int32
    var kind: NodeKind

    init(
        czxid: Int64, mzxid: Int64, ctime: Int64, mtime: Int64, pzxid: Int64, acl: [ACL], children: ChildMap, version: Int32,
        aversion: Int32, childCreates: Int32, dataCount: Int32, kind: NodeKind
    ) {
        self.czxid = czxid
        self.mzxid = mzxid
        self.ctime = ctime
        self.mtime = mtime
        self.pzxid = pzxid
        self.acl = acl
        self.childBox = children.isEmpty ? nil : ChildBox(children)
        self.version = version
        self.aversion = aversion
        self.childCreates = childCreates
        self.dataCount = dataCount
        self.kind = kind
    }

    var children: ChildMap {
        get { childBox?.map ?? [:] }
        _modify {
            if childBox == nil {
                childBox = ChildBox([:])
            } else if !isKnownUniquelyReferenced(&childBox!) {
                childBox = ChildBox(childBox!.map)
            }
            yield &childBox!.map
            if childBox!.map.isEmpty { childBox = nil }
        }
        set { childBox = newValue.isEmpty ? nil : ChildBox(newValue) }
    }

    var hasChildren: Bool { childBox != nil }
}

/// A node's child map, shared between copies of the node's storage until one of them changes it.
final class ChildBox {
    var map: ChildMap
    init(_ map: ChildMap) { self.map = map }
}

/// One allocation per znode: its header, then its data bytes. A storage is shared between the
/// versions of the tree that hold the node, and changed in place only while one holds it.
final class NodeStorage: ManagedBuffer<NodeHeader, UInt8> {
    static func make(_ header: NodeHeader, data: UnsafeRawBufferPointer?) -> NodeStorage {
        var header = header
        let count = data?.count ?? 0
        header.dataCount = data == nil ? -1 : Int32(count)
        let storage = unsafeDowncast(NodeStorage.create(minimumCapacity: count) { _ in header }, to: NodeStorage.self)
        if let data, count > 0 {
            storage.withUnsafeMutablePointerToElements {
                UnsafeMutableRawPointer($0).copyMemory(from: data.baseAddress!, byteCount: count)
            }
        }
        return storage
    }

    func withData<R>(_ body: (UnsafeRawBufferPointer?) throws -> R) rethrows -> R {
        let count = Int(header.dataCount)
        if count < 0 { return try body(nil) }
        return try withUnsafeMutablePointerToElements { try body(UnsafeRawBufferPointer(start: $0, count: count)) }
    }

    func copy() -> NodeStorage { withData { NodeStorage.make(header, data: $0) } }
}

/// One znode: its Stat fields, ACL, data and children.
///
/// A value: copies share one allocation until one of them changes. `childCreates` is
/// ZooKeeper's internal cversion: the number of children ever created under the node. It names
/// sequential children and decides whether a container was ever used. The cversion clients see
/// is `2 * childCreates - numChildren` (creates plus deletes), exactly as ZooKeeper reports it; so
/// a fresh `/` shows cversion -1 and `/zookeeper` shows -2.
///
/// Sendable although its storage class is not: a storage is changed only through a value that
/// holds the one reference to it, so a storage reachable from two threads is never written.
public struct DataNode: @unchecked Sendable {
    var storage: NodeStorage

    public init(
        data: [UInt8]?, acl: [ACL], czxid: Int64, mzxid: Int64, ctime: Int64, mtime: Int64, version: Int32,
        aversion: Int32, childCreates: Int32, pzxid: Int64, kind: NodeKind
    ) {
        self = data.withUnsafeOptionalBytes {
            DataNode(
                copying: $0, acl: acl, czxid: czxid, mzxid: mzxid, ctime: ctime, mtime: mtime, version: version,
                aversion: aversion, childCreates: childCreates, pzxid: pzxid, kind: kind)
        }
    }

    /// A node whose data is copied from `data` (nil: null data), with no children.
    public init(
        copying data: UnsafeRawBufferPointer?, acl: [ACL], czxid: Int64, mzxid: Int64, ctime: Int64, mtime: Int64,
        version: Int32, aversion: Int32, childCreates: Int32, pzxid: Int64, kind: NodeKind
    ) {
        let header = NodeHeader(
            czxid: czxid, mzxid: mzxid, ctime: ctime, mtime: mtime, pzxid: pzxid, acl: acl, children: [:],
            version: version, aversion: aversion, childCreates: childCreates, dataCount: -1, kind: kind)
        storage = NodeStorage.make(header, data: data)
    }

    /// Makes the storage this value's own before a change.
    private mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
    }

    /// Changes header fields in place (after copying a shared storage).
    mutating func update<R>(_ body: (inout NodeHeader) -> R) -> R {
        makeUnique()
        return body(&storage.header)
    }

    public var data: [UInt8]? {
        get { storage.withData { $0.map { Array($0) } } }
        set {
            let header = storage.header
            storage = newValue.withUnsafeOptionalBytes { NodeStorage.make(header, data: $0) }
        }
    }

    /// Calls `body` with the data bytes in place (nil for null data), without copying them.
    public func withData<R>(_ body: (UnsafeRawBufferPointer?) throws -> R) rethrows -> R {
        try storage.withData(body)
    }

    public var dataLength: Int { max(0, Int(storage.header.dataCount)) }
    public var hasData: Bool { storage.header.dataCount >= 0 }

    public var acl: [ACL] {
        get { storage.header.acl }
        set { update { $0.acl = newValue } }
    }
    public var czxid: Int64 { storage.header.czxid }
    public var mzxid: Int64 {
        get { storage.header.mzxid }
        set { update { $0.mzxid = newValue } }
    }
    public var ctime: Int64 { storage.header.ctime }
    public var mtime: Int64 {
        get { storage.header.mtime }
        set { update { $0.mtime = newValue } }
    }
    public var version: Int32 {
        get { storage.header.version }
        set { update { $0.version = newValue } }
    }
    public var aversion: Int32 {
        get { storage.header.aversion }
        set { update { $0.aversion = newValue } }
    }
    public var childCreates: Int32 { storage.header.childCreates }
    public var pzxid: Int64 { storage.header.pzxid }
    public var kind: NodeKind { storage.header.kind }

    /// The names of the children, in no particular order.
    public var children: NodeChildren { NodeChildren(map: storage.header.children) }

    var childMap: ChildMap { storage.header.children }

    public var stat: Stat {
        let header = storage.header
        let count = Int32(header.children.count)
        return Stat(
            czxid: header.czxid, mzxid: header.mzxid, ctime: header.ctime, mtime: header.mtime, version: header.version,
            cversion: header.childCreates &* 2 &- count, aversion: header.aversion,
            ephemeralOwner: header.kind.visibleEphemeralOwner, dataLength: max(0, header.dataCount),
            numChildren: count, pzxid: header.pzxid)
    }

    /// The same node without its children (how snapshots store nodes).
    public var withoutChildren: DataNode {
        guard storage.header.hasChildren else { return self }
        var copy = self
        copy.update { $0.children = [:] }
        return copy
    }

    static func system(acl: [ACL], aversion: Int32 = 0) -> DataNode {
        DataNode(
            data: [], acl: acl, czxid: 0, mzxid: 0, ctime: 0, mtime: 0, version: 0, aversion: aversion,
            childCreates: 0, pzxid: 0, kind: .persistent)
    }
}

extension DataNode: Equatable {
    /// Equal Stat fields, kind, ACL, data and children (compared recursively).
    public static func == (lhs: DataNode, rhs: DataNode) -> Bool {
        if lhs.storage === rhs.storage { return true }
        let a = lhs.storage.header
        let b = rhs.storage.header
        guard a.czxid == b.czxid, a.mzxid == b.mzxid, a.ctime == b.ctime, a.mtime == b.mtime, a.pzxid == b.pzxid,
            a.version == b.version, a.aversion == b.aversion, a.childCreates == b.childCreates,
            a.dataCount == b.dataCount, a.kind == b.kind, a.acl == b.acl
        else { return false }
        let sameData = lhs.withData { x in rhs.withData { y in x.map { Array($0) } == y.map { Array($0) } } }
        return sameData && a.children == b.children
    }
}

/// The names of a node's children: a view of the node, not a copy.
public struct NodeChildren: Sequence, Sendable {
    let map: ChildMap

    public var count: Int { map.count }
    public var isEmpty: Bool { map.isEmpty }

    public struct Iterator: IteratorProtocol {
        var keys: ChildMap.Keys.Iterator
        public mutating func next() -> String? { keys.next()?.string }
    }

    public func makeIterator() -> Iterator { Iterator(keys: map.keys.makeIterator()) }
}

typealias ChildMap = TreeDictionary<NodeName, DataNode>

/// A child's name as the key of its parent's map.
///
/// Hashed the same way in every process (64-bit FNV-1a over the UTF-8 bytes, then a finalizer
/// that spreads every byte over the low bits the hash trie reads first), not with the standard
/// library's per-process random seed. So a map's layout, and the order in which a snapshot
/// lists the children, follow from the names alone, and a restart inserts the children of a
/// snapshot in the order of the trie it builds, touching memory in sequence.
struct NodeName: Hashable, Sendable, ExpressibleByStringLiteral {
    let string: String

    init(_ string: String) { self.string = string }
    init(stringLiteral value: String) { string = value }

    static func == (lhs: NodeName, rhs: NodeName) -> Bool { lhs.string == rhs.string }

    func hash(into hasher: inout Hasher) { hasher.combine(stableHash) }

    func _rawHashValue(seed: Int) -> Int { Int(bitPattern: UInt(truncatingIfNeeded: stableHash)) }

    var stableHash: UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        var copy = string
        copy.withUTF8 { bytes in
            for byte in bytes {
                hash ^= UInt64(byte)
                hash = hash &* 0x100_0000_01B3
            }
        }
        hash ^= hash >> 33
        hash = hash &* 0xFF51_AFD7_ED55_8CCD
        hash ^= hash >> 33
        hash = hash &* 0xC4CE_B9FE_1A85_EC53
        hash ^= hash >> 33
        return hash
    }
}
