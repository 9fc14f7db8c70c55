import Logging
import NIOCore
import ZKCore
import ZKProtocol

/// One client connection on the client port.
///
/// A connection is one of two things, decided by its first four bytes:
/// - a **four-letter word**: the bytes spell a known command; the connection gets one plain-text
///   answer and is closed;
/// - a **ZooKeeper session connection**: the bytes are the length prefix of the first frame, a
///   ConnectRequest; every later frame is a request header and its record.
///
/// The handler only splits, decodes and forwards. Frames are cut with `ZKFrameDecoder` against
/// the configured maximum; a frame that cannot be decoded, or that announces more bytes than the
/// maximum, closes this connection alone, with the reason logged, as ZooKeeper closes it without a
/// reply.
///
/// Back-pressure. The replica answers on the loop that reads, so a client that sends faster than
/// it reads fills its own outbound queue. While more than `outboundBytesReadPause` bytes wait to
/// be written, the handler stops reading from the socket (it withholds `read()`), which pushes back
/// on the sender through TCP; reading resumes below half of that. Pausing is not enough for a
/// client that never reads at all, because watch notifications caused by other sessions still
/// arrive for it: past `outboundBytesMax` queued bytes the connection is closed with a logged
/// reason, and its session lives on in the replica until it expires or is resumed.
final class ClientConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State {
        /// Fewer than four bytes have arrived: not yet known whether this is a four-letter word.
        case detecting
        /// Waiting for the ConnectRequest frame.
        case awaitingConnect
        /// The ConnectRequest was forwarded; every further frame is a request.
        case connected
        /// No more input is read: a four-letter word was answered, a frame was bad, or the replica
        /// or the shell asked for the close. Output already queued is still flushed.
        case closing
        case closed
    }

    /// A request whose reply has not been sent yet, for latency and `cons`.
    private struct PendingReply {
        /// nil for the ConnectRequest, whose answer carries no xid.
        var xid: Int32?
        var opcode: Int32
        var receivedAt: NIODeadline
    }

    private let host: ReplicaHost
    private let logger: Logger
    private var state = State.detecting
    private var context: ChannelHandlerContext?
    private var id: ConnectionID = 0
    private var frameDecoder: ZKFrameDecoder
    private var inbound: ByteBuffer?
    private var pendingReplies: [PendingReply] = []
    private var queuedOutboundBytes = 0
    private var isReadingPaused = false
    private var readWasRequested = false
    private var closeWhenFlushed = false
    /// Requests read but left undecoded while reading is throttled (see `processInbound`).
    private var isDecodingWithheld = false
    /// Requests decoded in this turn, and whether the turn ended with requests left undecoded
    /// (`ServerOptions.requestsPerTurn`): the next turn is a task queued behind the loop's next
    /// look at its sockets, and nothing more is read until it has decoded them all.
    private var decodedThisTurn = 0
    private var isWaitingForTurn = false
    /// Counters for `cons`, `stat` and `crst`; only meaningful once the channel is active.
    var statistics = ConnectionStatistics(id: 0, peerAddress: "", peerPort: 0, establishedAtMs: 0)

    init(host: ReplicaHost, logger: Logger) {
        self.host = host
        self.logger = logger
        self.frameDecoder = ZKFrameDecoder(frameBytesMax: host.options.frameBytesMax)
    }

    var isOpen: Bool {
        switch state {
        case .closed: return false
        default: return context != nil
        }
    }

    var allocator: ByteBufferAllocator { context?.channel.allocator ?? ByteBufferAllocator() }

    // MARK: - Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        let remote = context.remoteAddress
        let peerAddress = remote?.ipAddress ?? "unknown"
        let peerPort = remote?.port ?? 0
        guard let registered = host.connectionOpened(self, peerAddress: peerAddress, peerPort: peerPort) else {
            // Not serving, or over a connection limit (the host logged which).
            logger.debug("refusing a connection", metadata: ["peer": "\(peerAddress):\(peerPort)"])
            state = .closing
            context.close(promise: nil)
            return
        }
        id = registered.id
        statistics = registered
        logger.debug("connection accepted", metadata: ["connection": "\(id)", "peer": "\(peerAddress):\(peerPort)"])
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        let wasRegistered = id != 0
        state = .closed
        inbound = nil
        host.outstandingRequestsChanged(by: -pendingReplies.count)
        pendingReplies.removeAll()
        if wasRegistered {
            logger.debug("connection closed", metadata: ["connection": "\(id)"])
            host.connectionClosed(id)
        }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        switch state {
        case .closing, .closed:
            return
        case .detecting, .awaitingConnect, .connected:
            break
        }
        host.connectionRead()
        if inbound == nil {
            inbound = bytes
        } else {
            inbound!.writeBuffer(&bytes)
        }
        decodeWhatWasRead()
        if inbound != nil, inbound!.readerIndex > 64 * 1024 {
            inbound!.discardReadBytes()
        }
    }

    /// The end of one read cycle: the next one starts a new turn, unless this one ended with
    /// requests left for the next.
    func channelReadComplete(context: ChannelHandlerContext) {
        if !isWaitingForTurn { decodedThisTurn = 0 }
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        logger.debug("connection error", metadata: ["connection": "\(id)", "error": "\(error)"])
        state = .closing
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if case .closing = state {
            // Lingering before the close: what arrives is read and discarded.
            context.read()
        } else if isReadingPaused || isWaitingForTurn {
            readWasRequested = true
        } else if host.isPaused || host.isThrottled {
            // A paused replica (tests) reads nothing, nor does a throttled one (more than
            // `outstandingRequestsMax` requests unanswered): the client's bytes wait in the socket.
            readWasRequested = true
            host.withholdRead(self)
        } else {
            context.read()
        }
    }

    /// The replica resumed after a pause, or throttling ended: decodes what was read and left
    /// undecoded, then reads what the connection asked to read meanwhile.
    func readAfterPause() {
        if isDecodingWithheld {
            isDecodingWithheld = false
            decodeWhatWasRead()
            // Throttled again before this connection's bytes were all decoded: it waits its turn.
            if isDecodingWithheld { return }
        }
        guard readWasRequested, !isReadingPaused, !isWaitingForTurn, let context else { return }
        if host.isPaused || host.isThrottled {
            host.withholdRead(self)
            return
        }
        readWasRequested = false
        context.read()
    }

    // MARK: - Input

    /// This connection's next turn: decodes what it read (up to the turn's share), then reads
    /// again if it asked to meanwhile.
    func nextTurn() {
        isWaitingForTurn = false
        decodedThisTurn = 0
        switch state {
        case .closing, .closed: return
        default: break
        }
        decodeWhatWasRead()
        guard !isWaitingForTurn, !isDecodingWithheld, readWasRequested, let context else { return }
        // Through `read`, which withholds it while the replica is paused or throttled.
        readWasRequested = false
        read(context: context)
    }

    /// Decodes what was read, as far as the turn and the throttle allow, with the replies of all
    /// of it flushed once (the host's flush scope); drops the buffer once it is used up.
    private func decodeWhatWasRead() {
        host.beginFlushScope()
        processInbound()
        host.endFlushScope()
        if let buffer = inbound, buffer.readableBytes == 0 { inbound = nil }
    }

    private func processInbound() {
        while inbound != nil {
            switch state {
            case .detecting:
                guard detectFourLetterWord() else { return }
            case .awaitingConnect:
                guard decodeNextFrame() else { return }
            case .connected:
                if host.isThrottled {
                    // Requests already read wait undecoded, as those still in the socket do: what
                    // queues ahead of other clients is bounded by the limit, not by this read.
                    isDecodingWithheld = true
                    host.withholdRead(self)
                    return
                }
                let isLookSpent = host.isLookSpent
                let perTurn = isLookSpent ? 1 : host.options.requestsPerTurn
                if perTurn > 0, decodedThisTurn >= perTurn {
                    if !isWaitingForTurn, context != nil {
                        isWaitingForTurn = true
                        host.continueTurnLater(self)
                    }
                    return
                }
                decodedThisTurn += 1
                host.requestDecoded()
                guard decodeNextFrame() else { return }
            case .closing, .closed:
                return
            }
        }
    }

    /// Looks at the first four bytes. Returns true when processing may go on.
    private func detectFourLetterWord() -> Bool {
        guard let buffer = inbound, let first4 = buffer.getInteger(at: buffer.readerIndex, as: Int32.self) else {
            return false
        }
        guard let word = FourLetterWord.detect(first4) else {
            if let failure = host.storeFailure {
                // A replica whose store failed answers four-letter words only.
                _ = closeNow(reason: "not serving: \(failure)")
                return false
            }
            state = .awaitingConnect
            return true
        }
        guard host.options.fourLetterWords.allows(word, readOnlyModeEnabled: host.config.readOnlyModeEnabled) else {
            inbound = nil
            logger.debug("four-letter word not in the whitelist", metadata: ["connection": "\(id)", "word": "\(word.rawValue)"])
            let text = FourLetterWordWhitelist.refusal(word)
            var reply = allocator.buffer(capacity: text.utf8.count)
            reply.writeString(text)
            write(reply)
            closeAfterFlush(reason: "the four-letter word \(word.rawValue) is not in the whitelist")
            return false
        }
        var argument: Int64?
        if word == .stmk {
            // `stmk` carries the new trace mask as 8 more bytes.
            guard let mask = buffer.getInteger(at: buffer.readerIndex + 4, as: Int64.self) else { return false }
            argument = mask
        }
        inbound = nil
        logger.debug("four-letter word", metadata: ["connection": "\(id)", "word": "\(word.rawValue)"])
        let text = host.answer(word, argument: argument)
        var reply = allocator.buffer(capacity: text.utf8.count)
        reply.writeString(text)
        write(reply)
        closeAfterFlush(reason: "answered the four-letter word \(word.rawValue)")
        return false
    }

    /// Decodes one frame and forwards it. Returns true when another frame may follow.
    private func decodeNextFrame() -> Bool {
        let payload: ByteBuffer?
        do {
            payload = try frameDecoder.decode(buffer: &inbound!)
        } catch {
            closeForBadInput(reason: "bad frame: \(error)")
            return false
        }
        guard var payload else { return false }
        statistics.packetsReceived += 1
        host.bytesReceived(payload.readableBytes + 4)
        let receivedAt = NIODeadline.now()
        if case .awaitingConnect = state {
            let request: ConnectRequest
            do {
                request = try ClientMessageDecoder.decodeConnectRequest(&payload)
            } catch {
                closeForBadInput(reason: "undecodable ConnectRequest: \(error)")
                return false
            }
            state = .connected
            pendingReplies.append(PendingReply(xid: nil, opcode: OpCode.createSession.rawValue, receivedAt: receivedAt))
            host.outstandingRequestsChanged(by: 1)
            statistics.queuedRequests = pendingReplies.count
            host.frameReceived(.connect(id, request))
        } else {
            let header: RequestHeader
            let request: Request
            do {
                (header, request) = try ClientMessageDecoder.decodeRequest(&payload)
            } catch {
                closeForBadInput(reason: "undecodable request: \(error)")
                return false
            }
            statistics.lastCxid = Int64(header.xid)
            pendingReplies.append(PendingReply(xid: header.xid, opcode: header.type, receivedAt: receivedAt))
            host.outstandingRequestsChanged(by: 1)
            if pendingReplies.count > 2 * host.config.outstandingRequestsPerConnectionMax + 16 {
                // The replica disconnects long before this; keep the bookkeeping bounded regardless.
                pendingReplies.removeFirst()
                host.outstandingRequestsChanged(by: -1)
            }
            statistics.queuedRequests = pendingReplies.count
            host.frameReceived(.request(id, header, request))
        }
        return isOpen && inbound != nil
    }

    private func closeForBadInput(reason: String) {
        logger.info(
            "closing a client connection",
            metadata: ["connection": "\(id)", "peer": "\(statistics.peerAddress):\(statistics.peerPort)", "reason": "\(reason)"])
        closeAfterFlush(reason: reason, alreadyLogged: true)
    }

    // MARK: - Output (called by the host, on the loop)

    /// Accounts for one frame about to be written; returns the request's latency when the frame is
    /// the reply to a pending request.
    func frameSent(_ frame: ServerFrame, nowMs: Int64, now: NIODeadline) -> (latencyMs: Int64, opcode: Int32)? {
        statistics.packetsSent += 1
        let match: Int?
        switch frame {
        case .notification:
            return nil
        case .connect:
            match = pendingReplies.firstIndex { $0.xid == nil }
        case .reply(let header, _):
            statistics.lastZxid = header.zxid
            match = pendingReplies.firstIndex { $0.xid == header.xid }
        }
        guard let match else { return nil }
        let pending = pendingReplies.remove(at: match)
        host.outstandingRequestsChanged(by: -1)
        statistics.queuedRequests = pendingReplies.count
        let latencyMs = max(0, (now - pending.receivedAt).nanoseconds / 1_000_000)
        statistics.latency.record(ms: latencyMs)
        statistics.lastLatencyMs = latencyMs
        statistics.lastResponseAtMs = nowMs
        statistics.lastOperation = OperationAbbreviation.of(opcode: pending.opcode)
        return (latencyMs, pending.opcode)
    }

    /// Writes and flushes `buffer`, keeping count of the bytes not yet handed to the socket.
    private var isFlushScheduled = false

    func write(_ buffer: ByteBuffer) {
        guard let context, isOpen else { return }
        let byteCount = buffer.readableBytes
        queuedOutboundBytes += byteCount
        let promise = context.eventLoop.makePromise(of: Void.self)
        promise.futureResult.assumeIsolated().whenComplete { [self] _ in
            self.queuedOutboundBytes -= byteCount
            self.outboundDrained()
        }
        context.write(wrapOutboundOut(buffer), promise: promise)
        // One flush per step batch or read (the host's flush scope), else per event-loop
        // iteration: the replies of every request decoded in one read leave in one system call.
        if !isFlushScheduled {
            isFlushScheduled = true
            if !host.flushAtEndOfScope(self) {
                context.eventLoop.assumeIsolated().execute { [self] in self.flushNow() }
            }
        }
        if queuedOutboundBytes > host.options.outboundBytesMax {
            _ = closeNow(reason: "more than \(host.options.outboundBytesMax) bytes wait to be written to the client")
        } else if queuedOutboundBytes > host.options.outboundBytesReadPause, !isReadingPaused {
            logger.debug("pausing reads: the client is not reading its replies", metadata: ["connection": "\(id)"])
            isReadingPaused = true
            statistics.isReading = false
        }
    }

    /// Flushes what was written since the last flush.
    func flushNow() {
        guard isFlushScheduled else { return }
        isFlushScheduled = false
        context?.flush()
    }

    private func outboundDrained() {
        if closeWhenFlushed, queuedOutboundBytes == 0 {
            closeWhenFlushed = false
            linger()
            return
        }
        if isReadingPaused, queuedOutboundBytes <= host.options.outboundBytesReadPause / 2 {
            isReadingPaused = false
            statistics.isReading = true
            if readWasRequested, let context {
                // Through `read`, which withholds it again while the replica is paused or throttled.
                readWasRequested = false
                read(context: context)
            }
        }
    }

    /// Stops reading and closes the connection once everything queued before is flushed (or after
    /// `closeFlushTimeoutMs`, for a client that does not read).
    func closeAfterFlush(reason: String, alreadyLogged: Bool = false) {
        switch state {
        case .closed:
            return
        case .closing where closeWhenFlushed:
            return
        default:
            break
        }
        if !alreadyLogged {
            logger.debug("closing a client connection", metadata: ["connection": "\(id)", "reason": "\(reason)"])
        }
        state = .closing
        inbound = nil
        guard let context else { return }
        if queuedOutboundBytes == 0 {
            linger()
            return
        }
        closeWhenFlushed = true
        let timeout = TimeAmount.milliseconds(host.options.closeFlushTimeoutMs)
        context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            if self.closeWhenFlushed {
                _ = self.closeNow(reason: "the client did not read its last replies within \(self.host.options.closeFlushTimeoutMs) ms")
            }
        }
    }

    /// The last replies are written: ends the output (FIN) and goes on reading, discarding, until
    /// the client closes its side or `closeFlushTimeoutMs` passes. Closing at once while the
    /// client's later bytes (a ping, a pipelined request) sit unread would make the kernel answer
    /// with a reset, and a reset makes the client's kernel drop what it had not yet read: the
    /// AUTHFAILED or the four-letter word's answer that explains the close. Where a half-close is
    /// not possible (TLS), the connection is closed whole.
    private func linger() {
        guard let context else { return }
        let channel = context.channel
        context.close(mode: .output).assumeIsolated().whenComplete { result in
            guard case .success = result else { return channel.close(promise: nil) }
            channel.read()
        }
        let timeout = TimeAmount.milliseconds(host.options.closeFlushTimeoutMs)
        context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { channel.close(promise: nil) }
    }

    /// Closes the connection now, dropping output not yet written. The future completes when the
    /// channel is closed.
    func closeNow(reason: String) -> EventLoopFuture<Void> {
        guard let context else { return host.eventLoop.makeSucceededVoidFuture() }
        let channel = context.channel
        if case .closed = state { return channel.closeFuture }
        logger.info("closing a client connection", metadata: ["connection": "\(id)", "reason": "\(reason)"])
        state = .closing
        closeWhenFlushed = false
        inbound = nil
        context.close(promise: nil)
        return channel.closeFuture
    }
}
