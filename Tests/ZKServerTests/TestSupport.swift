import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import XCTest
import ZKCore
import ZKProtocol
import ZKServer

/// Raised when an awaited event does not happen in time. Tests wait on events, never for a fixed
/// time; the timeout only turns a hang into a failure.
struct TestTimeout: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}

/// A raw TCP client for the client port: it sends bytes and hands back whole frames or the text of
/// a four-letter word, with no ZooKeeper client logic of its own.
final class RawClient: Sendable {
    let channel: any Channel
    private let collector: NIOLoopBound<CollectingHandler>

    private init(channel: any Channel, collector: NIOLoopBound<CollectingHandler>) {
        self.channel = channel
        self.collector = collector
    }

    /// - Parameters:
    ///   - receiveBufferBytes: a small SO_RCVBUF makes a client that does not read fill up fast.
    ///   - autoRead: false leaves the server's bytes unread until `startReading()`.
    ///   - tls: speak TLS with this context (to a TLS client port).
    static func connect(
        port: Int, group: any EventLoopGroup, receiveBufferBytes: Int32? = nil, autoRead: Bool = true,
        tls: NIOSSLContext? = nil
    ) async throws -> RawClient {
        var bootstrap = ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.autoRead, value: autoRead)
        if let receiveBufferBytes {
            bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBufferBytes))
        }
        let channel = try await bootstrap
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: nil))
                    }
                    try channel.pipeline.syncOperations.addHandler(CollectingHandler())
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        let collector = try await channel.eventLoop.submit {
            NIOLoopBound(try channel.pipeline.syncOperations.handler(type: CollectingHandler.self), eventLoop: channel.eventLoop)
        }.get()
        return RawClient(channel: channel, collector: collector)
    }

    /// Turns reading on for a client connected with `autoRead: false`.
    func startReading() async throws {
        try await channel.setOption(.autoRead, value: true).get()
    }

    func send(_ buffer: ByteBuffer) async throws {
        try await channel.writeAndFlush(buffer)
    }

    func send(bytes: [UInt8]) async throws {
        try await send(ByteBuffer(bytes: bytes))
    }

    /// The payload of the next whole frame, or nil when the server closed the connection first.
    func nextFrame(timeout: TimeAmount = .seconds(10)) async throws -> ByteBuffer? {
        let collector = self.collector
        return try await channel.eventLoop.flatSubmit {
            collector.value.await(.frame, timeout: timeout)
        }.get().frame
    }

    /// Everything the server sent until it closed the connection.
    func textUntilClosed(timeout: TimeAmount = .seconds(10)) async throws -> String {
        let collector = self.collector
        let bytes = try await channel.eventLoop.flatSubmit {
            collector.value.await(.closed, timeout: timeout)
        }.get().rest
        return String(decoding: bytes.readableBytesView, as: UTF8.self)
    }

    /// Waits until the server has closed the connection.
    func waitUntilClosed(timeout: TimeAmount = .seconds(10)) async throws {
        _ = try await textUntilClosed(timeout: timeout)
    }

    func close() async {
        try? await channel.close()
    }

    // MARK: ZooKeeper conveniences built on the codec

    /// Sends a ConnectRequest and returns the server's ConnectResponse.
    func handshake(timeoutMs: Int32 = 10_000) async throws -> ConnectResponse {
        var buffer = channel.allocator.buffer(capacity: 64)
        ClientMessageEncoder.encode(ConnectRequest(timeoutMs: timeoutMs), into: &buffer)
        try await send(buffer)
        guard var payload = try await nextFrame() else {
            throw TestTimeout(what: "a ConnectResponse (the server closed the connection)")
        }
        return try ServerMessageDecoder.decodeConnectResponse(&payload)
    }

    /// The zxid that created `path` (an exists call); 0, with a test failure, when it fails.
    func czxid(_ path: String, xid: Int32, file: StaticString = #filePath, line: UInt = #line) async throws -> Int64 {
        let frame = try await call(xid: xid, .exists(path: path, watch: false))
        guard case .reply(let header, .stat(let stat)) = frame, header.err == 0 else {
            XCTFail("exists \(path): \(frame)", file: file, line: line)
            return 0
        }
        return stat.czxid
    }

    /// Sends one request and returns the next frame that is not a notification, decoded as the
    /// reply to `request`.
    func call(xid: Int32, _ request: Request) async throws -> ServerFrame {
        var buffer = channel.allocator.buffer(capacity: 128)
        ClientMessageEncoder.encode(xid: xid, request, into: &buffer)
        try await send(buffer)
        while true {
            guard var payload = try await nextFrame() else {
                throw TestTimeout(what: "a reply to xid \(xid) (the server closed the connection)")
            }
            let frame = try ServerMessageDecoder.decodeReply(&payload, opcode: request.opcode)
            if case .notification = frame { continue }
            return frame
        }
    }
}

/// Collects what the server sends; lives on the client channel's event loop.
final class CollectingHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    enum Condition { case frame, closed }
    struct Outcome {
        var frame: ByteBuffer?
        var rest: ByteBuffer
    }

    private var received = ByteBuffer()
    private var isClosed = false
    private var waiter: (condition: Condition, promise: EventLoopPromise<Outcome>, timeout: Scheduled<Void>)?
    private var eventLoop: (any EventLoop)?

    func handlerAdded(context: ChannelHandlerContext) {
        eventLoop = context.eventLoop
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        received.writeBuffer(&bytes)
        check()
    }

    func channelInactive(context: ChannelHandlerContext) {
        isClosed = true
        check()
        context.fireChannelInactive()
    }

    func await(_ condition: Condition, timeout: TimeAmount) -> EventLoopFuture<Outcome> {
        let eventLoop = self.eventLoop!
        precondition(waiter == nil, "one waiter at a time")
        let promise = eventLoop.makePromise(of: Outcome.self)
        let scheduled = eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            if let waiter = self.waiter {
                self.waiter = nil
                waiter.promise.fail(TestTimeout(what: "\(condition)"))
            }
        }
        waiter = (condition, promise, scheduled)
        check()
        return promise.futureResult
    }

    private func check() {
        guard let current = waiter, let outcome = satisfy(current.condition) else { return }
        waiter = nil
        current.timeout.cancel()
        current.promise.succeed(outcome)
    }

    private func satisfy(_ condition: Condition) -> Outcome? {
        switch condition {
        case .frame:
            if let length = received.getInteger(at: received.readerIndex, as: Int32.self),
                length >= 0, received.readableBytes >= 4 + Int(length)
            {
                received.moveReaderIndex(forwardBy: 4)
                let payload = received.readSlice(length: Int(length))!
                return Outcome(frame: payload, rest: ByteBuffer())
            }
            return isClosed ? Outcome(frame: nil, rest: received) : nil
        case .closed:
            guard isClosed else { return nil }
            let rest = received
            received.clear()
            return Outcome(frame: nil, rest: rest)
        }
    }
}

/// A log handler that keeps every message, so tests can check that a reason was logged.
struct RecordingLogHandler: LogHandler {
    struct Entry: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    /// Every entry logged so far, and tests waiting for one.
    final class Storage: Sendable {
        private struct Waiter {
            var predicate: @Sendable (Entry) -> Bool
            var continuation: CheckedContinuation<Entry, Error>
        }
        private struct State {
            var entries: [Entry] = []
            var waiters: [Int: Waiter] = [:]
            var nextWaiter = 0
        }
        private let state = NIOLockedValueBox(State())

        func append(_ entry: Entry) {
            let satisfied = state.withLockedValue { state -> [CheckedContinuation<Entry, Error>] in
                state.entries.append(entry)
                let ready = state.waiters.filter { $0.value.predicate(entry) }
                for key in ready.keys { state.waiters[key] = nil }
                return ready.values.map(\.continuation)
            }
            for continuation in satisfied { continuation.resume(returning: entry) }
        }

        var all: [Entry] { state.withLockedValue { $0.entries } }

        /// The first entry, logged before or after the call, that satisfies `predicate`.
        func first(
            timeout: Duration = .seconds(10), where predicate: @escaping @Sendable (Entry) -> Bool
        ) async throws -> Entry {
            try await withThrowingTaskGroup(of: Entry.self) { group in
                group.addTask { try await self.wait(for: predicate) }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    throw TestTimeout(what: "a log entry; logged: \(self.all.map(\.message))")
                }
                defer { group.cancelAll() }
                return try await group.next()!
            }
        }

        private func wait(for predicate: @escaping @Sendable (Entry) -> Bool) async throws -> Entry {
            let key = state.withLockedValue { state -> Int in
                state.nextWaiter += 1
                return state.nextWaiter
            }
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    let immediate = state.withLockedValue { state -> Entry? in
                        if let found = state.entries.first(where: predicate) { return found }
                        if Task.isCancelled { return nil }
                        state.waiters[key] = Waiter(predicate: predicate, continuation: continuation)
                        return nil
                    }
                    if let immediate {
                        continuation.resume(returning: immediate)
                    } else if Task.isCancelled {
                        continuation.resume(throwing: CancellationError())
                    }
                }
            } onCancel: {
                let waiter = state.withLockedValue { $0.waiters.removeValue(forKey: key) }
                waiter?.continuation.resume(throwing: CancellationError())
            }
        }
    }

    let storage: Storage
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    init(storage: Storage) {
        self.storage = storage
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var flat: [String: String] = [:]
        for (key, value) in metadata { flat[key] = "\(value)" }
        for (key, value) in event.metadata ?? [:] { flat[key] = "\(value)" }
        storage.append(Entry(level: event.level, message: "\(event.message)", metadata: flat))
    }
}

extension Logger {
    static func recording(into storage: RecordingLogHandler.Storage) -> Logger {
        Logger(label: "minizk-test") { _ in RecordingLogHandler(storage: storage) }
    }
}

/// A standalone server on a system-chosen port with its log recorded, shut down after `body`
/// whatever it throws.
func withStandaloneServer(
    options: ServerOptions,
    readOnlyMode: Bool = false,
    _ body: (MiniZKServer, any EventLoopGroup, RecordingLogHandler.Storage) async throws -> Void
) async throws {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    let logs = RecordingLogHandler.Storage()
    var config = ReplicaConfig()
    config.tickMs = 200
    config.readOnlyModeEnabled = readOnlyMode
    let server = try await MiniZKServer.start(
        config: config, host: "127.0.0.1", port: 0, group: group, logger: .recording(into: logs), options: options)
    do {
        try await body(server, group, logs)
    } catch {
        try? await server.shutdown()
        try? await group.shutdownGracefully()
        throw error
    }
    try await server.shutdown()
    try await group.shutdownGracefully()
}
