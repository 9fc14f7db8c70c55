import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A TCP proxy in front of one server, so that a test can cut a client off and let it back in
/// at a moment of its choosing (against MiniZK or any external server): `dropAndHold()` closes
/// every proxied connection and turns new ones away until `release()`.
final class TestProxy: Sendable {
    struct State {
        var holding = false
        var inbound: [any Channel] = []
    }
    let state = NIOLockedValueBox(State())
    let listener: NIOLockedValueBox<(any Channel)?> = NIOLockedValueBox(nil)

    var port: Int { listener.withLockedValue { $0?.localAddress?.port ?? 0 } }

    static func start(group: any EventLoopGroup, targetHost: String, targetPort: Int) async throws -> TestProxy {
        let proxy = TestProxy()
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { inbound in
                let holding = proxy.state.withLockedValue { state -> Bool in
                    if !state.holding { state.inbound.append(inbound) }
                    return state.holding
                }
                if holding { return inbound.close() }
                // The client side buffers what it reads until the server side is connected.
                let clientSide = Glue()
                return inbound.pipeline.addHandler(clientSide).flatMap {
                    ClientBootstrap(group: inbound.eventLoop).connect(host: targetHost, port: targetPort)
                }.flatMap { outbound in
                    let serverSide = Glue()
                    serverSide.partner = clientSide
                    clientSide.partner = serverSide
                    return outbound.pipeline.addHandler(serverSide).map { clientSide.flushBuffered() }
                }.flatMapError { _ in inbound.close() }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        proxy.listener.withLockedValue { $0 = channel }
        return proxy
    }

    /// Closes every proxied connection; new ones are closed at once until `release()`.
    func dropAndHold() async {
        let channels = state.withLockedValue { state -> [any Channel] in
            state.holding = true
            defer { state.inbound.removeAll() }
            return state.inbound
        }
        for channel in channels { try? await channel.close().get() }
    }

    func release() { state.withLockedValue { $0.holding = false } }

    func close() async {
        await dropAndHold()
        if let channel = listener.withLockedValue({ $0 }) { try? await channel.close().get() }
    }
}

/// Forwards what one side reads to the other and closes the other when one side closes. Both
/// sides are on one event loop.
private final class Glue: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    var partner: Glue?
    var context: ChannelHandlerContext?
    /// What to write once this side's handler is added.
    var pending: [NIOAny] = []
    /// What this side read before it had a partner.
    var buffered: [NIOAny] = []

    func flushBuffered() {
        for data in buffered { partner?.forward(data) }
        buffered.removeAll()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        for data in pending { context.write(data, promise: nil) }
        if !pending.isEmpty { context.flush() }
        pending.removeAll()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    func forward(_ data: NIOAny) {
        if let context { context.writeAndFlush(data, promise: nil) } else { pending.append(data) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if let partner { partner.forward(data) } else { buffered.append(data) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        partner?.context?.close(promise: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
