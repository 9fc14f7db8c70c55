import ZKProtocol
import ZKRecipesCore

/// A SparkLite master: a candidate for leadership that, once it leads, schedules every job's
/// tasks on the registered workers.
///
/// Election is Curator's `LeaderLatch` (a `LockMachine` on `leader_election/` with lock name
/// `latch-`) under `ConnectionPolicy.keepUntilExpired`: a suspended connection keeps the
/// leadership (Spark's master quits on any `SUSPENDED`, SPARK-29861), a lost session — or one
/// presumed lost after a whole session timeout without a connection — deposes at once.
///
/// Recovery, step by step, once the latch is held:
/// 1. read `epoch` and bump it with a versioned setData (badVersion: read again). The version
///    written is the fencing token: every later write of this master is a `multi` that begins
///    with `check(epoch, version)`, so if anyone bumps the epoch after us (another master that
///    believes it leads), our writes fail and we step down.
/// 2. read back the persisted state: the workers registered now (ephemeral: they survive the
///    master's fail-over, so there is nothing to wait for), the jobs in `master_status/app_*`,
///    each running job's committed results, and the assignments in flight under `assignments/`.
/// 3. schedule: a task without a committed result and without an assignment to a live worker
///    is assigned (attempt = highest seen + 1) to the least loaded worker with free capacity;
///    reduce tasks only once every map task of the job has committed (the stage barrier).
/// Then it follows watches on `workers/` (a worker gone: its tasks are assigned again),
/// `master_status/` (new jobs), `results/<job>/` (progress, barriers, completion) and
/// `config/cluster` (live configuration).
public struct MasterProgram: CoordinationProgram {
    public typealias Observation = SparkObservation

    public struct Configuration: Sendable, Hashable {
        public var layout: SparkLayout
        public var id: String
        /// Names the latch node (`_c_<uuid>-latch-`); from a seeded source under the simulator.
        public var uuid: String
        public var defaults: ClusterConfig
        public init(layout: SparkLayout = SparkLayout(), id: String, uuid: String, defaults: ClusterConfig = ClusterConfig()) {
            self.layout = layout
            self.id = id
            self.uuid = uuid
            self.defaults = defaults
        }
    }

    enum Purpose: Sendable {
        case skeleton
        case latch
        case config
        case readEpoch
        case bumpEpoch(Int64)
        case workers
        case workerData(String)
        case assignmentDirs
        case assignmentDir(String)
        case apps
        case app(String)
        case results(String)
        case makeResultDir(String)
        case assign(Assignment, worker: String)
        case persistWorker
        case finishJob(String, JobState)
        case dropLatch
    }

    public enum Role: Sendable, Hashable {
        case starting
        case candidate
        case bumping
        case recovering
        case leading
        case deposed
    }

    struct InFlight: Sendable, Hashable {
        var worker: String
        var attempt: Int
    }

    struct Job: Sendable {
        var spec: JobSpec?
        var state: JobState = .running
        var resultsListed = false
        var committed: Set<TaskID> = []
        var inFlight: [TaskID: InFlight] = [:]
        var attempts: [TaskID: Int] = [:]
        var completedStages: Set<Stage> = []
        var finishing = false
    }

    public let configuration: Configuration
    var engine = Engine<Purpose, Never>()
    var skeleton: Skeleton
    var latch: LockMachine
    var latchCallID: CallID?
    public private(set) var role: Role = .starting
    public private(set) var epoch: Int64 = 0
    var epochVersion: Int32 = -1
    public private(set) var config: ClusterConfig
    /// Live workers and their capacity (nil until their registration is read).
    var workers: [String: Int?] = [:]
    var jobs: [String: Job] = [:]
    /// Assignments found under `assignments/` during recovery, by job.
    var found: [String: [TaskID: InFlight]] = [:]
    var recoveryWaiting: Set<String> = []
    var persistedWorkers: Set<String> = []
    var finished = false

    public init(_ configuration: Configuration) {
        self.configuration = configuration
        self.skeleton = Skeleton(configuration.layout)
        self.config = configuration.defaults
        self.latch = LockMachine(LockMachine.Configuration(
            basePath: configuration.layout.leaderElection, lockName: CuratorNames.latch,
            data: Array(configuration.id.utf8), policy: .keepUntilExpired))
    }

    var layout: SparkLayout { configuration.layout }
    var id: String { configuration.id }
    public var isLeading: Bool { role == .leading }
    public var jobIDs: [String] { jobs.keys.sorted() }

    /// What the master believes, for a failure's report.
    public var summary: String {
        let workerList = workers.keys.sorted().map { "\($0)(\(workers[$0]!.map(String.init) ?? "?"))" }.joined(separator: " ")
        let jobList = jobs.keys.sorted().map { job -> String in
            let track = jobs[job]!
            let flights = track.inFlight.keys.sorted().map { "\($0.name)->\(track.inFlight[$0]!.worker)#\(track.inFlight[$0]!.attempt)" }
            return "\(job) \(track.state) committed \(track.committed.count) listed \(track.resultsListed) in flight [\(flights.joined(separator: " "))]"
        }
        return "\(id) \(role) epoch \(epoch) workers [\(workerList)] jobs [\(jobList.joined(separator: "; "))]"
    }

    public mutating func handle(_ input: ProgramInput, nowMs: Int64) -> [ProgramAction<SparkObservation>] {
        guard !finished else { return [] }
        switch input {
        case .start:
            engine.call(.skeleton, skeleton.current)
        case .reply(let callID, let result):
            if case .latch? = engine.book.peek(callID) {
                // The latch retries by itself (on session events): its calls bypass the engine's retry.
                _ = engine.book.close(callID)
                engine.requests[callID] = nil
                if latchCallID == callID { latchCallID = nil }
                latchReply(result)
                break
            }
            guard let (purpose, result) = engine.reply(callID, result) else { break }
            if case .failure(.sessionExpired) = result {
                sessionEnded()
            } else {
                reply(purpose, result)
            }
        case .watch(let callID, let type, let path):
            guard let purpose = engine.watchFired(callID) else { break }
            watchFired(purpose, type: type, path: path)
        case .session(let event):
            if event == .expired || event == .closed { sessionLive = false }
            feedLatch(.session(event))
            if event == .expired || event == .closed { sessionEnded() }
        case .timer(let timerID):
            _ = engine.timerFired(timerID)
        }
        return engine.drain()
    }

    // MARK: - Election

    mutating func feedLatch(_ input: LockMachine.Input) {
        for command in latch.handle(input) {
            switch command {
            case .create(let path, let data, let mode):
                latchCall(Engine<Purpose, Never>.create(path, data, mode), watch: false)
            case .getChildren(let path):
                latchCall(.getChildren(path: path, watch: false), watch: false)
            case .watchData(let path):
                latchCall(.getData(path: path, watch: true), watch: true)
            case .delete(let path):
                latchCall(.delete(path: path, version: -1), watch: false)
            case .report(let state):
                latchState(state)
            }
        }
    }

    mutating func latchCall(_ request: Request, watch: Bool) {
        let id = engine.book.open(.latch)
        latchCallID = id
        if watch { engine.watches[id] = .latch }
        engine.actions.append(.call(id, request, watch: watch))
    }

    mutating func latchReply(_ result: Result<Response, ErrorCode>) {
        switch result {
        case .success(.create2(let path, let stat)):
            feedLatch(.created(path: path, stat: stat))
        case .success(.getChildren(let children)):
            feedLatch(.children(children))
        case .success(.getData):
            if case .waiting(let predecessor) = latch.phase { feedLatch(.predecessorExists(CuratorNames.join(layout.leaderElection, predecessor))) }
        case .success(.empty):
            if let path = latch.ourPath { feedLatch(.deleted(path)) }
        case .failure(.noNode):
            if case .waiting(let predecessor) = latch.phase {
                feedLatch(.predecessorGone(CuratorNames.join(layout.leaderElection, predecessor)))
            } else {
                feedLatch(.failed(.noNode))
            }
        case .failure(let code):
            feedLatch(.failed(code))
        case .success:
            feedLatch(.failed(.marshallingError))
        }
    }

    mutating func latchState(_ state: HolderState) {
        switch state {
        case .held:
            if role == .candidate {
                role = .bumping
                engine.call(.readEpoch, .getData(path: layout.epoch, watch: false))
            }
        case .lost(let reason):
            depose("latch lost: \(reason)")
        case .idle, .waiting, .suspended, .released:
            break
        }
    }

    mutating func depose(_ reason: String) {
        guard role != .deposed else { return }
        if role == .leading || role == .recovering || role == .bumping {
            engine.observe(.deposed(master: id, epoch: epoch, reason: reason))
        }
        role = .deposed
        // A deposed master does not come back as this program: its shell closes the session and
        // starts a new one (sockets), or starts a new program on the same session (simulator).
        // For the latter, the latch node must go first if the session may still have it: a node
        // of ours left first in line would block every candidate, the next one of ours included.
        // The delete is retried (while disconnected too) until it is answered or the session ends.
        if sessionLive, let path = latch.ourPath {
            engine.call(.dropLatch, .delete(path: path, version: -1))
        } else {
            finish()
        }
    }

    var sessionLive = true

    mutating func sessionEnded() {
        guard !finished else { return }
        engine.observe(.sessionEnded(who: id))
        depose("session ended")
        finish()
    }

    mutating func finish() {
        guard !finished else { return }
        finished = true
        engine.finish()
    }

    // MARK: - Replies

    mutating func reply(_ purpose: Purpose, _ result: Result<Response, ErrorCode>) {
        switch purpose {
        case .latch:
            latchReply(result)
        case .dropLatch:
            finish()
        case .skeleton:
            skeleton.next += 1
            if skeleton.done {
                role = .candidate
                engine.call(.config, .getData(path: layout.clusterConfig, watch: true), watch: true)
                feedLatch(.acquire(uuid: configuration.uuid))
            } else {
                engine.call(.skeleton, skeleton.current)
            }
        case .config:
            if case .success(.getData(let data, let stat)) = result {
                config = ClusterConfig(data ?? [], defaults: configuration.defaults)
                engine.observe(.configApplied(who: id, version: stat.version, config: config))
                schedule()
            }
        case .readEpoch:
            guard role == .bumping else { return }
            switch result {
            case .success(.getData(let data, let stat)):
                let current = Int64(String(decoding: data ?? [], as: UTF8.self)) ?? 0
                engine.observe(.bumping(master: id, epoch: current + 1))
                engine.call(.bumpEpoch(current + 1), .setData(path: layout.epoch, data: Array(String(current + 1).utf8), version: stat.version))
            default:
                depose("cannot read the epoch: \(result)")
            }
        case .bumpEpoch(let next):
            guard role == .bumping else { return }
            switch result {
            case .success(.stat(let stat)):
                epoch = next
                epochVersion = stat.version
                role = .recovering
                engine.observe(.elected(master: id, epoch: epoch, zxid: stat.mzxid))
                recover()
            case .failure(.badVersion):
                engine.call(.readEpoch, .getData(path: layout.epoch, watch: false))
            default:
                depose("cannot bump the epoch: \(result)")
            }
        case .workers:
            if case .success(.getChildren(let children)) = result { workersListed(Set(children)) }
            recovered("workers")
        case .workerData(let worker):
            guard workers.keys.contains(worker) else { return }
            if case .success(.getData(let data, _)) = result {
                let capacity = KeyValues.decode(data ?? [])["capacity"].flatMap { Int($0) } ?? 1
                workers[worker] = max(capacity, 1)
                persistWorker(worker, capacity: capacity)
                schedule()
            } else {
                workers[worker] = nil
            }
        case .assignmentDirs:
            if case .success(.getChildren(let children)) = result {
                for worker in children.sorted() {
                    recoveryWaiting.insert("dir:" + worker)
                    engine.call(.assignmentDir(worker), .getChildren(path: layout.assignmentDir(worker), watch: false))
                }
            }
            recovered("dirs")
        case .assignmentDir(let worker):
            if case .success(.getChildren(let children)) = result {
                for name in children {
                    guard let assignment = Assignment(name: name) else { continue }
                    let previous = found[assignment.job]?[assignment.task]
                    if previous == nil || previous!.attempt < assignment.attempt {
                        found[assignment.job, default: [:]][assignment.task] = InFlight(worker: worker, attempt: assignment.attempt)
                    }
                }
            }
            recovered("dir:" + worker)
        case .apps:
            if case .success(.getChildren(let children)) = result {
                for name in children.sorted() where name.hasPrefix("app_") {
                    let job = String(name.dropFirst(4))
                    guard jobs[job] == nil else { continue }
                    jobs[job] = Job()
                    if role == .recovering { recoveryWaiting.insert("app:" + job) }
                    engine.call(.app(job), .getData(path: layout.app(job), watch: false))
                }
            }
            recovered("apps")
        case .app(let job):
            if case .success(.getData(let data, _)) = result, let spec = JobSpec(data ?? []) {
                jobs[job]?.spec = spec
                jobs[job]?.state = JobState.of(data ?? [])
                if jobs[job]?.state == .running {
                    if role == .recovering { recoveryWaiting.insert("results:" + job) }
                    engine.call(.results(job), .getChildren(path: layout.resultDir(job), watch: true), watch: true)
                }
            } else {
                jobs[job] = nil
            }
            recovered("app:" + job)
        case .results(let job):
            switch result {
            case .success(.getChildren(let children)):
                resultsListed(job, children)
                recovered("results:" + job)
            case .failure(.noNode):
                engine.call(.makeResultDir(job), Engine<Purpose, Never>.create(layout.resultDir(job), []))
            default:
                recovered("results:" + job)
            }
        case .makeResultDir(let job):
            engine.call(.results(job), .getChildren(path: layout.resultDir(job), watch: true), watch: true)
        case .assign(let assignment, let worker):
            assigned(assignment, worker: worker, Engine<Purpose, Never>.multiOutcome(result))
        case .persistWorker:
            if case .failure(.badVersion) = Engine<Purpose, Never>.multiOutcome(result) { depose("fenced: epoch \(epoch) is stale") }
        case .finishJob(let job, let state):
            switch Engine<Purpose, Never>.multiOutcome(result) {
            case .success:
                jobs[job]?.state = state
                if state == .finished { engine.observe(.jobCompleted(master: id, job: job)) }
            case .failure(.badVersion):
                depose("fenced: epoch \(epoch) is stale")
            case .failure:
                jobs[job]?.finishing = false
            }
        }
    }

    mutating func watchFired(_ purpose: Purpose, type: EventType, path: String) {
        switch purpose {
        case .latch:
            feedLatch(.watchFired(path))
        case .config:
            engine.call(.config, .getData(path: layout.clusterConfig, watch: true), watch: true)
        case .workers:
            guard role == .leading || role == .recovering else { return }
            engine.call(.workers, .getChildren(path: layout.workers, watch: true), watch: true)
        case .apps:
            guard role == .leading || role == .recovering else { return }
            engine.call(.apps, .getChildren(path: layout.masterStatus, watch: true), watch: true)
        case .results(let job):
            guard role == .leading || role == .recovering, jobs[job]?.state == .running else { return }
            engine.call(.results(job), .getChildren(path: layout.resultDir(job), watch: true), watch: true)
        default:
            break
        }
    }

    // MARK: - Recovery and scheduling

    mutating func recover() {
        recoveryWaiting = ["workers", "dirs", "apps"]
        engine.call(.workers, .getChildren(path: layout.workers, watch: true), watch: true)
        engine.call(.assignmentDirs, .getChildren(path: layout.assignments, watch: false))
        engine.call(.apps, .getChildren(path: layout.masterStatus, watch: true), watch: true)
    }

    mutating func recovered(_ key: String) {
        guard role == .recovering, recoveryWaiting.remove(key) != nil, recoveryWaiting.isEmpty else { return }
        // Adopt the assignments in flight: a task assigned to a live worker stays with it.
        for (job, tasks) in found {
            guard var track = jobs[job] else { continue }
            for (task, flight) in tasks {
                track.attempts[task] = max(track.attempts[task] ?? 0, flight.attempt)
                if workers.keys.contains(flight.worker), !track.committed.contains(task) {
                    track.inFlight[task] = flight
                }
            }
            jobs[job] = track
        }
        found = [:]
        role = .leading
        engine.observe(.recovered(master: id, epoch: epoch, jobs: jobs.values.filter { $0.state == .running }.count, workers: workers.count))
        schedule()
    }

    mutating func workersListed(_ live: Set<String>) {
        for gone in workers.keys where !live.contains(gone) {
            workers[gone] = nil
            for job in jobs.keys {
                jobs[job]!.inFlight = jobs[job]!.inFlight.filter { $0.value.worker != gone }
            }
            if persistedWorkers.remove(gone) != nil {
                engine.call(.persistWorker, .multi(epochCheck + [.delete(path: layout.workerStatus(gone), version: -1)]))
            }
        }
        for worker in live.sorted() where !workers.keys.contains(worker) {
            workers[worker] = .some(nil)
            engine.call(.workerData(worker), .getData(path: layout.worker(worker), watch: false))
        }
        schedule()
    }

    mutating func persistWorker(_ worker: String, capacity: Int) {
        guard role == .leading || role == .recovering, !persistedWorkers.contains(worker) else { return }
        persistedWorkers.insert(worker)
        engine.call(.persistWorker, .multi(epochCheck + [
            Engine<Purpose, Never>.createPlain(layout.workerStatus(worker), KeyValues.encode([("capacity", String(capacity)), ("epoch", String(epoch))])),
        ]))
    }

    mutating func resultsListed(_ job: String, _ children: [String]) {
        guard var track = jobs[job] else { return }
        track.resultsListed = true
        for name in children {
            guard let task = TaskID(name: name), track.committed.insert(task).inserted else { continue }
            track.inFlight[task] = nil
        }
        jobs[job] = track
        schedule()
    }

    /// The check every write of a leader begins with (left out under the planted bug).
    var epochCheck: [Request] {
        #if MINIZK_BUG_SPARKLITE_NO_EPOCH_CHECK
        return []
        #else
        return [.check(path: layout.epoch, version: epochVersion)]
        #endif
    }

    mutating func schedule() {
        guard role == .leading else { return }
        var load: [String: Int] = [:]
        for track in jobs.values { for flight in track.inFlight.values { load[flight.worker, default: 0] += 1 } }
        for job in jobs.keys.sorted() {
            guard var track = jobs[job], let spec = track.spec, track.state == .running, track.resultsListed, !track.finishing else { continue }
            let mapsDone = spec.tasks(.map).allSatisfy(track.committed.contains)
            if mapsDone, track.completedStages.insert(.map).inserted {
                engine.observe(.stageCompleted(master: id, job: job, stage: .map))
            }
            if mapsDone, spec.tasks(.reduce).allSatisfy(track.committed.contains) {
                if track.completedStages.insert(.reduce).inserted { engine.observe(.stageCompleted(master: id, job: job, stage: .reduce)) }
                track.finishing = true
                jobs[job] = track
                engine.call(.finishJob(job, .finished), .multi(epochCheck + [.setData(path: layout.app(job), data: JobState.encode(spec, .finished), version: -1)]))
                continue
            }
            let stage: Stage = mapsDone ? .reduce : .map
            for task in spec.tasks(stage) where !track.committed.contains(task) && track.inFlight[task] == nil {
                let candidates = workers.compactMap { entry -> (String, Int)? in
                    guard let capacity = entry.value else { return nil }
                    let used = load[entry.key] ?? 0
                    return used < capacity ? (entry.key, used) : nil
                }
                guard let worker = candidates.min(by: { ($0.1, $0.0) < ($1.1, $1.0) })?.0 else { break }
                let attempt = (track.attempts[task] ?? 0) + 1
                if attempt > config.maxAttempts {
                    let reason = "\(task) failed \(config.maxAttempts) attempts"
                    track.finishing = true
                    engine.observe(.jobFailed(job: job, reason: reason))
                    engine.call(.finishJob(job, .failed), .multi(epochCheck + [.setData(path: layout.app(job), data: JobState.encode(spec, .failed, reason: reason), version: -1)]))
                    break
                }
                track.attempts[task] = attempt
                track.inFlight[task] = InFlight(worker: worker, attempt: attempt)
                load[worker, default: 0] += 1
                let assignment = Assignment(job: job, task: task, attempt: attempt)
                // The setData on the worker's directory is there for its mzxid: the zxid at which
                // the ensemble accepted the assignment, for the checkers.
                engine.call(.assign(assignment, worker: worker), .multi(epochCheck + [
                    Engine<Purpose, Never>.createPlain(layout.assignmentDir(worker) + "/" + assignment.name, Array("epoch=\(epoch)".utf8)),
                    .setData(path: layout.assignmentDir(worker), data: Array("epoch=\(epoch)".utf8), version: -1),
                ]))
            }
            jobs[job] = track
        }
    }

    mutating func assigned(_ assignment: Assignment, worker: String, _ outcome: Result<[MultiResult], ErrorCode>) {
        switch outcome {
        case .success(let results):
            var zxid: Int64 = 0
            for result in results { if case .setData(let stat) = result { zxid = stat.mzxid } }
            engine.observe(.assigned(master: id, epoch: epoch, job: assignment.job, task: assignment.task, worker: worker, attempt: assignment.attempt, zxid: zxid))
        case .failure(.nodeExists):
            break  // a retried multi whose first try was applied
        case .failure(.badVersion):
            engine.observe(.assignmentRefused(master: id, epoch: epoch, job: assignment.job, task: assignment.task, code: .badVersion))
            depose("fenced: epoch \(epoch) is stale")
        case .failure(let code):
            engine.observe(.assignmentRefused(master: id, epoch: epoch, job: assignment.job, task: assignment.task, code: code))
            if jobs[assignment.job]?.inFlight[assignment.task] == InFlight(worker: worker, attempt: assignment.attempt) {
                jobs[assignment.job]?.inFlight[assignment.task] = nil
                jobs[assignment.job]?.attempts[assignment.task] = assignment.attempt - 1
            }
            // The worker's directory is missing: it is not ready; forget it until it is listed again.
            workers[worker] = nil
            schedule()
        }
    }
}
