import ZKClient
import ZKRecipesCore

/// A queue in Curator's `DistributedQueue` layout: each item is a persistent sequential node
/// `<path>/queue-<seq>` whose data is `ItemSerializer`'s framing of the message bytes. A consumer
/// takes the lowest item by reading it and deleting it *at the version read*: of several
/// consumers (Swift or Java) racing for one item exactly one delete succeeds, so each item is
/// consumed once (at most once should the consumer die after deleting).
///
/// `DistributedPriorityQueue`'s layout is `<path>/queue-<priority><seq>`: pass `priority` to
/// `put`; items are taken lowest priority value first, in sequence order within one priority.
public struct DistributedQueue: Sendable {
    public let client: ZooKeeperClient
    public let path: String

    public init(client: ZooKeeperClient, path: String) {
        self.client = client
        self.path = path
    }

    /// Adds one message (several in one node with `putMulti`); returns the item's path.
    @discardableResult
    public func put(_ message: [UInt8], priority: Int32? = nil) async throws -> String {
        try await putMulti([message], priority: priority)
    }

    @discardableResult
    public func putMulti(_ messages: [[UInt8]], priority: Int32? = nil) async throws -> String {
        let name = CuratorNames.queueItem + (priority.map(QueueItemCodec.priorityPrefix) ?? "")
        let (created, _) = try await client.createCreatingParents(
            CuratorNames.join(path, name), data: QueueItemCodec.encode(messages), mode: .persistentSequential)
        return created
    }

    /// Takes the next item's messages if there is one, without waiting.
    public func poll() async throws -> [[UInt8]]? {
        let children: [String]
        do { children = try await client.getChildren(path) } catch ZooKeeperError.noNode { return nil }
        return try await takeFirst(of: children)
    }

    /// Waits for an item and takes it.
    public func take() async throws -> [[UInt8]] {
        while true {
            try Task.checkCancellation()
            let children: [String]
            let watch: OneShotWatch?
            do {
                (children, watch) = try await client.getChildren(path, watch: true)
            } catch ZooKeeperError.noNode {
                // No queue node yet: wait for it.
                let (stat, existsWatch) = try await client.exists(path, watch: true)
                if stat == nil { _ = try await existsWatch?.event() }
                continue
            }
            if let messages = try await takeFirst(of: children) { return messages }
            _ = try await watch?.event()
        }
    }

    func takeFirst(of children: [String]) async throws -> [[UInt8]]? {
        for name in QueueItemCodec.ordered(children) {
            let item = CuratorNames.join(path, name)
            do {
                let (data, stat) = try await client.getData(item)
                try await client.delete(item, version: stat.version)
                guard let messages = QueueItemCodec.decode(data) else { throw RecipeError.badData(item) }
                return messages
            } catch ZooKeeperError.noNode {
                continue  // another consumer took it
            } catch ZooKeeperError.badVersion {
                continue
            }
        }
        return nil
    }
}

/// Curator's `DistributedBarrier`: the barrier is up while its node exists; `waitOnBarrier`
/// returns once it is removed.
public struct DistributedBarrier: Sendable {
    public let client: ZooKeeperClient
    public let path: String

    public init(client: ZooKeeperClient, path: String) {
        self.client = client
        self.path = path
    }

    public func setBarrier() async throws {
        do { try await client.createCreatingParents(path, mode: .persistent) } catch ZooKeeperError.nodeExists {}
    }

    public func removeBarrier() async throws {
        do { try await client.delete(path) } catch ZooKeeperError.noNode {}
    }

    public func waitOnBarrier() async throws {
        while true {
            let (stat, watch) = try await client.exists(path, watch: true)
            if stat == nil { return }
            _ = try await watch?.event()
        }
    }
}
