import SparkLiteCore
import ZKProtocol
import ZKRecipesCore

/// A tiny in-test ZooKeeper: one tree, sessions with ephemeral nodes, sequential names, versions,
/// one-shot watches and multi, on a virtual clock. Programs are fed in time order, one input at a
/// time; a call is applied when it is made and answered a millisecond later. It is what the
/// programs need to be driven deterministically in unit tests, not a model of the ensemble (the
/// SparkLite tests run the real one).
final class FakeEnsemble {
    struct Node {
        var data: [UInt8]
        var stat: Stat
        var children: Set<String> = []
        var sequence: Int32 = 0
    }

    enum WatchKind { case data, child, exists }

    final class Process {
        let name: String
        let session: Int64
        var handle: (ProgramInput, Int64) -> [ProgramAction<SparkObservation>]
        var alive = true
        var finished = false
        init(name: String, session: Int64, handle: @escaping (ProgramInput, Int64) -> [ProgramAction<SparkObservation>]) {
            self.name = name
            self.session = session
            self.handle = handle
        }
    }

    var nodes: [String: Node] = ["/": Node(data: [], stat: Stat())]
    var zxid: Int64 = 0
    var nowMs: Int64 = 0
    var nextSession: Int64 = 1
    var processes: [Int64: Process] = [:]
    var watches: [String: [(session: Int64, call: CallID, kind: WatchKind)]] = [:]
    var queue: [(at: Int64, order: Int, session: Int64, input: ProgramInput)] = []
    var order = 0
    var observations: [(process: String, observation: SparkObservation)] = []

    final class Box<P> {
        var program: P
        init(_ program: P) { self.program = program }
    }

    /// Starts a program on a new session.
    @discardableResult
    func start<P: CoordinationProgram>(_ name: String, _ program: P) -> Int64 where P.Observation == SparkObservation {
        startBoxed(name, program).session
    }

    func startBoxed<P: CoordinationProgram>(_ name: String, _ program: P) -> (session: Int64, box: Box<P>) where P.Observation == SparkObservation {
        let session = nextSession
        nextSession += 1
        let box = Box(program)
        processes[session] = Process(name: name, session: session) { input, now in box.program.handle(input, nowMs: now) }
        enqueue(session, .start, after: 0)
        enqueue(session, .session(.connected), after: 0)
        return (session, box)
    }

    func enqueue(_ session: Int64, _ input: ProgramInput, after: Int64) {
        order += 1
        queue.append((nowMs + after, order, session, input))
    }

    /// Runs until nothing is left before `untilMs` (or `stop` holds).
    func run(untilMs: Int64, stop: () -> Bool = { false }) {
        while !stop() {
            guard let next = queue.indices.min(by: { (queue[$0].at, queue[$0].order) < (queue[$1].at, queue[$1].order) }),
                  queue[next].at <= untilMs else { break }
            let item = queue.remove(at: next)
            nowMs = max(nowMs, item.at)
            guard let process = processes[item.session], process.alive, !process.finished else { continue }
            for action in process.handle(item.input, nowMs) { perform(action, process) }
        }
        nowMs = max(nowMs, untilMs)
    }

    func perform(_ action: ProgramAction<SparkObservation>, _ process: Process) {
        switch action {
        case .observe(let observation):
            observations.append((process.name, observation))
        case .finish:
            process.finished = true
        case .timer(let id, let afterMs):
            enqueue(process.session, .timer(id), after: max(afterMs, 0))
        case .call(let id, let request, let watch):
            let result = apply(request, session: process.session, watch: watch ? id : nil)
            enqueue(process.session, .reply(id, result), after: 1)
        }
    }

    /// A process crashes: it is fed nothing more; its session lives on until `expire`.
    func crash(_ session: Int64) { processes[session]?.alive = false }

    /// The session expires: its ephemeral nodes go, and a live process hears `expired`.
    func expire(_ session: Int64) {
        for (path, node) in nodes where node.stat.ephemeralOwner == session { _ = delete(path) }
        watches = watches.mapValues { $0.filter { $0.session != session } }
        if processes[session]?.alive == true { enqueue(session, .session(.expired), after: 0) }
    }

    func session(_ session: Int64, _ event: SessionEvent) { enqueue(session, .session(event), after: 0) }

    func process(named name: String) -> Process? { processes.values.first { $0.name == name && $0.alive && !$0.finished } }

    // MARK: - The tree

    func parent(_ path: String) -> String { CuratorNames.parent(path) }

    func fire(_ path: String, _ kinds: Set<WatchKind>, _ type: EventType) {
        guard var list = watches[path] else { return }
        for watch in list where kinds.contains(watch.kind) {
            enqueue(watch.session, .watch(watch.call, type: type, path: path), after: 1)
        }
        list.removeAll { kinds.contains($0.kind) }
        watches[path] = list
    }

    func setWatch(_ path: String, _ session: Int64, _ call: CallID?, _ kind: WatchKind) {
        guard let call else { return }
        watches[path, default: []].append((session, call, kind))
    }

    var multiZxid: Int64?

    func nextZxid() {
        if let multiZxid { zxid = multiZxid } else { zxid += 1 }
    }

    func create(_ request: CreateRequest, session: Int64) -> Result<(String, Stat), ErrorCode> {
        let mode = CreateMode(rawValue: request.flags) ?? .persistent
        let parentPath = parent(request.path)
        guard var parentNode = nodes[parentPath] else { return .failure(.noNode) }
        guard parentNode.stat.ephemeralOwner == 0 else { return .failure(.noChildrenForEphemerals) }
        var path = request.path
        if mode.isSequential {
            let text = String(parentNode.sequence)
            path += String(repeating: "0", count: 10 - text.count) + text
        }
        guard nodes[path] == nil else { return .failure(.nodeExists) }
        nextZxid()
        parentNode.sequence += 1
        parentNode.children.insert(CuratorNames.nodeName(path))
        parentNode.stat.cversion += 1
        parentNode.stat.pzxid = zxid
        parentNode.stat.numChildren = Int32(parentNode.children.count)
        nodes[parentPath] = parentNode
        var stat = Stat()
        stat.czxid = zxid
        stat.mzxid = zxid
        stat.pzxid = zxid
        stat.ephemeralOwner = mode.isEphemeral ? session : 0
        stat.dataLength = Int32(request.data?.count ?? 0)
        nodes[path] = Node(data: request.data ?? [], stat: stat)
        fire(path, [.exists, .data], .nodeCreated)
        fire(parentPath, [.child], .nodeChildrenChanged)
        return .success((path, stat))
    }

    func delete(_ path: String, version: Int32 = -1) -> ErrorCode {
        guard let node = nodes[path] else { return .noNode }
        guard version == -1 || version == node.stat.version else { return .badVersion }
        guard node.children.isEmpty else { return .notEmpty }
        nextZxid()
        nodes[path] = nil
        let parentPath = parent(path)
        nodes[parentPath]?.children.remove(CuratorNames.nodeName(path))
        nodes[parentPath]?.stat.cversion += 1
        nodes[parentPath]?.stat.pzxid = zxid
        fire(path, [.exists, .data, .child], .nodeDeleted)
        fire(parentPath, [.child], .nodeChildrenChanged)
        return .ok
    }

    func setData(_ path: String, _ data: [UInt8], version: Int32) -> Result<Stat, ErrorCode> {
        guard var node = nodes[path] else { return .failure(.noNode) }
        guard version == -1 || version == node.stat.version else { return .failure(.badVersion) }
        nextZxid()
        node.data = data
        node.stat.version += 1
        node.stat.mzxid = zxid
        node.stat.dataLength = Int32(data.count)
        nodes[path] = node
        fire(path, [.exists, .data], .nodeDataChanged)
        return .success(node.stat)
    }

    func apply(_ request: Request, session: Int64, watch: CallID?) -> Result<Response, ErrorCode> {
        switch request {
        case .create(let create), .create2(let create):
            return create.flags >= 0 ? self.create(create, session: session).map { .create2(path: $0.0, stat: $0.1) } : .failure(.badArguments)
        case .delete(let path, let version):
            let code = delete(path, version: version)
            return code == .ok ? .success(.empty) : .failure(code)
        case .setData(let path, let data, let version):
            return setData(path, data ?? [], version: version).map { .stat($0) }
        case .getData(let path, _):
            guard let node = nodes[path] else { return .failure(.noNode) }
            setWatch(path, session, watch, .data)
            return .success(.getData(data: node.data, stat: node.stat))
        case .exists(let path, _):
            setWatch(path, session, watch, nodes[path] == nil ? .exists : .data)
            guard let node = nodes[path] else { return .failure(.noNode) }
            return .success(.stat(node.stat))
        case .getChildren(let path, _), .getChildren2(let path, _):
            guard let node = nodes[path] else { return .failure(.noNode) }
            setWatch(path, session, watch, .child)
            return .success(.getChildren(children: node.children.sorted()))
        case .multi(let operations):
            return .success(.multi(multi(operations, session: session)))
        default:
            return .failure(.unimplemented)
        }
    }

    /// All or nothing: on a failure the tree (and the watches fired meanwhile) are put back.
    func multi(_ operations: [Request], session: Int64) -> [MultiResult] {
        let saved = (nodes, zxid, queue, order, watches)
        multiZxid = zxid + 1
        defer { multiZxid = nil }
        var results: [MultiResult] = []
        for operation in operations {
            var failure: ErrorCode?
            switch operation {
            case .check(let path, let version):
                if let node = nodes[path] { if version != -1 && node.stat.version != version { failure = .badVersion } } else { failure = .noNode }
                if failure == nil { results.append(.check) }
            case .create(let create), .create2(let create):
                switch self.create(create, session: session) {
                case .success(let (path, _)): results.append(.create(path: path))
                case .failure(let code): failure = code
                }
            case .delete(let path, let version):
                let code = delete(path, version: version)
                if code == .ok { results.append(.delete) } else { failure = code }
            case .setData(let path, let data, let version):
                switch setData(path, data ?? [], version: version) {
                case .success(let stat): results.append(.setData(stat: stat))
                case .failure(let code): failure = code
                }
            default:
                failure = .unimplemented
            }
            if let failure {
                (nodes, zxid, queue, order, watches) = saved
                let index = results.count
                return operations.indices.map { $0 < index ? .error(.ok) : $0 == index ? .error(failure) : .error(.runtimeInconsistency) }
            }
        }
        return results
    }
}
