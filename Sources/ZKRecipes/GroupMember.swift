import ZKClient
import ZKRecipesCore

/// Group membership in Curator's `GroupMember` layout: each member is the ephemeral node
/// `<path>/<memberId>` holding its payload (parents as containers); the members are the children.
/// The node goes with the member's session. Curator re-creates it under a new session through
/// `PersistentNode`; here a session is a `ZooKeeperClient`, so a program whose session expired
/// joins again with its new client.
public struct GroupMember: Sendable {
    public let client: ZooKeeperClient
    public let path: String
    public let memberId: String

    public init(client: ZooKeeperClient, path: String, memberId: String) {
        self.client = client
        self.path = path
        self.memberId = memberId
    }

    var ourPath: String { CuratorNames.join(path, memberId) }

    /// Joins (or replaces our payload when already a member of this session).
    public func join(payload: [UInt8] = []) async throws {
        do {
            try await client.createCreatingParents(ourPath, data: payload, mode: .ephemeral)
        } catch ZooKeeperError.nodeExists {
            let stat = try await client.exists(ourPath)
            guard stat?.ephemeralOwner == client.sessionId else { throw ZooKeeperError(.nodeExists, path: ourPath) }
            try await client.setData(ourPath, data: payload)
        }
    }

    public func setPayload(_ payload: [UInt8]) async throws {
        try await client.setData(ourPath, data: payload)
    }

    public func leave() async throws {
        do { try await client.delete(ourPath) } catch ZooKeeperError.noNode {}
    }

    /// The current members and their payloads.
    public func members() async throws -> [String: [UInt8]] {
        let ids: [String]
        do { ids = try await client.getChildren(path) } catch ZooKeeperError.noNode { return [:] }
        var result: [String: [UInt8]] = [:]
        for id in ids {
            do { result[id] = try await client.getData(CuratorNames.join(path, id)).data } catch ZooKeeperError.noNode {}
        }
        return result
    }

    /// The member ids (sorted) each time membership changes, starting with the current ones.
    public func memberChanges() -> AsyncThrowingStream<[String], any Error> {
        let client = self.client, path = self.path
        return AsyncThrowingStream { continuation in
            let task = Task {
                var last: [String]?
                func publish(_ ids: [String]) {
                    if ids != last { continuation.yield(ids) }
                    last = ids
                }
                do {
                    while !Task.isCancelled {
                        do {
                            let (ids, watch) = try await client.getChildren(path, watch: true)
                            publish(ids.sorted())
                            _ = try await watch?.event()
                        } catch ZooKeeperError.noNode {
                            publish([])
                            let (stat, watch) = try await client.exists(path, watch: true)
                            if stat == nil { _ = try await watch?.event() }
                        }
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
