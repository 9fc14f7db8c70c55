import ZKClient
import ZKRecipesCore

/// Curator's `LeaderSelector`: leadership is holding a mutex on `path` (nodes
/// `<path>/_c_<uuid>-lock-<seq>` holding the participant id); the program's work runs while it
/// leads and leadership is given up when the work returns.
///
/// Better than Curator's default: when leadership is lost (session expired, or suspended too
/// long under the policy) the work is *cancelled* at once, rather than left to notice a
/// connection-state callback.
public final class LeaderSelector: Sendable {
    public let mutex: InterProcessMutex
    public let id: String

    public init(client: ZooKeeperClient, path: String, id: String = "", policy: ConnectionPolicy = .keepUntilExpired) {
        self.id = id
        mutex = InterProcessMutex(client: client, path: path, policy: policy, data: Array(id.utf8))
    }

    public var states: AsyncStream<HolderState> { mutex.states }
    public var hasLeadership: Bool { mutex.isHeld }

    /// Waits for leadership, runs `work` with the hold's fencing token, then gives leadership up.
    /// Throws `RecipeError.lost` when leadership was lost while `work` ran (it was cancelled).
    public func lead<T: Sendable>(_ work: @escaping @Sendable (FencingToken) async throws -> T) async throws -> T {
        let token = try await mutex.acquire()
        let states = mutex.states
        let outcome: Result<T, any Error> = await withTaskGroup(of: Result<T, any Error>?.self) { group in
            group.addTask {
                do { return .success(try await work(token)) } catch { return .failure(error) }
            }
            group.addTask {
                for await state in states {
                    if case .lost(let reason) = state { return .failure(RecipeError.lost(reason)) }
                }
                return nil
            }
            var result: Result<T, any Error>?
            while result == nil, let next = await group.next() { result = next }
            group.cancelAll()
            return result ?? .failure(RecipeError.closed)
        }
        if mutex.isHeld || mutex.state.token != nil { try? await mutex.release() }
        return try outcome.get()
    }
}

/// Curator's `DistributedDoubleBarrier`: `memberCount` members enter together and leave
/// together. Each member's node is `<path>/<uuid>` (ephemeral); the last to arrive creates
/// `<path>/ready`. To leave, the lowest member waits for the highest to go, the others delete
/// their node and wait for the lowest.
public struct DistributedDoubleBarrier: Sendable {
    public let client: ZooKeeperClient
    public let path: String
    public let memberCount: Int
    public let memberId: String
    static let ready = "ready"

    public init(client: ZooKeeperClient, path: String, memberCount: Int, memberId: String = systemUUIDString()) {
        self.client = client
        self.path = path
        self.memberCount = memberCount
        self.memberId = memberId
    }

    var ourPath: String { CuratorNames.join(path, memberId) }
    var readyPath: String { CuratorNames.join(path, Self.ready) }

    /// Waits until `memberCount` members have entered.
    public func enter() async throws {
        let (readyStat, readyWatch) = try await client.exists(readyPath, watch: true)
        try await client.createCreatingParents(ourPath, mode: .ephemeral)
        if readyStat != nil { return }
        let children = try await client.getChildren(path)
        if children.count >= memberCount {
            do { try await client.create(readyPath) } catch ZooKeeperError.nodeExists {}
            return
        }
        _ = try await readyWatch?.event()
    }

    /// Waits until every member has left.
    public func leave() async throws {
        var ourNodeShouldExist = true
        let ourName = memberId
        while true {
            var children: [String]
            do { children = try await client.getChildren(path) } catch ZooKeeperError.noNode { children = [] }
            children = children.filter { $0 != Self.ready }.sorted()
            if children.isEmpty { break }
            let ourIndex = children.firstIndex(of: ourName)
            if ourIndex == nil, ourNodeShouldExist { throw RecipeError.lost(.nodeDeleted) }
            if children.count == 1 {
                if ourNodeShouldExist, children[0] != ourName { throw RecipeError.lost(.nodeDeleted) }
                if ourNodeShouldExist { try await deleteOurs() }
                break
            }
            let watched: (stat: Stat?, watch: OneShotWatch?)
            if ourIndex == 0 {
                watched = try await client.exists(CuratorNames.join(path, children[children.count - 1]), watch: true)
            } else {
                watched = try await client.exists(CuratorNames.join(path, children[0]), watch: true)
                if ourNodeShouldExist { try await deleteOurs() }
                ourNodeShouldExist = false
            }
            if watched.stat != nil { _ = try await watched.watch?.event() }
        }
        do { try await client.delete(readyPath) } catch ZooKeeperError.noNode {}
    }

    func deleteOurs() async throws {
        do { try await client.delete(ourPath) } catch ZooKeeperError.noNode {}
    }
}

/// A fresh UUID string, lower-case as Java prints it.
public func systemUUIDString() -> String { systemUUID() }
