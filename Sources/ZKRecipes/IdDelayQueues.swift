import Foundation
import ZKClient
import ZKRecipesCore

/// Curator's `DistributedIdQueue`: a `DistributedQueue` whose items carry an id in their names
/// (`<path>/queue-|<id>|<seq>`, see `QueueItemNames`), so that items can be removed by id before
/// a consumer takes them. Items are consumed in the order they were put, each once, as with
/// `DistributedQueue`.
public struct DistributedIdQueue: Sendable {
    public let client: ZooKeeperClient
    public let path: String

    public init(client: ZooKeeperClient, path: String) {
        self.client = client
        self.path = path
    }

    /// Adds one message with `id` (ids need not be unique); returns the item's path.
    @discardableResult
    public func put(_ message: [UInt8], id: String) async throws -> String {
        try await putMulti([message], id: id)
    }

    @discardableResult
    public func putMulti(_ messages: [[UInt8]], id: String) async throws -> String {
        precondition(!id.isEmpty, "an item id cannot be empty")
        let (created, _) = try await client.createCreatingParents(
            CuratorNames.join(path, QueueItemNames.idItemPrefix(id)), data: QueueItemCodec.encode(messages),
            mode: .persistentSequential)
        return created
    }

    /// Removes every item with `id` not yet taken; returns how many this call removed. The id is
    /// fixed as `put` fixes it (Curator compares the raw id, so there an id with `/` or `|` is
    /// never found).
    @discardableResult
    public func remove(id: String) async throws -> Int {
        let fixed = QueueItemNames.fixId(id)
        var count = 0
        for name in try await itemNames() where QueueItemNames.parseId(name).id == fixed {
            do {
                try await client.delete(CuratorNames.join(path, name))
                count += 1
            } catch ZooKeeperError.noNode {}
        }
        return count
    }

    /// Whether an item with `id` is waiting.
    public func isQueued(id: String) async throws -> Bool {
        let fixed = QueueItemNames.fixId(id)
        return try await itemNames().contains { QueueItemNames.parseId($0).id == fixed }
    }

    /// Takes the next item without waiting: its id and messages.
    public func poll() async throws -> (id: String, messages: [[UInt8]])? {
        try await QueueConsumption.takeFirst(client, path, QueueItemNames.orderedById(try await itemNames()))
            .map { (QueueItemNames.parseId($0.name).id, $0.messages) }
    }

    /// Waits for an item and takes it.
    public func take() async throws -> (id: String, messages: [[UInt8]]) {
        while true {
            try Task.checkCancellation()
            guard let (children, watch) = try await QueueConsumption.watchChildren(client, path) else { continue }
            if let item = try await QueueConsumption.takeFirst(client, path, QueueItemNames.orderedById(children)) {
                return (QueueItemNames.parseId(item.name).id, item.messages)
            }
            _ = try await watch?.event()
        }
    }

    func itemNames() async throws -> [String] {
        do { return try await client.getChildren(path) } catch ZooKeeperError.noNode { return [] }
    }
}

/// Curator's `DistributedDelayQueue`: items become available at a time given when they are put,
/// encoded in their names (`<path>/queue-|<epoch hex>|<seq>`, see `QueueItemNames`). A consumer
/// takes the item with the earliest epoch once that epoch has passed, each item once; a Java
/// process using Curator's delay queue on the same path puts and consumes the same items.
///
/// Times are wall-clock milliseconds since 1970 (Java's `System.currentTimeMillis()`), so
/// producers' and consumers' clocks should agree; `now` can be replaced (tests).
public struct DistributedDelayQueue: Sendable {
    public let client: ZooKeeperClient
    public let path: String
    let now: @Sendable () -> Int64

    public init(client: ZooKeeperClient, path: String, now: @escaping @Sendable () -> Int64 = DistributedDelayQueue.systemNowMs) {
        self.client = client
        self.path = path
        self.now = now
    }

    public static func systemNowMs() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) }

    /// Adds one message available from `untilEpochMs` on (Curator requires it positive).
    @discardableResult
    public func put(_ message: [UInt8], untilEpochMs: Int64) async throws -> String {
        try await putMulti([message], untilEpochMs: untilEpochMs)
    }

    /// Adds one message available `delay` from now.
    @discardableResult
    public func put(_ message: [UInt8], delay: Duration) async throws -> String {
        try await putMulti([message], untilEpochMs: now() + max(Int64(delay.components.seconds) * 1000 + delay.components.attoseconds / 1_000_000_000_000_000, 0))
    }

    @discardableResult
    public func putMulti(_ messages: [[UInt8]], untilEpochMs: Int64) async throws -> String {
        precondition(untilEpochMs > 0, "the epoch an item becomes available at must be positive")
        let (created, _) = try await client.createCreatingParents(
            CuratorNames.join(path, QueueItemNames.delayItemPrefix(untilEpochMs: untilEpochMs)),
            data: QueueItemCodec.encode(messages), mode: .persistentSequential)
        return created
    }

    /// Takes an item whose time has come, without waiting.
    public func poll() async throws -> [[UInt8]]? {
        let children: [String]
        do { children = try await client.getChildren(path) } catch ZooKeeperError.noNode { return nil }
        return try await QueueConsumption.takeFirst(client, path, ready(children))?.messages
    }

    /// Waits until an item's time has come and takes it.
    public func take() async throws -> [[UInt8]] {
        while true {
            try Task.checkCancellation()
            guard let (children, watch) = try await QueueConsumption.watchChildren(client, path) else { continue }
            if let item = try await QueueConsumption.takeFirst(client, path, ready(children)) { return item.messages }
            // Wait for a change of the items or the earliest epoch, whichever comes first.
            let earliest = QueueItemNames.orderedByDelay(children).first.map(QueueItemNames.epoch(of:))
            let waitMs = earliest.map { max($0 - now(), 1) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { _ = try await watch?.event() }
                if let waitMs { group.addTask { try await Task.sleep(for: .milliseconds(waitMs)) } }
                _ = try await group.next()
                group.cancelAll()
            }
        }
    }

    /// The items whose epoch has passed, earliest first (Curator's `getDelay <= 0`).
    func ready(_ children: [String]) -> [String] {
        let nowMs = now()
        return QueueItemNames.orderedByDelay(children).filter { QueueItemNames.epoch(of: $0) <= nowMs }
    }
}

/// What the queues share: taking items by read-then-delete-at-version (one consumer wins each
/// item), and watching the item list.
enum QueueConsumption {
    /// The first of `names` this consumer manages to take, with its messages.
    static func takeFirst(_ client: ZooKeeperClient, _ path: String, _ names: [String]) async throws
        -> (name: String, messages: [[UInt8]])?
    {
        for name in names {
            let item = CuratorNames.join(path, name)
            do {
                let (data, stat) = try await client.getData(item)
                try await client.delete(item, version: stat.version)
                guard let messages = QueueItemCodec.decode(data) else { throw RecipeError.badData(item) }
                return (name, messages)
            } catch ZooKeeperError.noNode {
                continue
            } catch ZooKeeperError.badVersion {
                continue
            }
        }
        return nil
    }

    /// The items with a watch on the list; nil after waiting for a missing queue node to appear.
    static func watchChildren(_ client: ZooKeeperClient, _ path: String) async throws -> ([String], OneShotWatch?)? {
        do {
            return try await client.getChildren(path, watch: true)
        } catch ZooKeeperError.noNode {
            let (stat, existsWatch) = try await client.exists(path, watch: true)
            if stat == nil { _ = try await existsWatch?.event() }
            return nil
        }
    }
}
