import ZKClientCore
import ZKProtocol

/// A failed ZooKeeper operation: the server's error code (`KeeperException.Code`) or one the
/// client reports itself (connectionLoss, sessionExpired, requestTimeout, throttledOp).
///
/// Two errors are equal when their codes are, so `XCTAssertEqual(error, .noNode)` and
/// `catch ZooKeeperError.noNode` work whatever path the error names.
public struct ZooKeeperError: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: ErrorCode
    /// The path of the operation that failed, as the program gave it.
    public var path: String?
    /// For a failed multi: the result of every operation (the failing one and those rolled back
    /// carry their codes).
    public var results: [OperationResult]?

    public init(_ code: ErrorCode, path: String? = nil, results: [OperationResult]? = nil) {
        self.code = code
        self.path = path
        self.results = results
    }

    public static func == (lhs: ZooKeeperError, rhs: ZooKeeperError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    /// Lets `catch ZooKeeperError.noNode { ... }` match on the code.
    public static func ~= (pattern: ZooKeeperError, error: any Error) -> Bool {
        (error as? ZooKeeperError)?.code == pattern.code
    }

    public var description: String {
        var text = "ZooKeeperError.\(code.name)"
        if let path { text += " for \(path)" }
        return text
    }

    /// Whether the operation may be retried as it is (it may or may not have taken effect, so
    /// only idempotent operations should be).
    public var isRetryable: Bool {
        switch code {
        case .connectionLoss, .operationTimeout, .requestTimeout, .throttledOp, .sessionMoved: return true
        default: return false
        }
    }

    public static let systemError = ZooKeeperError(.systemError)
    public static let runtimeInconsistency = ZooKeeperError(.runtimeInconsistency)
    public static let dataInconsistency = ZooKeeperError(.dataInconsistency)
    public static let connectionLoss = ZooKeeperError(.connectionLoss)
    public static let marshallingError = ZooKeeperError(.marshallingError)
    public static let unimplemented = ZooKeeperError(.unimplemented)
    public static let operationTimeout = ZooKeeperError(.operationTimeout)
    public static let badArguments = ZooKeeperError(.badArguments)
    public static let unknownSession = ZooKeeperError(.unknownSession)
    public static let newConfigNoQuorum = ZooKeeperError(.newConfigNoQuorum)
    public static let reconfigInProgress = ZooKeeperError(.reconfigInProgress)
    public static let apiError = ZooKeeperError(.apiError)
    public static let noNode = ZooKeeperError(.noNode)
    public static let noAuth = ZooKeeperError(.noAuth)
    public static let badVersion = ZooKeeperError(.badVersion)
    public static let noChildrenForEphemerals = ZooKeeperError(.noChildrenForEphemerals)
    public static let nodeExists = ZooKeeperError(.nodeExists)
    public static let notEmpty = ZooKeeperError(.notEmpty)
    public static let sessionExpired = ZooKeeperError(.sessionExpired)
    public static let invalidCallback = ZooKeeperError(.invalidCallback)
    public static let invalidACL = ZooKeeperError(.invalidACL)
    public static let authFailed = ZooKeeperError(.authFailed)
    public static let sessionMoved = ZooKeeperError(.sessionMoved)
    public static let notReadOnly = ZooKeeperError(.notReadOnly)
    public static let ephemeralOnLocalSession = ZooKeeperError(.ephemeralOnLocalSession)
    public static let noWatcher = ZooKeeperError(.noWatcher)
    public static let requestTimeout = ZooKeeperError(.requestTimeout)
    public static let reconfigDisabled = ZooKeeperError(.reconfigDisabled)
    public static let quotaExceeded = ZooKeeperError(.quotaExceeded)
    public static let throttledOp = ZooKeeperError(.throttledOp)
}
