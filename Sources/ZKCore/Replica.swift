import ZKProtocol

/// Placeholder; the replica is being written.
public struct Replica: Sendable {
    public let config: ReplicaConfig
    public init(config: ReplicaConfig, startTimeMs: Int64, secret: UInt64) {
        self.config = config
    }
    public mutating func step(_ input: ReplicaInput, nowMs: Int64) -> Ready { Ready() }
    public func status() -> ReplicaStatus { ReplicaStatus() }
}
