import NIOCore
import XCTest
import ZKClientCore
import ZKProtocol

/// The session state machine driven directly with bytes: no sockets, no clock.
final class ClientSessionTests: XCTestCase {
    struct FixedGenerator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state
        }
    }

    let hosts = [HostAddress(host: "a", port: 1), HostAddress(host: "b", port: 2), HostAddress(host: "c", port: 3)]

    func makeSession(timeoutMs: Int32 = 3000, chroot: String? = nil, configure: (inout ClientSession.Configuration) -> Void = { _ in }) -> ClientSession {
        var configuration = ClientSession.Configuration(sessionTimeoutMs: timeoutMs, chroot: chroot)
        configure(&configuration)
        var generator = FixedGenerator(state: 7)
        return ClientSession(hosts: hosts, configuration: configuration, generator: &generator)
    }

    // MARK: byte helpers

    /// Encodes a frame as the client would write it and decodes it as the server reads it.
    func serverView(_ frame: ClientFrame) throws -> (RequestHeader?, Request?, ConnectRequest?) {
        var buffer = ByteBuffer()
        frame.encode(into: &buffer)
        var decoder = ZKFrameDecoder()
        guard var payload = try decoder.decode(buffer: &buffer) else { XCTFail("no whole frame"); return (nil, nil, nil) }
        XCTAssertEqual(buffer.readableBytes, 0)
        if case .connect = frame { return (nil, nil, try ClientMessageDecoder.decodeConnectRequest(&payload)) }
        let (header, request) = try ClientMessageDecoder.decodeRequest(&payload)
        return (header, request, nil)
    }

    /// The payload (without length prefix) of a server frame.
    func payload(_ frame: ServerFrame) -> ByteBuffer {
        var buffer = ByteBuffer()
        frame.encode(into: &buffer)
        buffer.moveReaderIndex(forwardBy: 4)
        return buffer
    }

    func sent(_ step: ClientStep) -> [ClientFrame] {
        step.actions.compactMap { if case .send(let frame) = $0 { return frame } else { return nil } }
    }

    func completions(_ step: ClientStep) -> [(RequestToken, Result<Response, ErrorCode>)] {
        step.actions.compactMap { if case .complete(let token, let result) = $0 { return (token, result) } else { return nil } }
    }

    func states(_ step: ClientStep) -> [ConnectionState] {
        step.actions.compactMap { if case .stateChanged(let state) = $0 { return state } else { return nil } }
    }

    func connectAction(_ step: ClientStep) -> (HostAddress, UInt64)? {
        for action in step.actions { if case .connect(let host, let attempt) = action { return (host, attempt) } }
        return nil
    }

    /// Starts the session and completes its first handshake at `nowMs`; returns the attempt and
    /// the step of the ConnectResponse.
    @discardableResult
    func establish(
        _ session: inout ClientSession, nowMs: Int64 = 0, sessionId: Int64 = 0x1234, timeoutMs: Int32 = 3000
    ) throws -> (UInt64, ClientStep) {
        let start = session.start(nowMs: nowMs)
        guard let (_, attempt) = connectAction(start) else { XCTFail("no connect in \(start)"); return (0, start) }
        return (attempt, handshake(&session, attempt: attempt, nowMs: nowMs, sessionId: sessionId, timeoutMs: timeoutMs))
    }

    /// Completes the handshake of `attempt`.
    func handshake(
        _ session: inout ClientSession, attempt: UInt64, nowMs: Int64, sessionId: Int64 = 0x1234, timeoutMs: Int32 = 3000
    ) -> ClientStep {
        let established = session.connectionEstablished(attempt: attempt, nowMs: nowMs)
        XCTAssertEqual(sent(established).count, 1)
        let response = ConnectResponse(timeoutMs: timeoutMs, sessionId: sessionId, password: Array(repeating: 9, count: 16), readOnly: false)
        return session.received(payload: payload(.connect(response)), attempt: attempt, nowMs: nowMs)
    }

    // MARK: tests

    func testHandshakeSendsConnectRequestAndReportsConnected() throws {
        var session = makeSession(timeoutMs: 4000)
        let start = session.start(nowMs: 100)
        guard let (host, attempt) = connectAction(start) else { return XCTFail("no connect in \(start)") }
        XCTAssertTrue(hosts.contains(host))
        XCTAssertEqual(start.timerAtMs, 100 + 4000 / 3, "connect timeout is the session timeout over the host count")
        let established = session.connectionEstablished(attempt: attempt, nowMs: 110)
        let frames = sent(established)
        XCTAssertEqual(frames.count, 1)
        let (_, _, connect) = try serverView(frames[0])
        XCTAssertEqual(connect?.timeoutMs, 4000)
        XCTAssertEqual(connect?.sessionId, 0)
        XCTAssertEqual(connect?.lastZxidSeen, 0)
        XCTAssertEqual(connect?.readOnly, false)
        let response = ConnectResponse(timeoutMs: 6000, sessionId: 77, password: Array(repeating: 5, count: 16), readOnly: false)
        let step = session.received(payload: payload(.connect(response)), attempt: attempt, nowMs: 120)
        XCTAssertEqual(states(step), [.connected])
        XCTAssertEqual(session.sessionId, 77)
        XCTAssertEqual(session.negotiatedTimeoutMs, 6000)
        XCTAssertEqual(session.pingIntervalMs, 2000)
        XCTAssertEqual(session.readTimeoutMs, 4000)
        XCTAssertEqual(step.timerAtMs, 110 + 2000, "next: the ping, a third of the timeout after the last frame sent")
    }

    func testCallsQueuedBeforeTheHandshakeLeaveAfterItInOrderWithIncreasingXids() throws {
        var session = makeSession()
        let start = session.start(nowMs: 0)
        let (_, attempt) = connectAction(start)!
        XCTAssertTrue(sent(session.submit(ClientCall(.sync(path: "/")), token: 1, nowMs: 1)).isEmpty)
        XCTAssertTrue(sent(session.submit(ClientCall(.exists(path: "/a", watch: false)), token: 2, nowMs: 1)).isEmpty)
        _ = session.connectionEstablished(attempt: attempt, nowMs: 2)
        let response = ConnectResponse(timeoutMs: 3000, sessionId: 1, password: Array(repeating: 1, count: 16), readOnly: false)
        let step = session.received(payload: payload(.connect(response)), attempt: attempt, nowMs: 3)
        let frames = try sent(step).map(serverView)
        XCTAssertEqual(frames.map { $0.0?.xid }, [1, 2])
        XCTAssertEqual(frames.map { $0.1 }, [.sync(path: "/"), .exists(path: "/a", watch: false)])
    }

    func testRepliesMatchXidsAndUpdateLastZxid() throws {
        var session = makeSession()
        let (attempt, _) = try establish(&session)
        _ = session.submit(ClientCall(.getData(path: "/a", watch: false)), token: 10, nowMs: 5)
        _ = session.submit(ClientCall(.exists(path: "/b", watch: false)), token: 11, nowMs: 5)
        var stat = Stat()
        stat.version = 3
        let first = session.received(
            payload: payload(.reply(ReplyHeader(xid: 1, zxid: 0x500, err: 0), .getData(data: [1, 2], stat: stat))), attempt: attempt, nowMs: 6)
        XCTAssertEqual(completions(first).map(\.0), [10])
        guard case .success(.getData(let data, let gotStat)) = completions(first)[0].1 else { return XCTFail("\(first)") }
        XCTAssertEqual(data, [1, 2])
        XCTAssertEqual(gotStat.version, 3)
        let second = session.received(payload: payload(.reply(ReplyHeader(xid: 2, zxid: 0x501, err: ErrorCode.noNode.rawValue), .empty)), attempt: attempt, nowMs: 7)
        guard case .failure(.noNode) = completions(second)[0].1 else { return XCTFail("\(second)") }
        XCTAssertEqual(session.lastZxidSeen, 0x501)
    }

    func testReplyWithUnexpectedXidDropsTheConnectionAndFailsCallsWithConnectionLoss() throws {
        var session = makeSession()
        let (attempt, _) = try establish(&session)
        _ = session.submit(ClientCall(.sync(path: "/")), token: 1, nowMs: 5)
        _ = session.submit(ClientCall(.sync(path: "/")), token: 2, nowMs: 5)
        let step = session.received(payload: payload(.reply(ReplyHeader(xid: 2, zxid: 9, err: 0), .sync(path: "/"))), attempt: attempt, nowMs: 6)
        XCTAssertTrue(step.actions.contains(.closeConnection))
        XCTAssertEqual(states(step), [.suspended])
        XCTAssertEqual(completions(step).map(\.0), [1, 2])
        XCTAssertTrue(completions(step).allSatisfy { if case .failure(.connectionLoss) = $0.1 { return true } else { return false } })
        guard let (_, next) = connectAction(step) else { return XCTFail("no reconnect in \(step)") }
        XCTAssertGreaterThan(next, attempt)
        // The ordering contract: closing, then telling, then failing, then reconnecting.
        let kinds = step.actions.map { action -> String in
            switch action {
            case .closeConnection: return "close"
            case .stateChanged: return "state"
            case .complete: return "complete"
            case .connect: return "connect"
            default: return "other"
            }
        }
        XCTAssertEqual(kinds, ["close", "state", "complete", "complete", "connect"])
    }

    func notification(_ type: EventType, _ path: String) -> ByteBuffer {
        payload(.notification(zxid: -1, WatcherEvent(type, path: path)))
    }

    func kinds(_ step: ClientStep) -> [String] {
        step.actions.map { action -> String in
            switch action {
            case .closeConnection: return "close"
            case .stateChanged(let state): return "state:\(state)"
            case .complete(let token, _): return "complete:\(token)"
            case .connect: return "connect"
            case .send: return "send"
            case .watchEvent(_, let watchers): return "watch:\(watchers)"
            case .watchersEnded(let watchers, let code): return "ended:\(watchers):\(code.name)"
            }
        }
    }

    func testPingAfterAThirdOfTheTimeoutWhenIdleAndLossAfterTwoThirdsOfSilence() throws {
        var session = makeSession(timeoutMs: 3000)
        let (attempt, _) = try establish(&session, nowMs: 0, timeoutMs: 3000)
        XCTAssertTrue(sent(session.tick(nowMs: 999)).isEmpty, "no ping before a third of the timeout")
        let ping = session.tick(nowMs: 1000)
        let frames = try sent(ping).map(serverView)
        XCTAssertEqual(frames.map { $0.0?.xid }, [SpecialXid.ping])
        XCTAssertEqual(frames.map { $0.1 }, [.ping])
        // The ping's answer counts as hearing from the server.
        _ = session.received(payload: payload(.reply(ReplyHeader(xid: SpecialXid.ping, zxid: 4, err: 0), .empty)), attempt: attempt, nowMs: 1100)
        // A busy connection needs no ping: sending resets the idle clock.
        _ = session.submit(ClientCall(.sync(path: "/")), token: 1, nowMs: 1500)
        XCTAssertTrue(session.tick(nowMs: 2400).actions.isEmpty)
        XCTAssertEqual(session.connectionState, .connected)
        let lost = session.tick(nowMs: 1100 + 2000)
        XCTAssertEqual(kinds(lost), ["close", "state:suspended", "complete:1", "connect"])
        guard case .failure(.connectionLoss) = completions(lost)[0].1 else { return XCTFail("\(lost)") }
    }

    func testReconnectResumesTheSessionResendsAuthThenSetWatchesThenWaitingCalls() throws {
        var session = makeSession(timeoutMs: 3000, chroot: "/app")
        let (attempt, _) = try establish(&session, nowMs: 0, sessionId: 42)
        let firstHost = session.connectedHost
        _ = session.addAuth(.init(scheme: "digest", auth: Array("u:p".utf8)), token: 100, nowMs: 1)
        let authReply = session.received(payload: payload(.reply(ReplyHeader(xid: SpecialXid.auth, zxid: 0, err: 0), .empty)), attempt: attempt, nowMs: 2)
        XCTAssertEqual(kinds(authReply), ["complete:100"])
        // Watches of every kind, set by replies.
        _ = session.submit(ClientCall(.getData(path: "/d", watch: true), watcher: 1), token: 1, nowMs: 3)
        _ = session.submit(ClientCall(.exists(path: "/e", watch: true), watcher: 2), token: 2, nowMs: 3)
        _ = session.submit(ClientCall(.getChildren(path: "/", watch: true), watcher: 3), token: 3, nowMs: 3)
        _ = session.submit(ClientCall(.addWatch(path: "/r", mode: AddWatchMode.persistentRecursive.rawValue), watcher: 4), token: 4, nowMs: 3)
        _ = session.received(payload: payload(.reply(ReplyHeader(xid: 1, zxid: 10, err: 0), .getData(data: [], stat: Stat()))), attempt: attempt, nowMs: 4)
        _ = session.received(payload: payload(.reply(ReplyHeader(xid: 2, zxid: 11, err: ErrorCode.noNode.rawValue), .empty)), attempt: attempt, nowMs: 4)
        _ = session.received(payload: payload(.reply(ReplyHeader(xid: 3, zxid: 12, err: 0), .getChildren(children: []))), attempt: attempt, nowMs: 4)
        _ = session.received(payload: payload(.reply(ReplyHeader(xid: 4, zxid: 13, err: 0), .errorResponse(0))), attempt: attempt, nowMs: 4)
        XCTAssertEqual(session.watchedPaths(.data), ["/app/d"])
        XCTAssertEqual(session.watchedPaths(.exist), ["/app/e"])
        XCTAssertEqual(session.watchedPaths(.child), ["/app"])
        XCTAssertEqual(session.watchedPaths(.persistentRecursive), ["/app/r"])

        let lost = session.connectionLost(attempt: attempt, nowMs: 5)
        XCTAssertEqual(kinds(lost), ["state:suspended", "connect"])
        guard let (nextHost, next) = connectAction(lost) else { return XCTFail("\(lost)") }
        XCTAssertNotEqual(nextHost, firstHost, "the next member is tried")
        // Calls made while disconnected wait for the connection.
        _ = session.submit(ClientCall(.sync(path: "/x")), token: 5, nowMs: 6)
        // A stale event of the old connection changes nothing.
        XCTAssertTrue(session.received(payload: notification(.nodeDeleted, "/app/d"), attempt: attempt, nowMs: 6).actions.isEmpty)

        let established = session.connectionEstablished(attempt: next, nowMs: 7)
        let (_, _, connect) = try serverView(sent(established)[0])
        XCTAssertEqual(connect?.sessionId, 42)
        XCTAssertEqual(connect?.lastZxidSeen, 13, "never go back in time")
        XCTAssertEqual(connect?.password, Array(repeating: 9, count: 16))
        let response = ConnectResponse(timeoutMs: 3000, sessionId: 42, password: Array(repeating: 9, count: 16), readOnly: false)
        let resumed = session.received(payload: payload(.connect(response)), attempt: next, nowMs: 8)
        XCTAssertEqual(states(resumed), [.reconnected])
        let frames = try sent(resumed).map(serverView)
        XCTAssertEqual(frames.map { $0.0?.xid }, [SpecialXid.auth, SpecialXid.setWatches, 5])
        XCTAssertEqual(frames[0].1, .auth(type: 0, scheme: "digest", auth: Array("u:p".utf8)))
        XCTAssertEqual(frames[1].1, .setWatches2(SetWatchesRequest(
            relativeZxid: 13, dataWatches: ["/app/d"], existWatches: ["/app/e"], childWatches: ["/app"],
            persistentWatches: [], persistentRecursiveWatches: ["/app/r"])))
        XCTAssertEqual(frames[2].1, .sync(path: "/app/x"))
        // The replayed auth's answer completes nothing; setWatches' answer neither.
        XCTAssertTrue(completions(session.received(
            payload: payload(.reply(ReplyHeader(xid: SpecialXid.auth, zxid: 0, err: 0), .empty)), attempt: next, nowMs: 9)).isEmpty)
        XCTAssertTrue(completions(session.received(
            payload: payload(.reply(ReplyHeader(xid: SpecialXid.setWatches, zxid: 13, err: 0), .empty)), attempt: next, nowMs: 9)).isEmpty)
        let synced = session.received(payload: payload(.reply(ReplyHeader(xid: 5, zxid: 14, err: 0), .sync(path: "/app/x"))), attempt: next, nowMs: 10)
        XCTAssertEqual(synced.actions, [.complete(5, .success(.sync(path: "/x")))], "the chroot is stripped from replies")
    }

    func testSetWatchesIsSplitUnderItsByteLimit() throws {
        var session = makeSession { $0.setWatchesBytesMax = 40 }
        let (attempt, _) = try establish(&session)
        for index in 0..<6 {
            _ = session.submit(ClientCall(.exists(path: "/node-\(index)", watch: true), watcher: UInt64(index)), token: UInt64(index), nowMs: 1)
        }
        for xid in 1...6 {
            _ = session.received(payload: payload(.reply(ReplyHeader(xid: Int32(xid), zxid: 5, err: 0), .stat(Stat()))), attempt: attempt, nowMs: 2)
        }
        let lost = session.connectionLost(attempt: attempt, nowMs: 3)
        let (_, next) = connectAction(lost)!
        _ = session.connectionEstablished(attempt: next, nowMs: 4)
        let resumed = session.received(
            payload: payload(.connect(ConnectResponse(timeoutMs: 3000, sessionId: 0x1234, password: Array(repeating: 9, count: 16), readOnly: false))),
            attempt: next, nowMs: 5)
        let requests = try sent(resumed).map(serverView).compactMap { $0.1 }
        var paths: [String] = []
        for request in requests {
            guard case .setWatches2(let watches) = request else { return XCTFail("\(request)") }
            XCTAssertLessThanOrEqual(watches.dataWatches.map { $0.utf8.count + 4 }.reduce(0, +), 40 + 11)
            paths += watches.dataWatches
        }
        XCTAssertGreaterThan(requests.count, 1)
        XCTAssertEqual(paths, (0..<6).map { "/node-\($0)" })
    }

    func testWatchEventIsDeliveredBeforeTheReplyThatFollowsItOnTheWire() throws {
        var session = makeSession(chroot: "/app")
        let (attempt, _) = try establish(&session)
        _ = session.submit(ClientCall(.getData(path: "/a", watch: true), watcher: 7), token: 1, nowMs: 1)
        _ = session.received(payload: payload(.reply(ReplyHeader(xid: 1, zxid: 5, err: 0), .getData(data: [0], stat: Stat()))), attempt: attempt, nowMs: 2)
        _ = session.submit(ClientCall(.getData(path: "/a", watch: false)), token: 2, nowMs: 3)
        // The server sends the notification, then the reply of the read that sees the change; both
        // may arrive in one read, and are stepped one frame at a time, in order.
        let event = session.received(payload: notification(.nodeDataChanged, "/app/a"), attempt: attempt, nowMs: 4)
        let reply = session.received(payload: payload(.reply(ReplyHeader(xid: 2, zxid: 6, err: 0), .getData(data: [1], stat: Stat()))), attempt: attempt, nowMs: 4)
        XCTAssertEqual(event.actions, [.watchEvent(WatchEvent(type: .nodeDataChanged, path: "/a"), watchers: [7])])
        XCTAssertEqual(kinds(reply), ["complete:2"])
        // Fired once: the same notification again reaches nobody.
        XCTAssertTrue(session.received(payload: notification(.nodeDataChanged, "/app/a"), attempt: attempt, nowMs: 5).actions.isEmpty)
    }

    func testEventsReachTheRightWatchers() throws {
        var session = makeSession()
        let (attempt, _) = try establish(&session)
        let calls: [(Request, WatcherID)] = [
            (.getData(path: "/n", watch: true), 1), (.exists(path: "/n", watch: true), 2), (.getChildren(path: "/n", watch: true), 3),
            (.addWatch(path: "/n", mode: AddWatchMode.persistent.rawValue), 4), (.addWatch(path: "/", mode: AddWatchMode.persistentRecursive.rawValue), 5),
        ]
        for (index, (request, watcher)) in calls.enumerated() {
            _ = session.submit(ClientCall(request, watcher: watcher), token: UInt64(index + 1), nowMs: 1)
        }
        let bodies: [Response] = [.getData(data: [], stat: Stat()), .stat(Stat()), .getChildren(children: []), .errorResponse(0), .errorResponse(0)]
        for (index, body) in bodies.enumerated() {
            _ = session.received(payload: payload(.reply(ReplyHeader(xid: Int32(index + 1), zxid: 3, err: 0), body)), attempt: attempt, nowMs: 2)
        }
        let children = session.received(payload: notification(.nodeChildrenChanged, "/n"), attempt: attempt, nowMs: 3)
        XCTAssertEqual(children.actions, [.watchEvent(WatchEvent(type: .nodeChildrenChanged, path: "/n"), watchers: [3, 4])],
            "child events reach child and persistent watches, not recursive ones")
        let changed = session.received(payload: notification(.nodeDataChanged, "/n"), attempt: attempt, nowMs: 3)
        XCTAssertEqual(changed.actions, [.watchEvent(WatchEvent(type: .nodeDataChanged, path: "/n"), watchers: [1, 2, 4, 5])])
        let deleted = session.received(payload: notification(.nodeDeleted, "/n"), attempt: attempt, nowMs: 3)
        XCTAssertEqual(deleted.actions, [.watchEvent(WatchEvent(type: .nodeDeleted, path: "/n"), watchers: [4, 5])])
        let below = session.received(payload: notification(.nodeCreated, "/n/deep/er"), attempt: attempt, nowMs: 3)
        XCTAssertEqual(below.actions, [.watchEvent(WatchEvent(type: .nodeCreated, path: "/n/deep/er"), watchers: [5])])
    }

    func testExpiredOnReconnectFailsEverythingAndEndsEveryWatcher() throws {
        var session = makeSession()
        let (attempt, _) = try establish(&session)
        _ = session.submit(ClientCall(.getData(path: "/w", watch: true), watcher: 9), token: 1, nowMs: 1)
        _ = session.received(payload: payload(.reply(ReplyHeader(xid: 1, zxid: 3, err: 0), .getData(data: [], stat: Stat()))), attempt: attempt, nowMs: 2)
        let lost = session.connectionLost(attempt: attempt, nowMs: 3)
        let (_, next) = connectAction(lost)!
        _ = session.submit(ClientCall(.sync(path: "/")), token: 2, nowMs: 4)
        _ = session.connectionEstablished(attempt: next, nowMs: 5)
        let expired = session.received(payload: payload(.connect(.expired(readOnly: false))), attempt: next, nowMs: 6)
        XCTAssertEqual(kinds(expired), ["close", "state:expired", "complete:2", "ended:[9]:SESSIONEXPIRED"])
        guard case .failure(.sessionExpired) = completions(expired)[0].1 else { return XCTFail("\(expired)") }
        XCTAssertNil(expired.timerAtMs, "an ended session needs no ticks")
        let after = session.submit(ClientCall(.sync(path: "/")), token: 3, nowMs: 7)
        XCTAssertEqual(after.actions, [.complete(3, .failure(.sessionExpired))])
    }

    func testEveryHostFailingOnceBacksOffBeforeTheNextRound() throws {
        var session = makeSession { $0.reconnectDelayMs = 500 }
        var step = session.start(nowMs: 0)
        var tried: [HostAddress] = []
        for round in 0..<3 {
            guard let (host, attempt) = connectAction(step) else { return XCTFail("round \(round): \(step)") }
            tried.append(host)
            step = session.connectionLost(attempt: attempt, nowMs: 10)
        }
        XCTAssertEqual(Set(tried), Set(hosts), "each host once")
        XCTAssertNil(connectAction(step))
        XCTAssertEqual(step.timerAtMs, 510)
        XCTAssertNil(connectAction(session.tick(nowMs: 509)))
        XCTAssertNotNil(connectAction(session.tick(nowMs: 510)))
    }

    func testRequestTimeoutDropsTheConnection() throws {
        var session = makeSession(timeoutMs: 30_000) { $0.requestTimeoutMs = 100 }
        let (_, _) = try establish(&session, nowMs: 0, timeoutMs: 30_000)
        _ = session.submit(ClientCall(.sync(path: "/")), token: 1, nowMs: 10)
        _ = session.submit(ClientCall(.sync(path: "/")), token: 2, nowMs: 50)
        XCTAssertTrue(completions(session.tick(nowMs: 109)).isEmpty)
        let late = session.tick(nowMs: 110)
        XCTAssertEqual(kinds(late), ["complete:1", "close", "state:suspended", "complete:2", "connect"])
        XCTAssertEqual(late.actions.first, .complete(1, .failure(.requestTimeout)))
    }

    func testOutstandingRequestsAreBounded() throws {
        var session = makeSession { $0.outstandingRequestsMax = 2 }
        _ = try establish(&session)
        XCTAssertTrue(completions(session.submit(ClientCall(.sync(path: "/")), token: 1, nowMs: 1)).isEmpty)
        XCTAssertTrue(completions(session.submit(ClientCall(.sync(path: "/")), token: 2, nowMs: 1)).isEmpty)
        XCTAssertEqual(session.submit(ClientCall(.sync(path: "/")), token: 3, nowMs: 1).actions, [.complete(3, .failure(.throttledOp))])
    }

    func testCloseSendsCloseSessionAndEndsOnItsReply() throws {
        var session = makeSession()
        let (attempt, _) = try establish(&session)
        _ = session.submit(ClientCall(.sync(path: "/")), token: 1, nowMs: 1)
        let closing = session.close(token: 2, nowMs: 2)
        let frames = try sent(closing).map(serverView)
        XCTAssertEqual(frames.map { $0.1 }, [.closeSession])
        XCTAssertEqual(frames.map { $0.0?.xid }, [2])
        XCTAssertEqual(session.submit(ClientCall(.sync(path: "/")), token: 3, nowMs: 3).actions, [.complete(3, .failure(.sessionExpired))])
        let synced = session.received(payload: payload(.reply(ReplyHeader(xid: 1, zxid: 5, err: 0), .sync(path: "/"))), attempt: attempt, nowMs: 4)
        XCTAssertEqual(kinds(synced), ["complete:1"])
        let closed = session.received(payload: payload(.reply(ReplyHeader(xid: 2, zxid: 6, err: 0), .empty)), attempt: attempt, nowMs: 5)
        XCTAssertEqual(kinds(closed), ["close", "state:closed", "complete:2"])
    }

    func testAuthFailureEndsTheSession() throws {
        var session = makeSession()
        let (attempt, _) = try establish(&session)
        _ = session.addAuth(.init(scheme: "digest", auth: Array("bad".utf8)), token: 1, nowMs: 1)
        let failed = session.received(
            payload: payload(.reply(ReplyHeader(xid: SpecialXid.auth, zxid: 0, err: ErrorCode.authFailed.rawValue), .empty)), attempt: attempt, nowMs: 2)
        XCTAssertEqual(kinds(failed), ["complete:1", "close", "state:authFailed"])
        XCTAssertEqual(failed.actions.first, .complete(1, .failure(.authFailed)))
    }

    func testHostsAreShuffledByTheGivenGenerator() {
        let many = (1...8).map { HostAddress(host: "h\($0)", port: 2181) }
        var one = FixedGenerator(state: 1)
        var same = FixedGenerator(state: 1)
        let configuration = ClientSession.Configuration(sessionTimeoutMs: 1000)
        XCTAssertEqual(
            ClientSession(hosts: many, configuration: configuration, generator: &one).hosts,
            ClientSession(hosts: many, configuration: configuration, generator: &same).hosts)
        XCTAssertEqual(Set(ClientSession(hosts: many, configuration: configuration, generator: &one).hosts), Set(many))
    }

    func testConnectStringsAndPaths() throws {
        let parsed = try ConnectString(parsing: "a:1, b ,[::1]:3/app/x")
        XCTAssertEqual(parsed.hosts, [HostAddress(host: "a", port: 1), HostAddress(host: "b", port: 2181), HostAddress(host: "::1", port: 3)])
        XCTAssertEqual(parsed.chroot, "/app/x")
        XCTAssertNil(try ConnectString(parsing: "a:1/").chroot)
        XCTAssertThrowsError(try ConnectString(parsing: "/app"))
        XCTAssertThrowsError(try ConnectString(parsing: "a:x"))
        XCTAssertThrowsError(try ConnectString(parsing: "a:1/app/"))
        XCTAssertEqual(PathRules.prefix("/", chroot: "/app"), "/app")
        XCTAssertEqual(PathRules.prefix("/a", chroot: "/app"), "/app/a")
        XCTAssertEqual(PathRules.strip("/app", chroot: "/app"), "/")
        XCTAssertEqual(PathRules.strip("/app/a", chroot: "/app"), "/a")
        XCTAssertEqual(PathRules.strip("/apple", chroot: "/app"), "/apple")
        XCTAssertTrue(PathRules.isValid("/a/b"))
        XCTAssertTrue(PathRules.isValid("/a/", sequential: true))
        for bad in ["", "a", "/a/", "/a//b", "/a/./b", "/a/../b", "/a\u{0}b"] { XCTAssertFalse(PathRules.isValid(bad), bad) }
    }

    func testCloseWhileDisconnectedClosesTheSessionOnTheNextConnection() throws {
        var session = makeSession(timeoutMs: 3000)
        let (attempt, _) = try establish(&session, nowMs: 0, sessionId: 42)
        let lost = session.connectionLost(attempt: attempt, nowMs: 10)
        let (_, next) = connectAction(lost)!
        _ = session.submit(ClientCall(.sync(path: "/")), token: 1, nowMs: 11)
        let closing = session.close(token: 2, nowMs: 12)
        XCTAssertEqual(closing.actions, [.complete(1, .failure(.sessionExpired))], "waiting calls will never be sent")
        XCTAssertEqual(session.submit(ClientCall(.sync(path: "/")), token: 3, nowMs: 13).actions, [.complete(3, .failure(.sessionExpired))])
        _ = session.connectionEstablished(attempt: next, nowMs: 14)
        let resumed = session.received(
            payload: payload(.connect(ConnectResponse(timeoutMs: 3000, sessionId: 42, password: Array(repeating: 9, count: 16), readOnly: false))),
            attempt: next, nowMs: 15)
        let frames = try sent(resumed).map(serverView)
        XCTAssertEqual(frames.map { $0.1 }, [.closeSession], "only closeSession goes out")
        XCTAssertEqual(states(resumed), [])
        let xid = frames[0].0!.xid
        let closed = session.received(payload: payload(.reply(ReplyHeader(xid: xid, zxid: 9, err: 0), .empty)), attempt: next, nowMs: 16)
        XCTAssertEqual(kinds(closed), ["close", "state:closed", "complete:2"])
    }

    func testCloseWhileDisconnectedGivesUpAtTheSessionTimeout() throws {
        var session = makeSession(timeoutMs: 3000) { $0.reconnectDelayMs = 100_000 }
        let (attempt, _) = try establish(&session, nowMs: 0, sessionId: 42)
        var step = session.connectionLost(attempt: attempt, nowMs: 10)
        for _ in 0..<3 {
            let (_, next) = connectAction(step)!
            step = session.connectionLost(attempt: next, nowMs: 20)
        }
        XCTAssertNil(connectAction(step), "backing off")
        let closing = session.close(token: 5, nowMs: 30)
        XCTAssertEqual(closing.timerAtMs, 30 + 3000)
        XCTAssertTrue(session.tick(nowMs: 3029).actions.isEmpty)
        XCTAssertEqual(kinds(session.tick(nowMs: 3030)), ["state:closed", "complete:5"])
    }

    /// Another client resuming the session takes the connection over before closeSession is
    /// answered: the close is sent again on the next connection.
    func testCloseSessionLostWithItsConnectionIsSentAgain() throws {
        var session = makeSession(timeoutMs: 3000)
        let (attempt, _) = try establish(&session, nowMs: 0, sessionId: 42)
        let first = try sent(session.close(token: 7, nowMs: 10)).map(serverView)
        XCTAssertEqual(first.map { $0.1 }, [.closeSession])
        let lost = session.connectionLost(attempt: attempt, nowMs: 11)
        XCTAssertEqual(kinds(lost), ["connect"], "not closed yet")
        let (_, next) = connectAction(lost)!
        let handshake = session.connectionEstablished(attempt: next, nowMs: 12)
        let (_, _, connect) = try serverView(sent(handshake)[0])
        XCTAssertEqual(connect?.sessionId, 42)
        // The ensemble already ended it: closed, not expired.
        let ended = session.received(payload: payload(.connect(.expired(readOnly: false))), attempt: next, nowMs: 13)
        XCTAssertEqual(kinds(ended), ["close", "state:closed", "complete:7"])
    }

    /// The typed input (for a simulator) gives the same steps as the bytes.
    func testTypedFramesStepLikeTheirBytes() throws {
        func run(typed: Bool) throws -> [ClientStep] {
            var session = makeSession(chroot: "/app")
            let start = session.start(nowMs: 0)
            let (_, attempt) = connectAction(start)!
            var steps = [start, session.connectionEstablished(attempt: attempt, nowMs: 1)]
            let frames: [ServerFrame] = [
                .connect(ConnectResponse(timeoutMs: 3000, sessionId: 5, password: Array(repeating: 1, count: 16), readOnly: false)),
                .reply(ReplyHeader(xid: 1, zxid: 7, err: 0), .getData(data: [1], stat: Stat())),
                .notification(zxid: -1, WatcherEvent(.nodeDataChanged, path: "/app/a")),
                .reply(ReplyHeader(xid: 2, zxid: 8, err: ErrorCode.noNode.rawValue), .empty),
                .reply(ReplyHeader(xid: 9, zxid: 9, err: 0), .empty),
            ]
            for (index, frame) in frames.enumerated() {
                if index == 1 {
                    steps.append(session.submit(ClientCall(.getData(path: "/a", watch: true), watcher: 3), token: 1, nowMs: 2))
                    steps.append(session.submit(ClientCall(.exists(path: "/b", watch: false)), token: 2, nowMs: 2))
                }
                steps.append(typed
                    ? session.received(frame: frame, attempt: attempt, nowMs: 3)
                    : session.received(payload: payload(frame), attempt: attempt, nowMs: 3))
            }
            return steps
        }
        let typed = try run(typed: true)
        XCTAssertEqual(typed, try run(typed: false))
        XCTAssertEqual(kinds(typed.last!), ["close", "state:suspended", "connect"], "xid 9 answers nothing pending")
    }
}
