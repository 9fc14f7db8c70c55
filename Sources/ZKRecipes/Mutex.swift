import ZKClient
import ZKRecipesCore

/// A re-entrant distributed lock in Curator's `InterProcessMutex` layout: a holder's node is
/// `<path>/_c_<uuid>-lock-<seq>` (ephemeral sequential, parents as containers), the lowest
/// sequence holds, and each waiter watches only the node just ahead of its own.
///
///     let mutex = InterProcessMutex(client: client, path: "/locks/job-42")
///     let token = try await mutex.acquire()     // FencingToken: pass it to what you protect
///     defer { Task { try await mutex.release() } }
///     for await state in mutex.states { ... }   // held, suspended, lost(...)
///
/// Re-entrancy is per `InterProcessMutex` object (Curator's is per thread): `acquire` on an
/// object that holds the lock counts up, `release` counts down, the last release deletes the node.
/// Under the default `.keepUntilExpired` policy a short disconnection shows as `.suspended` and the
/// hold resumes on reconnection; a lost session (or one disconnected for a whole session
/// timeout) reports `.lost` at once.
public final class InterProcessMutex: Sendable {
    let runner: LockRunner
    public let path: String

    public init(client: ZooKeeperClient, path: String, policy: ConnectionPolicy = .keepUntilExpired, data: [UInt8] = []) {
        self.path = path
        runner = LockRunner(client: client, configuration: .init(basePath: path, lockName: CuratorNames.lock, data: data, policy: policy))
    }

    init(client: ZooKeeperClient, configuration: LockMachine.Configuration) {
        path = configuration.basePath
        runner = LockRunner(client: client, configuration: configuration)
    }

    /// The holder state: current value first, then every change.
    public var states: AsyncStream<HolderState> { runner.states.stream() }
    public var state: HolderState { runner.states.value }
    public var isHeld: Bool { state.isHeld }

    /// Waits for the lock; returns the hold's fencing token. Throws `RecipeError.lost` when the
    /// session is lost first. Cancelling the task abandons the attempt (the node is deleted).
    @discardableResult
    public func acquire() async throws -> FencingToken {
        guard let token = try await acquire(timeout: nil) else { throw RecipeError.lost(.sessionExpired) }
        return token
    }

    /// Waits at most `timeout` (nil: forever); nil when the time ran out (the node is deleted).
    public func acquire(timeout: Duration?) async throws -> FencingToken? {
        await runner.start()
        let phase = await runner.phase
        if phase == .held {
            await runner.send(.acquire(uuid: ""))
            return state.token
        }
        if phase != .idle {
            // Wait for a previous attempt or release to finish.
            _ = await runner.states.first { state in
                switch state { case .idle, .released, .lost: return true; default: return false }
            }
        }
        await runner.send(.acquire(uuid: systemUUID()))
        let outcome = await withTaskGroup(of: HolderState?.self) { group in
            group.addTask {
                await self.runner.states.first { state in
                    switch state { case .held, .lost: return true; default: return false }
                }
            }
            if let timeout {
                group.addTask {
                    try? await Task.sleep(for: timeout)
                    return nil
                }
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        switch outcome {
        case .held(let token)?:
            return token
        case .lost(let reason)?:
            throw RecipeError.lost(reason)
        default:
            if case .held(let token) = state { return token }  // a hold that came as time ran out is kept
            await runner.send(.cancel)
            // Wait until our node is gone, so that nothing of this attempt is left in line.
            let end = await runner.states.first { state in
                switch state { case .idle, .lost, .released, .held: return true; default: return false }
            }
            if case .lost(let reason)? = end { throw RecipeError.lost(reason) }
            if Task.isCancelled { throw CancellationError() }
            return nil
        }
    }

    /// Leaves one level of the hold; the last level deletes the node and returns once it is gone
    /// (or the session is). Throws `RecipeError.notHeld` when this object does not hold the lock.
    public func release() async throws {
        guard await runner.phase == .held else {
            if case .lost(let reason) = state { throw RecipeError.lost(reason) }
            throw RecipeError.notHeld
        }
        await runner.send(.release)
        if await runner.holdCount > 0 { return }
        _ = await runner.states.first { state in
            switch state { case .released, .idle, .lost: return true; default: return false }
        }
    }

    /// Re-entrant depth of the hold.
    public var holdCount: Int { get async { await runner.holdCount } }

    /// Stops following the session (after release, when the object is no longer used).
    public func close() async { await runner.stop() }
}

/// Curator's `InterProcessReadWriteLock` layout: readers' nodes `<path>/_c_<uuid>-__READ__<seq>`,
/// writers' `<path>/_c_<uuid>-__WRIT__<seq>` under the same parent. A reader holds while no
/// writer's node is ahead of its own (it watches the first writer ahead); a writer holds when
/// first of all (it watches its immediate predecessor). Unlike Curator, holding the write lock
/// does not let the same object take the read lock (no downgrade).
public final class InterProcessReadWriteLock: Sendable {
    public let readLock: InterProcessMutex
    public let writeLock: InterProcessMutex

    public init(client: ZooKeeperClient, path: String, policy: ConnectionPolicy = .keepUntilExpired, data: [UInt8] = []) {
        readLock = InterProcessMutex(client: client, configuration: .readLock(basePath: path, data: data, policy: policy))
        writeLock = InterProcessMutex(client: client, configuration: .writeLock(basePath: path, data: data, policy: policy))
    }
}

/// Curator's `InterProcessMultiLock`: several locks taken as one, in the order given (so two
/// multi-locks over the same locks in the same order cannot deadlock), released in reverse. When
/// one cannot be taken the ones already held are released.
public final class InterProcessMultiLock: Sendable {
    public let locks: [InterProcessMutex]

    public init(locks: [InterProcessMutex]) { self.locks = locks }

    public convenience init(client: ZooKeeperClient, paths: [String], policy: ConnectionPolicy = .keepUntilExpired) {
        self.init(locks: paths.map { InterProcessMutex(client: client, path: $0, policy: policy) })
    }

    /// Takes every lock; returns their fencing tokens in order.
    @discardableResult
    public func acquire() async throws -> [FencingToken] {
        guard let tokens = try await acquire(timeout: nil) else { throw RecipeError.lost(.sessionExpired) }
        return tokens
    }

    /// Takes every lock, each waiting at most `timeout`; nil (and nothing held) when one timed out.
    public func acquire(timeout: Duration?) async throws -> [FencingToken]? {
        var held: [InterProcessMutex] = []
        var tokens: [FencingToken] = []
        do {
            for lock in locks {
                guard let token = try await lock.acquire(timeout: timeout) else {
                    for taken in held.reversed() { try? await taken.release() }
                    return nil
                }
                held.append(lock)
                tokens.append(token)
            }
            return tokens
        } catch {
            for taken in held.reversed() { try? await taken.release() }
            throw error
        }
    }

    /// Releases every lock, last first; throws the first failure after trying them all.
    public func release() async throws {
        var failure: (any Error)?
        for lock in locks.reversed() {
            do { try await lock.release() } catch { failure = failure ?? error }
        }
        if let failure { throw failure }
    }

    public var isHeld: Bool { locks.allSatisfy(\.isHeld) }
}
