import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import ZKClientCore
import ZKProtocol

// The NIO shell around `ClientSession`.
//
// Everything mutable lives on one event loop: the session value, the current channel, the
// continuations of calls in flight and the sinks of watchers and state observers. Every input
// (an API call, a connection event, a frame, a tick) hops to that loop, steps the session and
// hands the step to `perform`, the one function that interprets `ClientAction`s, strictly in
// order (the contract on `ClientStep`): frames are written as they come and flushed once at the
// end of the step, watch events are yielded into their streams before the completions that
// follow them resume their callers. There are no locks on that path; `published` (a lock) only
// holds a copy of the state for synchronous getters.

final class SessionDriver: @unchecked Sendable {
    struct Published: Sendable {
        var state: ConnectionState = .connecting
        var sessionId: Int64 = 0
        var password: [UInt8] = []
        var negotiatedTimeoutMs: Int32 = 0
        var lastZxidSeen: Int64 = 0
        var connectedHost: HostAddress? = nil
    }

    enum Sink {
        case oneShot(AsyncThrowingStream<WatchEvent, any Error>.Continuation, NIOLockedValueBox<WatchEvent?>)
        case persistent(AsyncThrowingStream<WatchEvent, any Error>.Continuation)
    }

    let loop: any EventLoop
    let logger: Logger
    let frameBytesMax: Int
    let tls: NIOSSLContext?
    let tickIntervalMs: Int64
    let published = NIOLockedValueBox(Published())

    // Confined to `loop`.
    private var session: ClientSession
    private var channel: (any Channel)?
    private var channelAttempt: UInt64 = 0
    private var calls: [RequestToken: CheckedContinuation<Response, any Error>] = [:]
    private var sinks: [WatcherID: Sink] = [:]
    private var observers: [UInt64: AsyncStream<ConnectionState>.Continuation] = [:]
    private var nextToken: UInt64 = 1
    private var ticker: RepeatedTask?
    private var outbound: ByteBuffer
    private var started = false
    private var flushScheduled = false

    init(session: ClientSession, loop: any EventLoop, logger: Logger, frameBytesMax: Int, tls: NIOSSLContext?, tickIntervalMs: Int64) {
        self.session = session
        self.loop = loop
        self.logger = logger
        self.frameBytesMax = frameBytesMax
        self.tls = tls
        self.tickIntervalMs = tickIntervalMs
        self.outbound = ByteBufferAllocator().buffer(capacity: 4096)
    }

    static func nowMs() -> Int64 { Int64(NIODeadline.now().uptimeNanoseconds / 1_000_000) }

    // MARK: - Inputs (any thread)

    func start() {
        loop.execute {
            precondition(!self.started, "session driver started twice")
            self.started = true
            self.ticker = self.loop.scheduleRepeatedTask(
                initialDelay: .milliseconds(self.tickIntervalMs), delay: .milliseconds(self.tickIntervalMs)
            ) { _ in
                let step = self.session.tick(nowMs: Self.nowMs())
                self.perform(step)
            }
            self.perform(self.session.start(nowMs: Self.nowMs()))
        }
    }

    /// What callers hand to the loop. Submissions from any thread go into `inbox` (under a lock)
    /// and the loop drains it in order: when many tasks submit at once, one `execute` carries all
    /// of them instead of one each.
    enum Submission: Sendable {
        case call(Request, watch: Sink?, ignoresChroot: Bool, CheckedContinuation<Response, any Error>)
        case auth(ClientSession.AuthInfo, CheckedContinuation<Response, any Error>)
        case close(CheckedContinuation<Response, any Error>)
    }

    private let inbox = NIOLockedValueBox<[Submission]>([])

    private func submit(_ submission: Submission) {
        let first = inbox.withLockedValue { waiting -> Bool in
            waiting.append(submission)
            return waiting.count == 1
        }
        if first { loop.execute { self.drainInbox() } }
    }

    private func drainInbox() {
        let batch = inbox.withLockedValue { waiting -> [Submission] in
            let batch = waiting
            waiting.removeAll(keepingCapacity: true)
            return batch
        }
        for submission in batch {
            let token = takeToken()
            let nowMs = Self.nowMs()
            switch submission {
            case .call(let request, let watch, let ignoresChroot, let continuation):
                var watcher: WatcherID? = nil
                if let watch {
                    watcher = token
                    sinks[token] = watch
                }
                calls[token] = continuation
                perform(session.submit(ClientCall(request, watcher: watcher, ignoresChroot: ignoresChroot), token: token, nowMs: nowMs))
            case .auth(let info, let continuation):
                calls[token] = continuation
                perform(session.addAuth(info, token: token, nowMs: nowMs))
            case .close(let continuation):
                calls[token] = continuation
                perform(session.close(token: token, nowMs: nowMs))
            }
        }
    }

    /// Sends a call and waits for its reply. `watch` registers a sink for the watcher id of the
    /// call before it leaves.
    func call(_ request: Request, watch: Sink? = nil, ignoresChroot: Bool = false) async throws -> Response {
        try await withCheckedThrowingContinuation { continuation in
            submit(.call(request, watch: watch, ignoresChroot: ignoresChroot, continuation))
        }
    }

    /// Sends credentials; returns when the server accepted them.
    func addAuth(scheme: String, auth: [UInt8]) async throws {
        _ = try await withCheckedThrowingContinuation { continuation in
            submit(.auth(ClientSession.AuthInfo(scheme: scheme, auth: auth), continuation))
        }
    }

    func close() async {
        _ = try? await withCheckedThrowingContinuation { continuation in
            submit(.close(continuation))
        }
    }

    /// A new stream of connection states, starting with the current one.
    func states() -> AsyncStream<ConnectionState> {
        let (stream, continuation) = AsyncStream<ConnectionState>.makeStream()
        loop.execute {
            let id = self.takeToken()
            continuation.yield(self.session.connectionState)
            if self.session.connectionState.isTerminal {
                continuation.finish()
            } else {
                self.observers[id] = continuation
                continuation.onTermination = { _ in self.loop.execute { self.observers[id] = nil } }
            }
        }
        return stream
    }

    /// Ends a sink with an error.
    private func dropWatcher(_ error: any Error, for sink: Sink) {
        switch sink {
        case .oneShot(let continuation, _), .persistent(let continuation): continuation.finish(throwing: error)
        }
    }

    private func takeToken() -> UInt64 {
        let token = nextToken
        nextToken += 1
        return token
    }

    // MARK: - Connection events (on the loop)

    private func connect(to host: HostAddress, attempt: UInt64) {
        let frameBytesMax = self.frameBytesMax
        let tls = self.tls
        ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.milliseconds(session.connectTimeoutMs))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        let hostname = host.host.first?.isLetter == true ? host.host : nil
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: hostname))
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        ConnectionHandler(driver: self, attempt: attempt, frameBytesMax: frameBytesMax))
                }
            }
            .connect(host: host.host, port: host.port)
            .whenComplete { result in
                self.loop.preconditionInEventLoop()
                switch result {
                case .success(let channel):
                    guard self.isCurrent(attempt) else {
                        channel.close(promise: nil)
                        return
                    }
                    self.channel = channel
                    self.channelAttempt = attempt
                    self.perform(self.session.connectionEstablished(attempt: attempt, nowMs: Self.nowMs()))
                case .failure(let error):
                    self.logger.debug("connect failed", metadata: ["host": "\(host)", "error": "\(error)"])
                    self.perform(self.session.connectionLost(attempt: attempt, nowMs: Self.nowMs()))
                }
            }
    }

    /// The latest attempt the session asked for (older channels are closed as soon as they open).
    private var pendingAttempt: UInt64 = 0
    private func isCurrent(_ attempt: UInt64) -> Bool { attempt == pendingAttempt }

    fileprivate func received(_ payload: ByteBuffer, attempt: UInt64) {
        perform(session.received(payload: payload, attempt: attempt, nowMs: Self.nowMs()))
    }

    fileprivate func lost(attempt: UInt64) {
        logger.debug("connection closed", metadata: ["attempt": "\(attempt)"])
        if channelAttempt == attempt { channel = nil }
        perform(session.connectionLost(attempt: attempt, nowMs: Self.nowMs()))
    }

    /// Flushes once the tasks already queued on the loop have run: calls submitted together
    /// (many tasks pipelining on one session) leave in one write instead of one each.
    private func scheduleFlush() {
        guard !flushScheduled else { return }
        flushScheduled = true
        loop.execute {
            self.flushScheduled = false
            self.channel?.flush()
        }
    }

    // MARK: - The one interpreter of steps

    private func perform(_ step: ClientStep) {
        loop.preconditionInEventLoop()
        // Published first: a caller resumed below (a connect waiting for `connected`) reads it.
        let session = self.session
        published.withLockedValue {
            $0.state = session.connectionState
            $0.sessionId = session.sessionId
            $0.password = session.password
            $0.negotiatedTimeoutMs = session.negotiatedTimeoutMs
            $0.lastZxidSeen = session.lastZxidSeen
            $0.connectedHost = session.connectedHost
        }
        var wrote = false
        for action in step.actions {
            switch action {
            case .connect(let host, let attempt):
                logger.debug("connecting", metadata: ["host": "\(host)", "attempt": "\(attempt)"])
                pendingAttempt = attempt
                connect(to: host, attempt: attempt)
            case .send(let frame):
                guard let channel else { continue }
                outbound.clear()
                frame.encode(into: &outbound)
                channel.write(outbound, promise: nil)
                wrote = true
            case .closeConnection:
                // What was written before (closeSession's frame, say) still leaves.
                channel?.flush()
                wrote = false
                channel?.close(promise: nil)
                channel = nil
            case .watchEvent(let event, let watchers):
                for watcher in watchers {
                    switch sinks[watcher] {
                    case .oneShot(let continuation, let fired):
                        fired.withLockedValue { $0 = event }
                        continuation.yield(event)
                        continuation.finish()
                        sinks[watcher] = nil
                    case .persistent(let continuation):
                        continuation.yield(event)
                    case nil:
                        break
                    }
                }
            case .complete(let token, let result):
                guard let continuation = calls.removeValue(forKey: token) else { continue }
                switch result {
                case .success(let response): continuation.resume(returning: response)
                case .failure(let code): continuation.resume(throwing: ZooKeeperError(code))
                }
            case .watchersEnded(let watchers, let code):
                for watcher in watchers {
                    guard let sink = sinks.removeValue(forKey: watcher) else { continue }
                    switch (sink, code) {
                    case (.persistent(let continuation), .ok): continuation.finish()
                    case (.oneShot(let continuation, _), .ok): continuation.finish(throwing: ZooKeeperError.noWatcher)
                    case (.persistent(let continuation), _), (.oneShot(let continuation, _), _):
                        continuation.finish(throwing: ZooKeeperError(code))
                    }
                }
            case .stateChanged(let state):
                logger.debug("connection state", metadata: ["state": "\(state)"])
                for (_, observer) in observers { observer.yield(state) }
                if state.isTerminal {
                    for (_, observer) in observers { observer.finish() }
                    observers.removeAll()
                    ticker?.cancel()
                    ticker = nil
                    // Watchers whose calls never registered them (none should be left) end too.
                    let code: ErrorCode = state == .authFailed ? .authFailed : .sessionExpired
                    for (_, sink) in sinks { dropWatcher(ZooKeeperError(code), for: sink) }
                    sinks.removeAll()
                }
            }
        }
        if wrote { scheduleFlush() }
    }
}

/// Cuts frames (checked against `frameBytesMax` before anything is allocated) and hands them to
/// the driver, tagged with the attempt this channel belongs to.
private final class ConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let driver: SessionDriver
    let attempt: UInt64
    private var processor: NIOSingleStepByteToMessageProcessor<ZKFrameDecoder>

    init(driver: SessionDriver, attempt: UInt64, frameBytesMax: Int) {
        self.driver = driver
        self.attempt = attempt
        self.processor = NIOSingleStepByteToMessageProcessor(ZKFrameDecoder(frameBytesMax: frameBytesMax))
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        do {
            try processor.process(buffer: buffer) { payload in
                self.driver.received(payload, attempt: self.attempt)
            }
        } catch {
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        driver.lost(attempt: attempt)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
