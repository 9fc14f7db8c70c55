import ZKProtocol
import ZKRecipesCore

/// A SparkLite driver (`minizk spark submit`): submits a job — `results/<job>/`, then
/// `master_status/app_<job>` with its spec, then `master_status/driver_<job>` — follows its
/// progress through `results/<job>/`, and once every reduce task has committed gathers the reduce
/// outputs into the job's result. Submitting an existing job again only follows it.
public struct DriverProgram: CoordinationProgram {
    public typealias Observation = SparkObservation

    public struct Configuration: Sendable, Hashable {
        public var layout: SparkLayout
        public var spec: JobSpec
        public init(layout: SparkLayout = SparkLayout(), spec: JobSpec) {
            self.layout = layout
            self.spec = spec
        }
    }

    enum Purpose: Sendable {
        case skeleton
        case submit
        case driverStatus
        case state
        case results
        case reduceOutput(Int)
    }

    public let configuration: Configuration
    var engine = Engine<Purpose, Never>()
    var skeleton: Skeleton
    var outputs: [Int: [UInt8]] = [:]
    var gathering = false
    var lastProgress = -1
    var finished = false
    /// The job's result, once gathered.
    public private(set) var result: [UInt8]?
    /// Why the job failed, when it did.
    public private(set) var failure: String?

    public init(_ configuration: Configuration) {
        self.configuration = configuration
        self.skeleton = Skeleton(configuration.layout, extra: [configuration.layout.resultDir(configuration.spec.id)])
    }

    var layout: SparkLayout { configuration.layout }
    var spec: JobSpec { configuration.spec }

    public mutating func handle(_ input: ProgramInput, nowMs: Int64) -> [ProgramAction<SparkObservation>] {
        guard !finished else { return [] }
        switch input {
        case .start:
            engine.call(.skeleton, skeleton.current)
        case .reply(let callID, let result):
            guard let (purpose, result) = engine.reply(callID, result) else { break }
            if case .failure(.sessionExpired) = result { end() } else { reply(purpose, result) }
        case .watch(let callID, _, _):
            switch engine.watchFired(callID) {
            case .results?: engine.call(.results, .getChildren(path: layout.resultDir(spec.id), watch: true), watch: true)
            case .state?: engine.call(.state, .getData(path: layout.app(spec.id), watch: true), watch: true)
            default: break
            }
        case .session(let event):
            if event == .expired || event == .closed { end() }
        case .timer(let timerID):
            _ = engine.timerFired(timerID)
        }
        return engine.drain()
    }

    mutating func end() {
        finished = true
        engine.observe(.sessionEnded(who: "driver_" + spec.id))
        engine.finish()
    }

    mutating func reply(_ purpose: Purpose, _ result: Result<Response, ErrorCode>) {
        switch purpose {
        case .skeleton:
            skeleton.next += 1
            if skeleton.done {
                engine.call(.submit, Engine<Purpose, Never>.create(layout.app(spec.id), JobState.encode(spec, .running)))
            } else {
                engine.call(.skeleton, skeleton.current)
            }
        case .submit:
            engine.call(.driverStatus, Engine<Purpose, Never>.create(layout.driverStatus(spec.id), KeyValues.encode([("job", spec.id)])))
        case .driverStatus:
            engine.call(.state, .getData(path: layout.app(spec.id), watch: true), watch: true)
            engine.call(.results, .getChildren(path: layout.resultDir(spec.id), watch: true), watch: true)
        case .state:
            if case .success(.getData(let data, _)) = result, JobState.of(data ?? []) == .failed, failure == nil {
                let reason = KeyValues.decode(data ?? [])["reason"] ?? "failed"
                failure = reason
                engine.observe(.jobFailed(job: spec.id, reason: reason))
                finished = true
                engine.finish()
            }
        case .results:
            guard case .success(.getChildren(let children)) = result else { return }
            let done = Set(children.compactMap(TaskID.init(name:)))
            let total = spec.maps + spec.reduces
            let committed = done.filter { $0.index < ($0.stage == .map ? spec.maps : spec.reduces) }.count
            if committed != lastProgress {
                lastProgress = committed
                engine.observe(.progress(job: spec.id, committed: committed, total: total))
            }
            if !gathering, spec.tasks(.reduce).allSatisfy(done.contains) {
                gathering = true
                for index in 0..<spec.reduces {
                    engine.call(.reduceOutput(index), .getData(path: layout.result(spec.id, TaskID(.reduce, index)), watch: false))
                }
            }
        case .reduceOutput(let index):
            guard case .success(.getData(let data, _)) = result else { return }
            outputs[index] = data ?? []
            if outputs.count == spec.reduces, self.result == nil {
                let bytes = Jobs.result(spec, reduceOutputs: (0..<spec.reduces).map { outputs[$0]! })
                self.result = bytes
                engine.observe(.result(job: spec.id, digest: Jobs.digest(bytes), bytes: bytes.count))
                finished = true
                engine.finish()
            }
        }
    }
}
