import ZKProtocol
import ZKRecipesCore

/// Where SparkLite keeps its state, under one root (default `/sparklite`). The first part is
/// Spark standalone's own layout (`spark.deploy.zookeeper.dir`); the rest is what Spark lacks.
///
///     <root>/leader_election/_c_<uuid>-latch-<seq>   Curator leader latch (ephemeral sequential)
///     <root>/master_status/app_<job>                 a submitted job: its spec and state
///     <root>/master_status/worker_<id>               a worker the leader has seen (its capacity)
///     <root>/master_status/driver_<job>              the driver that submitted the job
///     <root>/epoch                                   fencing counter (decimal); its version fences writes
///     <root>/config/cluster                          key=value lines, watched and applied live
///     <root>/locks/                                  named locks for jobs that need mutual exclusion
///     <root>/workers/<id>                            ephemeral registration; data: capacity=N
///     <root>/assignments/<worker>/<job>~<task>~a<attempt>   an assignment (persistent), data: epoch=E
///     <root>/results/<job>/<task>                    a task's output, created once (create-if-absent)
///
/// A task is named `map-0003` or `reduce-0001` (the stage, then the index, zero-padded).
public struct SparkLayout: Sendable, Hashable {
    public var root: String
    public init(root: String = "/sparklite") {
        precondition(root.hasPrefix("/") && !root.hasSuffix("/"), "root must be absolute without a trailing slash: \(root)")
        self.root = root
    }

    public var leaderElection: String { root + "/leader_election" }
    public var masterStatus: String { root + "/master_status" }
    public var epoch: String { root + "/epoch" }
    public var config: String { root + "/config" }
    public var clusterConfig: String { root + "/config/cluster" }
    public var locks: String { root + "/locks" }
    public var workers: String { root + "/workers" }
    public var assignments: String { root + "/assignments" }
    public var results: String { root + "/results" }

    public func worker(_ id: String) -> String { workers + "/" + id }
    public func assignmentDir(_ worker: String) -> String { assignments + "/" + worker }
    public func app(_ job: String) -> String { masterStatus + "/app_" + job }
    public func workerStatus(_ id: String) -> String { masterStatus + "/worker_" + id }
    public func driverStatus(_ job: String) -> String { masterStatus + "/driver_" + job }
    public func resultDir(_ job: String) -> String { results + "/" + job }
    public func result(_ job: String, _ task: TaskID) -> String { resultDir(job) + "/" + task.name }

    /// The persistent nodes every role makes sure of before anything else, parents first, with
    /// their initial data (created only when missing).
    public var skeleton: [(path: String, data: [UInt8])] {
        var paths: [(String, [UInt8])] = []
        var prefix = ""
        for part in root.split(separator: "/").dropLast() {
            prefix += "/" + part
            paths.append((prefix, []))
        }
        paths.append((root, []))
        paths += [
            (leaderElection, []), (masterStatus, []), (epoch, Array("0".utf8)), (config, []),
            (clusterConfig, []), (locks, []), (workers, []), (assignments, []), (results, []),
        ]
        return paths
    }
}

public enum Stage: String, Sendable, Hashable, Comparable, CaseIterable {
    case map
    case reduce
    public static func < (lhs: Stage, rhs: Stage) -> Bool { lhs == .map && rhs == .reduce }
}

/// One task of a job: a stage and an index in it.
public struct TaskID: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var stage: Stage
    public var index: Int
    public init(_ stage: Stage, _ index: Int) {
        self.stage = stage
        self.index = index
    }
    public var name: String {
        let digits = String(index)
        return stage.rawValue + "-" + String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
    public init?(name: String) {
        let parts = name.split(separator: "-")
        guard parts.count == 2, let stage = Stage(rawValue: String(parts[0])), let index = Int(parts[1]), index >= 0 else { return nil }
        self.init(stage, index)
    }
    public var description: String { name }
    public static func < (lhs: TaskID, rhs: TaskID) -> Bool { (lhs.stage, lhs.index) < (rhs.stage, rhs.index) }
}

/// The name of an assignment node: `<job>~<task>~a<attempt>`.
public struct Assignment: Sendable, Hashable, CustomStringConvertible {
    public var job: String
    public var task: TaskID
    public var attempt: Int
    public init(job: String, task: TaskID, attempt: Int) {
        self.job = job
        self.task = task
        self.attempt = attempt
    }
    public var name: String { "\(job)~\(task.name)~a\(attempt)" }
    public init?(name: String) {
        let parts = name.split(separator: "~")
        guard parts.count == 3, let task = TaskID(name: String(parts[1])), parts[2].hasPrefix("a"),
              let attempt = Int(parts[2].dropFirst()), attempt >= 1 else { return nil }
        self.init(job: String(parts[0]), task: task, attempt: attempt)
    }
    public var description: String { name }
}

/// `key=value` lines, the format of every SparkLite node's data (small and readable in zkCli).
public enum KeyValues {
    public static func encode(_ pairs: [(String, String)]) -> [UInt8] {
        Array(pairs.map { "\($0.0)=\($0.1)" }.joined(separator: "\n").utf8)
    }

    public static func decode(_ bytes: [UInt8]) -> [String: String] {
        var result: [String: String] = [:]
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            result[String(line[..<equals]).trimmed] = String(line[line.index(after: equals)...]).trimmed
        }
        return result
    }
}

extension String {
    var trimmed: String {
        var scalars = Substring(self)
        while let first = scalars.first, first == " " || first == "\t" || first == "\r" { scalars.removeFirst() }
        while let last = scalars.last, last == " " || last == "\t" || last == "\r" { scalars.removeLast() }
        return String(scalars)
    }
}

/// The live cluster configuration (`<root>/config/cluster`): masters and workers watch it and
/// apply a change at once.
public struct ClusterConfig: Sendable, Hashable {
    /// Attempts a task may have (the first included) before its job fails.
    public var maxAttempts = 8
    /// How long a worker holds a task before committing it (to watch a job run; 0 in tests).
    public var taskDelayMs: Int64 = 0
    public init() {}

    public init(_ bytes: [UInt8], defaults: ClusterConfig) {
        self = defaults
        let values = KeyValues.decode(bytes)
        if let text = values["maxAttempts"], let value = Int(text), value >= 1 { maxAttempts = value }
        if let text = values["taskDelayMs"], let value = Int64(text), value >= 0 { taskDelayMs = value }
    }

    public var encoded: [UInt8] { KeyValues.encode([("maxAttempts", String(maxAttempts)), ("taskDelayMs", String(taskDelayMs))]) }
}
