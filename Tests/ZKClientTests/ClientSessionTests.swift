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
        XCTAssertEqual(step.timerAtMs, 120 + 2000, "next: the ping when idle")
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
}
