import DequeModule
import NIOCore
import ZKProtocol

// The client side of a ZooKeeper session as a deterministic state machine.
//
// A ZooKeeper session outlives its TCP connections. The client keeps one connection at a time to
// one member of the ensemble; when the connection drops it connects to the next member and
// resumes the session with its id and password, carrying the last zxid it has seen so that a
// member that is behind refuses it (the client never goes back in time). What the session owns:
//
// * xids: ordinary requests get 1, 2, 3 ...; replies must come back in the order the requests
//   left. A reply whose xid is not the oldest pending one is a protocol error and the connection
//   is dropped, as ZooKeeper's Java client does. Special xids: -1 notifications, -2 pings,
//   -4 auth, -8 setWatches (what kazoo uses, and what every server version answers).
// * liveness: a ping after a third of the negotiated timeout without sending anything, and the
//   connection given up after two thirds of it without hearing anything.
// * watches: one table per kind (data, exist, child, persistent, persistent-recursive) of the
//   paths watched and the watcher ids that wait on them. One-shot watches are registered when the
//   reply that sets them arrives and removed when they fire; after a reconnect every watch is
//   re-registered with setWatches2 relative to the last zxid seen, which makes the server fire
//   what was missed in between.
// * failures: requests in flight when a connection drops fail with connectionLoss (the program
//   decides whether to retry: ZooKeeper cannot tell whether they took effect); a server that
//   answers a reconnect with timeout 0 ends the session: everything fails sessionExpired and
//   every watcher is told.
// * chroot: prefixed to every path that leaves, stripped from every path that comes back.
// * auth: every `addAuth` is remembered and sent again after each reconnect.
// * SASL: with `Configuration.sasl` set, every connection authenticates with DIGEST-MD5
//   (`SASLDigestClient`, opcode 102 with ordinary xids) right after the handshake and before
//   anything else: auth replays, setWatches2 and waiting calls go out, and the program is told
//   `connected` / `reconnected`, only once the server has proved it knows the password too. A
//   refusal (AUTHFAILED, or a server proof that does not check) ends the session `authFailed`,
//   as ZooKeeper's Java client does. The client nonce of each exchange is drawn from a
//   generator seeded once from the generator passed to `init` (and only when SASL is configured,
//   so sessions without it draw exactly what they drew before).
//
// Deliberate differences from ZooKeeper's Java client:
// * The ConnectRequest is sent alone and auth / setWatches / queued requests only after its
//   answer, instead of pipelined behind it: a session found expired then never sees requests
//   written on its behalf.
// * Auth packets go before setWatches2, so watches on nodes the auth grants access to are
//   re-registered with the identity in place.
// * After trying every host once without success the session waits `reconnectDelayMs` (a fixed,
//   configured delay) instead of sleeping a random second: the core has no randomness; the shell
//   may add jitter.
// * Requests submitted while no connection is up wait (bounded) for the next one, and fail with
//   connectionLoss if the connection attempt fails, as in Java.
//
// Nothing here reads a clock or a random source: time arrives as `nowMs` arguments, the host
// order is shuffled by the generator passed to `init`.

/// Chosen by the caller to match completions to calls.
public typealias RequestToken = UInt64
/// Chosen by the caller to name one watcher (a one-shot watch or a persistent watch stream).
public typealias WatcherID = UInt64

/// The states a program sees (`Watcher.Event.KeeperState`, in Curator's vocabulary).
public enum ConnectionState: Sendable, Hashable, CustomStringConvertible {
    /// Not connected yet (only before the first connect).
    case connecting
    /// The first connection of the session is up.
    case connected
    /// Connected to a member that serves reads only (the ensemble has no quorum).
    case connectedReadOnly
    /// The connection dropped; the session may still be alive. Requests fail with connectionLoss.
    case suspended
    /// A new connection resumed the session after `suspended`.
    case reconnected
    /// The ensemble declared the session over: ephemerals are gone, watches are dropped.
    case expired
    /// The program closed the session.
    case closed
    /// The server refused the credentials of an `addAuth`; the session is unusable.
    case authFailed

    /// The session cannot serve requests any more.
    public var isTerminal: Bool { self == .expired || self == .closed || self == .authFailed }

    public var description: String {
        switch self {
        case .connecting: return "connecting"
        case .connected: return "connected"
        case .connectedReadOnly: return "connectedReadOnly"
        case .suspended: return "suspended"
        case .reconnected: return "reconnected"
        case .expired: return "expired"
        case .closed: return "closed"
        case .authFailed: return "authFailed"
        }
    }
}

/// A frame the client sends.
public enum ClientFrame: Sendable, Hashable {
    case connect(ConnectRequest)
    case request(xid: Int32, Request)

    /// Appends the length-prefixed frame.
    public func encode(into buffer: inout ByteBuffer) {
        switch self {
        case .connect(let request): ClientMessageEncoder.encode(request, into: &buffer)
        case .request(let xid, let request): ClientMessageEncoder.encode(xid: xid, request, into: &buffer)
        }
    }
}

/// A watch notification as the program sees it (path relative to the chroot).
public struct WatchEvent: Sendable, Hashable, CustomStringConvertible {
    public var type: EventType
    public var path: String
    public init(type: EventType, path: String) {
        self.type = type
        self.path = path
    }
    public var description: String { "\(type) \(path)" }
}

/// The kinds of watch a watcher can hold.
public enum WatchKind: Sendable, Hashable {
    /// getData, or exists on an existing node: fires on data change and delete.
    case data
    /// exists on a missing node: fires on create.
    case exist
    /// getChildren: fires on child list change and on delete.
    case child
    /// addWatch persistent: every event on the node, kept until removed.
    case persistent
    /// addWatch persistentRecursive: every event on the node and below (no child events).
    case persistentRecursive
}

/// One thing the shell must do. See `ClientStep` for the order.
public enum ClientAction: Sendable, Hashable {
    /// Open a connection to this host, closing any open one first. Report the outcome with
    /// `connectionEstablished(attempt:)` / `connectionLost(attempt:)` carrying `attempt`.
    case connect(HostAddress, attempt: UInt64)
    /// Write this frame on the current connection.
    case send(ClientFrame)
    /// Close the current connection (its later events are stale and ignored).
    case closeConnection
    /// Deliver a watch event to these watchers. One-shot watchers among them are gone after this.
    case watchEvent(WatchEvent, watchers: [WatcherID])
    /// The call `token` finished. Success carries the reply body with paths relative to the chroot.
    case complete(RequestToken, Result<Response, ErrorCode>)
    /// These watchers will never fire again: the session ended (`code` is sessionExpired,
    /// authFailed, or ok for a close), or removeWatches removed them (`code` ok).
    case watchersEnded([WatcherID], code: ErrorCode)
    /// The connection state changed.
    case stateChanged(ConnectionState)
}

/// What one input produced.
///
/// Ordering contract: the shell performs `actions` strictly in order. The order is the order of
/// the wire: a notification that arrived before a reply yields its `watchEvent` before the
/// reply's `complete`, which is how ZooKeeper's guarantee "a watcher sees the event before the
/// reply of any later read that sees the change" reaches the program. A `stateChanged(.suspended)`
/// comes before the connectionLoss completions it explains; `connect` comes after the
/// `closeConnection` of the connection it replaces. `timerAtMs` is when the session next needs a
/// `tick` (nil: only when an input arrives); ticking earlier is harmless.
public struct ClientStep: Sendable, Hashable {
    public var actions: [ClientAction] = []
    public var timerAtMs: Int64? = nil
    public init() {}
}

/// A call as the session takes it.
public struct ClientCall: Sendable, Hashable {
    public var request: Request
    /// For getData / exists / getChildren(2) with watch set, and addWatch: who waits on the watch.
    public var watcher: WatcherID?
    /// Send the paths as given, outside the chroot (getConfig reads /zookeeper/config this way).
    public var ignoresChroot: Bool
    public init(_ request: Request, watcher: WatcherID? = nil, ignoresChroot: Bool = false) {
        self.request = request
        self.watcher = watcher
        self.ignoresChroot = ignoresChroot
    }
}

public struct ClientSession: Sendable {
    public struct Configuration: Sendable, Hashable {
        /// The session timeout asked for; the server negotiates it within its bounds.
        public var sessionTimeoutMs: Int32
        /// Prefixed to every path.
        public var chroot: String?
        /// Accept a connection to a member that serves reads only.
        public var canBeReadOnly: Bool = false
        /// Requests sent and not answered plus requests waiting for a connection; beyond this a
        /// call fails at once with throttledOp.
        public var outstandingRequestsMax: Int = 10_000
        /// A call not answered after this long drops the connection (it fails requestTimeout,
        /// those behind it connectionLoss). nil: no limit.
        public var requestTimeoutMs: Int64? = nil
        /// How long a connect (TCP plus handshake) may take; default the session timeout divided by
        /// the number of hosts, as ZooKeeper does.
        public var connectTimeoutMs: Int64? = nil
        /// Pause after every host failed once in a row.
        public var reconnectDelayMs: Int64 = 1_000
        /// setWatches2 requests are split so that the paths of one stay under this many bytes
        /// (ZooKeeper's client uses 128 KB).
        public var setWatchesBytesMax: Int = 128 * 1024
        /// Resume this session instead of starting one (id and password from another client).
        public var sessionId: Int64 = 0
        public var password: [UInt8] = [UInt8](repeating: 0, count: 16)
        /// With `sessionId`: the last zxid the session's earlier client saw. Members behind it
        /// refuse the connect, so a resumed session never reads older state than it has seen.
        public var lastZxidSeen: Int64 = 0
        /// Credentials sent on every connection before anything else.
        public var authInfo: [AuthInfo] = []
        /// SASL DIGEST-MD5 credentials: every connection authenticates with them first.
        public var sasl: SASLCredentials? = nil

        public init(sessionTimeoutMs: Int32, chroot: String? = nil) {
            self.sessionTimeoutMs = sessionTimeoutMs
            self.chroot = chroot
        }
    }

    public struct AuthInfo: Sendable, Hashable {
        public var scheme: String
        public var auth: [UInt8]
        public init(scheme: String, auth: [UInt8]) {
            self.scheme = scheme
            self.auth = auth
        }
    }

    /// A request on the wire, waiting for its reply.
    struct Pending: Sendable, Hashable {
        var xid: Int32
        var token: RequestToken
        var call: ClientCall
        var sentAtMs: Int64
    }

    /// A close asked for while no connection was up: closeSession goes out on the next connection,
    /// or the session is given up locally at `deadlineMs` (its ephemerals then live until it
    /// expires on the ensemble).
    struct CloseRequest: Sendable, Hashable {
        var token: RequestToken?
        var deadlineMs: Int64
    }

    /// A request waiting for a connection.
    enum Queued: Sendable, Hashable {
        case call(RequestToken, ClientCall)
        case auth(RequestToken, AuthInfo)
    }

    enum State: Sendable, Hashable {
        /// Before `start`.
        case idle
        /// Waiting for the TCP (and TLS) connection `attempt`.
        case connecting(host: Int, attempt: UInt64, sinceMs: Int64)
        /// ConnectRequest sent on `attempt`, waiting for the ConnectResponse.
        case handshaking(host: Int, attempt: UInt64, sinceMs: Int64)
        /// Serving.
        case connected(host: Int, attempt: UInt64, readOnly: Bool)
        /// Every host failed once; the next attempt is at `untilMs`.
        case backingOff(untilMs: Int64)
        /// closeSession sent; waiting for its reply.
        case closing(attempt: UInt64, token: RequestToken?, sinceMs: Int64)
        /// Expired, closed or authFailed: nothing more happens.
        case ended(ConnectionState)
    }

    public let configuration: Configuration
    /// The hosts in the (shuffled) order they are tried.
    public let hosts: [HostAddress]
    private(set) var state: State = .idle
    public private(set) var sessionId: Int64
    public private(set) var password: [UInt8]
    /// The timeout the server granted (0 before the first connect).
    public private(set) var negotiatedTimeoutMs: Int32 = 0
    /// The highest zxid seen in any reply: sent on reconnect so that no member behind it serves us.
    public private(set) var lastZxidSeen: Int64 = 0
    /// What the program was last told.
    public private(set) var connectionState: ConnectionState = .connecting
    private var nextXid: Int32 = 1
    private var nextAttempt: UInt64 = 1
    private var hostCursor: Int = 0
    private var failuresInARow: Int = 0
    /// Whether a member that serves writes ever accepted this session. Until one has, the session
    /// id is a read-only member's own and is not offered to others (ZooKeeper's
    /// `seenRwServerBefore`): the first read-write member starts a real session.
    private var seenReadWriteServer: Bool
    private var closeRequest: CloseRequest? = nil
    private var pending: Deque<Pending> = []
    private var queued: Deque<Queued> = []
    /// Tokens of auth packets on the wire (nil for the replays after a reconnect), in order.
    private var authInFlight: Deque<RequestToken?> = []
    private var authInfo: [AuthInfo]
    private var lastHeardMs: Int64 = 0
    private var lastSentMs: Int64 = 0
    /// Watched server paths (chroot included) and their watchers, by kind.
    private var watches: [WatchKind: [String: [WatcherID]]] = [:]
    /// Draws the SASL client nonces (nil without SASL).
    private var saslNonces: SplitMix64?
    /// The SASL exchange of the current connection while it runs (nil once it succeeded).
    private var saslExchange: SASLDigestClient?
    /// Whether the current connection is still authenticating with SASL.
    public var isAuthenticatingSASL: Bool { saslExchange != nil }

    /// - Parameter generator: shuffles the hosts (pass a seeded one for reproducible runs).
    public init(hosts: [HostAddress], configuration: Configuration, generator: inout some RandomNumberGenerator) {
        precondition(!hosts.isEmpty, "a session needs at least one host")
        precondition(configuration.sessionTimeoutMs > 0, "session timeout \(configuration.sessionTimeoutMs) ms")
        precondition(configuration.outstandingRequestsMax > 0, "outstandingRequestsMax must be positive")
        self.configuration = configuration
        self.hosts = hosts.shuffled(using: &generator)
        self.sessionId = configuration.sessionId
        self.password = configuration.password
        self.lastZxidSeen = configuration.sessionId != 0 ? configuration.lastZxidSeen : 0
        self.authInfo = configuration.authInfo
        self.seenReadWriteServer = configuration.sessionId != 0
        if configuration.sasl != nil { saslNonces = SplitMix64(seed: generator.next()) }
    }

    // MARK: - Derived timing

    /// Ping after this long without sending (a third of the negotiated timeout).
    public var pingIntervalMs: Int64 { max(Int64(effectiveTimeoutMs) / 3, 1) }
    /// Give the connection up after this long without hearing anything (two thirds).
    public var readTimeoutMs: Int64 { max(Int64(effectiveTimeoutMs) * 2 / 3, 1) }
    public var connectTimeoutMs: Int64 {
        configuration.connectTimeoutMs ?? max(Int64(configuration.sessionTimeoutMs) / Int64(hosts.count), 1)
    }
    private var effectiveTimeoutMs: Int32 {
        negotiatedTimeoutMs > 0 ? negotiatedTimeoutMs : configuration.sessionTimeoutMs
    }
    /// The member serving the session, nil while not connected.
    public var connectedHost: HostAddress? {
        if case .connected(let host, _, _) = state { return hosts[host] }
        return nil
    }
    /// Requests sent and not answered.
    public var pendingCount: Int { pending.count }
    /// The server paths watched with this kind (for tests and diagnostics).
    public func watchedPaths(_ kind: WatchKind) -> [String] { (watches[kind] ?? [:]).keys.sorted() }

    // MARK: - Inputs

    /// Starts connecting to the first host.
    public mutating func start(nowMs: Int64) -> ClientStep {
        guard case .idle = state else { preconditionFailure("start in state \(state)") }
        var step = ClientStep()
        connectNext(nowMs: nowMs, &step)
        return finish(step, nowMs: nowMs)
    }

    /// A call from the program.
    public mutating func submit(_ call: ClientCall, token: RequestToken, nowMs: Int64) -> ClientStep {
        var step = ClientStep()
        if closeRequest != nil {
            reject(call, token: token, .sessionExpired, &step)
            return finish(step, nowMs: nowMs)
        }
        switch state {
        case .ended(let final):
            reject(call, token: token, Self.code(for: final), &step)
        case .closing:
            reject(call, token: token, .sessionExpired, &step)
        case .idle, .connecting, .handshaking, .backingOff:
            if pending.count + queued.count >= configuration.outstandingRequestsMax {
                reject(call, token: token, .throttledOp, &step)
            } else {
                queued.append(.call(token, call))
            }
        case .connected where saslExchange != nil:
            if pending.count + queued.count >= configuration.outstandingRequestsMax {
                reject(call, token: token, .throttledOp, &step)
            } else {
                queued.append(.call(token, call))
            }
        case .connected(_, _, let readOnly):
            if pending.count >= configuration.outstandingRequestsMax {
                reject(call, token: token, .throttledOp, &step)
            } else if readOnly && Self.isWrite(call.request) {
                reject(call, token: token, .notReadOnly, &step)
            } else {
                send(call, token: token, nowMs: nowMs, &step)
            }
        }
        return finish(step, nowMs: nowMs)
    }

    /// Adds credentials: sent now if connected, and again after every reconnect. The call
    /// completes when the server accepts them; a refusal ends the session (`authFailed`).
    public mutating func addAuth(_ info: AuthInfo, token: RequestToken, nowMs: Int64) -> ClientStep {
        var step = ClientStep()
        if closeRequest != nil {
            step.actions.append(.complete(token, .failure(.sessionExpired)))
            return finish(step, nowMs: nowMs)
        }
        switch state {
        case .ended(let final):
            step.actions.append(.complete(token, .failure(Self.code(for: final))))
        case .closing:
            step.actions.append(.complete(token, .failure(.sessionExpired)))
        case .idle, .connecting, .handshaking, .backingOff:
            queued.append(.auth(token, info))
        case .connected where saslExchange != nil:
            queued.append(.auth(token, info))
        case .connected:
            authInfo.append(info)
            sendAuth(info, token: token, nowMs: nowMs, &step)
        }
        return finish(step, nowMs: nowMs)
    }

    /// Ends the session: closeSession is sent if connected, and the call `token` completes once
    /// the server confirms (or at once when not connected).
    public mutating func close(token: RequestToken?, nowMs: Int64) -> ClientStep {
        var step = ClientStep()
        switch state {
        case .ended:
            if let token { step.actions.append(.complete(token, .success(.empty))) }
        case .closing:
            if let token { step.actions.append(.complete(token, .success(.empty))) }
        case .connected(_, let attempt, _):
            let xid = takeXid()
            step.actions.append(.send(.request(xid: xid, .closeSession)))
            lastSentMs = nowMs
            state = .closing(attempt: attempt, token: token, sinceMs: nowMs)
            // The reply to closeSession comes after the replies to everything sent before it.
            pending.append(Pending(xid: xid, token: 0, call: ClientCall(.closeSession), sentAtMs: nowMs))
        case .connecting where sessionId != 0, .handshaking where sessionId != 0, .backingOff where sessionId != 0:
            // The ensemble holds the session: close it there on the next connection, so that its
            // ephemerals go now rather than at expiry.
            if closeRequest == nil {
                closeRequest = CloseRequest(token: token, deadlineMs: nowMs + Int64(effectiveTimeoutMs))
                let waiting = queued
                queued.removeAll()
                for item in waiting {
                    switch item {
                    case .call(let waitingToken, let call): reject(call, token: waitingToken, .sessionExpired, &step)
                    case .auth(let waitingToken, _): step.actions.append(.complete(waitingToken, .failure(.sessionExpired)))
                    }
                }
            } else if let token {
                step.actions.append(.complete(token, .success(.empty)))
            }
        case .idle, .connecting, .handshaking, .backingOff:
            if case .connecting = state { step.actions.append(.closeConnection) }
            if case .handshaking = state { step.actions.append(.closeConnection) }
            end(.closed, code: .sessionExpired, &step)
            if let token { step.actions.append(.complete(token, .success(.empty))) }
        }
        return finish(step, nowMs: nowMs)
    }

    /// The connection of `attempt` is up: the handshake starts.
    public mutating func connectionEstablished(attempt: UInt64, nowMs: Int64) -> ClientStep {
        var step = ClientStep()
        guard case .connecting(let host, let current, _) = state, current == attempt else { return finish(step, nowMs: nowMs) }
        state = .handshaking(host: host, attempt: attempt, sinceMs: nowMs)
        let request = ConnectRequest(
            protocolVersion: 0, lastZxidSeen: lastZxidSeen, timeoutMs: configuration.sessionTimeoutMs,
            sessionId: seenReadWriteServer ? sessionId : 0, password: password, readOnly: configuration.canBeReadOnly)
        step.actions.append(.send(.connect(request)))
        lastSentMs = nowMs
        lastHeardMs = nowMs
        return finish(step, nowMs: nowMs)
    }

    /// The connection of `attempt` failed to open or closed.
    public mutating func connectionLost(attempt: UInt64, nowMs: Int64) -> ClientStep {
        var step = ClientStep()
        switch state {
        case .connecting(_, let current, _), .handshaking(_, let current, _), .connected(_, let current, _):
            guard current == attempt else { break }
            lose(nowMs: nowMs, closeConnection: false, &step)
        case .closing(let current, let token, let sinceMs):
            guard current == attempt else { break }
            // The server closes the connection after answering closeSession, so the answer has
            // been handled if there was one. Without it the session may still be open on the
            // ensemble (another client resuming it took the connection over): close it again.
            closeOnNextConnection(token: token, sinceMs: sinceMs, nowMs: nowMs, &step)
        case .idle, .backingOff, .ended:
            break
        }
        return finish(step, nowMs: nowMs)
    }

    /// One frame payload (length prefix removed) from the connection of `attempt`.
    public mutating func received(payload: ByteBuffer, attempt: UInt64, nowMs: Int64) -> ClientStep {
        var step = ClientStep()
        var payload = payload
        switch state {
        case .handshaking(let host, let current, _):
            guard current == attempt else { break }
            lastHeardMs = nowMs
            do {
                let response = try ServerMessageDecoder.decodeConnectResponse(&payload)
                handshakeAnswered(response, host: host, attempt: attempt, nowMs: nowMs, &step)
            } catch {
                lose(nowMs: nowMs, closeConnection: true, &step)
            }
        case .connected(_, let current, _), .closing(let current, _, _):
            guard current == attempt else { break }
            lastHeardMs = nowMs
            guard let xid = payload.getInteger(at: payload.readerIndex + 0, endianness: .big, as: Int32.self) else {
                lose(nowMs: nowMs, closeConnection: true, &step)
                break
            }
            let opcode: Int32
            switch xid {
            case SpecialXid.notification: opcode = OpCode.notification.rawValue
            case SpecialXid.ping: opcode = OpCode.ping.rawValue
            case SpecialXid.auth: opcode = OpCode.auth.rawValue
            case SpecialXid.setWatches: opcode = OpCode.setWatches2.rawValue
            default:
                guard let head = pending.first, head.xid == xid else {
                    // Out of order or unknown: the stream can no longer be trusted.
                    lose(nowMs: nowMs, closeConnection: true, &step)
                    return finish(step, nowMs: nowMs)
                }
                opcode = head.call.request.opcode
            }
            do {
                let frame = try ServerMessageDecoder.decodeReply(&payload, opcode: opcode)
                receivedFrame(frame, nowMs: nowMs, &step)
            } catch {
                lose(nowMs: nowMs, closeConnection: true, &step)
            }
        case .connecting, .idle, .backingOff, .ended:
            break
        }
        return finish(step, nowMs: nowMs)
    }

    /// One frame already decoded (a simulator that passes typed frames between clients and
    /// replicas skips the bytes). Replies are matched by xid exactly as with `received(payload:)`.
    public mutating func received(frame: ServerFrame, attempt: UInt64, nowMs: Int64) -> ClientStep {
        var step = ClientStep()
        switch (state, frame) {
        case (.handshaking(let host, let current, _), .connect(let response)):
            guard current == attempt else { break }
            lastHeardMs = nowMs
            handshakeAnswered(response, host: host, attempt: attempt, nowMs: nowMs, &step)
        case (.connected(_, let current, _), .notification), (.closing(let current, _, _), .notification):
            guard current == attempt else { break }
            lastHeardMs = nowMs
            receivedFrame(frame, nowMs: nowMs, &step)
        case (.connected(_, let current, _), .reply(let header, _)), (.closing(let current, _, _), .reply(let header, _)):
            guard current == attempt else { break }
            lastHeardMs = nowMs
            let special = [SpecialXid.ping, SpecialXid.auth, SpecialXid.setWatches].contains(header.xid)
            if special || pending.first?.xid == header.xid {
                receivedFrame(frame, nowMs: nowMs, &step)
            } else {
                lose(nowMs: nowMs, closeConnection: true, &step)
            }
        case (.handshaking(_, let current, _), _), (.connected(_, let current, _), .connect), (.closing(let current, _, _), .connect):
            // A frame that cannot come at this point of the conversation.
            guard current == attempt else { break }
            lose(nowMs: nowMs, closeConnection: true, &step)
        case (.connecting, _), (.idle, _), (.backingOff, _), (.ended, _):
            break
        }
        return finish(step, nowMs: nowMs)
    }

    /// Time passes: pings, read / connect / request timeouts, the end of a back-off.
    public mutating func tick(nowMs: Int64) -> ClientStep {
        var step = ClientStep()
        if let request = closeRequest, nowMs >= request.deadlineMs {
            switch state {
            case .connecting, .handshaking: step.actions.append(.closeConnection)
            default: break
            }
            end(.closed, code: .sessionExpired, &step)
            return finish(step, nowMs: nowMs)
        }
        switch state {
        case .connecting(_, _, let sinceMs), .handshaking(_, _, let sinceMs):
            if nowMs - sinceMs >= connectTimeoutMs { lose(nowMs: nowMs, closeConnection: true, &step) }
        case .connected:
            if nowMs - lastHeardMs >= readTimeoutMs {
                lose(nowMs: nowMs, closeConnection: true, &step)
            } else if let limit = configuration.requestTimeoutMs, let head = pending.first, nowMs - head.sentAtMs >= limit {
                // Replies come in order: nothing behind the late one can arrive first.
                let late = pending.removeFirst()
                if !Self.isSessionOwned(late.call.request) { reject(late.call, token: late.token, .requestTimeout, &step) }
                lose(nowMs: nowMs, closeConnection: true, &step)
            } else if nowMs - lastSentMs >= pingIntervalMs {
                step.actions.append(.send(.request(xid: SpecialXid.ping, .ping)))
                lastSentMs = nowMs
            }
        case .backingOff(let untilMs):
            if nowMs >= untilMs { connectNext(nowMs: nowMs, &step) }
        case .closing(_, let token, let sinceMs):
            if nowMs - sinceMs >= connectTimeoutMs {
                step.actions.append(.closeConnection)
                closeOnNextConnection(token: token, sinceMs: sinceMs, nowMs: nowMs, &step)
            }
        case .idle, .ended:
            break
        }
        return finish(step, nowMs: nowMs)
    }

    // MARK: - Handshake

    private mutating func handshakeAnswered(
        _ response: ConnectResponse, host: Int, attempt: UInt64, nowMs: Int64, _ step: inout ClientStep
    ) {
        guard response.timeoutMs > 0 else {
            // The session is unknown to the ensemble: expired (or never existed).
            step.actions.append(.closeConnection)
            // Closing a session the ensemble already ended is done.
            end(closeRequest == nil ? .expired : .closed, code: .sessionExpired, &step)
            return
        }
        let readOnly = response.readOnly ?? false
        sessionId = response.sessionId
        password = response.password
        negotiatedTimeoutMs = response.timeoutMs
        failuresInARow = 0
        if closeRequest != nil {
            // The close request (its token and deadline) stays until the session has ended.
            let xid = takeXid()
            step.actions.append(.send(.request(xid: xid, .closeSession)))
            lastSentMs = nowMs
            state = .closing(attempt: attempt, token: nil, sinceMs: nowMs)
            pending.append(Pending(xid: xid, token: 0, call: ClientCall(.closeSession), sentAtMs: nowMs))
            return
        }
        state = .connected(host: host, attempt: attempt, readOnly: readOnly)
        if let credentials = configuration.sasl, var nonces = saslNonces {
            saslExchange = SASLDigestClient(credentials: credentials, cnonce: SASLDigestClient.makeCnonce(using: &nonces))
            saslNonces = nonces
            sendSASL([], nowMs: nowMs, &step)
            return
        }
        connectionReady(readOnly: readOnly, nowMs: nowMs, &step)
    }

    /// The connection serves the program: tell it, then replay auth, re-register watches and send
    /// what waited.
    private mutating func connectionReady(readOnly: Bool, nowMs: Int64, _ step: inout ClientStep) {
        let resumed = connectionState != .connecting && seenReadWriteServer
        if !readOnly { seenReadWriteServer = true }
        let newState: ConnectionState = readOnly ? .connectedReadOnly : (resumed ? .reconnected : .connected)
        changeState(newState, &step)
        for info in authInfo { sendAuth(info, token: nil, nowMs: nowMs, &step) }
        sendSetWatches(nowMs: nowMs, &step)
        let waiting = queued
        queued.removeAll()
        for item in waiting {
            switch item {
            case .call(let token, let call):
                if readOnly && Self.isWrite(call.request) {
                    reject(call, token: token, .notReadOnly, &step)
                } else {
                    send(call, token: token, nowMs: nowMs, &step)
                }
            case .auth(let token, let info):
                authInfo.append(info)
                sendAuth(info, token: token, nowMs: nowMs, &step)
            }
        }
    }

    private mutating func sendSASL(_ token: [UInt8], nowMs: Int64, _ step: inout ClientStep) {
        let xid = takeXid()
        pending.append(Pending(xid: xid, token: 0, call: ClientCall(.sasl(token: token)), sentAtMs: nowMs))
        step.actions.append(.send(.request(xid: xid, .sasl(token: token))))
        lastSentMs = nowMs
    }

    /// One answer of the SASL exchange: the challenge (answered with the digest) or the server's
    /// proof (the connection is then ready). Any refusal ends the session.
    private mutating func saslAnswered(_ code: ErrorCode, _ body: Response, nowMs: Int64, _ step: inout ClientStep) {
        guard var exchange = saslExchange, case .connected(_, _, let readOnly) = state else { return }
        func refuse() {
            saslExchange = nil
            step.actions.append(.closeConnection)
            end(.authFailed, code: .authFailed, &step)
        }
        guard code == .ok, case .sasl(let token) = body else { return refuse() }
        if exchange.expectedProof == nil {
            guard case .success(let response) = exchange.response(to: token ?? []) else { return refuse() }
            saslExchange = exchange
            sendSASL(response, nowMs: nowMs, &step)
        } else {
            guard exchange.verifyFinal(token ?? []) else { return refuse() }
            saslExchange = nil
            connectionReady(readOnly: readOnly, nowMs: nowMs, &step)
        }
    }

    private mutating func sendSetWatches(nowMs: Int64, _ step: inout ClientStep) {
        let lists: [(WatchKind, [String])] = [
            (.data, watchedPaths(.data)), (.exist, watchedPaths(.exist)), (.child, watchedPaths(.child)),
            (.persistent, watchedPaths(.persistent)), (.persistentRecursive, watchedPaths(.persistentRecursive)),
        ]
        guard lists.contains(where: { !$0.1.isEmpty }) else { return }
        var request = SetWatchesRequest(relativeZxid: lastZxidSeen)
        var bytes = 0
        func flush(_ step: inout ClientStep) {
            step.actions.append(.send(.request(xid: SpecialXid.setWatches, .setWatches2(request))))
            request = SetWatchesRequest(relativeZxid: lastZxidSeen)
            bytes = 0
        }
        for (kind, paths) in lists {
            for path in paths {
                if bytes > 0 && bytes + path.utf8.count > configuration.setWatchesBytesMax { flush(&step) }
                switch kind {
                case .data: request.dataWatches.append(path)
                case .exist: request.existWatches.append(path)
                case .child: request.childWatches.append(path)
                case .persistent: request.persistentWatches.append(path)
                case .persistentRecursive: request.persistentRecursiveWatches.append(path)
                }
                bytes += path.utf8.count + 4
            }
        }
        if bytes > 0 { flush(&step) }
        lastSentMs = nowMs
    }

    // MARK: - Replies

    private mutating func receivedFrame(_ frame: ServerFrame, nowMs: Int64, _ step: inout ClientStep) {
        switch frame {
        case .connect:
            preconditionFailure("the reply decoder never yields a ConnectResponse")
        case .notification(_, let event):
            deliver(event, &step)
        case .reply(let header, let body):
            if header.zxid > 0 && header.zxid > lastZxidSeen { lastZxidSeen = header.zxid }
            switch header.xid {
            case SpecialXid.ping, SpecialXid.setWatches:
                break
            case SpecialXid.auth:
                let token = authInFlight.isEmpty ? nil : authInFlight.removeFirst()
                if header.err == ErrorCode.ok.rawValue {
                    if let token { step.actions.append(.complete(token, .success(.empty))) }
                } else {
                    if let token { step.actions.append(.complete(token, .failure(.authFailed))) }
                    step.actions.append(.closeConnection)
                    end(.authFailed, code: .authFailed, &step)
                }
            default:
                let head = pending.removeFirst()
                precondition(head.xid == header.xid, "reply xid \(header.xid) checked against head \(head.xid)")
                let code = ErrorCode(rawValue: header.err) ?? .systemError
                if case .sasl = head.call.request {
                    saslAnswered(code, body, nowMs: nowMs, &step)
                    return
                }
                if case .closeSession = head.call.request {
                    guard case .closing(_, let token, _) = state else { preconditionFailure("closeSession answered in \(state)") }
                    step.actions.append(.closeConnection)
                    end(.closed, code: .sessionExpired, &step)
                    if let token { step.actions.append(.complete(token, .success(.empty))) }
                    return
                }
                if code == .sessionExpired {
                    // The state change comes before the completions it explains (as suspended
                    // comes before connectionLoss): a program answered sessionExpired already
                    // knows its session is gone.
                    step.actions.append(.closeConnection)
                    changeState(.expired, &step)
                    reject(head.call, token: head.token, .sessionExpired, &step)
                    end(.expired, code: .sessionExpired, &step)
                    return
                }
                if !registerWatch(for: head.call, code: code), let watcher = head.call.watcher {
                    // The reply did not set the watch (getData on a missing node, any error).
                    step.actions.append(.watchersEnded([watcher], code: code == .ok ? .systemError : code))
                }
                if code == .ok {
                    step.actions.append(.complete(head.token, .success(unchroot(body))))
                } else {
                    step.actions.append(.complete(head.token, .failure(code)))
                }
                if code == .ok, case .removeWatches(let path, let type) = head.call.request {
                    removeWatches(path: path, type: type, &step)
                }
            }
        }
    }

    /// ZooKeeper registers a watch when the reply that asked for it succeeds (exists also on
    /// noNode: a watch for the creation).
    private mutating func registerWatch(for call: ClientCall, code: ErrorCode) -> Bool {
        guard let watcher = call.watcher else { return false }
        switch call.request {
        case .getData(let path, true) where code == .ok: add(watcher, .data, path)
        case .exists(let path, true) where code == .ok: add(watcher, .data, path)
        case .exists(let path, true) where code == .noNode: add(watcher, .exist, path)
        case .getChildren(let path, true) where code == .ok, .getChildren2(let path, true) where code == .ok:
            add(watcher, .child, path)
        case .addWatch(let path, let mode) where code == .ok:
            add(watcher, mode == AddWatchMode.persistentRecursive.rawValue ? .persistentRecursive : .persistent, path)
        default:
            return false
        }
        return true
    }

    private mutating func add(_ watcher: WatcherID, _ kind: WatchKind, _ path: String) {
        watches[kind, default: [:]][path, default: []].append(watcher)
    }

    private mutating func take(_ kind: WatchKind, _ path: String) -> [WatcherID] {
        watches[kind]?.removeValue(forKey: path) ?? []
    }

    /// Which watchers an event reaches (ZooKeeper's `ZKWatchManager.materialize`).
    private mutating func deliver(_ event: WatcherEvent, _ step: inout ClientStep) {
        guard let type = EventType(rawValue: event.type), type != .none else { return }
        let path = event.path
        var watchers: [WatcherID] = []
        switch type {
        case .nodeCreated, .nodeDataChanged:
            watchers += take(.data, path)
            watchers += take(.exist, path)
        case .nodeDeleted:
            watchers += take(.data, path)
            watchers += take(.exist, path)
            watchers += take(.child, path)
        case .nodeChildrenChanged:
            watchers += take(.child, path)
        default:
            break
        }
        watchers += watches[.persistent]?[path] ?? []
        if type != .nodeChildrenChanged, let recursive = watches[.persistentRecursive], !recursive.isEmpty {
            var ancestor = path
            while true {
                watchers += recursive[ancestor] ?? []
                if ancestor == "/" { break }
                let parent = ancestor[..<(ancestor.lastIndex(of: "/") ?? ancestor.startIndex)]
                ancestor = parent.isEmpty ? "/" : String(parent)
            }
        }
        guard !watchers.isEmpty else { return }
        step.actions.append(.watchEvent(WatchEvent(type: type, path: PathRules.strip(path, chroot: configuration.chroot)), watchers: watchers))
    }

    private mutating func removeWatches(path: String, type: Int32, _ step: inout ClientStep) {
        let kinds: [WatchKind]
        switch WatcherType(rawValue: type) {
        case .children: kinds = [.child]
        case .data: kinds = [.data, .exist]
        case .any: kinds = [.data, .exist, .child, .persistent, .persistentRecursive]
        case .persistent: kinds = [.persistent]
        case .persistentRecursive: kinds = [.persistentRecursive]
        case nil: kinds = []
        }
        var removed: [WatcherID] = []
        for kind in kinds { removed += take(kind, path) }
        if !removed.isEmpty { step.actions.append(.watchersEnded(removed, code: .ok)) }
    }

    // MARK: - Sending

    private mutating func send(_ call: ClientCall, token: RequestToken, nowMs: Int64, _ step: inout ClientStep) {
        let xid = takeXid()
        let request = call.ignoresChroot ? call.request : Self.chrooted(call.request, chroot: configuration.chroot)
        var stored = call
        stored.request = request
        pending.append(Pending(xid: xid, token: token, call: stored, sentAtMs: nowMs))
        step.actions.append(.send(.request(xid: xid, request)))
        lastSentMs = nowMs
    }

    private mutating func sendAuth(_ info: AuthInfo, token: RequestToken?, nowMs: Int64, _ step: inout ClientStep) {
        authInFlight.append(token)
        step.actions.append(.send(.request(xid: SpecialXid.auth, .auth(type: 0, scheme: info.scheme, auth: info.auth))))
        lastSentMs = nowMs
    }

    /// Takes the next xid for a request this session does not send itself: cxids belong to the
    /// session, so another connection acting for it (closing it from another member, say) must
    /// not reuse one this connection will send.
    public mutating func reserveXid() -> Int32 { takeXid() }

    private mutating func takeXid() -> Int32 {
        let xid = nextXid
        // Wrap before the special (negative) range; a session never has 2^31 requests in flight.
        nextXid = nextXid == Int32.max ? 1 : nextXid + 1
        return xid
    }

    // MARK: - Losing connections, ending sessions

    /// The current connection (or attempt) is gone: fail what was in flight, tell the program,
    /// and try the next host.
    private mutating func lose(nowMs: Int64, closeConnection: Bool, _ step: inout ClientStep) {
        if closeConnection { step.actions.append(.closeConnection) }
        if case .closing(_, let token, let sinceMs) = state {
            closeOnNextConnection(token: token, sinceMs: sinceMs, nowMs: nowMs, &step)
            return
        }
        let wasConnected: Bool
        // A connection still authenticating with SASL never served the program.
        if case .connected = state, saslExchange == nil { wasConnected = true } else { wasConnected = false }
        saslExchange = nil
        if wasConnected {
            changeState(.suspended, &step)
        } else {
            failuresInARow += 1
        }
        failInFlight(.connectionLoss, &step)
        if failuresInARow >= hosts.count {
            failuresInARow = 0
            state = .backingOff(untilMs: nowMs + configuration.reconnectDelayMs)
        } else {
            connectNext(nowMs: nowMs, &step)
        }
    }

    /// closeSession was sent but not answered: send it again on the next connection, until the
    /// session timeout after the first try.
    private mutating func closeOnNextConnection(token: RequestToken?, sinceMs: Int64, nowMs: Int64, _ step: inout ClientStep) {
        failInFlight(.connectionLoss, &step)
        if closeRequest == nil {
            closeRequest = CloseRequest(token: token, deadlineMs: sinceMs + Int64(effectiveTimeoutMs))
        }
        connectNext(nowMs: nowMs, &step)
    }

    private mutating func failInFlight(_ code: ErrorCode, _ step: inout ClientStep) {
        for entry in pending where !Self.isSessionOwned(entry.call.request) {
            reject(entry.call, token: entry.token, code, &step)
        }
        pending.removeAll()
        for token in authInFlight { if let token { step.actions.append(.complete(token, .failure(code))) } }
        authInFlight.removeAll()
        for item in queued {
            switch item {
            case .call(let token, let call): reject(call, token: token, code, &step)
            case .auth(let token, _): step.actions.append(.complete(token, .failure(code)))
            }
        }
        queued.removeAll()
    }

    /// Fails a call that got no reply; the watch it would have set is never set.
    private func reject(_ call: ClientCall, token: RequestToken, _ code: ErrorCode, _ step: inout ClientStep) {
        if let watcher = call.watcher { step.actions.append(.watchersEnded([watcher], code: code)) }
        step.actions.append(.complete(token, .failure(code)))
    }

    private mutating func connectNext(nowMs: Int64, _ step: inout ClientStep) {
        let host = hostCursor
        hostCursor = (hostCursor + 1) % hosts.count
        let attempt = nextAttempt
        nextAttempt += 1
        state = .connecting(host: host, attempt: attempt, sinceMs: nowMs)
        step.actions.append(.connect(hosts[host], attempt: attempt))
    }

    private mutating func end(_ final: ConnectionState, code: ErrorCode, _ step: inout ClientStep) {
        precondition(final.isTerminal, "end in non-terminal \(final)")
        saslExchange = nil
        changeState(final, &step)
        if let request = closeRequest {
            closeRequest = nil
            if let token = request.token { step.actions.append(.complete(token, .success(.empty))) }
        }
        state = .ended(final)
        failInFlight(Self.code(for: final), &step)
        var watchers: [WatcherID] = []
        for (_, table) in watches.sorted(by: { "\($0.key)" < "\($1.key)" }) {
            for path in table.keys.sorted() { watchers += table[path] ?? [] }
        }
        watches.removeAll()
        if !watchers.isEmpty { step.actions.append(.watchersEnded(watchers, code: Self.code(for: final))) }
    }

    private mutating func changeState(_ new: ConnectionState, _ step: inout ClientStep) {
        guard new != connectionState else { return }
        connectionState = new
        step.actions.append(.stateChanged(new))
    }

    private static func code(for final: ConnectionState) -> ErrorCode {
        switch final {
        case .authFailed: return .authFailed
        default: return .sessionExpired
        }
    }

    private func finish(_ step: ClientStep, nowMs: Int64) -> ClientStep {
        var step = step
        switch state {
        case .connecting(_, _, let sinceMs), .handshaking(_, _, let sinceMs):
            step.timerAtMs = sinceMs + connectTimeoutMs
        case .connected:
            var at = min(lastHeardMs + readTimeoutMs, lastSentMs + pingIntervalMs)
            if let limit = configuration.requestTimeoutMs, let head = pending.first { at = min(at, head.sentAtMs + limit) }
            step.timerAtMs = at
        case .backingOff(let untilMs):
            step.timerAtMs = untilMs
        case .closing(_, _, let sinceMs):
            step.timerAtMs = sinceMs + connectTimeoutMs
        case .idle, .ended:
            step.timerAtMs = nil
        }
        if let request = closeRequest { step.timerAtMs = min(step.timerAtMs ?? request.deadlineMs, request.deadlineMs) }
        return step
    }

    // MARK: - Requests

    /// Requests the session sends on its own behalf (no program call waits for them).
    static func isSessionOwned(_ request: Request) -> Bool {
        switch request {
        case .closeSession, .sasl: return true
        default: return false
        }
    }

    /// Whether a read-only member refuses this request.
    static func isWrite(_ request: Request) -> Bool {
        switch request {
        case .create, .create2, .createContainer, .createTTL, .delete, .setData, .setACL, .multi, .reconfig,
            .deleteContainer, .check:
            return true
        default:
            return false
        }
    }

    /// The request with the chroot in front of its paths.
    static func chrooted(_ request: Request, chroot: String?) -> Request {
        guard let chroot else { return request }
        func p(_ path: String) -> String { PathRules.prefix(path, chroot: chroot) }
        func c(_ create: CreateRequest) -> CreateRequest {
            var create = create
            create.path = p(create.path)
            return create
        }
        switch request {
        case .create(let r): return .create(c(r))
        case .create2(let r): return .create2(c(r))
        case .createContainer(let r): return .createContainer(c(r))
        case .createTTL(let r): return .createTTL(c(r))
        case .delete(let path, let version): return .delete(path: p(path), version: version)
        case .exists(let path, let watch): return .exists(path: p(path), watch: watch)
        case .getData(let path, let watch): return .getData(path: p(path), watch: watch)
        case .setData(let path, let data, let version): return .setData(path: p(path), data: data, version: version)
        case .getACL(let path): return .getACL(path: p(path))
        case .setACL(let path, let acl, let version): return .setACL(path: p(path), acl: acl, version: version)
        case .getChildren(let path, let watch): return .getChildren(path: p(path), watch: watch)
        case .sync(let path): return .sync(path: p(path))
        case .getChildren2(let path, let watch): return .getChildren2(path: p(path), watch: watch)
        case .check(let path, let version): return .check(path: p(path), version: version)
        case .multi(let ops): return .multi(ops.map { chrooted($0, chroot: chroot) })
        case .multiRead(let ops): return .multiRead(ops.map { chrooted($0, chroot: chroot) })
        case .checkWatches(let path, let type): return .checkWatches(path: p(path), type: type)
        case .removeWatches(let path, let type): return .removeWatches(path: p(path), type: type)
        case .deleteContainer(let path): return .deleteContainer(path: p(path))
        case .getEphemerals(let prefix): return .getEphemerals(prefixPath: prefix == "/" ? chroot : chroot + prefix)
        case .getAllChildrenNumber(let path): return .getAllChildrenNumber(path: p(path))
        case .addWatch(let path, let mode): return .addWatch(path: p(path), mode: mode)
        case .ping, .reconfig, .auth, .setWatches, .setWatches2, .sasl, .whoAmI, .closeSession, .unknown, .nullPath:
            return request
        }
    }

    /// The reply body with the chroot removed from the paths it names.
    private func unchroot(_ response: Response) -> Response {
        guard let chroot = configuration.chroot else { return response }
        func s(_ path: String) -> String { PathRules.strip(path, chroot: chroot) }
        switch response {
        case .create(let path): return .create(path: s(path))
        case .create2(let path, let stat): return .create2(path: s(path), stat: stat)
        case .sync(let path): return .sync(path: s(path))
        case .getEphemerals(let paths): return .getEphemerals(paths: paths.map(s))
        case .multi(let results):
            return .multi(results.map { result in
                switch result {
                case .create(let path): return .create(path: s(path))
                case .create2(let path, let stat): return .create2(path: s(path), stat: stat)
                default: return result
                }
            })
        default: return response
        }
    }
}
