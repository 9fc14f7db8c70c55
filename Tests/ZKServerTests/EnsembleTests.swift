import Logging
import NIOCore
import NIOPosix
import XCTest
import ZKCore
import ZKProtocol
import ZKServer
import ZKStorage

/// Three replicas in one process, over the in-process transport and over TCP, with real client
/// sockets.
final class EnsembleTests: XCTestCase {
    var logger: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        return logger
    }

    func create(_ path: String, _ data: String = "") -> Request {
        .create(CreateRequest(path: path, data: Array(data.utf8), acl: ACL.openUnsafe, flags: 0))
    }

    func testInProcessEnsembleElectsServesAndReplicates() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        var config = ReplicaConfig()
        config.tickMs = 100
        let ensemble = try await Ensemble.start(nodes: 3, config: config, group: group, logger: logger)
        let serving = try await ensemble.waitUntilServing()
        XCTAssertTrue(serving)
        var modes: [String] = []
        for server in ensemble.servers { modes.append(try await server.status().mode) }
        XCTAssertEqual(modes.filter { $0 == "leader" }.count, 1, "\(modes)")
        XCTAssertEqual(modes.filter { $0 == "follower" }.count, 2, "\(modes)")

        // Write through every member, read through every member.
        for (index, server) in ensemble.servers.enumerated() {
            let client = try await RawClient.connect(port: server.localPort, group: group)
            _ = try await client.handshake()
            guard case .reply(let header, _) = try await client.call(xid: 1, create("/from\(index)", "x")) else { return XCTFail() }
            XCTAssertEqual(header.err, 0)
            await client.close()
        }
        for server in ensemble.servers {
            let client = try await RawClient.connect(port: server.localPort, group: group)
            _ = try await client.handshake()
            guard case .reply(let header, .sync) = try await client.call(xid: 1, .sync(path: "/")) else { return XCTFail() }
            XCTAssertEqual(header.err, 0)
            guard case .reply(_, .getChildren(let children)) = try await client.call(xid: 2, .getChildren(path: "/", watch: false)) else {
                return XCTFail()
            }
            XCTAssertEqual(children, ["from0", "from1", "from2", "zookeeper"])
            guard case .reply(_, .getData(let config, _)) = try await client.call(xid: 3, .getData(path: "/zookeeper/config", watch: false)) else {
                return XCTFail()
            }
            XCTAssertTrue(String(decoding: config ?? [], as: UTF8.self).contains("server.3="))
            await client.close()
        }
        // A session opened on one member resumes on another (the members share the session secret).
        let first = try await RawClient.connect(port: ensemble.servers[0].localPort, group: group)
        let session = try await first.handshake()
        let second = try await RawClient.connect(port: ensemble.servers[1].localPort, group: group)
        var resume = ByteBuffer()
        ClientMessageEncoder.encode(
            ConnectRequest(timeoutMs: 10_000, sessionId: session.sessionId, password: session.password), into: &resume)
        try await second.send(resume)
        guard var payload = try await second.nextFrame() else { return XCTFail("resume refused") }
        let resumed = try ServerMessageDecoder.decodeConnectResponse(&payload)
        XCTAssertEqual(resumed.sessionId, session.sessionId)
        XCTAssertGreaterThan(resumed.timeoutMs, 0, "session reported expired on another member")
        await first.close()
        await second.close()

        var digests: Set<UInt64> = []
        for server in ensemble.servers { digests.insert(try await server.status().digest) }
        XCTAssertEqual(digests.count, 1, "replica trees differ")
        try await ensemble.shutdown()
        try await group.shutdownGracefully()
    }

    /// The classic way tests end a session: a second handle on another member with the same
    /// session id and password sends closeSession. Every member applies the close, and the member
    /// holding the first connection closes it at once, so its client reconnects and learns the
    /// session expired (a client left connected to a dead session would, for instance, keep a
    /// leader latch while another client also leads).
    func testSessionClosedThroughAnotherMemberClosesItsConnection() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        var config = ReplicaConfig()
        config.tickMs = 100
        let ensemble = try await Ensemble.start(nodes: 3, config: config, group: group, logger: logger)
        let serving = try await ensemble.waitUntilServing()
        XCTAssertTrue(serving)

        let holder = try await RawClient.connect(port: ensemble.servers[0].localPort, group: group)
        let session = try await holder.handshake()
        let ephemeral = CreateRequest(path: "/owned", data: [], acl: ACL.openUnsafe, flags: 1)
        guard case .reply(let created, _) = try await holder.call(xid: 1, .create(ephemeral)) else { return XCTFail() }
        XCTAssertEqual(created.err, 0)

        let closer = try await RawClient.connect(port: ensemble.servers[1].localPort, group: group)
        var resume = ByteBuffer()
        ClientMessageEncoder.encode(
            ConnectRequest(timeoutMs: 10_000, sessionId: session.sessionId, password: session.password), into: &resume)
        try await closer.send(resume)
        guard var payload = try await closer.nextFrame() else { return XCTFail("resume refused") }
        XCTAssertGreaterThan(try ServerMessageDecoder.decodeConnectResponse(&payload).timeoutMs, 0)
        guard case .reply(let closed, _) = try await closer.call(xid: 1, .closeSession) else { return XCTFail() }
        XCTAssertEqual(closed.err, 0)
        try await closer.waitUntilClosed()

        // The member holding the first connection closes it, without a request from its client.
        try await holder.waitUntilClosed(timeout: .seconds(5))

        // Reconnecting, the client is told its session expired (negotiated timeout 0).
        let again = try await RawClient.connect(port: ensemble.servers[2].localPort, group: group)
        var retry = ByteBuffer()
        ClientMessageEncoder.encode(
            ConnectRequest(timeoutMs: 10_000, sessionId: session.sessionId, password: session.password), into: &retry)
        try await again.send(retry)
        guard var answer = try await again.nextFrame() else { return XCTFail("no connect response") }
        XCTAssertEqual(try ServerMessageDecoder.decodeConnectResponse(&answer).timeoutMs, 0)
        await again.close()

        let reader = try await RawClient.connect(port: ensemble.servers[0].localPort, group: group)
        _ = try await reader.handshake()
        _ = try await reader.call(xid: 1, .sync(path: "/"))
        guard case .reply(let missing, _) = try await reader.call(xid: 2, .exists(path: "/owned", watch: false)) else {
            return XCTFail()
        }
        XCTAssertEqual(missing.err, ErrorCode.noNode.rawValue, "the closed session's ephemeral is gone")
        await reader.close()
        try await ensemble.shutdown()
        try await group.shutdownGracefully()
    }

    func testLosingTheLeaderElectsAnotherAndKeepsCommittedWrites() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        var config = ReplicaConfig()
        config.tickMs = 100
        let ensemble = try await Ensemble.start(nodes: 3, config: config, group: group, logger: logger)
        let ready = try await ensemble.waitUntilServing()
        XCTAssertTrue(ready)
        var leader: MiniZKServer?
        for server in ensemble.servers where try await server.status().mode == "leader" { leader = server }
        let survivors = ensemble.servers.filter { $0 !== leader }
        let client = try await RawClient.connect(port: survivors[0].localPort, group: group)
        _ = try await client.handshake()
        guard case .reply(let header, _) = try await client.call(xid: 1, create("/kept")) else { return XCTFail() }
        XCTAssertEqual(header.err, 0)
        try await leader!.kill()
        // The survivors elect a new leader and serve again.
        let deadline = NIODeadline.now() + .seconds(10)
        var newLeader = false
        while NIODeadline.now() < deadline && !newLeader {
            for server in survivors {
                let status = try await server.status()
                if status.mode == "leader" && status.serving { newLeader = true }
            }
            try await Task.sleep(nanoseconds: 5_000_000)
        }
        XCTAssertTrue(newLeader)
        let again = try await RawClient.connect(port: survivors[1].localPort, group: group)
        _ = try await again.handshake()
        guard case .reply(_, .stat) = try await again.call(xid: 1, .exists(path: "/kept", watch: false)) else { return XCTFail("committed write lost") }
        guard case .reply(let h2, _) = try await again.call(xid: 2, create("/after")) else { return XCTFail() }
        XCTAssertEqual(h2.err, 0)
        for server in survivors { try await server.shutdown() }
        try await group.shutdownGracefully()
    }

    func testThreeReplicasOverTCP() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        // Free peer ports: bind, read the port, close.
        var peerPorts: [Int] = []
        for _ in 0..<3 {
            let channel = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
            peerPorts.append(channel.localAddress!.port!)
            try await channel.close()
        }
        let peers = (1...3).map { TCPPeerTransport.Peer(id: Int64($0), host: "127.0.0.1", port: peerPorts[$0 - 1]) }
        var servers: [MiniZKServer] = []
        for id in 1...3 {
            var config = ReplicaConfig()
            config.tickMs = 100
            config.serverId = Int64(id)
            config.members = [1, 2, 3]
            config.sessionSecret = 99
            let transport = TCPPeerTransport(serverId: Int64(id), peers: peers, group: group, logger: logger)
            try await transport.listen(host: "127.0.0.1", port: peerPorts[id - 1])
            servers.append(
                try await MiniZKServer.start(config: config, host: "127.0.0.1", port: 0, group: group, logger: logger, transport: transport))
        }
        let deadline = NIODeadline.now() + .seconds(10)
        var serving = 0
        while NIODeadline.now() < deadline && serving < 3 {
            serving = 0
            for server in servers where try await server.status().serving { serving += 1 }
            try await Task.sleep(nanoseconds: 5_000_000)
        }
        XCTAssertEqual(serving, 3)
        let writer = try await RawClient.connect(port: servers[0].localPort, group: group)
        _ = try await writer.handshake()
        for n in 0..<20 {
            guard case .reply(let header, _) = try await writer.call(xid: Int32(n + 1), create("/tcp\(n)", String(repeating: "d", count: 100))) else {
                return XCTFail()
            }
            XCTAssertEqual(header.err, 0)
        }
        let reader = try await RawClient.connect(port: servers[2].localPort, group: group)
        _ = try await reader.handshake()
        _ = try await reader.call(xid: 1, .sync(path: "/"))
        guard case .reply(_, .getChildren(let children)) = try await reader.call(xid: 2, .getChildren(path: "/", watch: false)) else {
            return XCTFail()
        }
        XCTAssertEqual(children.count, 21)
        for server in servers { try await server.shutdown() }
        try await group.shutdownGracefully()
    }
}
