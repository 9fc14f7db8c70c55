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
/// is being read is applied after the read (the node is read again). A persistent watch
/// re-registered after a reconnect does not replay what changed while the client was away
/// (ZooKeeper's setWatches fires only one-shot watches), so the tree is read again after every
/// `reconnected`.
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
        let reconnects = client.states
        cache.task.set(Task { [cache] in
            // One consumer, so that events and re-reads apply in the order they came.
            let (inputs, feed) = AsyncStream<Input>.makeStream()
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    do {
                        for try await event in watch { feed.yield(.event(event)) }
                    } catch {}
                    feed.finish()
                }
                group.addTask {
                    for await state in reconnects.dropFirst() where state == .reconnected { feed.yield(.reload) }
                }
                for await input in inputs {
                    switch input {
                    case .event(let event): await cache.apply(event)
                    case .reload: await cache.reload()
                    }
                }
                group.cancelAll()
            }
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

    enum Input: Sendable {
        case event(WatchEvent)
        case reload
    }

    /// Reads the whole tree again (after a reconnect) and publishes it if it differs.
    func reload() async {
        var tree: [String: [UInt8]] = [:]
        do {
            try await load(path, into: &tree)
        } catch {
            return  // the connection went again: the next reconnect reloads
        }
        if tree != state.value { state.publish(tree) }
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
