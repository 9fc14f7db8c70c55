import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ZKCore
import ZKServerFormats

/// How a replica's peer messages travel. A transport delivers messages between two replicas in
/// order and without loss while their connection lasts, and reports connections coming up and
/// breaking as `.peerConnected` / `.peerDisconnected` inputs.
public protocol PeerTransport: AnyObject, Sendable {
    /// Registers the replica `serverId`; inbound inputs are handed to `deliver`, in order, a batch
    /// at a time (it hops to the replica's event loop once per batch).
    func attach(serverId: Int64, deliver: @escaping @Sendable ([ReplicaInput]) -> Void)
    /// Queues a message; `flush` sends what was queued.
    func send(_ outgoing: PeerOutgoing, from serverId: Int64)
    func flush(from serverId: Int64)
    /// Detaches the replica: its peers see it disconnect.
    func detach(serverId: Int64)
    /// The servers of the configurations the replica knows of changed (a reconfiguration): the
    /// transport reaches the new ones.
    func updatePeers(_ servers: [EnsembleConfig.Server], of serverId: Int64)
}

extension PeerTransport {
    public func updatePeers(_ servers: [EnsembleConfig.Server], of serverId: Int64) {}
}

/// The transport of an embedded ensemble: replicas in one process hand each other messages
/// directly, with no sockets. Each message is a closure run on the receiver's event loop, whose
/// queue keeps them in order.
public final class InProcessNetwork: PeerTransport, @unchecked Sendable {
    private let lock = NIOLock()
    private var members: [Int64: @Sendable ([ReplicaInput]) -> Void] = [:]
    /// Messages queued by `send` until the sender's `flush`, per (sender, receiver).
    private var pending: [Int64: [Int64: [ReplicaInput]]] = [:]

    public init() {}

    public func attach(serverId: Int64, deliver: @escaping @Sendable ([ReplicaInput]) -> Void) {
        let existing: [(Int64, @Sendable ([ReplicaInput]) -> Void)] = lock.withLock {
            let others = members.map { ($0.key, $0.value) }
            members[serverId] = deliver
            return others
        }
        for (peer, peerDeliver) in existing.sorted(by: { $0.0 < $1.0 }) {
            peerDeliver([.peerConnected(serverId)])
            deliver([.peerConnected(peer)])
        }
    }

    public func send(_ outgoing: PeerOutgoing, from serverId: Int64) {
        lock.withLock {
            guard members[serverId] != nil, members[outgoing.to] != nil else { return }
            pending[serverId, default: [:]][outgoing.to, default: []].append(.peerMessage(from: serverId, outgoing.message))
        }
    }

    /// Hands each receiver what this sender queued for it, as one batch: one hop per receiver per
    /// step instead of one per message.
    public func flush(from serverId: Int64) {
        let batches: [(@Sendable ([ReplicaInput]) -> Void, [ReplicaInput])] = lock.withLock {
            guard let queued = pending.removeValue(forKey: serverId) else { return [] }
            return queued.sorted(by: { $0.key < $1.key }).compactMap { target, inputs in
                members[target].map { ($0, inputs) }
            }
        }
        for (deliver, inputs) in batches { deliver(inputs) }
    }

    public func detach(serverId: Int64) {
        let others: [@Sendable ([ReplicaInput]) -> Void] = lock.withLock {
            members[serverId] = nil
            pending[serverId] = nil
            for key in pending.keys { pending[key]?[serverId] = nil }
            return Array(members.values)
        }
        for deliver in others { deliver([.peerDisconnected(serverId)]) }
    }
}

/// Peers over TCP, for replicas in separate processes.
///
/// One connection per pair: the replica with the higher id dials every replica with a lower id and
/// says who it is in a hello; the lower one accepts. A dial that fails, or a connection that
/// breaks, is retried with back-off. Frames follow the grammar in `PeerCodec.swift`. Any server
/// may dial in (one that joins the ensemble is not in its configuration yet); servers that a
/// reconfiguration adds are dialled from then on (`updatePeers`).
public final class TCPPeerTransport: PeerTransport, @unchecked Sendable {
    public struct Peer: Sendable {
        public var id: Int64
        public var host: String
        public var port: Int
        public init(id: Int64, host: String, port: Int) {
            self.id = id
            self.host = host
            self.port = port
        }
    }

    private let serverId: Int64
    private var peers: [Int64: Peer]
    private let group: any EventLoopGroup
    let logger: Logger
    private let lock = NIOLock()
    private var deliver: (@Sendable ([ReplicaInput]) -> Void)?
    private var channels: [Int64: any Channel] = [:]
    private var listener: (any Channel)?
    private var stopped = false

    public init(serverId: Int64, peers: [Peer], group: any EventLoopGroup, logger: Logger) {
        self.serverId = serverId
        self.peers = Dictionary(uniqueKeysWithValues: peers.filter { $0.id != serverId }.map { ($0.id, $0) })
        self.group = group
        self.logger = logger
    }

    /// Binds the peer port.
    public func listen(host: String, port: Int) async throws {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(PeerFrameDecoder(expectHello: true)))
                    try channel.pipeline.syncOperations.addHandler(PeerChannelHandler(transport: self, peer: nil))
                }
            }
        listener = try await bootstrap.bind(host: host, port: port).get()
    }

    public func attach(serverId: Int64, deliver: @escaping @Sendable ([ReplicaInput]) -> Void) {
        let peers = lock.withLock {
            self.deliver = deliver
            return self.peers
        }
        for peer in peers.values.sorted(by: { $0.id < $1.id }) where peer.id < serverId {
            dial(peer, delayMs: 0)
        }
    }

    public func updatePeers(_ servers: [EnsembleConfig.Server], of serverId: Int64) {
        let added: [Peer] = lock.withLock {
            var added: [Peer] = []
            for server in servers where server.id != serverId {
                let peer = Peer(id: server.id, host: server.host, port: server.peerPort)
                let known = peers[server.id]
                peers[server.id] = peer
                if known?.host != peer.host || known?.port != peer.port { added.append(peer) }
            }
            return stopped ? [] : added
        }
        for peer in added where peer.id < serverId {
            logger.info("dialling a server of the new configuration", metadata: ["peer": "\(peer.id)", "address": "\(peer.host):\(peer.port)"])
            dial(peer, delayMs: 0)
        }
    }

    private func dial(_ peer: Peer, delayMs: Int64) {
        let loop = group.next()
        loop.scheduleTask(in: .milliseconds(delayMs)) { [self] in
            if lock.withLock({ stopped || channels[peer.id] != nil || peers[peer.id]?.port != peer.port }) { return }
            let bootstrap = ClientBootstrap(group: loop)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connectTimeout(.seconds(2))
                .channelInitializer { [self] channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            ByteToMessageHandler(PeerFrameDecoder(expectHello: false)))
                        try channel.pipeline.syncOperations.addHandler(PeerChannelHandler(transport: self, peer: peer.id))
                    }
                }
            bootstrap.connect(host: peer.host, port: peer.port).whenComplete { [self] result in
                switch result {
                case .success(let channel):
                    var hello = channel.allocator.buffer(capacity: 12)
                    hello.writeInteger(PeerCodec.helloMagic)
                    hello.writeInteger(serverId)
                    channel.writeAndFlush(hello, promise: nil)
                    connected(peer.id, channel)
                case .failure:
                    // Members of a new ensemble start within milliseconds of each other: retry
                    // soon at first (5, 10, 20 ms ...), then back off to a second.
                    dial(peer, delayMs: min(max(delayMs * 2, 5), 1000))
                }
            }
        }
    }

    fileprivate func connected(_ peer: Int64, _ channel: any Channel) {
        let (deliver, previous): ((@Sendable ([ReplicaInput]) -> Void)?, (any Channel)?) = lock.withLock {
            let previous = channels[peer]
            channels[peer] = channel
            return (self.deliver, previous)
        }
        if let previous, previous !== channel {
            // One connection per pair: a newer one replaces the old, whose loss the replica hears of first.
            previous.close(promise: nil)
            deliver?([.peerDisconnected(peer)])
        }
        logger.debug("peer connected", metadata: ["peer": "\(peer)"])
        deliver?([.peerConnected(peer)])
    }

    fileprivate func disconnected(_ peer: Int64, _ channel: any Channel) {
        let (deliver, wasCurrent, stopped): ((@Sendable ([ReplicaInput]) -> Void)?, Bool, Bool) = lock.withLock {
            let current = channels[peer] === channel
            if current { channels[peer] = nil }
            return (self.deliver, current, self.stopped)
        }
        guard wasCurrent else { return }
        logger.debug("peer disconnected", metadata: ["peer": "\(peer)"])
        deliver?([.peerDisconnected(peer)])
        if !stopped, peer < serverId, let info = lock.withLock({ peers[peer] }) { dial(info, delayMs: 50) }
    }

    fileprivate func received(_ messages: [PeerMessage], from peer: Int64) {
        let deliver = lock.withLock { self.deliver }
        deliver?(messages.map { .peerMessage(from: peer, $0) })
    }

    public func send(_ outgoing: PeerOutgoing, from serverId: Int64) {
        guard let channel = lock.withLock({ channels[outgoing.to] }) else { return }
        var buffer = channel.allocator.buffer(capacity: 64)
        PeerCodec.encode(outgoing.message, into: &buffer)
        channel.write(buffer, promise: nil)
    }

    public func flush(from serverId: Int64) {
        let all = lock.withLock { Array(channels.values) }
        for channel in all { channel.flush() }
    }

    public func detach(serverId: Int64) {
        let (all, listener) = lock.withLock {
            stopped = true
            let all = Array(channels.values)
            channels.removeAll()
            return (all, self.listener)
        }
        for channel in all { channel.close(promise: nil) }
        listener?.close(promise: nil)
    }

    fileprivate func accepts(_ peer: Int64) -> Bool { peer != serverId }
}

/// Cuts the peer byte stream into messages; on an accepted connection the first bytes are the
/// hello naming the dialling peer.
struct PeerFrameDecoder: ByteToMessageDecoder {
    enum Inbound {
        case hello(Int64)
        case message(PeerMessage)
    }
    typealias InboundOut = Inbound
    var expectHello: Bool

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        if expectHello {
            guard buffer.readableBytes >= 12 else { return .needMoreData }
            let magic: Int32 = buffer.readInteger()!
            let id: Int64 = buffer.readInteger()!
            guard magic == PeerCodec.helloMagic else { throw PeerCodec.DecodeError.invalid("hello magic \(magic)") }
            expectHello = false
            context.fireChannelRead(wrapInboundOut(.hello(id)))
            return .continue
        }
        guard let length: Int32 = buffer.getInteger(at: buffer.readerIndex) else { return .needMoreData }
        guard length >= 4, Int(length) <= PeerCodec.frameBytesMax else { throw PeerCodec.DecodeError.invalid("frame length \(length)") }
        if Int(length) > PeerCodec.smallFrameBytesMax {
            // Check the kind's own limit before waiting for (and buffering) the rest of the frame.
            guard let tag: Int32 = buffer.getInteger(at: buffer.readerIndex + 4) else { return .needMoreData }
            guard Int(length) <= PeerCodec.frameBytesMax(tag: tag) else {
                throw PeerCodec.DecodeError.invalid("frame length \(length) above \(PeerCodec.frameBytesMax(tag: tag)) for tag \(tag)")
            }
        }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        var payload = buffer.readSlice(length: Int(length))!
        let message = try PeerCodec.decode(&payload)
        context.fireChannelRead(wrapInboundOut(.message(message)))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        .needMoreData
    }
}

final class PeerChannelHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = PeerFrameDecoder.Inbound
    private let transport: TCPPeerTransport
    private var peer: Int64?
    /// Messages of one read cycle, delivered together on `channelReadComplete`.
    private var batch: [PeerMessage] = []

    init(transport: TCPPeerTransport, peer: Int64?) {
        self.transport = transport
        self.peer = peer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .hello(let id):
            guard transport.accepts(id) else {
                context.close(promise: nil)
                return
            }
            peer = id
            transport.connected(id, context.channel)
        case .message(let message):
            guard peer != nil else { return }
            batch.append(message)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if let peer, !batch.isEmpty {
            transport.received(batch, from: peer)
            batch.removeAll(keepingCapacity: true)
        }
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let peer { transport.disconnected(peer, context.channel) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is PeerCodec.DecodeError {
            transport.logger.warning(
                "closing a peer connection", metadata: ["peer": "\(peer.map(String.init) ?? "unknown")", "reason": "\(error)"])
        }
        context.close(promise: nil)
    }
}
