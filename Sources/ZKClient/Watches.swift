import NIOConcurrencyHelpers
import ZKClientCore
import ZKProtocol

/// A one-shot watch set by `exists`, `getData` or `getChildren` with `watch: true`.
///
/// It fires at most once. The event is in place before the reply of any later read that sees
/// the change has been returned (ZooKeeper's ordering), so a program that reads, sees new data
/// and then awaits `event()` finds it without waiting.
public struct OneShotWatch: Sendable {
    let stream: AsyncThrowingStream<WatchEvent, any Error>
    let fired: NIOLockedValueBox<WatchEvent?>

    /// The event if it has fired already, without waiting. Because events are delivered before
    /// the replies that follow them, this is set as soon as any later read saw the change.
    public var triggered: WatchEvent? { fired.withLockedValue { $0 } }

    /// The event. Throws `ZooKeeperError.sessionExpired` (or `.authFailed`) when the session ends
    /// first, and `ZooKeeperError.noWatcher` when the watch was removed with `removeWatches`.
    public func event() async throws -> WatchEvent {
        for try await event in stream { return event }
        throw ZooKeeperError.noWatcher
    }
}

/// The events of a persistent (or persistent recursive) watch set with `addWatch`, in order.
///
/// The sequence ends normally when the watch is removed (`removeWatches`), and throws
/// `ZooKeeperError.sessionExpired` when the session ends. Across a reconnect it keeps going: the
/// watch is registered again, and events missed while disconnected are sent by the server then.
/// It buffers without bound: a program that stops reading keeps every event in memory.
public struct PersistentWatch: AsyncSequence, Sendable {
    public typealias Element = WatchEvent
    let stream: AsyncThrowingStream<WatchEvent, any Error>
    /// The path the watch was set on, as the program gave it.
    public let path: String
    public let mode: AddWatchMode

    public func makeAsyncIterator() -> AsyncThrowingStream<WatchEvent, any Error>.AsyncIterator {
        stream.makeAsyncIterator()
    }
}
