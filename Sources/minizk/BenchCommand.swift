import ArgumentParser
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ZKClient
import ZKProtocol

/// A lean load generator for the ZooKeeper protocol: one event loop, several connections, many
/// requests outstanding on each, replies answered with new requests in the same write. It costs a
/// few microseconds per operation, so what it measures is the server (MiniZK or Apache ZooKeeper
/// alike).
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Load a ZooKeeper-protocol server (MiniZK or Apache ZooKeeper) and report operations per second and latency."
    )

    enum Operation: String, ExpressibleByArgument, CaseIterable {
        case create, set, get, exists
    }

    enum ClientKind: String, ExpressibleByArgument, CaseIterable {
        /// The lean protocol loop below.
        case raw
        /// ZKClient's `ZooKeeperClient`: one session per connection, `outstanding` tasks each
        /// awaiting one call at a time.
        case swift
    }

    @Option(help: "raw (a minimal protocol loop) or swift (ZKClient's ZooKeeperClient, the same workload).")
    var client: ClientKind = .raw

    @Option(help: "Comma-separated host:port list; connections are spread over it.")
    var hosts: String = "127.0.0.1:2181"

    @Option(help: "create, set, get or exists.")
    var op: Operation = .create

    @Option(help: "Connections (sessions).")
    var connections: Int = 6

    @Option(help: "Requests outstanding per connection.")
    var outstanding: Int = 64

    @Option(help: "Seconds of load after a warm-up of one second.")
    var seconds: Double = 5

    @Option(help: "Bytes of data per create / set.")
    var valueBytes: Int = 100

    @Option(help: "Stop after this many operations in total (0: run for --seconds).")
    var count: Int = 0

    @Flag(help: "Print one line of JSON instead of text.")
    var json = false

    func validate() throws {
        guard connections >= 1, outstanding >= 1 else { throw ValidationError("need at least one connection and one outstanding request") }
    }

    func run() async throws {
        let targets = hosts.split(separator: ",").map { entry -> (String, Int) in
            let parts = entry.split(separator: ":")
            return (String(parts[0]), Int(parts[1]) ?? 2181)
        }
        if client == .swift {
            try await runSwiftClient()
            return
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let run = BenchRun(
            op: op, outstanding: outstanding, value: [UInt8](repeating: 0x61, count: valueBytes),
            countLimit: count, prefix: "/minizk-bench-\(getpid())")
        // Create the parent (and, for set/get/exists, one node per connection) first.
        var channels: [any Channel] = []
        for index in 0..<connections {
            let target = targets[index % targets.count]
            let handler = BenchHandler(run: run, index: index)
            let channel = try await ClientBootstrap(group: group)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler) }
                }
                .connect(host: target.0, port: target.1).get()
            channels.append(channel)
        }
        try await run.ready(connections: connections, on: group.next())
        let warmup = 1.0
        try await Task.sleep(nanoseconds: UInt64(warmup * 1e9))
        run.startMeasuring()
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline && !run.reachedLimit {
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        let result = run.stopMeasuring()
        for channel in channels { try? await channel.close() }
        try await group.shutdownGracefully()
        report(result)
    }

    /// The same workload through `ZooKeeperClient`: `connections` sessions on one event loop, and
    /// on each `outstanding` tasks that issue a call, await it and issue the next, so that as many
    /// calls are in flight as with the raw loop.
    func runSwiftClient() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let run = BenchRun(
            op: op, outstanding: outstanding, value: [UInt8](repeating: 0x61, count: valueBytes),
            countLimit: count, prefix: "/minizk-bench-\(getpid())")
        let hostList = hosts.split(separator: ",").map(String.init)
        var clients: [ZooKeeperClient] = []
        for index in 0..<connections {
            var configuration = ZooKeeperClient.Configuration(connectString: hostList[index % hostList.count], sessionTimeout: .seconds(30))
            configuration.eventLoopGroup = group
            configuration.outstandingRequestsMax = max(outstanding * 2, 1000)
            let client = try await ZooKeeperClient.connect(configuration: configuration)
            do { try await client.create(run.prefix) } catch ZooKeeperError.nodeExists {}
            let node = "\(run.prefix)/n\(index)"
            try await client.create(node, data: run.value)
            clients.append(client)
        }
        let stop = NIOLockedValueBox(false)
        let op = self.op
        let value = run.value
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            for (index, client) in clients.enumerated() {
                let node = "\(run.prefix)/n\(index)"
                for worker in 0..<outstanding {
                    tasks.addTask {
                        var sequence = 0
                        while !stop.withLockedValue({ $0 }) {
                            let started = DispatchTime.now().uptimeNanoseconds
                            var ok = true
                            do {
                                switch op {
                                case .create:
                                    sequence += 1
                                    try await client.create("\(node)-\(worker)-\(sequence)", data: value)
                                case .set:
                                    try await client.setData(node, data: value)
                                case .get:
                                    _ = try await client.getData(node)
                                case .exists:
                                    _ = try await client.exists(node)
                                }
                            } catch {
                                ok = false
                            }
                            run.record(latencyMs: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6, ok: ok)
                        }
                    }
                }
            }
            try await Task.sleep(nanoseconds: 1_000_000_000)
            run.startMeasuring()
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline && !run.reachedLimit {
                try await Task.sleep(nanoseconds: 20_000_000)
            }
            stop.withLockedValue { $0 = true }
            try await tasks.waitForAll()
        }
        let result = run.stopMeasuring()
        for client in clients { await client.close() }
        try await group.shutdownGracefully()
        report(result)
    }

    func report(_ result: BenchRun.Result) {
        let rate = Double(result.completed) / result.seconds
        let p50 = result.percentile(0.50)
        let p99 = result.percentile(0.99)
        if json {
            print(String(format: "{\"client\":\"\(client.rawValue)\",\"op\":\"%@\",\"connections\":%d,\"outstanding\":%d,\"ops\":%d,\"seconds\":%.3f,\"rate\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"errors\":%d}",
                op.rawValue, connections, outstanding, result.completed, result.seconds, rate, p50, p99, result.errors))
        } else {
            print(String(format: "%@ (\(client.rawValue) client): %.0f ops/s (%d ops in %.2f s, %d connections x %d outstanding), latency p50 %.3f ms p99 %.3f ms, %d errors",
                op.rawValue, rate, result.completed, result.seconds, connections, outstanding, p50, p99, result.errors))
        }
    }
}

/// Shared counters of one benchmark run. Touched from the one event loop, read by the command.
final class BenchRun: @unchecked Sendable {
    let op: BenchCommand.Operation
    let outstanding: Int
    let value: [UInt8]
    let countLimit: Int
    let prefix: String
    private let lock = NIOLock()
    private var readyCount = 0
    private var readyPromise: EventLoopPromise<Void>?
    private var expected = 0
    private var measuring = false
    private var startedAt = Date()
    private var completed = 0
    private var errors = 0
    private var latencies: [Double] = []

    init(op: BenchCommand.Operation, outstanding: Int, value: [UInt8], countLimit: Int, prefix: String) {
        self.op = op
        self.outstanding = outstanding
        self.value = value
        self.countLimit = countLimit
        self.prefix = prefix
        latencies.reserveCapacity(1 << 20)
    }

    func ready(connections: Int, on loop: any EventLoop) async throws {
        let future: EventLoopFuture<Void> = lock.withLock {
            expected = connections
            let promise = loop.makePromise(of: Void.self)
            readyPromise = promise
            if readyCount >= expected { promise.succeed() }
            return promise.futureResult
        }
        try await future.get()
    }

    func connectionReady() {
        let promise: EventLoopPromise<Void>? = lock.withLock {
            readyCount += 1
            return readyCount == expected ? readyPromise : nil
        }
        promise?.succeed()
    }

    func startMeasuring() {
        lock.withLock {
            measuring = true
            startedAt = Date()
            completed = 0
            errors = 0
            latencies.removeAll(keepingCapacity: true)
        }
    }

    var reachedLimit: Bool { lock.withLock { countLimit > 0 && completed >= countLimit } }

    func record(latencyMs: Double, ok: Bool) {
        lock.withLock {
            guard measuring else { return }
            completed += 1
            if !ok { errors += 1 }
            if latencies.count < (1 << 22) { latencies.append(latencyMs) }
        }
    }

    struct Result {
        var completed: Int
        var errors: Int
        var seconds: Double
        var latencies: [Double]
        func percentile(_ p: Double) -> Double { minizk.percentile(latencies, p) }
    }

    func stopMeasuring() -> Result {
        lock.withLock {
            measuring = false
            return Result(completed: completed, errors: errors, seconds: Date().timeIntervalSince(startedAt), latencies: latencies)
        }
    }
}

/// One benchmark connection: handshake, setup, then a window of `outstanding` requests kept full.
final class BenchHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let run: BenchRun
    private let index: Int
    private var received = ByteBuffer()
    private var decoder = ZKFrameDecoder(frameBytesMax: 4 << 20)
    private var phase = 0  // 0 connecting, 1 setting up, 2 running
    private var xid: Int32 = 0
    private var sent: [(xid: Int32, at: UInt64)] = []
    private var sentHead = 0
    private var sequence = 0
    private var pendingWrite: ByteBuffer?

    init(run: BenchRun, index: Int) {
        self.run = run
        self.index = index
    }

    private var nodePath: String { "\(run.prefix)/n\(index)" }

    func channelActive(context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: 64)
        ClientMessageEncoder.encode(ConnectRequest(timeoutMs: 30_000), into: &buffer)
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    private func request() -> Request {
        switch run.op {
        case .create:
            sequence += 1
            return .create(CreateRequest(path: "\(nodePath)-\(sequence)", data: run.value, acl: ACL.openUnsafe, flags: 0))
        case .set:
            return .setData(path: nodePath, data: run.value, version: -1)
        case .get:
            return .getData(path: nodePath, watch: false)
        case .exists:
            return .exists(path: nodePath, watch: false)
        }
    }

    private func enqueue(_ request: Request, context: ChannelHandlerContext) {
        xid &+= 1
        if pendingWrite == nil { pendingWrite = context.channel.allocator.buffer(capacity: 4096) }
        ClientMessageEncoder.encode(xid: xid, request, into: &pendingWrite!)
        sent.append((xid, DispatchTime.now().uptimeNanoseconds))
    }

    private func flush(context: ChannelHandlerContext) {
        if let buffer = pendingWrite {
            pendingWrite = nil
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        }
        if sentHead > 4096 {
            sent.removeFirst(sentHead)
            sentHead = 0
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        received.writeBuffer(&bytes)
        while true {
            let frame: ByteBuffer?
            do { frame = try decoder.decode(buffer: &received) } catch {
                context.close(promise: nil)
                return
            }
            guard var payload = frame else { break }
            handle(&payload, context: context)
        }
        received.discardReadBytes()
        flush(context: context)
    }

    private func handle(_ payload: inout ByteBuffer, context: ChannelHandlerContext) {
        switch phase {
        case 0:
            phase = 1
            // Setup: the parent (shared; NODEEXISTS is fine) and this connection's node.
            enqueue(.create(CreateRequest(path: run.prefix, data: nil, acl: ACL.openUnsafe, flags: 0)), context: context)
            enqueue(.create(CreateRequest(path: nodePath, data: run.value, acl: ACL.openUnsafe, flags: 0)), context: context)
        case 1:
            guard let xid: Int32 = payload.getInteger(at: payload.readerIndex) else { return }
            sentHead += 1
            if xid == 2 {
                phase = 2
                run.connectionReady()
                for _ in 0..<run.outstanding { enqueue(request(), context: context) }
            }
        default:
            guard let xid: Int32 = payload.getInteger(at: payload.readerIndex), xid > 0,
                let err: Int32 = payload.getInteger(at: payload.readerIndex + 12)
            else { return }
            let now = DispatchTime.now().uptimeNanoseconds
            let sentAt = sentHead < sent.count ? sent[sentHead].at : now
            sentHead += 1
            run.record(latencyMs: Double(now - sentAt) / 1e6, ok: err == 0)
            enqueue(request(), context: context)
        }
    }
}

/// The sample at `fraction` (0...1) of `samples` sorted; 0 without samples.
func percentile(_ samples: [Double], _ fraction: Double) -> Double {
    guard !samples.isEmpty else { return 0 }
    let sorted = samples.sorted()
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))]
}
