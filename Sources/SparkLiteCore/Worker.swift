import ZKProtocol
import ZKRecipesCore

/// A SparkLite worker: registers ephemerally under `workers/<id>` with its capacity, watches its
/// assignment directory `assignments/<id>/`, runs up to `capacity` tasks at a time and commits
/// each task's output once: `create results/<job>/<task>` succeeds for exactly one attempt, and an
/// attempt that finds the output there (another worker, or an earlier attempt, committed first)
/// is discarded. After committing (or discarding) it deletes the assignment node.
///
/// A worker whose session ends finishes; its shell starts a new session under the same id. The
/// assignments left in its directory are then run again (the master may have given them to
/// someone else meanwhile: whichever commits first counts, the other is discarded).
public struct WorkerProgram: CoordinationProgram {
    public typealias Observation = SparkObservation

    public struct Configuration: Sendable, Hashable {
        public var layout: SparkLayout
        public var id: String
        public var capacity: Int
        public var defaults: ClusterConfig
        /// How long to wait before registering again when the previous session's node is still there.
        public var registerRetryMs: Int64 = 200
        /// Tells this program's registration from an earlier one's (a create whose reply was lost
        /// finds its own node): unique per program (a UUID, or from a seed under the simulator).
        public var nonce: String
        public init(layout: SparkLayout = SparkLayout(), id: String, capacity: Int = 2, defaults: ClusterConfig = ClusterConfig(), nonce: String) {
            self.layout = layout
            self.id = id
            self.nonce = nonce
            self.capacity = max(capacity, 1)
            self.defaults = defaults
        }
    }

    enum Purpose: Sendable {
        case skeleton
        case config
        case register
        case registration
        case assignments
        case spec(String)
        case mapOutput(String, Int)
        case commit(String)
        case deleteAssignment(String)
    }

    enum Timer: Sendable {
        case register
        case commit(String)
        case readInputs(String)
    }

    struct Running: Sendable {
        var assignment: Assignment
        var inputs: [Int: [UInt8]] = [:]
        var output: [UInt8]?
        var committing = false
    }

    public let configuration: Configuration
    var engine = Engine<Purpose, Timer>()
    var skeleton: Skeleton
    public private(set) var config: ClusterConfig
    public private(set) var registered = false
    var listed: Set<String> = []
    var queue: [String] = []
    var running: [String: Running] = [:]
    var specs: [String: JobSpec] = [:]
    var fetching: Set<String> = []
    var finished = false

    public init(_ configuration: Configuration) {
        self.configuration = configuration
        self.config = configuration.defaults
        self.skeleton = Skeleton(configuration.layout, extra: [configuration.layout.assignmentDir(configuration.id)])
    }

    var layout: SparkLayout { configuration.layout }
    var id: String { configuration.id }
    public var runningTasks: Int { running.count }

    /// What the worker believes, for a failure's report.
    public var summary: String {
        let tasks = running.keys.sorted().map { name -> String in
            let task = running[name]!
            return "\(name)(inputs \(task.inputs.count) output \(task.output != nil) committing \(task.committing))"
        }
        return "\(id) registered \(registered) running [\(tasks.joined(separator: " "))] queue \(queue) listed \(listed.sorted()) fetching \(fetching.sorted()) specs \(specs.keys.sorted())"
    }

    public mutating func handle(_ input: ProgramInput, nowMs: Int64) -> [ProgramAction<SparkObservation>] {
        guard !finished else { return [] }
        switch input {
        case .start:
            engine.call(.skeleton, skeleton.current)
        case .reply(let callID, let result):
            guard let (purpose, result) = engine.reply(callID, result) else { break }
            if case .failure(.sessionExpired) = result { sessionEnded() } else { reply(purpose, result) }
        case .watch(let callID, _, _):
            switch engine.watchFired(callID) {
            case .config?: engine.call(.config, .getData(path: layout.clusterConfig, watch: true), watch: true)
            case .assignments?: listAssignments()
            default: break
            }
        case .session(let event):
            if event == .expired || event == .closed { sessionEnded() }
        case .timer(let timerID):
            switch engine.timerFired(timerID) {
            case .register?: register()
            case .commit(let name)?: commit(name)
            case .readInputs(let name)?: readInputs(name)
            case nil: break
            }
        }
        return engine.drain()
    }

    mutating func sessionEnded() {
        finished = true
        engine.observe(.sessionEnded(who: id))
        engine.finish()
    }

    mutating func register() {
        let data = KeyValues.encode([("capacity", String(configuration.capacity)), ("nonce", configuration.nonce)])
        engine.call(.register, Engine<Purpose, Timer>.create(layout.worker(id), data, .ephemeral))
    }

    mutating func registeredNow() {
        guard !registered else { return }
        registered = true
        engine.observe(.registered(worker: id, capacity: configuration.capacity))
        listAssignments()
    }

    mutating func listAssignments() {
        engine.call(.assignments, .getChildren(path: layout.assignmentDir(id), watch: true), watch: true)
    }

    mutating func reply(_ purpose: Purpose, _ result: Result<Response, ErrorCode>) {
        switch purpose {
        case .skeleton:
            skeleton.next += 1
            if skeleton.done {
                engine.call(.config, .getData(path: layout.clusterConfig, watch: true), watch: true)
                register()
            } else {
                engine.call(.skeleton, skeleton.current)
            }
        case .config:
            if case .success(.getData(let data, let stat)) = result {
                config = ClusterConfig(data ?? [], defaults: configuration.defaults)
                engine.observe(.configApplied(who: id, version: stat.version, config: config))
            }
        case .register:
            switch result {
            case .success:
                registeredNow()
            case .failure(.nodeExists):
                // Ours, when a create whose reply was lost is retried; otherwise the node of a
                // previous session, which goes when that session expires.
                engine.call(.registration, .getData(path: layout.worker(id), watch: false))
            case .failure:
                engine.timer(.register, afterMs: configuration.registerRetryMs)
            }
        case .registration:
            if case .success(.getData(let data, _)) = result, KeyValues.decode(data ?? [])["nonce"] == configuration.nonce {
                registeredNow()
            } else {
                engine.timer(.register, afterMs: configuration.registerRetryMs)
            }
        case .assignments:
            guard case .success(.getChildren(let children)) = result else { return }
            let now = Set(children)
            for name in children.sorted() where !listed.contains(name) && running[name] == nil && Assignment(name: name) != nil {
                queue.append(name)
            }
            queue.removeAll { !now.contains($0) }
            listed = now
            pump()
        case .spec(let job):
            fetching.remove(job)
            if case .success(.getData(let data, _)) = result, let spec = JobSpec(data ?? []) {
                specs[job] = spec
            } else {
                // No such job (removed): its assignments are dropped.
                for (name, task) in running where task.assignment.job == job { drop(name) }
            }
            for (name, task) in running where task.assignment.job == job && task.output == nil && task.inputs.isEmpty { proceed(name) }
        case .mapOutput(let name, let index):
            guard var task = running[name], task.output == nil, let spec = specs[task.assignment.job] else { return }
            if case .success(.getData(let data, _)) = result {
                task.inputs[index] = data ?? []
                running[name] = task
                if task.inputs.count == spec.maps {
                    let outputs = (0..<spec.maps).map { task.inputs[$0]! }
                    computed(name, Jobs.reduceOutput(spec, reduce: task.assignment.task.index, mapOutputs: outputs))
                }
            } else {
                // A map output is missing (the stage is not finished): read the inputs again later.
                task.inputs = [:]
                running[name] = task
                engine.timer(.readInputs(name), afterMs: 200)
            }
        case .commit(let name):
            guard let task = running[name] else { return }
            let assignment = task.assignment
            switch result {
            case .success(.create2(_, let stat)):
                engine.observe(.committed(worker: id, job: assignment.job, task: assignment.task, attempt: assignment.attempt, zxid: stat.czxid))
            case .failure(.nodeExists):
                engine.observe(.duplicateDiscarded(worker: id, job: assignment.job, task: assignment.task, attempt: assignment.attempt))
            default:
                break  // the job's directory is gone: nothing to commit to
            }
            engine.call(.deleteAssignment(name), .delete(path: layout.assignmentDir(id) + "/" + name, version: -1))
        case .deleteAssignment(let name):
            drop(name)
        }
    }

    mutating func drop(_ name: String) {
        running[name] = nil
        pump()
    }

    /// Starts queued assignments while there is capacity.
    mutating func pump() {
        while running.count < configuration.capacity, !queue.isEmpty {
            let name = queue.removeFirst()
            guard let assignment = Assignment(name: name) else { continue }
            running[name] = Running(assignment: assignment)
            engine.observe(.taskStarted(worker: id, job: assignment.job, task: assignment.task, attempt: assignment.attempt))
            if specs[assignment.job] != nil {
                proceed(name)
            } else if fetching.insert(assignment.job).inserted {
                engine.call(.spec(assignment.job), .getData(path: layout.app(assignment.job), watch: false))
            }
        }
    }

    mutating func proceed(_ name: String) {
        guard let task = running[name], let spec = specs[task.assignment.job] else { return }
        switch task.assignment.task.stage {
        case .map:
            computed(name, Jobs.mapOutput(spec, map: task.assignment.task.index))
        case .reduce:
            readInputs(name)
        }
    }

    mutating func readInputs(_ name: String) {
        guard let task = running[name], let spec = specs[task.assignment.job] else { return }
        for index in 0..<spec.maps {
            engine.call(.mapOutput(name, index), .getData(path: layout.result(task.assignment.job, TaskID(.map, index)), watch: false))
        }
    }

    mutating func computed(_ name: String, _ output: [UInt8]) {
        running[name]?.output = output
        if config.taskDelayMs > 0 {
            engine.timer(.commit(name), afterMs: config.taskDelayMs)
        } else {
            commit(name)
        }
    }

    mutating func commit(_ name: String) {
        guard var task = running[name], let output = task.output, !task.committing else { return }
        task.committing = true
        running[name] = task
        engine.call(.commit(name), Engine<Purpose, Timer>.create(layout.result(task.assignment.job, task.assignment.task), output))
    }
}
