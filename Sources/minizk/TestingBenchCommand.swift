import ArgumentParser
import Foundation
import NIOCore
import ZKTesting

/// `minizk testing-bench`: what a test pays for a ZooKeeper with `TestEnsemble`, measured in this
/// process, to set beside Curator's TestingServer / TestingCluster (scripts/zktesting-bench.sh).
/// It measures; it asserts nothing.
struct TestingBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "testing-bench",
        abstract: "Time TestEnsemble's start-up to a client's first write, a session-expiry test and a leader fail-over test."
    )

    enum Scenario: String, ExpressibleByArgument, CaseIterable {
        /// Start to the first successful write, then close.
        case startup
        /// A session with an ephemeral node expires (manual clock: advance past its timeout).
        case expiry
        /// Kill the leader, wait for a new one, write again (three or more members).
        case failover
    }

    @Option(help: "startup, expiry or failover.")
    var scenario: Scenario = .startup

    @Option(help: "Members of the ensemble.")
    var members: Int = 1

    @Option(help: "Runs in this process (the first is reported apart as the cold one).")
    var runs: Int = 1

    @Option(help: "Session timeout of the expiry scenario, in ms.")
    var sessionTimeoutMs: Int32 = 4000

    func run() async throws {
        var times: [Double] = []
        for _ in 0..<runs {
            let started = ContinuousClock.now
            try await once()
            let elapsed = ContinuousClock.now - started
            times.append(Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15)
        }
        let warm = times.dropFirst().sorted()
        let median = warm.isEmpty ? times[0] : warm[warm.count / 2]
        print(String(format: "%@ members=%d runs=%d first=%.2f ms median(after first)=%.2f ms", scenario.rawValue, members, runs, times[0], median))
    }

    private func once() async throws {
        switch scenario {
        case .startup:
            try await withTestEnsemble(members: members) { zk in
                let client = try await TestClient.connect(port: zk.member(1).port, group: zk.eventLoopGroup)
                try await client.create("/first-write")
                try await client.close()
            }
        case .expiry:
            try await withTestEnsemble(members: members, clock: .manual) { zk in
                let leader = try await zk.leader()!
                let client = try await TestClient.connect(port: leader.port, group: zk.eventLoopGroup, timeoutMs: sessionTimeoutMs)
                try await client.create("/ephemeral", ephemeral: true)
                try await zk.advance(by: Int64(sessionTimeoutMs) + zk.config.tickMs)
                try await client.waitUntilClosed()
                let observer = try await TestClient.connect(port: leader.port, group: zk.eventLoopGroup)
                guard try await observer.exists("/ephemeral") == nil else { throw ValidationError("the ephemeral outlived its session") }
                try await observer.close()
            }
        case .failover:
            try await withTestEnsemble(members: max(members, 3), tickMs: 200) { zk in
                let client = try await TestClient.connect(port: try await zk.leader()!.port, group: zk.eventLoopGroup)
                try await client.create("/before")
                await client.disconnect()
                let old = try await zk.killLeader()
                try await zk.awaitReady()
                let new = try await zk.leader()!
                guard new.id != old.id else { throw ValidationError("no new leader") }
                let writer = try await TestClient.connect(port: new.port, group: zk.eventLoopGroup)
                try await writer.create("/after")
                try await writer.close()
            }
        }
    }
}
