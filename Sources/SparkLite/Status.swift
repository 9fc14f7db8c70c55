import Foundation
import SparkLiteCore
import ZKClient
import ZKRecipesCore

/// What `minizk spark status` shows, read from the tree (no master needs to be up).
public struct SparkStatus: Codable, Sendable, Hashable {
    public struct Master: Codable, Sendable, Hashable {
        public var id: String
        public var node: String
        public var leader: Bool
    }
    public struct Worker: Codable, Sendable, Hashable {
        public var id: String
        public var capacity: Int
        public var running: Int
    }
    public struct Job: Codable, Sendable, Hashable {
        public var id: String
        public var kind: String
        public var state: String
        public var committed: Int
        public var total: Int
        public var stage: String
    }
    public var root: String
    public var epoch: Int64
    public var masters: [Master]
    public var workers: [Worker]
    public var jobs: [Job]
    public var config: [String: String]

    public static func read(_ client: ZooKeeperClient, layout: SparkLayout = SparkLayout()) async throws -> SparkStatus {
        func children(_ path: String) async -> [String] { (try? await client.getChildren(path)) ?? [] }
        func data(_ path: String) async -> [UInt8]? { try? await client.getData(path).data }
        let latch = CuratorNames.sorted(await children(layout.leaderElection), lockName: CuratorNames.latch)
        var masters: [Master] = []
        for (index, node) in latch.enumerated() {
            let id = String(decoding: await data(layout.leaderElection + "/" + node) ?? [], as: UTF8.self)
            masters.append(Master(id: id, node: node, leader: index == 0))
        }
        var workers: [Worker] = []
        for id in await children(layout.workers).sorted() {
            let capacity = KeyValues.decode(await data(layout.worker(id)) ?? [])["capacity"].flatMap { Int($0) } ?? 0
            let running = await children(layout.assignmentDir(id)).count
            workers.append(Worker(id: id, capacity: capacity, running: running))
        }
        var jobs: [Job] = []
        for name in await children(layout.masterStatus).sorted() where name.hasPrefix("app_") {
            guard let bytes = await data(layout.masterStatus + "/" + name), let spec = JobSpec(bytes) else { continue }
            let done = Set(await children(layout.resultDir(spec.id)).compactMap(TaskID.init(name:)))
            let mapsDone = spec.tasks(.map).allSatisfy(done.contains)
            jobs.append(Job(
                id: spec.id, kind: spec.kind.rawValue, state: JobState.of(bytes).rawValue, committed: done.count,
                total: spec.maps + spec.reduces, stage: mapsDone ? "reduce" : "map"))
        }
        let epoch = Int64(String(decoding: await data(layout.epoch) ?? [], as: UTF8.self)) ?? 0
        let config = KeyValues.decode(await data(layout.clusterConfig) ?? [])
        return SparkStatus(root: layout.root, epoch: epoch, masters: masters, workers: workers, jobs: jobs, config: config)
    }

    public var text: String {
        var lines = ["root \(root)  epoch \(epoch)"]
        lines.append("masters: " + (masters.isEmpty ? "none" : masters.map { "\($0.id)\($0.leader ? " (leader)" : " (standby)")" }.joined(separator: ", ")))
        lines.append("workers: " + (workers.isEmpty ? "none" : workers.map { "\($0.id) \($0.running)/\($0.capacity)" }.joined(separator: ", ")))
        for job in jobs {
            lines.append("job \(job.id) \(job.kind) \(job.state) \(job.stage) \(job.committed)/\(job.total) tasks")
        }
        if !config.isEmpty { lines.append("config: " + config.keys.sorted().map { "\($0)=\(config[$0]!)" }.joined(separator: " ")) }
        return lines.joined(separator: "\n")
    }
}
