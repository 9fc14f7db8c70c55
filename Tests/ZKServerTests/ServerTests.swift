import Logging
import NIOCore
import NIOPosix
import XCTest
import ZKCore
import ZKProtocol
import ZKStorage
@testable import ZKServer

/// End-to-end tests of the runtime shell: a real server on a loopback port chosen by the kernel,
/// and raw clients that speak the wire protocol through the codec.
///
/// These need the jute codec and the replica. With the placeholder replica on `main` (its `step`
/// answers nothing), every test that expects a reply to a ConnectRequest or a request times out;
/// they pass once the real replica lands. The four-letter-word tests only need the codec.
final class ServerTests: XCTestCase {
    /// These tests read every four-letter word: they opt in to all of them (ZooKeeper's
    /// `4lw.commands.whitelist=*`); the default serves `srvr` only.
    private static var everyFourLetterWord: ServerOptions {
        var options = ServerOptions()
        options.fourLetterWords = .all
        return options
    }

    private func withServer(
        options: ServerOptions = ServerTests.everyFourLetterWord,
        readOnlyMode: Bool = false,
        _ body: (MiniZKServer, any EventLoopGroup, RecordingLogHandler.Storage) async throws -> Void
    ) async throws {
        try await withStandaloneServer(options: options, readOnlyMode: readOnlyMode, body)
    }

    private func fourLetterWord(_ word: String, port: Int, group: any EventLoopGroup) async throws -> String {
        let client = try await RawClient.connect(port: port, group: group)
        try await client.send(bytes: Array(word.utf8))
        return try await client.textUntilClosed()
    }

    // MARK: - Starting and stopping

    func testStartOnPortZeroReportsTheBoundPort() async throws {
        try await withServer { server, _, _ in
            XCTAssertGreaterThan(server.localPort, 0)
            let snapshot = try await server.snapshot()
            XCTAssertEqual(snapshot.config.clientPort, server.localPort)
        }
    }

    func testShutdownClosesClientConnections() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await MiniZKServer.start(
            config: ReplicaConfig(), host: "127.0.0.1", port: 0, group: group,
            logger: .recording(into: RecordingLogHandler.Storage()))
        let client = try await RawClient.connect(port: server.localPort, group: group)
        try await server.shutdown()
        try await client.waitUntilClosed()
        do {
            let late = try await RawClient.connect(port: server.localPort, group: group)
            await late.close()
            XCTFail("the client port still accepts connections after shutdown")
        } catch {
            // Connection refused: the listening socket is closed.
        }
        try await group.shutdownGracefully()
    }

    // MARK: - Sessions (need the codec and the replica)

    func testConnectHandshake() async throws {
        try await withServer { server, group, _ in
            let client = try await RawClient.connect(port: server.localPort, group: group)
            let response = try await client.handshake(timeoutMs: 10_000)
            XCTAssertGreaterThan(response.timeoutMs, 0)
            XCTAssertNotEqual(response.sessionId, 0)
            XCTAssertEqual(response.password.count, 16)
            await client.close()
        }
    }

    func testCreateThenGetDataRoundTrip() async throws {
        try await withServer { server, group, _ in
            let client = try await RawClient.connect(port: server.localPort, group: group)
            _ = try await client.handshake()
            let data = Array("hello".utf8)
            let created = try await client.call(
                xid: 1, .create(CreateRequest(path: "/greeting", data: data, acl: ACL.openUnsafe, flags: 0)))
            guard case .reply(let createHeader, .create(let path)) = created else {
                return XCTFail("unexpected reply to create: \(created)")
            }
            XCTAssertEqual(createHeader.xid, 1)
            XCTAssertEqual(createHeader.err, 0)
            XCTAssertEqual(path, "/greeting")

            let read = try await client.call(xid: 2, .getData(path: "/greeting", watch: false))
            guard case .reply(let readHeader, .getData(let readData, let stat)) = read else {
                return XCTFail("unexpected reply to getData: \(read)")
            }
            XCTAssertEqual(readHeader.xid, 2)
            XCTAssertEqual(readHeader.err, 0)
            XCTAssertEqual(readData, data)
            XCTAssertEqual(stat.dataLength, 5)
            XCTAssertEqual(stat.czxid, createHeader.zxid)
            await client.close()
        }
    }

    /// Needs the real replica: the shell only forwards the request, the replica answers -6.
    func testUnknownOpcodeIsAnsweredUnimplemented() async throws {
        try await withServer { server, group, _ in
            let client = try await RawClient.connect(port: server.localPort, group: group)
            _ = try await client.handshake()
            // A request header with opcode 999 and no record.
            var frame = ByteBuffer()
            frame.writeInteger(Int32(8))
            frame.writeInteger(Int32(7))  // xid
            frame.writeInteger(Int32(999))  // type
            try await client.send(frame)
            guard var payload = try await client.nextFrame() else {
                return XCTFail("the server closed the connection instead of answering")
            }
            XCTAssertEqual(payload.readInteger(as: Int32.self), 7)
            _ = payload.readInteger(as: Int64.self)  // zxid
            XCTAssertEqual(payload.readInteger(as: Int32.self), ErrorCode.unimplemented.rawValue)
            await client.close()
        }
    }

    /// Clients may pipeline requests right behind their ConnectRequest; replies come back in
    /// request order.
    func testPipelinedConnectAndRequestsAreAnsweredInOrder() async throws {
        try await withServer { server, group, _ in
            let client = try await RawClient.connect(port: server.localPort, group: group)
            var buffer = ByteBuffer()
            ClientMessageEncoder.encode(ConnectRequest(timeoutMs: 10_000), into: &buffer)
            ClientMessageEncoder.encode(
                xid: 1, .create(CreateRequest(path: "/p", data: [1], acl: ACL.openUnsafe, flags: 0)), into: &buffer)
            ClientMessageEncoder.encode(xid: 2, .getData(path: "/p", watch: false), into: &buffer)
            ClientMessageEncoder.encode(xid: 3, .exists(path: "/p", watch: false), into: &buffer)
            try await client.send(buffer)

            guard var connect = try await client.nextFrame() else { return XCTFail("closed") }
            XCTAssertGreaterThan(try ServerMessageDecoder.decodeConnectResponse(&connect).timeoutMs, 0)
            let opcodes: [Int32] = [OpCode.create.rawValue, OpCode.getData.rawValue, OpCode.exists.rawValue]
            var zxids: [Int64] = []
            for (index, opcode) in opcodes.enumerated() {
                guard var payload = try await client.nextFrame() else { return XCTFail("closed") }
                guard case .reply(let header, _) = try ServerMessageDecoder.decodeReply(&payload, opcode: opcode) else {
                    return XCTFail("not a reply")
                }
                XCTAssertEqual(header.xid, Int32(index + 1))
                XCTAssertEqual(header.err, 0)
                zxids.append(header.zxid)
            }
            XCTAssertEqual(Set(zxids).count, 1, "the reads see the write's zxid: \(zxids)")
            await client.close()
        }
    }

    /// A reply carries its request's xid, whatever the opcode. ZooKeeper's Java client (so
    /// Curator, Kafka, Spark) stamps the SetWatches it sends after a reconnect with an ordinary
    /// xid and drops the connection ("Xid out of order") unless the reply echoes it; kazoo and the
    /// C client send -8. Golden bytes: a ConnectRequest followed at once by SetWatches (xid 1),
    /// SetWatches2 (xid 2), SetWatches (xid -8) and exists (xid 3) gets replies 1, 2, -8, 3,
    /// as from ZooKeeper 3.8.
    func testSetWatchesReplyEchoesTheRequestXid() async throws {
        try await withServer { server, group, _ in
            let client = try await RawClient.connect(port: server.localPort, group: group)
            let frames: [[UInt8]] = [
                // ConnectRequest: protocolVersion 0, lastZxidSeen 0, timeOut 10000, sessionId 0,
                // passwd of 16 zero bytes, readOnly false.
                [0, 0, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x27, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16]
                    + [UInt8](repeating: 0, count: 16) + [0],
                // SetWatches, xid 1: relativeZxid 0, three empty path lists.
                [0, 0, 0, 28, 0, 0, 0, 1, 0, 0, 0, 101, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                // SetWatches2, xid 2: relativeZxid 0, five empty path lists.
                [0, 0, 0, 36, 0, 0, 0, 2, 0, 0, 0, 105, 0, 0, 0, 0, 0, 0, 0, 0]
                    + [UInt8](repeating: 0, count: 20),
                // SetWatches, xid -8.
                [0, 0, 0, 28, 0xFF, 0xFF, 0xFF, 0xF8, 0, 0, 0, 101, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                // exists "/" without a watch, xid 3.
                [0, 0, 0, 14, 0, 0, 0, 3, 0, 0, 0, 3, 0, 0, 0, 1, 0x2F, 0],
            ]
            try await client.send(bytes: frames.flatMap { $0 })
            guard var connect = try await client.nextFrame() else { return XCTFail("closed after connect") }
            XCTAssertGreaterThan(try ServerMessageDecoder.decodeConnectResponse(&connect).timeoutMs, 0)
            var replies: [(xid: Int32, err: Int32)] = []
            for _ in 0..<4 {
                guard let payload = try await client.nextFrame() else { return XCTFail("closed after \(replies)") }
                // ReplyHeader: int xid, long zxid, int err.
                let xid = payload.getInteger(at: payload.readerIndex, as: Int32.self)!
                let err = payload.getInteger(at: payload.readerIndex + 12, as: Int32.self)!
                replies.append((xid, err))
            }
            XCTAssertEqual(replies.map(\.xid), [1, 2, -8, 3])
            XCTAssertEqual(replies.map(\.err), [0, 0, 0, 0])
            await client.close()
        }
    }

    /// The tick timer drives session expiry: a session that sends nothing is expired by the
    /// replica and its connection closed.
    func testSilentSessionExpiresOnTicks() async throws {
        try await withServer { server, group, _ in
            let client = try await RawClient.connect(port: server.localPort, group: group)
            let response = try await client.handshake(timeoutMs: 1)
            XCTAssertEqual(response.timeoutMs, 400, "clamped to 2 ticks of 200 ms")
            try await client.waitUntilClosed(timeout: .seconds(10))
        }
    }

    /// Nothing that depends on a transaction is sent before the store says it is durable: with a
    /// store that cannot write, a new session never gets its ConnectResponse, and the server stops
    /// serving with the reason logged.
    func testNoReplyWithoutDurability() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let logs = RecordingLogHandler.Storage()
        let server = try await MiniZKServer.start(
            config: ReplicaConfig(), host: "127.0.0.1", port: 0, group: group, logger: .recording(into: logs),
            store: FailingStore())
        let client = try await RawClient.connect(port: server.localPort, group: group)
        var buffer = ByteBuffer()
        ClientMessageEncoder.encode(ConnectRequest(timeoutMs: 10_000), into: &buffer)
        try await client.send(buffer)
        let unanswered = try await client.nextFrame()
        XCTAssertNil(unanswered, "a ConnectResponse was sent for a session that is not durable")
        let entry = try await logs.first { $0.level == .critical }
        XCTAssertEqual(entry.message, "replica stops serving")
        try await server.shutdown()
        try await group.shutdownGracefully()
    }

    /// A replica whose store failed keeps its port for four-letter words: `mntr` says it does not
    /// serve and why, `srvr` says what ZooKeeper says, a session is refused (the connection is
    /// closed), and `storeReleased` completes, after which nothing touches the store.
    func testAFailedStoreIsReportedByMntrAndSessionsAreRefused() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var options = ServerOptions()
        options.fourLetterWords = .all
        let server = try await MiniZKServer.start(
            config: ReplicaConfig(), host: "127.0.0.1", port: 0, group: group, logger: Logger(label: "test"),
            options: options, store: FailingStore())
        let failed = AsyncStream<String> { continuation in server.whenStoreFails { continuation.yield($0) } }
        let client = try await RawClient.connect(port: server.localPort, group: group)
        var buffer = ByteBuffer()
        ClientMessageEncoder.encode(ConnectRequest(timeoutMs: 10_000), into: &buffer)
        try await client.send(buffer)
        var reasons = failed.makeAsyncIterator()
        let reason = await reasons.next()
        XCTAssertEqual(reason?.contains("database or disk is full"), true, "\(reason ?? "no failure")")
        try await server.storeReleased()

        let mntr = try await fourLetterWord("mntr", port: server.localPort, group: group)
        XCTAssertTrue(mntr.contains("zk_server_state\tnot_serving\n"), mntr)
        XCTAssertTrue(mntr.contains("zk_store_failed\t1\n"), mntr)
        XCTAssertTrue(mntr.contains("zk_store_failure\t") && mntr.contains("database or disk is full"), mntr)
        let srvr = try await fourLetterWord("srvr", port: server.localPort, group: group)
        XCTAssertEqual(srvr, FourLetterWordResponder.notServing)
        let ruok = try await fourLetterWord("ruok", port: server.localPort, group: group)
        XCTAssertEqual(ruok, "imok")

        let refused = try await RawClient.connect(port: server.localPort, group: group)
        try await refused.send(buffer)
        let answer = try await refused.nextFrame()
        XCTAssertNil(answer, "a session was answered by a replica whose store failed")
        try await server.shutdown()
        try await group.shutdownGracefully()
    }

    // MARK: - Bad input closes only the connection it came on

    func testMalformedRequestClosesOnlyThatConnection() async throws {
        try await withServer { server, group, logs in
            let bad = try await RawClient.connect(port: server.localPort, group: group)
            let good = try await RawClient.connect(port: server.localPort, group: group)
            _ = try await bad.handshake()
            _ = try await good.handshake()

            // getData whose path announces 100 bytes that never come.
            var frame = ByteBuffer()
            frame.writeInteger(Int32(12))
            frame.writeInteger(Int32(5))  // xid
            frame.writeInteger(OpCode.getData.rawValue)
            frame.writeInteger(Int32(100))  // path length
            try await bad.send(frame)
            try await bad.waitUntilClosed()

            let reply = try await good.call(xid: 1, .exists(path: "/", watch: false))
            guard case .reply(let header, _) = reply else { return XCTFail("unexpected reply \(reply)") }
            XCTAssertEqual(header.err, 0)
            XCTAssertTrue(
                logs.all.contains { $0.message == "closing a client connection" && ($0.metadata["reason"] ?? "").contains("undecodable request") },
                "no logged reason: \(logs.all.map(\.message))")
            await good.close()
        }
    }

    func testMalformedConnectRequestClosesTheConnection() async throws {
        try await withServer { server, group, logs in
            let bad = try await RawClient.connect(port: server.localPort, group: group)
            try await bad.send(bytes: [0, 0, 0, 3, 1, 2, 3])
            try await bad.waitUntilClosed()
            XCTAssertTrue(
                logs.all.contains { ($0.metadata["reason"] ?? "").contains("undecodable ConnectRequest") },
                "no logged reason: \(logs.all.map(\.message))")
            let ruok = try await fourLetterWord("ruok", port: server.localPort, group: group)
            XCTAssertEqual(ruok, "imok")
        }
    }

    func testOversizedFrameClosesOnlyThatConnection() async throws {
        try await withServer { server, group, logs in
            let bad = try await RawClient.connect(port: server.localPort, group: group)
            let good = try await RawClient.connect(port: server.localPort, group: group)
            _ = try await bad.handshake()
            _ = try await good.handshake()

            var frame = ByteBuffer()
            frame.writeInteger(Int32(ZKFrameDecoder.defaultFrameBytesMax + 1))
            frame.writeRepeatingByte(0, count: 64)
            try await bad.send(frame)
            try await bad.waitUntilClosed()

            let reply = try await good.call(xid: 1, .exists(path: "/", watch: false))
            guard case .reply(let header, _) = reply else { return XCTFail("unexpected reply \(reply)") }
            XCTAssertEqual(header.err, 0)
            XCTAssertTrue(
                logs.all.contains { ($0.metadata["reason"] ?? "").contains("exceeds the maximum") },
                "no logged reason: \(logs.all.map { "\($0.message) \($0.metadata)" })")
            await good.close()
        }
    }

    func testConfiguredFrameMaximumApplies() async throws {
        var options = ServerOptions()
        options.frameBytesMax = 1000
        try await withServer(options: options) { server, group, _ in
            let client = try await RawClient.connect(port: server.localPort, group: group)
            _ = try await client.handshake()
            var buffer = ByteBuffer()
            ClientMessageEncoder.encode(
                xid: 1,
                .create(CreateRequest(path: "/big", data: [UInt8](repeating: 7, count: 2000), acl: ACL.openUnsafe, flags: 0)),
                into: &buffer)
            try await client.send(buffer)
            try await client.waitUntilClosed()
        }
    }

    // MARK: - Back-pressure

    /// Creates `/big` with `bytes` bytes of data through a session of its own.
    private func createBigNode(bytes: Int, port: Int, group: any EventLoopGroup) async throws {
        let writer = try await RawClient.connect(port: port, group: group)
        _ = try await writer.handshake()
        let created = try await writer.call(
            xid: 1,
            .create(CreateRequest(path: "/big", data: [UInt8](repeating: 0x5A, count: bytes), acl: ACL.openUnsafe, flags: 0)))
        guard case .reply(let header, _) = created, header.err == 0 else { throw TestTimeout(what: "create /big: \(created)") }
        await writer.close()
    }

    private func getDataRequests(xids: ClosedRange<Int32>, path: String) -> ByteBuffer {
        var buffer = ByteBuffer()
        for xid in xids {
            ClientMessageEncoder.encode(xid: xid, .getData(path: path, watch: false), into: &buffer)
        }
        return buffer
    }

    /// A client that sends requests but does not read its replies stops being read from; once it
    /// reads again, the server reads its later requests too and every reply arrives, in order.
    func testClientThatDoesNotReadIsPausedThenResumed() async throws {
        var options = ServerOptions()
        options.outboundBytesReadPause = 256 * 1024
        options.outboundBytesMax = 256 << 20
        try await withServer(options: options) { server, group, logs in
            try await createBigNode(bytes: 900_000, port: server.localPort, group: group)
            let slow = try await RawClient.connect(
                port: server.localPort, group: group, receiveBufferBytes: 4096, autoRead: false)
            var handshake = ByteBuffer()
            ClientMessageEncoder.encode(ConnectRequest(timeoutMs: 30_000), into: &handshake)
            try await slow.send(handshake)
            // More than the kernel's socket buffers hold (tcp_wmem's maximum is 4 MiB here).
            try await slow.send(getDataRequests(xids: 1...10, path: "/big"))
            _ = try await logs.first { $0.message.hasPrefix("pausing reads") }
            // These arrive while reading is paused; they are answered only if reading resumes.
            try await slow.send(getDataRequests(xids: 11...20, path: "/big"))
            try await slow.startReading()

            guard var connectPayload = try await slow.nextFrame() else { return XCTFail("closed before the ConnectResponse") }
            _ = try ServerMessageDecoder.decodeConnectResponse(&connectPayload)
            for expected in Int32(1)...20 {
                guard var payload = try await slow.nextFrame(timeout: .seconds(30)) else {
                    return XCTFail("closed before the reply to xid \(expected)")
                }
                let frame = try ServerMessageDecoder.decodeReply(&payload, opcode: OpCode.getData.rawValue)
                guard case .reply(let header, .getData(let data, _)) = frame else { return XCTFail("unexpected \(frame)") }
                XCTAssertEqual(header.xid, expected)
                XCTAssertEqual(data?.count, 900_000)
            }
            await slow.close()
        }
    }

    /// Pausing reads cannot bound a client that never reads: past `outboundBytesMax` waiting bytes
    /// its connection is closed, with the reason logged, and other clients carry on.
    func testClientOverTheOutboundLimitIsClosed() async throws {
        var options = ServerOptions()
        options.outboundBytesReadPause = 256 << 20
        options.outboundBytesMax = 1 << 20
        try await withServer(options: options) { server, group, logs in
            try await createBigNode(bytes: 900_000, port: server.localPort, group: group)
            let stuck = try await RawClient.connect(
                port: server.localPort, group: group, receiveBufferBytes: 4096, autoRead: false)
            var handshake = ByteBuffer()
            ClientMessageEncoder.encode(ConnectRequest(timeoutMs: 30_000), into: &handshake)
            try await stuck.send(handshake)
            // The server may close the connection while the requests are still being sent, or
            // before the client turns reading on: both are the behaviour under test.
            try? await stuck.send(getDataRequests(xids: 1...20, path: "/big"))
            let entry = try await logs.first { ($0.metadata["reason"] ?? "").contains("wait to be written") }
            XCTAssertEqual(entry.message, "closing a client connection")
            try? await stuck.startReading()
            try await stuck.waitUntilClosed()

            let other = try await RawClient.connect(port: server.localPort, group: group)
            _ = try await other.handshake()
            let reply = try await other.call(xid: 1, .exists(path: "/big", watch: false))
            guard case .reply(let header, _) = reply else { return XCTFail("unexpected reply \(reply)") }
            XCTAssertEqual(header.err, 0)
            await other.close()
        }
    }

    // MARK: - Four-letter words over the wire (need the codec's FourLetterWord.detect)

    func testDefaultWhitelistServesSrvrOnly() async throws {
        try await withServer(options: ServerOptions()) { server, group, logs in
            let srvr = try await fourLetterWord("srvr", port: server.localPort, group: group)
            XCTAssertTrue(srvr.hasPrefix("Zookeeper version: "), srvr)
            for word in FourLetterWord.allCases where word != .srvr && word != .stmk {
                let text = try await fourLetterWord(word.rawValue, port: server.localPort, group: group)
                XCTAssertEqual(text, "\(word.rawValue) is not executed because it is not in the whitelist.\n")
            }
            // stmk is refused before its mask is read: the trace mask stays ZooKeeper's default.
            let client = try await RawClient.connect(port: server.localPort, group: group)
            try await client.send(bytes: Array("stmk".utf8) + [0, 0, 0, 0, 0, 0, 0, 7])
            let stmk = try await client.textUntilClosed()
            XCTAssertEqual(stmk, "stmk is not executed because it is not in the whitelist.\n")
            let snapshot = try await server.snapshot()
            XCTAssertEqual(snapshot.traceMask, FourLetterWordResponder.defaultTraceMask)
            XCTAssertTrue(logs.all.contains { $0.metadata["word"] == "mntr" && $0.message.contains("not in the whitelist") })
        }
    }

    func testWhitelistNamesTheWordsServed() async throws {
        var options = ServerOptions()
        options.fourLetterWords = FourLetterWordWhitelist(parsing: " ruok , mntr,nope")
        try await withServer(options: options, readOnlyMode: true) { server, group, _ in
            let ruok = try await fourLetterWord("ruok", port: server.localPort, group: group)
            XCTAssertEqual(ruok, "imok")
            let mntr = try await fourLetterWord("mntr", port: server.localPort, group: group)
            XCTAssertTrue(mntr.hasPrefix("zk_version\t"), mntr)
            let srvr = try await fourLetterWord("srvr", port: server.localPort, group: group)
            XCTAssertTrue(srvr.hasPrefix("Zookeeper version: "), "srvr is always served: \(srvr)")
            // In read-only mode ZooKeeper adds isro, which its own clients ask.
            let isro = try await fourLetterWord("isro", port: server.localPort, group: group)
            XCTAssertEqual(isro, "rw")
            let cons = try await fourLetterWord("cons", port: server.localPort, group: group)
            XCTAssertEqual(cons, "cons is not executed because it is not in the whitelist.\n")
        }
    }

    func testRuokAndIsro() async throws {
        try await withServer { server, group, _ in
            let ruok = try await fourLetterWord("ruok", port: server.localPort, group: group)
            XCTAssertEqual(ruok, "imok")
            let isro = try await fourLetterWord("isro", port: server.localPort, group: group)
            XCTAssertEqual(isro, "rw")
        }
    }

    func testSrvrFormat() async throws {
        try await withServer { server, group, _ in
            let text = try await fourLetterWord("srvr", port: server.localPort, group: group)
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            XCTAssertEqual(lines.first, "Zookeeper version: \(MiniZKVersion.fullVersion)")
            XCTAssertTrue(lines[0].hasPrefix("Zookeeper version: 3.8.0-MiniZK-0.1, built on "))
            XCTAssertTrue(lines[1].hasPrefix("Latency min/avg/max: "))
            XCTAssertTrue(lines.contains("Connections: 1"), "the asking connection counts: \(lines)")
            XCTAssertTrue(lines.contains { $0.hasPrefix("Zxid: 0x") })
            XCTAssertTrue(lines.contains { $0.hasPrefix("Mode: ") })
            XCTAssertTrue(lines.contains { $0.hasPrefix("Node count: ") })
            XCTAssertEqual(lines.last, "")
        }
    }

    func testMntrFormat() async throws {
        try await withServer { server, group, _ in
            let text = try await fourLetterWord("mntr", port: server.localPort, group: group)
            let lines = text.split(separator: "\n").map(String.init)
            var values: [String: String] = [:]
            for line in lines {
                let parts = line.split(separator: "\t", omittingEmptySubsequences: false)
                XCTAssertEqual(parts.count, 2, "not key<TAB>value: \(line)")
                XCTAssertTrue(parts[0].hasPrefix("zk_"), line)
                values[String(parts[0])] = String(parts[1])
            }
            XCTAssertEqual(lines.first, "zk_version\t\(MiniZKVersion.fullVersion)")
            XCTAssertTrue(lines[1].hasPrefix("zk_server_state\t"))
            let integers = [
                "zk_max_latency", "zk_min_latency", "zk_packets_received", "zk_packets_sent",
                "zk_num_alive_connections", "zk_outstanding_requests", "zk_znode_count", "zk_watch_count",
                "zk_ephemerals_count", "zk_approximate_data_size", "zk_open_file_descriptor_count",
                "zk_max_file_descriptor_count",
            ]
            for key in integers {
                XCTAssertNotNil(values[key].flatMap { Int64($0) }, "\(key) is not an integer: \(values[key] ?? "missing")")
            }
            XCTAssertNotNil(values["zk_avg_latency"].flatMap { Double($0) })
            XCTAssertEqual(values["zk_num_alive_connections"], "1")
        }
    }

    func testEnviFormat() async throws {
        try await withServer { server, group, _ in
            let text = try await fourLetterWord("envi", port: server.localPort, group: group)
            let lines = text.split(separator: "\n").map(String.init)
            XCTAssertEqual(lines.first, "Environment:")
            XCTAssertEqual(lines.dropFirst().first, "zookeeper.version=\(MiniZKVersion.fullVersion)")
            for line in lines.dropFirst() {
                XCTAssertTrue(line.contains("="), "not key=value: \(line)")
            }
        }
    }

    func testStatListsClients() async throws {
        try await withServer { server, group, _ in
            let session = try await RawClient.connect(port: server.localPort, group: group)
            _ = try await session.handshake()
            let text = try await fourLetterWord("stat", port: server.localPort, group: group)
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            XCTAssertEqual(lines[1], "Clients:")
            let clients = lines.dropFirst(2).prefix { !$0.isEmpty }
            XCTAssertEqual(clients.count, 2, "the session and the asking connection: \(lines)")
            for client in clients {
                XCTAssertTrue(client.hasPrefix(" /127.0.0.1:"), client)
                XCTAssertTrue(client.contains("(queued="), client)
            }
            await session.close()
        }
    }

    func testConsShowsTheSession() async throws {
        try await withServer { server, group, _ in
            let session = try await RawClient.connect(port: server.localPort, group: group)
            let response = try await session.handshake()
            let text = try await fourLetterWord("cons", port: server.localPort, group: group)
            let sid = "sid=0x\(String(UInt64(bitPattern: response.sessionId), radix: 16))"
            XCTAssertTrue(text.contains(sid), "\(sid) missing from: \(text)")
            XCTAssertTrue(text.hasSuffix("\n\n"))
            await session.close()
        }
    }
}

/// A store whose disk is always full.
private final class FailingStore: ReplicaStore {
    let error = StorageError.sqlite(file: "full-disk", code: 13, message: "database or disk is full")
    var lastZxid: Zxid { 0 }
    func recover() throws(StorageError) -> RecoveredState { RecoveredState() }
    func append(_ transactions: [Transaction]) throws(StorageError) { throw error }
    func saveSnapshot(_ tree: DataTree) throws(StorageError) { throw error }
    func truncate(after zxid: Zxid) throws(StorageError) { throw error }
    func installSnapshot(_ tree: DataTree) throws(StorageError) { throw error }
    /// The small hard-state write at start-up still fits; the log does not.
    func saveHardState(_ state: HardState) throws(StorageError) {}
    func transactions(after zxid: Zxid, limit: Int) throws(StorageError) -> [Transaction] { [] }
}
