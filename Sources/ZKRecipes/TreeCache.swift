import ZKClient
import NIOConcurrencyHelpers
import ZKRecipesCore

/// A local copy of a node (and, recursive, of its whole subtree), kept current through one
/// persistent (recursive) watch (`addWatch`), instead of the one-shot watch per node that Curator's
/// `NodeCache`/`TreeCache` re-arm. Changes are published as snapshots: path → data.
///
///     let cache = try await TreeCache.start(client: client, path: "/config")
///     for await snapshot in cache.snapshots { ... }     // current first, then each change
///     cache.current["/config/db"]
///
/// The watch is set before the tree is read, so no change is missed; a change made while the tree
/// is being read is applied after the read (the node is read again).
public final class TreeCache: Sendable {
    public let client: ZooKeeperClient
    public let path: String
    public let recursive: Bool
    let state: Broadcast<[String: [UInt8]]>
    let loaded: Broadcast<Bool>
    let task: NIOLockedTask

    init(client: ZooKeeperClient, path: String, recursive: Bool) {
        self.client = client
        self.path = path
        self.recursive = recursive
        state = Broadcast([:])
        loaded = Broadcast(false)
        task = NIOLockedTask()
    }

    /// Sets the watch, reads the tree, and keeps following it until `close()`.
    public static func start(client: ZooKeeperClient, path: String, recursive: Bool = true) async throws -> TreeCache {
        let cache = TreeCache(client: client, path: path, recursive: recursive)
        let watch = try await client.addWatch(path, mode: recursive ? .persistentRecursive : .persistent)
        var tree: [String: [UInt8]] = [:]
        try await cache.load(path, into: &tree)
        cache.state.publish(tree)
        cache.loaded.publish(true)
        cache.task.set(Task { [cache] in
            do {
                for try await event in watch { await cache.apply(event) }
            } catch {}
            cache.state.finish()
        })
        return cache
    }

    /// The current snapshot.
    public var current: [String: [UInt8]] { state.value }
    /// Snapshots: the current one, then one per change.
    public var snapshots: AsyncStream<[String: [UInt8]]> { state.stream() }

    public func close() async {
        task.cancel()
        try? await client.removeWatches(path, type: .any)
        state.finish()
    }

    func load(_ node: String, into tree: inout [String: [UInt8]]) async throws {
        do {
            let (data, _) = try await client.getData(node)
            tree[node] = data
            guard recursive else { return }
            for child in try await client.getChildren(node) {
                try await load(CuratorNames.join(node, child), into: &tree)
            }
        } catch ZooKeeperError.noNode {}
    }

    func apply(_ event: WatchEvent) async {
        var tree = state.value
        switch event.type {
        case .nodeDeleted:
            let prefix = event.path == "/" ? "/" : event.path + "/"
            tree = tree.filter { $0.key != event.path && !$0.key.hasPrefix(prefix) }
        case .nodeCreated, .nodeDataChanged:
            do {
                tree[event.path] = try await client.getData(event.path).data
            } catch {
                tree[event.path] = nil
            }
        default:
            return
        }
        if tree != state.value { state.publish(tree) }
    }
}

/// A task stored behind a lock, cancelled on demand.
final class NIOLockedTask: Sendable {
    let box = NIOLockedValueBox<Task<Void, Never>?>(nil)
    func set(_ task: Task<Void, Never>) { box.withLockedValue { $0 = task } }
    func cancel() { box.withLockedValue { $0?.cancel() } }
}
