import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ZKProtocol

/// A minimal ZooKeeper client on the raw protocol: one connection, one session, requests
/// pipelined and matched to replies by xid, notifications collected. It has no reconnection or
/// retry logic of its own, which makes it what a test of the server wants: every connection loss
/// and every error code is seen as the server produced it.
///
/// ```swift
/// let client = try await TestClient.connect(host: "127.0.0.1", port: port, group: group)
/// _ = try await client.create("/a", data: Array("x".utf8))
/// try await client.close()
/// ```
public final class TestClient: Sendable {
    public let channel: any Channel
    /// The session this connection holds.
    public let sessionId: Int64
    public let password: [UInt8]
    /// The timeout the server granted, in milliseconds.
    public let sessionTimeoutMs: Int32
    private let handler: NIOLoopBound<TestClientHandler>
    private let nextXid = NIOLockedValueBox<Int32>(1)

    private init(channel: any Channel, handler: NIOLoopBound<TestClientHandler>, response: ConnectResponse) {
        self.channel = channel
        self.handler = handler
        self.sessionId = response.sessionId
        self.password = response.password
        self.sessionTimeoutMs = response.timeoutMs
    }

    /// Connects and opens a session (or resumes `sessionId` with `password`). Throws
    /// `TestClientError.sessionExpired` when the server refuses the session.
    public static func connect(
        host: String = "127.0.0.1", port: Int, group: any EventLoopGroup, timeoutMs: Int32 = 30_000,
        sessionId: Int64 = 0, password: [UInt8] = [UInt8](repeating: 0, count: 16),
        replyTimeout: TimeAmount = .seconds(10)
    ) async throws -> TestClient {
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(TestClientHandler(replyTimeout: replyTimeout))
                }
            }
            .connect(host: host, port: port).get()
        do {
            let handler = try await channel.eventLoop.submit {
                NIOLoopBound(try channel.pipeline.syncOperations.handler(type: TestClientHandler.self), eventLoop: channel.eventLoop)
            }.get()
            var buffer = channel.allocator.buffer(capacity: 64)
            ClientMessageEncoder.encode(
                ConnectRequest(timeoutMs: timeoutMs, sessionId: sessionId, password: password), into: &buffer)
            let response = try await channel.eventLoop.flatSubmit {
                let future = handler.value.awaitConnect()
                channel.writeAndFlush(buffer, promise: nil)
                return future
            }.get()
            guard response.timeoutMs > 0 else { throw TestClientError.sessionExpired }
            return TestClient(channel: channel, handler: handler, response: response)
        } catch {
            try? await channel.close()
            throw error
        }
    }

    /// Sends `request` and returns the reply's header and body (the body is `.empty` when the
    /// header carries an error).
    public func call(_ request: Request) async throws -> (ReplyHeader, Response) {
        let xid: Int32
        switch request {
        case .auth: xid = -4
        case .setWatches, .setWatches2: xid = -8
        default: xid = nextXid.withLockedValue { value in
            defer { value += 1 }
            return value
        }
        }
        var buffer = channel.allocator.buffer(capacity: 128)
        ClientMessageEncoder.encode(xid: xid, request, into: &buffer)
        let handler = self.handler
        let channel = self.channel
        return try await channel.eventLoop.flatSubmit {
            let future = handler.value.awaitReply(xid: xid, opcode: request.opcode)
            channel.writeAndFlush(buffer, promise: nil)
            return future
        }.get()
    }

    /// Sends every request at once and waits for all replies (in order).
    public func pipeline(_ requests: [Request]) async throws -> [(ReplyHeader, Response)] {
        var xids: [Int32] = []
        var buffer = channel.allocator.buffer(capacity: 128 * requests.count)
        for request in requests {
            let xid = nextXid.withLockedValue { value in
                defer { value += 1 }
                return value
            }
            xids.append(xid)
            ClientMessageEncoder.encode(xid: xid, request, into: &buffer)
        }
        let handler = self.handler
        let channel = self.channel
        let futures = try await channel.eventLoop.submit {
            let futures = zip(xids, requests).map { handler.value.awaitReply(xid: $0, opcode: $1.opcode) }
            channel.writeAndFlush(buffer, promise: nil)
            return futures
        }.get()
        var results: [(ReplyHeader, Response)] = []
        for future in futures { results.append(try await future.get()) }
        return results
    }

    /// The reply's body when the header says OK; `TestClientError.server(code)` otherwise.
    @discardableResult
    public func ok(_ request: Request) async throws -> Response {
        let (header, response) = try await call(request)
        guard header.err == 0 else { throw TestClientError.server(ErrorCode(rawValue: header.err) ?? .systemError, request: "\(request)") }
        return response
    }

    @discardableResult
    public func create(
        _ path: String, data: [UInt8] = [], acl: [ACL] = ACL.openUnsafe, ephemeral: Bool = false, sequential: Bool = false
    ) async throws -> String {
        let flags: Int32 = (ephemeral ? 1 : 0) | (sequential ? 2 : 0)
        guard case .create(let created) = try await ok(.create(CreateRequest(path: path, data: data, acl: acl, flags: flags))) else {
            throw TestClientError.unexpectedReply(path)
        }
        return created
    }

    /// The node's data and Stat, or nil when it does not exist.
    public func get(_ path: String, watch: Bool = false) async throws -> (data: [UInt8], stat: Stat)? {
        let (header, response) = try await call(.getData(path: path, watch: watch))
        if header.err == ErrorCode.noNode.rawValue { return nil }
        guard header.err == 0, case .getData(let data, let stat) = response else {
            throw TestClientError.server(ErrorCode(rawValue: header.err) ?? .systemError, request: "getData \(path)")
        }
        return (data ?? [], stat)
    }

    public func exists(_ path: String, watch: Bool = false) async throws -> Stat? {
        let (header, response) = try await call(.exists(path: path, watch: watch))
        if header.err == ErrorCode.noNode.rawValue { return nil }
        guard header.err == 0, case .stat(let stat) = response else {
            throw TestClientError.server(ErrorCode(rawValue: header.err) ?? .systemError, request: "exists \(path)")
        }
        return stat
    }

    public func children(_ path: String, watch: Bool = false) async throws -> [String] {
        guard case .getChildren(let children) = try await ok(.getChildren(path: path, watch: watch)) else {
            throw TestClientError.unexpectedReply(path)
        }
        return children.sorted()
    }

    public func setData(_ path: String, _ data: [UInt8], version: Int32 = -1) async throws {
        try await ok(.setData(path: path, data: data, version: version))
    }

    public func delete(_ path: String, version: Int32 = -1) async throws {
        try await ok(.delete(path: path, version: version))
    }

    /// Authenticates the connection (e.g. scheme "digest", "user:password").
    public func addAuth(scheme: String, _ credentials: String) async throws {
        try await ok(.auth(type: 0, scheme: scheme, auth: Array(credentials.utf8)))
    }

    /// Watch notifications received so far, oldest first; `take` removes them.
    public func notifications(take: Bool = true) async throws -> [WatcherEvent] {
        let handler = self.handler
        return try await channel.eventLoop.submit { handler.value.takeNotifications(remove: take) }.get()
    }

    /// Waits for a notification; throws after `timeout`.
    public func nextNotification(timeout: TimeAmount = .seconds(10)) async throws -> WatcherEvent {
        let handler = self.handler
        return try await channel.eventLoop.flatSubmit { handler.value.awaitNotification(timeout: timeout) }.get()
    }

    /// Takes a session over from the connection that holds it, as a client that lost its
    /// connection and resumes elsewhere would: opens a connection resuming `sessionId` (the
    /// server then closes the holder's), waits for the ConnectResponse and closes this
    /// connection without ending the session. The holder, reconnecting at once, may take the
    /// session back before this connection is answered: ZooKeeper closes the old owner before it
    /// answers the new one, so this connection can lose that race. The holder was dropped all
    /// the same, so that counts as done.
    public static func takeOver(
        sessionId: Int64, password: [UInt8], host: String = "127.0.0.1", port: Int,
        group: any EventLoopGroup, timeoutMs: Int32 = 6000
    ) async throws {
        do {
            let raw = try await connect(
                host: host, port: port, group: group, timeoutMs: timeoutMs, sessionId: sessionId, password: password)
            await raw.disconnect()
        } catch TestClientError.connectionClosed {
            // Lost the race described above.
        }
    }

    /// Whether the server closed the connection (or it broke).
    public func isClosed() async throws -> Bool {
        let handler = self.handler
        return try await channel.eventLoop.submit { handler.value.isClosed }.get()
    }

    /// Waits until the connection is closed by the server; throws after `timeout`.
    public func waitUntilClosed(timeout: TimeAmount = .seconds(10)) async throws {
        let handler = self.handler
        try await channel.eventLoop.flatSubmit { handler.value.awaitClosed(timeout: timeout) }.get()
    }

    /// Ends the session (closeSession) and closes the connection.
    public func close() async throws {
        defer { channel.close(promise: nil) }
        _ = try await call(.closeSession)
    }

    /// Closes the connection without ending the session.
    public func disconnect() async {
        try? await channel.close()
    }
}

public enum TestClientError: Error, CustomStringConvertible {
    case sessionExpired
    case connectionClosed
    case timeout(String)
    case server(ErrorCode, request: String)
    case unexpectedReply(String)

    public var description: String {
        switch self {
        case .sessionExpired: return "the server refused the session (expired or unknown)"
        case .connectionClosed: return "the server closed the connection"
        case .timeout(let what): return "timed out waiting for \(what)"
        case .server(let code, let request): return "\(request) failed: \(code)"
        case .unexpectedReply(let what): return "unexpected reply for \(what)"
        }
    }
}

/// Cuts frames and hands them to whoever waits; lives on the channel's event loop.
final class TestClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private var received = ByteBuffer()
    private var connectWaiter: EventLoopPromise<ConnectResponse>?
    private var replyWaiters: [Int32: (opcode: Int32, promise: EventLoopPromise<(ReplyHeader, Response)>, timeout: Scheduled<Void>?)] = [:]
    private var notifications: [WatcherEvent] = []
    private var notificationWaiter: (EventLoopPromise<WatcherEvent>, Scheduled<Void>)?
    private var closedWaiters: [Int: (EventLoopPromise<Void>, Scheduled<Void>)] = [:]
    private var nextClosedWaiter = 0
    private(set) var isClosed = false
    private var eventLoop: (any EventLoop)?
    private let replyTimeout: TimeAmount

    init(replyTimeout: TimeAmount) {
        self.replyTimeout = replyTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        eventLoop = context.eventLoop
    }

    func awaitConnect() -> EventLoopFuture<ConnectResponse> {
        let promise = eventLoop!.makePromise(of: ConnectResponse.self)
        if isClosed {
            promise.fail(TestClientError.connectionClosed)
        } else {
            connectWaiter = promise
        }
        return promise.futureResult
    }

    func awaitReply(xid: Int32, opcode: Int32) -> EventLoopFuture<(ReplyHeader, Response)> {
        let eventLoop = self.eventLoop!
        let promise = eventLoop.makePromise(of: (ReplyHeader, Response).self)
        guard !isClosed else {
            promise.fail(TestClientError.connectionClosed)
            return promise.futureResult
        }
        let timeout = eventLoop.assumeIsolated().scheduleTask(in: replyTimeout) { [self] in
            if let waiter = self.replyWaiters.removeValue(forKey: xid) {
                waiter.promise.fail(TestClientError.timeout("the reply to xid \(xid)"))
            }
        }
        replyWaiters[xid] = (opcode, promise, timeout)
        return promise.futureResult
    }

    func takeNotifications(remove: Bool) -> [WatcherEvent] {
        let all = notifications
        if remove { notifications = [] }
        return all
    }

    func awaitNotification(timeout: TimeAmount) -> EventLoopFuture<WatcherEvent> {
        let eventLoop = self.eventLoop!
        if !notifications.isEmpty { return eventLoop.makeSucceededFuture(notifications.removeFirst()) }
        let promise = eventLoop.makePromise(of: WatcherEvent.self)
        let scheduled = eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            if let waiter = self.notificationWaiter {
                self.notificationWaiter = nil
                waiter.0.fail(TestClientError.timeout("a watch notification"))
            }
        }
        notificationWaiter = (promise, scheduled)
        return promise.futureResult
    }

    func awaitClosed(timeout: TimeAmount) -> EventLoopFuture<Void> {
        let eventLoop = self.eventLoop!
        if isClosed { return eventLoop.makeSucceededVoidFuture() }
        let promise = eventLoop.makePromise(of: Void.self)
        nextClosedWaiter += 1
        let key = nextClosedWaiter
        let scheduled = eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            if let (waiting, _) = self.closedWaiters.removeValue(forKey: key) {
                waiting.fail(TestClientError.timeout("the server to close the connection"))
            }
        }
        closedWaiters[key] = (promise, scheduled)
        return promise.futureResult
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        received.writeBuffer(&bytes)
        while let length = received.getInteger(at: received.readerIndex, as: Int32.self), length >= 0,
            received.readableBytes >= 4 + Int(length)
        {
            received.moveReaderIndex(forwardBy: 4)
            var payload = received.readSlice(length: Int(length))!
            handle(&payload, context: context)
        }
        received.discardReadBytes()
    }

    private func handle(_ payload: inout ByteBuffer, context: ChannelHandlerContext) {
        if let waiter = connectWaiter {
            connectWaiter = nil
            do {
                waiter.succeed(try ServerMessageDecoder.decodeConnectResponse(&payload))
            } catch {
                waiter.fail(error)
            }
            return
        }
        guard let xid = payload.getInteger(at: payload.readerIndex, as: Int32.self) else { return }
        if xid == -1 {
            if case .notification(_, let event)? = try? ServerMessageDecoder.decodeReply(&payload, opcode: 0) {
                if let (promise, timeout) = notificationWaiter {
                    notificationWaiter = nil
                    timeout.cancel()
                    promise.succeed(event)
                } else {
                    notifications.append(event)
                }
            }
            return
        }
        guard let waiter = replyWaiters.removeValue(forKey: xid) else { return }
        waiter.timeout?.cancel()
        do {
            guard case .reply(let header, let body) = try ServerMessageDecoder.decodeReply(&payload, opcode: waiter.opcode) else {
                waiter.promise.fail(TestClientError.unexpectedReply("xid \(xid)"))
                return
            }
            waiter.promise.succeed((header, body))
        } catch {
            waiter.promise.fail(error)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        isClosed = true
        connectWaiter?.fail(TestClientError.connectionClosed)
        connectWaiter = nil
        let waiters = replyWaiters
        replyWaiters = [:]
        for (_, waiter) in waiters {
            waiter.timeout?.cancel()
            waiter.promise.fail(TestClientError.connectionClosed)
        }
        if let (promise, timeout) = notificationWaiter {
            notificationWaiter = nil
            timeout.cancel()
            promise.fail(TestClientError.connectionClosed)
        }
        let closed = closedWaiters
        closedWaiters = [:]
        for (_, (promise, scheduled)) in closed {
            scheduled.cancel()
            promise.succeed()
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
