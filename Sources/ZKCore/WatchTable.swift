import ZKProtocol

/// The watches of one replica's connections.
///
/// As in ZooKeeper, watches belong to a connection, not to a session, and live in two tables keyed
/// by path: the data table (getData and exists watches) and the child table (getChildren
/// watches); `addWatch` registers a persistent or persistent-recursive watch in both, as
/// ZooKeeper 3.8 does, so that removeWatches and checkWatches of type Data or Children find it
/// and remove that table's half. A connection has at most one entry per (table, path), holding
/// the set of modes it registered. One-shot entries go when they fire; persistent ones stay
/// until removed or until the connection goes.
///
/// Which events fire follows ZooKeeper: a node's own events go to the data table entries on its
/// path and to recursive data entries on any ancestor; NodeDeleted also goes to the child table
/// entries on the path and recursive child entries on any ancestor (once per connection);
/// NodeChildrenChanged goes only to the non-recursive child table entries on the parent.
/// Recursive watches never see NodeChildrenChanged.
///
/// One deliberate difference from ZooKeeper 3.8: there a connection's later registration on a
/// (table, path) replaces the mode of its earlier one, so a one-shot getData watch turns a
/// persistent watch on the same path into a one-shot one (ZOOKEEPER-4466, fixed in 3.9). Here
/// the modes add up, as in 3.9: the persistent watch stays.
public struct WatchTable: Sendable {
    public struct Modes: OptionSet, Sendable, Hashable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        public static let standard = Modes(rawValue: 1)
        public static let persistent = Modes(rawValue: 2)
        public static let recursive = Modes(rawValue: 4)
        public static let all: Modes = [.standard, .persistent, .recursive]
    }

    private var data: [String: [ConnectionID: Modes]] = [:]
    private var child: [String: [ConnectionID: Modes]] = [:]
    /// For each connection, the paths it has an entry on and in which tables: closing a
    /// connection looks up each path only in the tables that hold its entry.
    private var pathsByConnection: [ConnectionID: [String: Tables]] = [:]
    private var recursiveEntries = 0
    /// Kept as entries come and go, so that `count` and `watchedPaths` (asked by every `mntr`,
    /// metrics scrape and console sample) cost nothing however many watches there are.
    private var entryCount = 0
    private var watchedPathCount = 0
    private var entriesByConnection: [ConnectionID: Int] = [:]

    public init() {}

    public mutating func addDataWatch(_ path: String, connection: ConnectionID, mode: Modes = .standard) {
        add(.data, path, connection, mode)
    }

    public mutating func addChildWatch(_ path: String, connection: ConnectionID, mode: Modes = .standard) {
        add(.child, path, connection, mode)
    }

    /// `addWatch`: a persistent or persistent-recursive watch, registered in both tables.
    public mutating func addPersistentWatch(_ path: String, connection: ConnectionID, recursive: Bool) {
        let mode: Modes = recursive ? .recursive : .persistent
        add(.data, path, connection, mode)
        add(.child, path, connection, mode)
    }

    private mutating func add(_ table: Table, _ path: String, _ connection: ConnectionID, _ mode: Modes) {
        // In place: a path many connections watch must not have its entries copied per watch.
        // Entries are never left empty, so empty ones were just made for this watch.
        var isNewPathInTable = false
        func merge(_ entries: inout [ConnectionID: Modes]) -> Modes {
            isNewPathInTable = entries.isEmpty
            let before = entries[connection] ?? []
            entries[connection] = before.union(mode)
            return before
        }
        let before = table == .data ? merge(&data[path, default: [:]]) : merge(&child[path, default: [:]])
        if isNewPathInTable && (table == .data ? child[path] : data[path]) == nil { watchedPathCount += 1 }
        guard before.isEmpty else {
            if mode.contains(.recursive) && !before.contains(.recursive) { recursiveEntries += 1 }
            return
        }
        entryCount += 1
        entriesByConnection[connection, default: 0] += 1
        if mode.contains(.recursive) { recursiveEntries += 1 }
        pathsByConnection[connection, default: [:]][path, default: []].insert(table.bit)
    }

    /// The connections to notify of `trigger`, in a stable order, consuming one-shot entries.
    public mutating func fire(_ trigger: WatchTrigger) -> [ConnectionID] {
        var notified: [ConnectionID] = []
        var seen: Set<ConnectionID> = []
        func note(_ connection: ConnectionID) {
            if seen.insert(connection).inserted { notified.append(connection) }
        }
        func recursiveOnAncestors(_ table: [String: [ConnectionID: Modes]]) {
            guard recursiveEntries > 0 else { return }
            for ancestor in Paths.ancestors(of: trigger.path) {
                guard let entries = table[ancestor] else { continue }
                for (connection, modes) in entries.sorted(by: { $0.key < $1.key }) where modes.contains(.recursive) {
                    note(connection)
                }
            }
        }
        switch trigger.type {
        case .nodeCreated, .nodeDataChanged, .nodeDeleted:
            for connection in consume(.data, trigger.path, firing: .all) { note(connection) }
            recursiveOnAncestors(data)
            if trigger.type == .nodeDeleted {
                for connection in consume(.child, trigger.path, firing: .all) { note(connection) }
                recursiveOnAncestors(child)
            }
        case .nodeChildrenChanged:
            for connection in consume(.child, trigger.path, firing: [.standard, .persistent]) { note(connection) }
        default:
            break
        }
        return notified
    }

    private enum Table {
        case data, child

        var bit: Tables { self == .data ? .data : .child }
    }

    /// Which tables hold a connection's entry on a path.
    struct Tables: OptionSet, Sendable, Equatable {
        let rawValue: UInt8
        static let data = Tables(rawValue: 1)
        static let child = Tables(rawValue: 2)
    }

    /// Every connection with an entry on `path` in `table` holding one of the `firing` modes,
    /// dropping their one-shot modes.
    private mutating func consume(_ table: Table, _ path: String, firing: Modes) -> [ConnectionID] {
        guard var entries = (table == .data ? data[path] : child[path]) else { return [] }
        let connections = entries.keys.sorted().filter { !entries[$0]!.isDisjoint(with: firing) }
        var emptied: [ConnectionID] = []
        for connection in connections {
            entries[connection]!.remove(.standard)
            if entries[connection]!.isEmpty {
                entries[connection] = nil
                emptied.append(connection)
            }
        }
        let remaining = entries.isEmpty ? nil : entries
        if table == .data { data[path] = remaining } else { child[path] = remaining }
        entryCount -= emptied.count
        for connection in emptied { lostEntry(of: connection) }
        if remaining == nil, data[path] == nil, child[path] == nil { watchedPathCount -= 1 }
        for connection in emptied { forget(table, path, connection: connection) }
        return connections
    }

    /// The connection's entry on (`table`, `path`) is gone.
    private mutating func forget(_ table: Table, _ path: String, connection: ConnectionID) {
        guard let index = pathsByConnection.index(forKey: connection) else { return }
        let tables = pathsByConnection.values[index][path]?.subtracting(table.bit) ?? []
        pathsByConnection.values[index][path] = tables.isEmpty ? nil : tables
        if pathsByConnection.values[index].isEmpty { pathsByConnection.remove(at: index) }
    }

    /// Drops every watch of a connection: one lookup of each path in each table it has an entry in.
    public mutating func removeConnection(_ connection: ConnectionID) {
        removeConnections([connection])
    }

    /// Drops every watch of several connections, path by path: each path's entries are visited
    /// once for all of them. (Connection by connection, each drop lands in another path's entries,
    /// which are rarely in the cache when many connections watch many paths: 1,000 sessions
    /// holding 1,000 watches each, closed together, took a third of a second that way.)
    public mutating func removeConnections(_ connections: [ConnectionID]) {
        var leavingByPath: [String: (data: [ConnectionID], child: [ConnectionID])] = [:]
        for connection in connections {
            guard let paths = pathsByConnection.removeValue(forKey: connection) else { continue }
            entriesByConnection[connection] = nil
            for (path, tables) in paths {
                if tables.contains(.data) { leavingByPath[path, default: ([], [])].data.append(connection) }
                if tables.contains(.child) { leavingByPath[path, default: ([], [])].child.append(connection) }
            }
        }
        for (path, leaving) in leavingByPath {
            if !leaving.data.isEmpty { dropAll(.data, path, leaving.data) }
            if !leaving.child.isEmpty { dropAll(.child, path, leaving.child) }
        }
    }

    /// Removes the entries of `leaving` (distinct connections, each with an entry there, their
    /// index entries already gone) on (`table`, `path`).
    private mutating func dropAll(_ table: Table, _ path: String, _ leaving: [ConnectionID]) {
        func dropIn(_ entries: inout [String: [ConnectionID: Modes]]) -> (removed: Int, recursive: Int, emptied: Bool) {
            guard let index = entries.index(forKey: path) else { return (0, 0, false) }
            var removed = 0
            var recursive = 0
            if leaving.count == entries.values[index].count {
                // Every connection with an entry here leaves.
                for modes in entries.values[index].values where modes.contains(.recursive) { recursive += 1 }
                removed = leaving.count
            } else {
                for connection in leaving {
                    guard let modes = entries.values[index].removeValue(forKey: connection) else { continue }
                    removed += 1
                    if modes.contains(.recursive) { recursive += 1 }
                }
                guard entries.values[index].isEmpty else { return (removed, recursive, false) }
            }
            entries.remove(at: index)
            return (removed, recursive, true)
        }
        let (removed, recursive, emptied) = table == .data ? dropIn(&data) : dropIn(&child)
        entryCount -= removed
        recursiveEntries -= recursive
        if emptied, (table == .data ? child[path] : data[path]) == nil { watchedPathCount -= 1 }
    }

    /// Removes the connection's entry on (`table`, `path`), keeping the counts; false when there
    /// was none.
    private mutating func drop(_ table: Table, _ path: String, _ connection: ConnectionID) -> Bool {
        // One lookup of the path, the entries changed in place.
        func dropIn(_ entries: inout [String: [ConnectionID: Modes]]) -> (Modes?, emptied: Bool) {
            guard let index = entries.index(forKey: path) else { return (nil, false) }
            let removed = entries.values[index].removeValue(forKey: connection)
            guard entries.values[index].isEmpty else { return (removed, false) }
            entries.remove(at: index)
            return (removed, true)
        }
        let (removed, emptied) = table == .data ? dropIn(&data) : dropIn(&child)
        guard let removed else { return false }
        entryCount -= 1
        lostEntry(of: connection)
        if emptied, (table == .data ? child[path] : data[path]) == nil { watchedPathCount -= 1 }
        if removed.contains(.recursive) { recursiveEntries -= 1 }
        return true
    }

    private mutating func lostEntry(of connection: ConnectionID) {
        guard let count = entriesByConnection[connection] else { return }
        entriesByConnection[connection] = count > 1 ? count - 1 : nil
    }

    /// Whether the connection has an entry of `type` on `path` (1 children, 2 data, 3 any).
    public func has(_ path: String, connection: ConnectionID?, type: WatcherType) -> Bool {
        func inTable(_ table: [String: [ConnectionID: Modes]]) -> Bool {
            guard let entries = table[path] else { return false }
            if let connection { return entries[connection] != nil }
            return !entries.isEmpty
        }
        switch type {
        case .children: return inTable(child)
        case .data: return inTable(data)
        case .any: return inTable(child) || inTable(data)
        case .persistent, .persistentRecursive: return false
        }
    }

    /// checkWatches as ZooKeeper 3.8 answers it: whether any connection (ZooKeeper does not look
    /// at which) has an entry of `type` on `path`, or nil where ZooKeeper fails with
    /// MARSHALLINGERROR. It computes each parent as it walks up from the path (only the first
    /// while no recursive watch exists, and not past an entry on the path itself), and a step
    /// from a path without a slash throws.
    public func check(_ path: String, type: WatcherType) -> Bool? {
        func parentFails(_ path: Substring) -> Bool { path != "/" && !path.contains("/") }
        func inTable(_ table: [String: [ConnectionID: Modes]]) -> Bool? {
            if path.isEmpty { return false }
            if parentFails(path[...]) { return nil }
            if table[path]?.isEmpty == false { return true }
            guard recursiveEntries > 0 else { return false }
            var current = path[...]
            while current != "/" {
                let slash = current.lastIndex(of: "/")!
                current = slash == current.startIndex ? "/" : current[..<slash]
                if parentFails(current) { return nil }
            }
            return false
        }
        switch type {
        case .children: return inTable(child)
        case .data: return inTable(data)
        case .any:
            guard let children = inTable(child), let data = inTable(data) else { return nil }
            return children || data
        case .persistent, .persistentRecursive: return false
        }
    }

    /// Removes the connection's entries of `type` on `path`; false when there were none.
    public mutating func remove(_ path: String, connection: ConnectionID, type: WatcherType) -> Bool {
        guard has(path, connection: connection, type: type) else { return false }
        if type == .data || type == .any, drop(.data, path, connection) { forget(.data, path, connection: connection) }
        if type == .children || type == .any, drop(.child, path, connection) { forget(.child, path, connection: connection) }
        return true
    }

    /// Total number of (connection, path, table) entries.
    public var count: Int { entryCount }

    /// Paths with an entry in either table.
    public var watchedPaths: Int { watchedPathCount }

    /// Connections with at least one entry.
    public var watchingConnections: Int { pathsByConnection.count }

    /// `count`, `watchedPaths` and `watchingConnections` counted afresh from the tables (tests).
    var recounted: (entries: Int, paths: Int, connections: Int, byConnection: [ConnectionID: Int]) {
        var byConnection: [ConnectionID: Int] = [:]
        for table in [data, child] {
            for entries in table.values { for connection in entries.keys { byConnection[connection, default: 0] += 1 } }
        }
        return (data.values.reduce(0) { $0 + $1.count } + child.values.reduce(0) { $0 + $1.count },
                Set(data.keys).union(child.keys).count,
                byConnection.count,
                byConnection)
    }

    /// Whether the per-connection index names exactly the (connection, path, table) entries the
    /// tables hold, and the recursive count is the number of recursive entries (tests).
    var indexMatchesTables: Bool {
        var fromTables: [ConnectionID: [String: Tables]] = [:]
        var recursive = 0
        for (table, bit) in [(data, Tables.data), (child, Tables.child)] {
            for (path, entries) in table {
                for (connection, modes) in entries {
                    fromTables[connection, default: [:]][path, default: []].insert(bit)
                    if modes.contains(.recursive) { recursive += 1 }
                }
            }
        }
        return fromTables == pathsByConnection && recursive == recursiveEntries
    }

    public func paths(of connection: ConnectionID) -> [String] {
        (pathsByConnection[connection]?.keys).map { $0.sorted() } ?? []
    }

    /// Paths the connection watches (in either table).
    public func pathCount(of connection: ConnectionID) -> Int {
        pathsByConnection[connection]?.count ?? 0
    }

    /// Whether the connection watches `path` (in either table).
    public func watches(_ path: String, connection: ConnectionID) -> Bool {
        pathsByConnection[connection]?[path] != nil
    }

    /// The connection's entries (`cons` reports them for every connection).
    public func entries(of connection: ConnectionID) -> Int {
        entriesByConnection[connection] ?? 0
    }

    public var connectionsWatching: [ConnectionID: [String]] {
        pathsByConnection.mapValues { $0.keys.sorted() }
    }
}
