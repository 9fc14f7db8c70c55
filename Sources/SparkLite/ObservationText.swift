import Foundation
import SparkLiteCore

extension SparkObservation {
    /// The observation as flat fields (`event` first), for JSON lines and text logs.
    public var fields: [(String, String)] {
        switch self {
        case .bumping(let master, let epoch): return [("event", "bumping"), ("master", master), ("epoch", "\(epoch)")]
        case .elected(let master, let epoch, let zxid): return [("event", "elected"), ("master", master), ("epoch", "\(epoch)"), ("zxid", "\(zxid)")]
        case .recovered(let master, let epoch, let jobs, let workers):
            return [("event", "recovered"), ("master", master), ("epoch", "\(epoch)"), ("jobs", "\(jobs)"), ("workers", "\(workers)")]
        case .deposed(let master, let epoch, let reason): return [("event", "deposed"), ("master", master), ("epoch", "\(epoch)"), ("reason", reason)]
        case .assigned(let master, let epoch, let job, let task, let worker, let attempt, let zxid):
            return [("event", "assigned"), ("master", master), ("epoch", "\(epoch)"), ("job", job), ("task", task.name), ("worker", worker),
                    ("attempt", "\(attempt)"), ("zxid", "\(zxid)")]
        case .assignmentRefused(let master, let epoch, let job, let task, let code):
            return [("event", "assignmentRefused"), ("master", master), ("epoch", "\(epoch)"), ("job", job), ("task", task.name), ("code", "\(code)")]
        case .stageCompleted(let master, let job, let stage): return [("event", "stageCompleted"), ("master", master), ("job", job), ("stage", stage.rawValue)]
        case .jobCompleted(let master, let job): return [("event", "jobCompleted"), ("master", master), ("job", job)]
        case .jobFailed(let job, let reason): return [("event", "jobFailed"), ("job", job), ("reason", reason)]
        case .configApplied(let who, let version, let config):
            return [("event", "configApplied"), ("who", who), ("version", "\(version)"), ("maxAttempts", "\(config.maxAttempts)"),
                    ("taskDelayMs", "\(config.taskDelayMs)")]
        case .registered(let worker, let capacity): return [("event", "registered"), ("worker", worker), ("capacity", "\(capacity)")]
        case .taskStarted(let worker, let job, let task, let attempt):
            return [("event", "taskStarted"), ("worker", worker), ("job", job), ("task", task.name), ("attempt", "\(attempt)")]
        case .committed(let worker, let job, let task, let attempt, let zxid):
            return [("event", "committed"), ("worker", worker), ("job", job), ("task", task.name), ("attempt", "\(attempt)"), ("zxid", "\(zxid)")]
        case .duplicateDiscarded(let worker, let job, let task, let attempt):
            return [("event", "duplicateDiscarded"), ("worker", worker), ("job", job), ("task", task.name), ("attempt", "\(attempt)")]
        case .progress(let job, let committed, let total): return [("event", "progress"), ("job", job), ("committed", "\(committed)"), ("total", "\(total)")]
        case .result(let job, let digest, let bytes): return [("event", "result"), ("job", job), ("digest", digest), ("bytes", "\(bytes)")]
        case .sessionEnded(let who): return [("event", "sessionEnded"), ("who", who)]
        }
    }

    public var jsonLine: String {
        let body = fields.map { "\"\($0.0)\":\"\($0.1.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\""))\"" }
        return "{" + body.joined(separator: ",") + "}"
    }

    public var text: String { fields.map { $0.0 == "event" ? $0.1 : "\($0.0)=\($0.1)" }.joined(separator: " ") }
}
