import Foundation
import NIOConcurrencyHelpers
import ZKClient
import ZKRecipesCore

/// A value and everyone watching it: each subscriber gets the current value, then every change.
final class Broadcast<Value: Sendable & Equatable>: Sendable {
    struct Inner {
        var value: Value
        var next: UInt64 = 0
        var observers: [UInt64: AsyncStream<Value>.Continuation] = [:]
        var finished = false
    }
    let box: NIOLockedValueBox<Inner>

    init(_ value: Value) { box = NIOLockedValueBox(Inner(value: value)) }

    var value: Value { box.withLockedValue { $0.value } }

    func publish(_ value: Value) {
        let observers = box.withLockedValue { inner -> [AsyncStream<Value>.Continuation] in
            inner.value = value
            return Array(inner.observers.values)
        }
        for observer in observers { observer.yield(value) }
    }

    func finish() {
        let observers = box.withLockedValue { inner -> [AsyncStream<Value>.Continuation] in
            inner.finished = true
            defer { inner.observers.removeAll() }
            return Array(inner.observers.values)
        }
        for observer in observers { observer.finish() }
    }

    func stream() -> AsyncStream<Value> {
        let (stream, continuation) = AsyncStream<Value>.makeStream()
        let id: UInt64? = box.withLockedValue { inner in
            continuation.yield(inner.value)
            if inner.finished { return nil }
            let id = inner.next
            inner.next += 1
            inner.observers[id] = continuation
            return id
        }
        guard let id else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.box.withLockedValue { $0.observers.removeValue(forKey: id) }
        }
        return stream
    }

    /// The first value (the current one included) satisfying `condition`; nil when the
    /// broadcast ends first.
    func first(where condition: @Sendable (Value) -> Bool) async -> Value? {
        for await value in stream() where condition(value) { return value }
        return nil
    }
}

extension ZooKeeperClient {
    /// Creates `path`, creating missing parents as containers first (Curator's
    /// `creatingParentContainersIfNeeded`). TTL modes take `ttl` (Curator's `withTtl`; the
    /// server must enable TTL nodes).
    @discardableResult
    public func createCreatingParents(
        _ path: String, data: [UInt8] = [], mode: CreateMode, ttl: Duration? = nil, asContainers: Bool = true
    ) async throws -> (path: String, stat: Stat) {
        do {
            return try await create(path, data: data, mode: mode, ttl: ttl)
        } catch ZooKeeperError.noNode {
            for ancestor in CuratorNames.ancestors(path) {
                do {
                    try await create(ancestor, mode: asContainers ? .container : .persistent)
                } catch ZooKeeperError.nodeExists {}
            }
            return try await create(path, data: data, mode: mode, ttl: ttl)
        }
    }
}

/// Maps the client's connection states to the recipes' session events.
func sessionEvent(_ state: ConnectionState) -> SessionEvent? {
    switch state {
    case .connecting: return nil
    case .connected, .connectedReadOnly: return .connected
    case .suspended: return .suspended
    case .reconnected: return .reconnected
    case .expired, .authFailed: return .expired
    case .closed: return .closed
    }
}

/// Waits until the client is connected again (or its session has ended), so that a call that
/// failed with connectionLoss is retried when it can pass.
func awaitConnection(_ client: ZooKeeperClient) async {
    for await state in client.states {
        switch state {
        case .connected, .connectedReadOnly, .reconnected, .expired, .closed, .authFailed: return
        case .connecting, .suspended: continue
        }
    }
}

/// A fresh protected-node UUID, lower-case as Java prints it.
func systemUUID() -> String { UUID().uuidString.lowercased() }

/// Errors of the recipes beyond ZooKeeper's own.
public enum RecipeError: Error, Sendable, Hashable {
    /// The hold or attempt ended: the session was lost, or the server refused an operation.
    case lost(LossReason)
    /// `release` of a lock this object does not hold.
    case notHeld
    /// The recipe was closed.
    case closed
    /// Node data not in the recipe's format.
    case badData(String)
}
