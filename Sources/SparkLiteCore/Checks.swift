import ZKProtocol

/// Checkers over the observations of every SparkLite process of a run (collected from all of
/// them, in any order: they are judged by the zxids the ensemble gave them, which order them in
/// its one history).
public enum SparkChecks {
    public struct Violation: Sendable, Hashable, CustomStringConvertible {
        public var property: String
        public var detail: String
        public init(property: String, detail: String) {
            self.property = property
            self.detail = detail
        }
        public var description: String { "\(property): \(detail)" }
    }

    /// At most one master's assignments are accepted per epoch, and only while that epoch is
    /// current: an assignment tagged with epoch E and accepted at zxid Z must have been made by
    /// the master elected at E, and no election to a later epoch may precede Z. (Without the epoch
    /// check, a deposed master's late assignment is accepted after the next election: this fails.)
    public static func singleLeaderPerEpoch(_ observations: [SparkObservation]) -> [Violation] {
        var elections: [(epoch: Int64, zxid: Int64, master: String)] = []
        for case .elected(let master, let epoch, let zxid) in observations { elections.append((epoch, zxid, master)) }
        elections.sort { $0.zxid < $1.zxid }
        var violations: [Violation] = []
        var leaders: [Int64: Set<String>] = [:]
        for election in elections { leaders[election.epoch, default: []].insert(election.master) }
        for (epoch, masters) in leaders where masters.count > 1 {
            violations.append(Violation(property: "one master per epoch", detail: "epoch \(epoch) elected \(masters.sorted())"))
        }
        for case .assigned(let master, let epoch, let job, let task, let worker, let attempt, let zxid) in observations {
            let current = elections.last { $0.zxid < zxid }
            if current?.epoch != epoch || current?.master != master {
                let now = current.map { "epoch \($0.epoch) of \($0.master), elected at zxid \($0.zxid)" } ?? "no election"
                violations.append(Violation(
                    property: "assignments only from the current epoch's master",
                    detail: "\(master) assigned \(job)/\(task) attempt \(attempt) to \(worker) with epoch \(epoch) at zxid \(zxid); current: \(now)"))
            }
        }
        return violations
    }

    /// Every task's output is committed at most once.
    public static func committedOnce(_ observations: [SparkObservation]) -> [Violation] {
        var commits: [String: Int] = [:]
        for case .committed(_, let job, let task, _, _) in observations { commits["\(job)/\(task)", default: 0] += 1 }
        return commits.filter { $0.value > 1 }.keys.sorted().map {
            Violation(property: "an output is committed once", detail: "\($0) committed \(commits[$0]!) times")
        }
    }

    /// The driver's result equals the single-process computation.
    public static func resultMatches(_ spec: JobSpec, _ result: [UInt8]?) -> [Violation] {
        guard let result else { return [Violation(property: "the job finishes", detail: "\(spec.id): no result")] }
        let expected = Jobs.singleProcess(spec)
        guard result != expected else { return [] }
        return [Violation(property: "the result equals the single-process one",
                          detail: "\(spec.id): digest \(Jobs.digest(result)) (\(result.count) bytes), expected \(Jobs.digest(expected)) (\(expected.count) bytes)")]
    }
}
