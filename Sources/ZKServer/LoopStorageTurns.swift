import NIOConcurrencyHelpers
import NIOCore

/// Replicas that share an event loop (an in-process ensemble) agree here which of them may write
/// a lone small append on the loop itself.
///
/// A write on the loop blocks the loop for an fsync. With one replica per loop that saves two
/// thread wake-ups; with several, the second replica's write would wait for the first one's
/// fsync, so a quorum's fsyncs would run one after another instead of side by side. So in each
/// round only the last replica still deciding writes on the loop; the others hand their appends to
/// their storage threads, whose fsyncs proceed while the loop writes.
///
/// One instance per event loop (`forLoop`); it is touched only on that loop.
final class LoopStorageTurns: @unchecked Sendable {
    /// Replicas of this loop with storage queued in this iteration and not yet decided.
    private var undecided: Set<ObjectIdentifier> = []
    /// Replicas running on this loop.
    private var members: Set<ObjectIdentifier> = []

    private init() {}

    /// Marks `host` as having storage to hand off or write.
    func pending(_ host: ObjectIdentifier) {
        undecided.insert(host)
    }

    /// `host` decides: true when no other replica of the loop is still deciding, so it may write
    /// on the loop.
    func decide(_ host: ObjectIdentifier) -> Bool {
        undecided.remove(host)
        return undecided.isEmpty
    }

    /// `host` starts on this loop.
    func join(_ host: ObjectIdentifier) {
        members.insert(host)
    }

    /// `host` stops: it no longer takes part.
    func leave(_ host: ObjectIdentifier) {
        undecided.remove(host)
        members.remove(host)
    }

    /// Whether one replica at most runs on this loop (a standalone server, or one member per
    /// process): then nobody else's turn is worth waiting for.
    var hasOneReplica: Bool {
        members.count <= 1
    }

    private struct WeakTurns {
        weak var turns: LoopStorageTurns?
    }

    private static let registry = NIOLockedValueBox<[ObjectIdentifier: WeakTurns]>([:])

    /// The instance for `eventLoop`, shared by every replica on it while any of them holds it.
    static func forLoop(_ eventLoop: any EventLoop) -> LoopStorageTurns {
        let key = ObjectIdentifier(eventLoop as AnyObject)
        return registry.withLockedValue { entries in
            if let existing = entries[key]?.turns { return existing }
            entries = entries.filter { $0.value.turns != nil }
            let created = LoopStorageTurns()
            entries[key] = WeakTurns(turns: created)
            return created
        }
    }
}
