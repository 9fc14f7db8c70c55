import ZKClientCore
import ZKProtocol

/// The operations of a `multi`: applied atomically, all or none.
///
///     var txn = Transaction()
///     txn.create("/a", data: [1])
///     txn.check("/b", version: 3)
///     txn.setData("/b", data: [2], version: 3)
///     let results = try await client.multi(txn)
public struct Transaction: Sendable, Hashable {
    public private(set) var operations: [Request] = []
    /// The program's path of each operation, for errors.
    public private(set) var paths: [String] = []
    public init() {}

    public var isEmpty: Bool { operations.isEmpty }

    /// Adds a create. TTL modes need `ttl`; a container is created with createContainer.
    public mutating func create(
        _ path: String, data: [UInt8] = [], acl: [ACL] = ACL.openUnsafe, mode: CreateMode = .persistent, ttl: Duration? = nil
    ) {
        operations.append(ZooKeeperClient.createRequest(path, data: data, acl: acl, mode: mode, ttl: ttl, inMulti: true))
        paths.append(path)
    }
    /// Adds a delete (`version` -1: any version).
    public mutating func delete(_ path: String, version: Int32 = -1) {
        operations.append(.delete(path: path, version: version))
        paths.append(path)
    }
    /// Adds a setData (`version` -1: any version).
    public mutating func setData(_ path: String, data: [UInt8], version: Int32 = -1) {
        operations.append(.setData(path: path, data: data, version: version))
        paths.append(path)
    }
    /// Adds a version check: the transaction fails unless the node has this version.
    public mutating func check(_ path: String, version: Int32) {
        operations.append(.check(path: path, version: version))
        paths.append(path)
    }
}

/// The reads of a `multiRead`: each answered on its own (not atomic, no snapshot).
public struct ReadTransaction: Sendable, Hashable {
    public private(set) var operations: [Request] = []
    public init() {}
    public mutating func getData(_ path: String) { operations.append(.getData(path: path, watch: false)) }
    public mutating func getChildren(_ path: String) { operations.append(.getChildren(path: path, watch: false)) }
}

/// The outcome of one operation of a multi or multiRead.
public enum OperationResult: Sendable, Hashable {
    /// A create; `stat` is nil for creates inside a multi (ZooKeeper answers the path only).
    case created(path: String, stat: Stat?)
    case deleted
    case dataSet(Stat)
    case checked
    case data([UInt8], Stat)
    case children([String])
    /// This operation failed with the code, or was rolled back because another one did
    /// (ZooKeeper reports those as runtimeInconsistency; ok means "would have succeeded").
    case failed(ErrorCode)

    init(_ result: MultiResult) {
        switch result {
        case .create(let path): self = .created(path: path, stat: nil)
        case .create2(let path, let stat): self = .created(path: path, stat: stat)
        case .delete: self = .deleted
        case .setData(let stat): self = .dataSet(stat)
        case .check: self = .checked
        case .getData(let data, let stat): self = .data(data ?? [], stat)
        case .getChildren(let children): self = .children(children)
        case .error(let code): self = .failed(code)
        }
    }

    /// The code of a failed operation, nil for a success.
    public var error: ErrorCode? {
        if case .failed(let code) = self { return code }
        return nil
    }
}
