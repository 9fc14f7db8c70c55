import ZKClient
import ZKRecipesCore

/// Leader election in Curator's `LeaderLatch` layout: each candidate creates
/// `<path>/_c_<uuid>-latch-<seq>` holding its participant id; the lowest sequence leads; each
/// other candidate watches only the candidate just ahead of it. A Java process running Curator's
/// `LeaderLatch` on the same path takes part in the same election.
///
///     let latch = LeaderLatch(client: client, path: "/election/scheduler", id: "worker-3")
///     try await latch.start()
///     let token = try await latch.awaitLeadership()
///     for await state in latch.states { if case .lost = state { stop work } }
///
/// `states` is the holder state: `.waiting` (a candidate), `.held(token)` (leader), `.suspended`
/// (leader, connection down), `.lost` (leadership gone: session expired, or suspended too long).
/// Unlike Curator's default, a short disconnection does not give up leadership.
public final class LeaderLatch: Sendable {
    let runner: LockRunner
    public let path: String
    public let id: String

    public init(client: ZooKeeperClient, path: String, id: String = "", policy: ConnectionPolicy = .keepUntilExpired) {
        self.path = path
        self.id = id
        runner = LockRunner(client: client, configuration: .init(basePath: path, lockName: CuratorNames.latch, data: Array(id.utf8), policy: policy))
    }

    public var states: AsyncStream<HolderState> { runner.states.stream() }
    public var state: HolderState { runner.states.value }
    public var hasLeadership: Bool { state.isHeld }

    /// Joins the election (creates the candidate node). A candidate whose leadership was dropped
    /// while its session lives (`.dropOnSuspend`, or suspended for a session timeout) joins again
    /// by itself once reconnected, with a new node.
    public func start() async throws {
        await runner.setRejoinAfterDrop(true)
        await runner.start()
        guard await runner.phase == .idle else { return }
        await runner.send(.acquire(uuid: systemUUID()))
    }

    /// Waits until this candidate leads; throws `RecipeError.lost` when the attempt ends first.
    @discardableResult
    public func awaitLeadership() async throws -> FencingToken {
        let state = await runner.states.first { state in
            switch state { case .held, .lost, .released, .idle: return true; default: return false }
        }
        switch state {
        case .held(let token)?: return token
        case .lost(let reason)?: throw RecipeError.lost(reason)
        default: throw RecipeError.closed
        }
    }

    /// Leaves the election (deletes the candidate node; a leader gives up leadership).
    public func close() async {
        await runner.setRejoinAfterDrop(false)
        let phase = await runner.phase
        if phase == .held {
            await runner.send(.release)
        } else if phase != .idle {
            await runner.send(.cancel)
        }
        _ = await runner.states.first { state in
            switch state { case .released, .idle, .lost: return true; default: return false }
        }
        await runner.stop()
    }
}
