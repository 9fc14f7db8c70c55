import ZKClient
import ZKRecipesCore

/// A counter in Curator's `DistributedAtomicLong` layout: the node holds the value as 8
/// big-endian bytes; every change is an optimistic versioned write (read, compute, `setData` at
/// the version read; on `badVersion` read again), so concurrent increments from Swift and Java
/// lose nothing. Curator's optional promotion to a mutex is not offered: retries continue until
/// the write lands or `maxAttempts` is reached.
///
/// The update is a pure step (`OptimisticWrite.plan` in ZKRecipesCore) run by a small async loop
/// here: a state machine would add nothing.
public struct DistributedAtomicLong: Sendable {
    public let client: ZooKeeperClient
    public let path: String
    public var maxAttempts: Int

    public init(client: ZooKeeperClient, path: String, maxAttempts: Int = 1_000) {
        self.client = client
        self.path = path
        self.maxAttempts = maxAttempts
    }

    /// The current value (0 when the node does not exist).
    public func get() async throws -> Int64 {
        do {
            let (data, _) = try await client.getData(path)
            guard let value = CuratorValues.decodeLong(data) else { throw RecipeError.badData(path) }
            return value
        } catch ZooKeeperError.noNode {
            return 0
        }
    }

    /// Applies `change` to the value atomically; returns (previous, new).
    @discardableResult
    public func update(_ change: @Sendable (Int64) -> Int64) async throws -> (previous: Int64, value: Int64) {
        var attempt = 0
        while true {
            attempt += 1
            var read: (data: [UInt8], version: Int32)?
            do {
                let (data, stat) = try await client.getData(path)
                read = (data, stat.version)
            } catch ZooKeeperError.noNode {
                read = nil
            }
            guard let previous = CuratorValues.decodeLong(read?.data ?? []) else { throw RecipeError.badData(path) }
            let value = change(previous)
            do {
                switch OptimisticWrite.plan(read: read, newValue: CuratorValues.encodeLong(value)) {
                case .create(let bytes): try await client.createCreatingParents(path, data: bytes, mode: .persistent, asContainers: false)
                case .setData(let bytes, let version): try await client.setData(path, data: bytes, version: version)
                }
                return (previous, value)
            } catch let error as ZooKeeperError where error.code == .badVersion || error.code == .nodeExists {
                if attempt >= maxAttempts { throw error }
            }
        }
    }

    @discardableResult public func add(_ delta: Int64) async throws -> Int64 { try await update { $0 &+ delta }.value }
    @discardableResult public func increment() async throws -> Int64 { try await add(1) }
    @discardableResult public func decrement() async throws -> Int64 { try await add(-1) }

    /// Sets the value if it is still `expected`; false when it was not.
    public func compareAndSet(expected: Int64, newValue: Int64) async throws -> Bool {
        do {
            let (data, stat) = try await client.getData(path)
            guard CuratorValues.decodeLong(data) == expected else { return false }
            try await client.setData(path, data: CuratorValues.encodeLong(newValue), version: stat.version)
            return true
        } catch ZooKeeperError.noNode {
            guard expected == 0 else { return false }
            do {
                try await client.createCreatingParents(path, data: CuratorValues.encodeLong(newValue), mode: .persistent, asContainers: false)
                return true
            } catch ZooKeeperError.nodeExists { return false }
        } catch ZooKeeperError.badVersion {
            return false
        }
    }

    /// Forces the value.
    public func forceSet(_ value: Int64) async throws {
        do {
            try await client.setData(path, data: CuratorValues.encodeLong(value))
        } catch ZooKeeperError.noNode {
            try await client.createCreatingParents(path, data: CuratorValues.encodeLong(value), mode: .persistent, asContainers: false)
        }
    }
}

/// A shared integer in Curator's `SharedCount` layout (4 big-endian bytes), with its version so
/// that changes are conditional (`trySetCount`), and a stream of values as they change.
public struct SharedCount: Sendable {
    public let client: ZooKeeperClient
    public let path: String

    /// A value and the node version it was read at.
    public struct Versioned: Sendable, Hashable {
        public var value: Int32
        public var version: Int32
    }

    /// Creates the node with `seed` unless it exists (Curator's `start`).
    public init(client: ZooKeeperClient, path: String, seed: Int32) async throws {
        self.client = client
        self.path = path
        do {
            try await client.createCreatingParents(path, data: CuratorValues.encodeInt(seed), mode: .persistent)
        } catch ZooKeeperError.nodeExists {}
    }

    public func get() async throws -> Versioned {
        let (data, stat) = try await client.getData(path)
        guard let value = CuratorValues.decodeInt(data) else { throw RecipeError.badData(path) }
        return Versioned(value: value, version: stat.version)
    }

    /// Sets the value if the node is still at `previous.version`; false when someone changed it.
    public func trySet(_ value: Int32, previous: Versioned) async throws -> Bool {
        do {
            try await client.setData(path, data: CuratorValues.encodeInt(value), version: previous.version)
            return true
        } catch ZooKeeperError.badVersion {
            return false
        }
    }

    public func set(_ value: Int32) async throws {
        try await client.setData(path, data: CuratorValues.encodeInt(value))
    }

    /// The values as they change (each read re-arms a data watch), starting with the current one.
    public func values() -> AsyncThrowingStream<Int32, any Error> {
        let client = self.client, path = self.path
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    while !Task.isCancelled {
                        let (data, _, watch) = try await client.getData(path, watch: true)
                        guard let value = CuratorValues.decodeInt(data) else { throw RecipeError.badData(path) }
                        continuation.yield(value)
                        _ = try await watch?.event()
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}
