import ZKProtocol

/// The watches of one replica's connections.
///
/// As in ZooKeeper, watches belong to a connection, not to a session, and live in two tables keyed
/// by path: the data table (getData and exists watches, persistent and persistent-recursive
/// watches) and the child table (getChildren watches and persistent watches). A connection has at
/// most one entry per (table, path), holding the set of modes it registered. One-shot entries go
/// when they fire; persistent ones stay until removed or until the connection goes.
///
/// Which events fire follows ZooKeeper: a node's own events go to the data table entries on its
/// path and to recursive entries on the path or any ancestor; NodeDeleted also goes to the child
/// table entries on the path (once per connection); NodeChildrenChanged goes only to child table
/// entries on the parent. Recursive watches never see NodeChildrenChanged.
public struct WatchTable: Sendable {
    public struct Modes: OptionSet, Sendable, Hashable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        public static let standard = Modes(rawValue: 1)
        public static let persistent = Modes(rawValue: 2)
        public static let recursive = Modes(rawValue: 4)
    }

    private var data: [String: [ConnectionID: Modes]] = [:]
    private var child: [String: [ConnectionID: Modes]] = [:]
    private var pathsByConnection: [ConnectionID: Set<String>] = [:]
    private var recursiveEntries = 0

    public init() {}

    public mutating func addDataWatch(_ path: String, connection: ConnectionID, mode: Modes = .standard) {
        if mode.contains(.recursive) && !(data[path]?[connection]?.contains(.recursive) ?? false) { recursiveEntries += 1 }
        data[path, default: [:]][connection, default: []].formUnion(mode)
        pathsByConnection[connection, default: []].insert(path)
    }

    public mutating func addChildWatch(_ path: String, connection: ConnectionID, mode: Modes = .standard) {
        child[path, default: [:]][connection, default: []].formUnion(mode)
        pathsByConnection[connection, default: []].insert(path)
    }

    /// `addWatch`: persistent registers in both tables, recursive in the data table only.
    public mutating func addPersistentWatch(_ path: String, connection: ConnectionID, recursive: Bool) {
        if recursive {
            addDataWatch(path, connection: connection, mode: .recursive)
        } else {
            addDataWatch(path, connection: connection, mode: .persistent)
            addChildWatch(path, connection: connection, mode: .persistent)
        }
    }

    /// The connections to notify of `trigger`, in a stable order, consuming one-shot entries.
    public mutating func fire(_ trigger: WatchTrigger) -> [ConnectionID] {
        var notified: [ConnectionID] = []
        var seen: Set<ConnectionID> = []
        func note(_ connection: ConnectionID) {
            if seen.insert(connection).inserted { notified.append(connection) }
        }
        switch trigger.type {
        case .nodeCreated, .nodeDataChanged, .nodeDeleted:
            for connection in consume(.data, trigger.path) { note(connection) }
            if recursiveEntries > 0 {
                for ancestor in Paths.ancestors(of: trigger.path) {
                    guard let entries = data[ancestor] else { continue }
                    for (connection, modes) in entries.sorted(by: { $0.key < $1.key }) where modes.contains(.recursive) {
                        note(connection)
                    }
                }
            }
            if trigger.type == .nodeDeleted {
                for connection in consume(.child, trigger.path) { note(connection) }
            }
        case .nodeChildrenChanged:
            for connection in consume(.child, trigger.path) { note(connection) }
        default:
            break
        }
        return notified
    }

    private enum Table { case data, child }

    /// Every connection with an entry on `path` in `table`, dropping their one-shot modes.
    private mutating func consume(_ table: Table, _ path: String) -> [ConnectionID] {
        guard var entries = (table == .data ? data[path] : child[path]) else { return [] }
        let connections = entries.keys.sorted()
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
        for connection in emptied { forgetIfUnused(path, connection: connection) }
        return connections
    }

    private mutating func forgetIfUnused(_ path: String, connection: ConnectionID) {
        if data[path]?[connection] == nil && child[path]?[connection] == nil {
            pathsByConnection[connection]?.remove(path)
            if pathsByConnection[connection]?.isEmpty == true { pathsByConnection[connection] = nil }
        }
    }

    /// Drops every watch of a connection.
    public mutating func removeConnection(_ connection: ConnectionID) {
        guard let paths = pathsByConnection.removeValue(forKey: connection) else { return }
        for path in paths {
            if let modes = data[path]?.removeValue(forKey: connection), modes.contains(.recursive) { recursiveEntries -= 1 }
            if data[path]?.isEmpty == true { data[path] = nil }
            child[path]?[connection] = nil
            if child[path]?.isEmpty == true { child[path] = nil }
        }
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

    /// Removes the connection's entries of `type` on `path`; false when there were none.
    public mutating func remove(_ path: String, connection: ConnectionID, type: WatcherType) -> Bool {
        guard has(path, connection: connection, type: type) else { return false }
        if type == .data || type == .any {
            if let modes = data[path]?.removeValue(forKey: connection), modes.contains(.recursive) { recursiveEntries -= 1 }
            if data[path]?.isEmpty == true { data[path] = nil }
        }
        if type == .children || type == .any {
            child[path]?[connection] = nil
            if child[path]?.isEmpty == true { child[path] = nil }
        }
        forgetIfUnused(path, connection: connection)
        return true
    }

    /// Total number of (connection, path, table) entries.
    public var count: Int {
        data.values.reduce(0) { $0 + $1.count } + child.values.reduce(0) { $0 + $1.count }
    }

    public var watchedPaths: Int { Set(data.keys).union(child.keys).count }

    public func paths(of connection: ConnectionID) -> [String] {
        (pathsByConnection[connection] ?? []).sorted()
    }

    public func entries(of connection: ConnectionID) -> Int {
        (pathsByConnection[connection] ?? []).reduce(0) { total, path in
            total + (data[path]?[connection] != nil ? 1 : 0) + (child[path]?[connection] != nil ? 1 : 0)
        }
    }

    public var connectionsWatching: [ConnectionID: [String]] {
        pathsByConnection.mapValues { $0.sorted() }
    }
}
