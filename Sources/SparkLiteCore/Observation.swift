import ZKProtocol

/// What SparkLite's programs report: for their users (the CLI's progress line) and for the
/// checkers (`SparkChecks`). Zxids come from the replies, so that a checker can order what
/// different processes saw against the ensemble's one history.
public enum SparkObservation: Sendable, Hashable {
    /// A master sent the setData that bumps the epoch to `epoch`. Its outcome may never be
    /// known (the process crashes, the session ends): the epoch node can then hold an epoch no
    /// master was elected in.
    case bumping(master: String, epoch: Int64)
    /// A master bumped the epoch to `epoch` (the setData's mzxid is `zxid`): it leads.
    case elected(master: String, epoch: Int64, zxid: Int64)
    /// The new leader has read the persisted state back and schedules from now on.
    case recovered(master: String, epoch: Int64, jobs: Int, workers: Int)
    /// A master stopped leading: its session was lost (or presumed lost), or a write of its was
    /// refused by the epoch check.
    case deposed(master: String, epoch: Int64, reason: String)
    /// An assignment the ensemble accepted (the multi with the epoch check, or without it under
    /// the planted bug), created at `zxid`.
    case assigned(master: String, epoch: Int64, job: String, task: TaskID, worker: String, attempt: Int, zxid: Int64)
    /// An assignment the ensemble refused.
    case assignmentRefused(master: String, epoch: Int64, job: String, task: TaskID, code: ErrorCode)
    case stageCompleted(master: String, job: String, stage: Stage)
    case jobCompleted(master: String, job: String)
    case jobFailed(job: String, reason: String)
    /// A role applied a new version of `config/cluster`.
    case configApplied(who: String, version: Int32, config: ClusterConfig)
    case registered(worker: String, capacity: Int)
    case taskStarted(worker: String, job: String, task: TaskID, attempt: Int)
    /// A task's output was committed by this worker, at `zxid` (create-if-absent succeeded).
    case committed(worker: String, job: String, task: TaskID, attempt: Int, zxid: Int64)
    /// The output was already there (another attempt committed first): this one is discarded.
    case duplicateDiscarded(worker: String, job: String, task: TaskID, attempt: Int)
    /// The driver's view of a job: tasks committed out of all.
    case progress(job: String, committed: Int, total: Int)
    /// The driver gathered the job's result.
    case result(job: String, digest: String, bytes: Int)
    /// The program's session ended (expired or closed): the program finishes.
    case sessionEnded(who: String)
}
