import HashTreeCollections
import ZKProtocol

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Builds a tree from the nodes of a snapshot, one node at a time.
///
/// Nodes come without their children (those follow from the paths). In a pre-order (every node
/// after its parent and before anything outside its own subtree, which is how MiniZK writes
/// snapshots) each node is placed once and each child map is built by insertions into a map no
/// one else holds. Nodes in any other order are collected and sorted into a pre-order first.
///
/// The work is split in two so that a decoder on one thread can do the first half while the
/// builder does the second on another: `EntryMaker` turns each path into its name and its depth
/// in the pre-order (checking that the path continues one), and the builder only places entries
/// by depth, never reading a path.
public struct DataTreeBuilder {
    /// One node, ready to be placed.
    public struct Entry: @unchecked Sendable {
        /// Only where the builder needs it: for ephemerals, containers, TTL nodes and nodes
        /// out of pre-order. (A path left out is one string fewer to hand between threads.)
        var path: String?
        let name: NodeName
        var node: DataNode?
        let dataLength: Int
        let kind: NodeKind
        /// Components in the path (0 for the root); -1 when the node does not continue the
        /// pre-order of the entries made before it.
        let depth: Int
    }

    /// Makes entries, following the pre-order the paths come in.
    public struct EntryMaker {
        /// The paths from the root down to the last node.
        private var openPaths: [String] = []
        private var ordered = true

        public init() {}

        public mutating func entry(path: String, node: DataNode) -> Entry {
            let name = Paths.name(of: path)
            let depth = depth(of: path)
            let kind = node.kind
            return Entry(
                path: depth < 0 || kind != .persistent ? path : nil, name: NodeName(name), node: node.withoutChildren,
                dataLength: node.dataLength, kind: kind, depth: depth)
        }

        private mutating func depth(of path: String) -> Int {
            guard ordered else { return -1 }
            if openPaths.isEmpty {
                guard path == Paths.root else { return brokenOrder() }
                openPaths.append(path)
                return 0
            }
            while !DataTreeBuilder.isChild(path, of: openPaths[openPaths.count - 1]) {
                guard openPaths.count > 1 else { return brokenOrder() }
                openPaths.removeLast()
            }
            openPaths.append(path)
            return openPaths.count - 1
        }

        private mutating func brokenOrder() -> Int {
            ordered = false
            openPaths = []
            return -1
        }
    }

    /// A node whose subtree is not finished; its finished children are in its map already.
    private struct OpenNode {
        var name: NodeName
        var node: DataNode
    }

    /// The nodes from the root down to the last one added.
    private var open: [OpenNode] = []
    private var maker = EntryMaker()
    /// Set once the input left pre-order: every node so far, without children, to sort at the end.
    private var unordered: [(path: String, node: DataNode)]?
    private var added = 0
    private var broken = false
    private var dataBytes = 0
    private var ephemerals: TreeDictionary<Int64, TreeSet<String>> = [:]
    private var containers: TreeSet<String> = []
    private var ttlNodes: TreeSet<String> = []

    public init() {}

    /// Adds one node (its children, if any, are ignored).
    public mutating func add(path: String, node: DataNode) {
        var entry = maker.entry(path: path, node: node)
        add(&entry)
    }

    /// Adds an entry made by an `EntryMaker` that saw every node before it, taking its node.
    /// Entries from `add(path:node:)` and from an outside maker do not mix.
    public mutating func add(_ entry: inout Entry) {
        guard !broken, let node = entry.node.take() else { return }
        added += 1
        dataBytes += entry.dataLength
        switch entry.kind {
        case .ephemeral(let owner): ephemerals[owner, default: []].insert(entry.path!)
        case .container: containers.insert(entry.path!)
        case .ttl: ttlNodes.insert(entry.path!)
        case .persistent: break
        }
        if unordered == nil && entry.depth >= 0 {
            while open.count > entry.depth { closeLast() }
            if open.count == entry.depth {
                open.append(OpenNode(name: entry.name, node: node))
                return
            }
        }
        if unordered == nil { leavePreorder() }
        // The maker kept the path of every entry that is not placed by its depth.
        guard let path = entry.path else { preconditionFailure("an entry at depth \(entry.depth) does not fit the builder's \(open.count) open nodes") }
        unordered!.append((path, node))
    }

    /// Moves the last open node, finished, into its parent's map.
    ///
    /// The parent's map belongs to the builder alone, so the insertion happens in place; and
    /// as a snapshot lists siblings in the order of the trie their map builds (names hash the
    /// same way in every process), consecutive insertions walk trie nodes that are still in the
    /// cache. A name seen twice breaks the tree.
    private mutating func closeLast() {
        let last = open.removeLast()
        let inserted = open[open.count - 1].node.update { header in
            header.children.updateValue(last.node, forKey: last.name) == nil
        }
        if !inserted { broken = true }
    }

    /// Whether `path` is a direct child of `parent`: `parent/name` with no further `/`.
    static func isChild(_ path: String, of parent: String) -> Bool {
        var path = path
        var parent = parent
        return path.withUTF8 { p in
            parent.withUTF8 { q in
                let prefixCount = q.count == 1 ? 0 : q.count
                guard p.count > prefixCount + 1, p[prefixCount] == Paths.slash else { return false }
                if prefixCount > 0 && memcmp(p.baseAddress!, q.baseAddress!, prefixCount) != 0 { return false }
                return !p[(prefixCount + 1)...].contains(Paths.slash)
            }
        }
    }

    /// Switches to collecting: takes apart what was built so far.
    private mutating func leavePreorder() {
        var collected: [(path: String, node: DataNode)] = []
        defer { unordered = collected }
        guard !open.isEmpty else { return }
        while open.count > 1 { closeLast() }
        let root = open[0].node
        open = []
        DataTree(root: root, nodeCount: 0).forEachNode { collected.append(($0, $1.withoutChildren)) }
    }

    /// The tree, or nil when the nodes do not form one (no root, a path twice, a node whose
    /// parent is missing).
    public mutating func finish(sessions: [(id: Int64, timeoutMs: Int64)], lastZxid: Zxid) -> DataTree? {
        if var nodes = unordered {
            unordered = nil
            nodes.sort { Self.preorderPrecedes($0.path, $1.path) }
            var maker = EntryMaker()
            for (path, node) in nodes {
                let entry = maker.entry(path: path, node: node)
                guard entry.depth >= 0 else { return nil }
                while open.count > entry.depth { closeLast() }
                guard open.count == entry.depth else { return nil }
                open.append(OpenNode(name: entry.name, node: node))
            }
        }
        guard !broken, !open.isEmpty else { return nil }
        while open.count > 1 { closeLast() }
        let root = open[0].node
        open = []
        guard !broken else { return nil }
        var tree = DataTree(root: root, nodeCount: added)
        tree.restoreIndexes(dataBytes: dataBytes, ephemerals: ephemerals, containers: containers, ttlNodes: ttlNodes)
        for (id, timeoutMs) in sessions { tree.restoreSession(id, timeoutMs: timeoutMs) }
        tree.setLastZxid(lastZxid)
        return tree
    }

    /// Path order in which every node comes after its parent and before anything outside its
    /// subtree: byte order with `/` ranked below every other byte.
    static func preorderPrecedes(_ a: String, _ b: String) -> Bool {
        var x = a.utf8.makeIterator()
        var y = b.utf8.makeIterator()
        while true {
            switch (x.next(), y.next()) {
            case (nil, nil): return false
            case (nil, _): return true
            case (_, nil): return false
            case let (p?, q?):
                if p == q { continue }
                if p == Paths.slash { return true }
                if q == Paths.slash { return false }
                return p < q
            }
        }
    }
}

extension DataTree {
    /// Rebuilds a tree from a snapshot's nodes (children left out; any order), its live
    /// sessions and the zxid it was taken at. Nil when the nodes do not form a tree.
    public init?(restoring nodes: [(path: String, node: DataNode)], sessions: [(id: Int64, timeoutMs: Int64)], lastZxid: Zxid) {
        var builder = DataTreeBuilder()
        for (path, node) in nodes { builder.add(path: path, node: node) }
        guard let tree = builder.finish(sessions: sessions, lastZxid: lastZxid) else { return nil }
        self = tree
    }
}
