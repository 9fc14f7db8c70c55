import ZKProtocol

/// Turning a write request into a transaction: ZooKeeper's "prep" stage.
///
/// Checks run in ZooKeeper's order, because clients can see the order through which error wins
/// (see the table in `docs/protocol.md`). They run against the *prepared* tree, the committed tree
/// plus every outstanding transaction, so that two pipelined writes see each other. A failed check
/// becomes an error transaction: like ZooKeeper, MiniZK spends a zxid on a failed write.
struct PrepareContext {
    var sessionId: Int64
    var authIds: [Id]
    var extendedTypesEnabled: Bool
    /// ZooKeeper's `zookeeper.enforceQuota`: hard quota limits refuse creates and setData.
    var enforceQuota: Bool = false
}

enum Prepare {
    /// Whether a request is a write that goes through the log.
    static func isWrite(_ request: Request) -> Bool {
        switch request {
        case .create, .create2, .createContainer, .createTTL, .delete, .setData, .setACL, .check, .multi, .closeSession:
            return true
        default:
            return false
        }
    }

    /// The operations of a multi as ZooKeeper 3.8 reads them, or nil when it cannot read them and
    /// answers the whole multi MARSHALLINGERROR (an operation that is not a write).
    ///
    /// ZooKeeper rebuilds every create inside a multi from its flags alone, whatever create opcode
    /// carried it: flags 0–3 make a plain create, answered with its path only; flag 4 a container,
    /// answered with path and Stat; the TTL flags (5, 6) a TTL node in a createTTL; a createTTL
    /// with any other flags loses its TTL; unknown flags make a create that fails with
    /// BADARGUMENTS. A plain create with TTL flags, or a null path, reads fine but fails the whole
    /// multi when its turn comes (`failsWholeMulti`).
    static func multiOperations(_ ops: [Request]) -> [Request]? {
        var result: [Request] = []
        result.reserveCapacity(ops.count)
        for op in ops {
            switch op {
            case .create(let create), .create2(let create), .createContainer(let create):
                result.append(create.flags == 4 ? .createContainer(create) : .create(create))
            case .createTTL(var create):
                guard create.flags != 5 && create.flags != 6 else {
                    result.append(op)
                    continue
                }
                create.ttl = nil
                result.append(create.flags == 4 ? .createContainer(create) : .create(create))
            case .delete, .setData, .check, .nullPath:
                result.append(op)
            default:
                return nil
            }
        }
        return result
    }

    /// An operation of a multi that ZooKeeper falls over on when it prepares it (a plain create
    /// with TTL flags, a null path): the whole multi is MARSHALLINGERROR, unless an operation
    /// before it failed first.
    static func failsWholeMulti(_ op: Request) -> Bool {
        switch op {
        case .nullPath: return true
        case .create(let create): return create.flags == 5 || create.flags == 6
        default: return false
        }
    }

    /// Prepares a write against `tree`. Never fails: a refused write becomes an error body.
    /// Quota limits the write exceeds (only with `enforceQuota`) are appended to `quotaExceeded`.
    static func write(
        _ request: Request, tree: DataTree, context: PrepareContext, quotaExceeded: inout [QuotaExceeded]
    ) -> TransactionBody {
        if case .multi(let ops) = request {
            return multi(ops, tree: tree, context: context, quotaExceeded: &quotaExceeded)
        }
        do {
            return try single(request, tree: tree, context: context, quotaExceeded: &quotaExceeded)
        } catch {
            return .error(error)
        }
    }

    private static func multi(
        _ ops: [Request], tree: DataTree, context: PrepareContext, quotaExceeded: inout [QuotaExceeded]
    ) -> TransactionBody {
        var scratch = tree
        var bodies: [TransactionBody] = []
        bodies.reserveCapacity(ops.count)
        var ignored: [WatchTrigger] = []
        for (index, op) in ops.enumerated() {
            if failsWholeMulti(op) { return .error(.marshallingError) }
            do {
                let body = try single(op, tree: scratch, context: context, quotaExceeded: &quotaExceeded)
                _ = scratch.apply(body, zxid: scratch.lastZxid, timeMs: 0, sessionId: context.sessionId, triggers: &ignored)
                ignored.removeAll(keepingCapacity: true)
                bodies.append(body)
            } catch {
                var codes = [ErrorCode](repeating: .ok, count: index)
                codes.append(error)
                codes.append(contentsOf: repeatElement(.runtimeInconsistency, count: ops.count - index - 1))
                return .failedMulti(codes)
            }
        }
        return .multi(bodies)
    }

    static func single(
        _ request: Request, tree: DataTree, context: PrepareContext, quotaExceeded: inout [QuotaExceeded]
    ) throws(ErrorCode) -> TransactionBody {
        switch request {
        case .create(let create):
            return try self.create(create, opcode: .create, tree: tree, context: context, quotaExceeded: &quotaExceeded)
        case .create2(let create):
            return try self.create(create, opcode: .create2, tree: tree, context: context, quotaExceeded: &quotaExceeded)
        case .createContainer(let create):
            return try self.create(create, opcode: .createContainer, tree: tree, context: context, quotaExceeded: &quotaExceeded)
        case .createTTL(let create):
            return try self.create(create, opcode: .createTTL, tree: tree, context: context, quotaExceeded: &quotaExceeded)
        case .delete(let path, let version):
            guard Paths.hasSlashAndNoNul(path), !Paths.isSystemPath(path), let parentPath = Paths.parent(of: path) else {
                throw .badArguments
            }
            guard let parent = tree.node(parentPath) else { throw .noNode }
            guard ACLs.check(parent.acl, .delete, authIds: context.authIds) else { throw .noAuth }
            guard let node = tree.node(path) else { throw .noNode }
            try checkVersion(version, node.version)
            guard node.children.isEmpty else { throw .notEmpty }
            return .delete(path: path)
        case .setData(let path, let data, let version):
            guard Paths.isValid(path) else { throw .badArguments }
            guard let node = tree.node(path) else { throw .noNode }
            guard ACLs.check(node.acl, .write, authIds: context.authIds) else { throw .noAuth }
            // ZooKeeper checks the quota before the version.
            if context.enforceQuota {
                try Quotas.check(
                    path, bytesDelta: Int64(data?.count ?? 0) - Int64(node.dataLength), countDelta: 0, tree: tree,
                    exceeded: &quotaExceeded)
            }
            try checkVersion(version, node.version)
            // After 2^32 changes the version wraps; like ZooKeeper it skips -1, which means "any
            // version" to clients (and marks a reconfiguration in the log).
            let next = node.version &+ 1
            return .setData(path: path, data: data, version: next == -1 ? 0 : next)
        case .setACL(let path, let acl, let version):
            guard Paths.isValid(path) else { throw .badArguments }
            let fixed = try ACLs.fixup(acl, authIds: context.authIds)
            guard let node = tree.node(path) else { throw .noNode }
            guard ACLs.check(node.acl, .admin, authIds: context.authIds) else { throw .noAuth }
            try checkVersion(version, node.aversion)
            return .setACL(path: path, acl: fixed, version: node.aversion &+ 1)
        case .check(let path, let version):
            guard Paths.isValid(path) else { throw .badArguments }
            guard let node = tree.node(path) else { throw .noNode }
            guard ACLs.check(node.acl, .read, authIds: context.authIds) else { throw .noAuth }
            try checkVersion(version, node.version)
            return .check(path: path)
        case .closeSession:
            return .closeSession(ephemerals: Array(tree.ephemerals(of: context.sessionId)).sorted())
        default:
            throw .marshallingError
        }
    }

    /// The largest TTL ZooKeeper can encode: 40 bits of milliseconds.
    static let ttlMsMax: Int64 = (1 << 40) - 1

    private static func create(
        _ request: CreateRequest, opcode: OpCode, tree: DataTree, context: PrepareContext, quotaExceeded: inout [QuotaExceeded]
    ) throws(ErrorCode) -> TransactionBody {
        guard let mode = CreateMode(rawValue: request.flags) else { throw .badArguments }
        if mode.isTTL && !context.extendedTypesEnabled { throw .unimplemented }
        let kind: NodeKind
        switch opcode {
        case .createTTL:
            guard mode.isTTL, let ttl = request.ttl, ttl > 0, ttl <= ttlMsMax else { throw .badArguments }
            kind = .ttl(ms: ttl)
        case .createContainer:
            guard !mode.isTTL else { throw .badArguments }
            kind = .container
        default:
            // Flag 4 through create/create2 makes an ordinary persistent node, as in ZooKeeper:
            // only the createContainer opcode makes containers.
            guard !mode.isTTL else { throw .badArguments }
            kind = mode.isEphemeral ? .ephemeral(owner: context.sessionId) : .persistent
        }
        let path = request.path
        guard Paths.hasSlashAndNoNul(path), let parentPath = Paths.parent(of: path) else { throw .badArguments }
        let acl = try ACLs.fixup(request.acl, authIds: context.authIds)
        guard let parent = tree.node(parentPath) else { throw .noNode }
        guard ACLs.check(parent.acl, .create, authIds: context.authIds) else { throw .noAuth }
        #if MINIZK_BUG_SEQUENCE_FROM_WRONG_COUNTER
        let counter = Int32(parent.children.count)  // Planted bug: children now, not children ever created.
        #else
        let counter = parent.childCreates
        #endif
        let fullPath = mode.isSequential ? path + Paths.sequenceSuffix(counter) : path
        guard Paths.isValid(fullPath) else { throw .badArguments }
        guard tree.node(fullPath) == nil else { throw .nodeExists }
        if case .ephemeral = parent.kind { throw .noChildrenForEphemerals }
        if context.enforceQuota {
            try Quotas.check(fullPath, bytesDelta: Int64(request.data?.count ?? 0), countDelta: 1, tree: tree, exceeded: &quotaExceeded)
        }
        return .create(path: fullPath, data: request.data, acl: acl, kind: kind)
    }

    private static func checkVersion(_ expected: Int32, _ current: Int32) throws(ErrorCode) {
        if expected != -1 && expected != current { throw .badVersion }
    }
}
