import Foundation
import Logging
import NIOCore
import NIOPosix
import XCTest
import ZKCore
import ZKProtocol
import ZKStorage

@testable import ZKServer

/// A server restarted on the same SQLite directory serves what it acknowledged before, whether it
/// comes from the log alone or from a snapshot plus the log after it.
final class DurableRestartTests: XCTestCase {
    var directory: String!

    override func setUp() {
        directory = NSTemporaryDirectory() + "minizk-restart-\(UUID().uuidString)"
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func start(group: any EventLoopGroup, options: ServerOptions = ServerOptions()) async throws -> MiniZKServer {
        var config = ReplicaConfig()
        config.tickMs = 200
        config.dataDir = directory
        var storeOptions = SQLiteStore.Options()
        storeOptions.forceSync = false
        storeOptions.snapshotChunkBytes = 256
        let store = try SQLiteStore(directory: directory, options: storeOptions)
        return try await MiniZKServer.start(
            config: config, host: "127.0.0.1", port: 0, group: group, logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() },
            options: options, store: store)
    }

    /// Sends `count` creates in one write and returns the replies in order.
    private func pipelinedCreates(_ client: RawClient, prefix: String, count: Int) async throws -> [ServerFrame] {
        var buffer = ByteBuffer()
        for index in 0..<count {
            let request = Request.create(CreateRequest(path: "\(prefix)\(index)", data: Array("value \(index)".utf8), acl: ACL.openUnsafe, flags: 0))
            ClientMessageEncoder.encode(xid: Int32(index + 1), request, into: &buffer)
        }
        try await client.send(buffer)
        var replies: [ServerFrame] = []
        for _ in 0..<count {
            guard var payload = try await client.nextFrame() else { throw TestTimeout(what: "a reply to a create") }
            replies.append(try ServerMessageDecoder.decodeReply(&payload, opcode: OpCode.create.rawValue))
        }
        return replies
    }

    private func read(_ client: RawClient, _ path: String, xid: Int32) async throws -> [UInt8]? {
        let reply = try await client.call(xid: xid, .getData(path: path, watch: false))
        guard case .reply(let header, let body) = reply else { return nil }
        guard header.err == 0, case .getData(let data, _) = body else { return nil }
        return data
    }

    /// Snapshots are written by the storage thread after the replies: waits for one.
    private func waitForASnapshot(_ server: MiniZKServer, file: StaticString = #filePath, line: UInt = #line) async throws {
        var written: Int64 = 0
        for _ in 0..<1000 where written == 0 {
            written = try await server.snapshot().storage.snapshotsWritten
            if written == 0 { try await Task.sleep(for: .milliseconds(10)) }
        }
        XCTAssertGreaterThan(written, 0, file: file, line: line)
    }

    func testRestartOnTheSameDirectoryServesWhatWasAcknowledged() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let first = try await start(group: group)
        let client = try await RawClient.connect(port: first.localPort, group: group)
        _ = try await client.handshake()
        let replies = try await pipelinedCreates(client, prefix: "/node", count: 100)
        for (index, reply) in replies.enumerated() {
            guard case .reply(let header, .create(let path)) = reply, header.err == 0 else { return XCTFail("\(reply)") }
            XCTAssertEqual(path, "/node\(index)")
        }
        let before = try await first.snapshot()
        XCTAssertGreaterThanOrEqual(before.storage.loggedTransactions, 101, "a session and 100 creates")
        XCTAssertLessThanOrEqual(before.storage.fsyncBatches, before.storage.persistedSteps)
        await client.close()
        try await first.shutdown()

        let second = try await start(group: group)
        let reader = try await RawClient.connect(port: second.localPort, group: group)
        _ = try await reader.handshake()
        for index in [0, 42, 99] {
            let data = try await read(reader, "/node\(index)", xid: Int32(index + 1))
            XCTAssertEqual(data, Array("value \(index)".utf8))
        }
        let after = try await second.snapshot()
        XCTAssertEqual(after.status.nodeCount, 104, "four system nodes and 100 created")
        await reader.close()
        try await second.shutdown()
        try await group.shutdownGracefully()
    }

    func testSnapshotsAreTakenWhileServingAndRecoveredFrom() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        var options = ServerOptions()
        options.snapshotEveryTransactions = 20
        options.snapshotSeed = 7
        let first = try await start(group: group, options: options)
        let client = try await RawClient.connect(port: first.localPort, group: group)
        _ = try await client.handshake()
        for round in 0..<5 {
            _ = try await pipelinedCreates(client, prefix: "/r\(round)-", count: 20)
        }
        try await waitForASnapshot(first)
        await client.close()
        try await first.shutdown()

        var inspect = SQLiteStore.Options()
        inspect.readOnly = true
        let summary = try SQLiteStore(directory: directory, options: inspect).summary()
        XCTAssertFalse(summary.snapshots.isEmpty)

        let second = try await start(group: group, options: options)
        let reader = try await RawClient.connect(port: second.localPort, group: group)
        _ = try await reader.handshake()
        let data = try await read(reader, "/r4-19", xid: 1)
        XCTAssertEqual(data, Array("value 19".utf8))
        let status = try await second.snapshot().status
        XCTAssertEqual(status.nodeCount, 104)
        await reader.close()
        try await second.shutdown()
        try await group.shutdownGracefully()
    }

    /// An ACL id holding a character outside the BMP (written as Java writes it, two
    /// surrogates) is the same after a restart from a snapshot and the log as before it: both
    /// used to read it back as replacement characters.
    func testACharacterOutsideTheBMPSurvivesARestartFromASnapshot() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        var options = ServerOptions()
        options.snapshotEveryTransactions = 20
        options.snapshotSeed = 7
        let acl = [ACL(perms: .all, id: .anyone), ACL(perms: .read, id: Id(scheme: "sasl", id: "u\u{1F600}v"))]
        let first = try await start(group: group, options: options)
        let client = try await RawClient.connect(port: first.localPort, group: group)
        _ = try await client.handshake()
        let created = try await client.call(xid: 1, .create(CreateRequest(path: "/s", data: [1], acl: acl, flags: 0)))
        guard case .reply(let header, _) = created, header.err == 0 else { return XCTFail("\(created)") }
        for round in 0..<3 { _ = try await pipelinedCreates(client, prefix: "/f\(round)-", count: 20) }
        try await waitForASnapshot(first)
        await client.close()
        try await first.shutdown()

        let second = try await start(group: group, options: options)
        let reader = try await RawClient.connect(port: second.localPort, group: group)
        _ = try await reader.handshake()
        let reply = try await reader.call(xid: 1, .getACL(path: "/s"))
        guard case .reply(let readHeader, .getACL(let readACL, _)) = reply, readHeader.err == 0 else { return XCTFail("\(reply)") }
        XCTAssertEqual(readACL, acl)
        await reader.close()
        try await second.shutdown()
        try await group.shutdownGracefully()
    }

    func testASecondStoreOnALockedDirectoryIsRefused() throws {
        let dir = directory!
        let first = try SQLiteStore(directory: dir)
        _ = first
        // Record locks belong to a process, so the second opener must be another process.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [
            "-c",
            "import fcntl,sys; f=open(sys.argv[1],'a'); fcntl.lockf(f, fcntl.LOCK_EX|fcntl.LOCK_NB)",
            dir + "/" + SQLiteStore.lockFileName,
        ]
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        XCTAssertNotEqual(process.terminationStatus, 0, "another process could take the lock")
    }
}
