import Testing
import ZKTesting

/// The scoped helper from Swift Testing.
@Suite struct SwiftTestingUsage {
    @Test func sessionExpiresOnTheManualClock() async throws {
        try await withTestEnsemble(members: 3, clock: .manual) { zk in
            let leader = try #require(try await zk.leader())
            let client = try await TestClient.connect(port: leader.port, group: zk.eventLoopGroup, timeoutMs: 4000)
            try await client.create("/lock", ephemeral: true)
            try await zk.advance(by: 4000)
            #expect(try await zk.dump() == ["/lock": ""])
            try await zk.advance(by: 2000)
            #expect(try await zk.dump() == [:])
        }
    }
}
