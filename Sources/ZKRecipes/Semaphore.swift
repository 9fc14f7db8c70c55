import ZKClient
import ZKRecipesCore

/// A counting semaphore in Curator's `InterProcessSemaphoreV2` layout: leases are protected
/// ephemeral sequential nodes `<path>/leases/_c_<uuid>-lease-<seq>`; a taker first holds the mutex
/// `<path>/locks` (an `InterProcessMutex`), creates its lease, and while more than `maxLeases`
/// leases exist waits for the leases to change; then it releases the mutex. Only the mutex holder
/// watches the leases, so waiting takers do not herd. Java and Swift takers share the leases.
public final class InterProcessSemaphoreV2: Sendable {
    public let client: ZooKeeperClient
    public let path: String
    public let maxLeases: Int
    let data: [UInt8]

    /// One lease; `close()` returns it.
    public struct Lease: Sendable, Hashable {
        public let path: String
    }

    public init(client: ZooKeeperClient, path: String, maxLeases: Int, data: [UInt8] = []) {
        precondition(maxLeases > 0)
        self.client = client
        self.path = path
        self.maxLeases = maxLeases
        self.data = data
    }

    var leasesPath: String { CuratorNames.join(path, "leases") }

    /// Waits for a lease.
    public func acquire() async throws -> Lease {
        let lock = InterProcessMutex(client: client, path: CuratorNames.join(path, "locks"))
        try await lock.acquire()
        do {
            let lease = try await takeLease()
            try await lock.release()
            await lock.close()
            return lease
        } catch {
            try? await lock.release()
            await lock.close()
            throw error
        }
    }

    func takeLease() async throws -> Lease {
        let uuid = systemUUID()
        let created = try await createProtected(base: leasesPath, uuid: uuid, name: CuratorNames.lease)
        let name = CuratorNames.nodeName(created)
        do {
            while true {
                let (children, watch) = try await client.getChildren(leasesPath, watch: true)
                guard children.contains(name) else { throw RecipeError.lost(.nodeDeleted) }
                if children.count <= maxLeases { return Lease(path: created) }
                _ = try await watch?.event()
            }
        } catch {
            try? await client.delete(created)
            throw error
        }
    }

    /// Creates `<base>/_c_<uuid>-<name>` (ephemeral sequential); after a lost reply, finds it by
    /// its prefix instead of creating a second one.
    func createProtected(base: String, uuid: String, name: String) async throws -> String {
        while true {
            do {
                return try await client.createCreatingParents(
                    CuratorNames.protectedPath(base: base, uuid: uuid, name: name), data: data, mode: .ephemeralSequential
                ).path
            } catch let error as ZooKeeperError where error.isRetryable {
                await awaitConnection(client)
                let prefix = CuratorNames.protectedPrefix(uuid)
                if let found = try? await client.getChildren(base).first(where: { $0.hasPrefix(prefix) }) {
                    return CuratorNames.join(base, found)
                }
            }
        }
    }

    /// Returns a lease.
    public func release(_ lease: Lease) async throws {
        do { try await client.delete(lease.path) } catch ZooKeeperError.noNode {}
    }

    /// The leases currently taken (by anyone).
    public func participantNodes() async throws -> [String] {
        do { return try await client.getChildren(leasesPath) } catch ZooKeeperError.noNode { return [] }
    }
}
