import Logging
import NIOCore
import NIOPosix
import XCTest
import ZKCore
import ZKProtocol
@testable import ZKServer
import ZKStorage

/// Replicas sharing an event loop take turns writing on it (`LoopStorageTurns`).
final class LoopStorageTurnsTests: XCTestCase {
    func testOneInstancePerLoopAndOnlyTheLastToDecideWritesOnTheLoop() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let loops = Array(group.makeIterator())
        let first = LoopStorageTurns.forLoop(loops[0])
        XCTAssertTrue(first === LoopStorageTurns.forLoop(loops[0]))
        XCTAssertFalse(first === LoopStorageTurns.forLoop(loops[1]))

        final class Member {}
        let (x, y, z) = (Member(), Member(), Member())
        let (idX, idY, idZ) = (ObjectIdentifier(x), ObjectIdentifier(y), ObjectIdentifier(z))
        first.pending(idX)
        first.pending(idY)
        first.pending(idZ)
        XCTAssertFalse(first.decide(idX), "others still deciding: hand to the thread")
        XCTAssertFalse(first.decide(idY))
        XCTAssertTrue(first.decide(idZ), "the last one writes on the loop")
        // A member that stops no longer holds the others back.
        first.pending(idX)
        first.pending(idY)
        first.leave(idY)
        XCTAssertTrue(first.decide(idX))
        // Alone on its loop, a member always may.
        first.pending(idZ)
        XCTAssertTrue(first.decide(idZ))
        withExtendedLifetime((x, y, z)) {}
        try await group.shutdownGracefully()
    }

    /// Three SQLite replicas on one event loop: in each round of a write only one of them writes
    /// on the loop; the others' fsyncs run beside it on their storage threads.
    func testAnInProcessEnsembleOnOneLoopWritesOneReplicaPerRoundOnTheLoop() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let directory = NSTemporaryDirectory() + "minizk-turns-\(UInt64.random(in: 0...UInt64.max))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var config = ReplicaConfig()
        config.tickMs = 100
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let ensemble = try await Ensemble.start(nodes: 3, config: config, group: group, logger: logger) { id in
            var options = SQLiteStore.Options()
            options.forceSync = false
            return try SQLiteStore(directory: "\(directory)/node-\(id)", options: options)
        }
        let serving = try await ensemble.waitUntilServing()
        XCTAssertTrue(serving)
        let client = try await RawClient.connect(port: ensemble.servers[0].localPort, group: group)
        _ = try await client.handshake()
        let writes = 40
        for index in 0..<writes {
            let request = Request.create(CreateRequest(path: "/n\(index)", data: [1], acl: ACL.openUnsafe, flags: 0))
            guard case .reply(let header, _) = try await client.call(xid: Int32(index + 1), request) else { return XCTFail() }
            XCTAssertEqual(header.err, 0)
        }
        await client.close()
        var batches: Int64 = 0
        var onLoop: Int64 = 0
        for server in ensemble.servers {
            let storage = try await server.snapshot().storage
            batches += storage.fsyncBatches
            onLoop += storage.batchesWrittenOnLoop
        }
        XCTAssertGreaterThanOrEqual(batches, Int64(3 * writes))
        XCTAssertGreaterThan(onLoop, 0, "a lone append is still written on the loop")
        XCTAssertLessThan(onLoop * 2, batches, "several replicas wrote on the loop in one round: \(onLoop) of \(batches)")
        try await ensemble.shutdown()
        try await group.shutdownGracefully()
    }
}
