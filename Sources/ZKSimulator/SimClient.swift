import DequeModule
import NIOCore
import ZKClientCore
import ZKCore
import ZKProtocol

/// A simulated ZooKeeper client: a workload driving the Swift client's session core
/// (`ClientSession`, the same value type `ZKClient` runs on NIO), with a recorder around it.
///
/// The session core decides everything a session does: which member to connect to (the members
/// shuffled by a seeded stream, tried in turn), the handshake with the last zxid seen (so it
/// never goes back in time), pings after a third of the negotiated timeout, the read timeout at
/// two thirds, reconnecting and resuming the session, matching replies to requests by xid,
/// re-registering watches with setWatches2 after a reconnect, delivering watch events, and
/// ending the session when the ensemble answers a resume with "expired". Frames travel between
/// the core and the replicas as bytes: the core's frames are encoded and decoded again into the
/// replica's typed inputs, the replicas' frames are encoded and given to the core as payloads,
/// so every run goes through both codecs.
///
/// Around the session, this client:
/// - runs the workload (a pipeline of at most `pipelineMax` operations, think times between);
/// - records the history: an entry when a request leaves (with its xid), ended by the reply
///   that answers it; a call the core fails with connectionLoss or sessionExpired without a
///   reply stays "unknown" (it may or may not have taken effect);
/// - watches the wire as an observer outside the core: replies in the order the requests left,
///   zxids that never go backwards within a session, watch events only for watches the core
///   holds; anything else is a violation at once (the core alone would drop the connection and
///   carry on);
/// - records watches (one record per watch and connection: a watch re-registered after a
///   reconnect gets a new record on the new connection, relative to the zxid the core sent);
/// - now and then goes silent (stops ticking and reading, the connection left open) to let its
///   session expire, or closes its session (`ClientSession.close`), and later starts over with a
///   new session;
/// - now and then closes its session through a second connection to another member, as tests
///   that end a session do, while it goes on working on the first: the member holding that one
///   must close it (`SessionChecker`), and the core learns on reconnecting that its session
///   ended;
/// - after healing, sends a probe (a write and a read) that must be answered.
final class SimClient {
    enum Phase: CustomStringConvertible {
        /// No session; the next one starts at `retryAtMs`.
        case idle(retryAtMs: Int64)
        /// The session core is between connections, or waiting for a handshake.
        case connecting(ConnectionID?)
        case connected(ConnectionID)
        /// closeSession sent, waiting for its answer.
        case closing(ConnectionID?)
        /// Silent until `untilMs`: sends nothing, ignores everything; the connection is left
        /// open for the replica to close when the session expires.
        case silent(untilMs: Int64, connection: ConnectionID?)

        var description: String {
            switch self {
            case .idle(let at): return "idle until \(at)"
            case .connecting(let id): return "connecting" + (id.map { " c\($0)" } ?? "")
            case .connected(let id): return "connected c\(id)"
            case .closing(let id): return "closing" + (id.map { " c\($0)" } ?? "")
            case .silent(let until, let id): return "silent until \(until)" + (id.map { " c\($0)" } ?? "")
            }
        }
    }

    /// A frame on the current connection waiting for its reply, as the observer saw it leave.
    struct Waiting {
        var xid: Int32
        /// History entry, nil for pings and setWatches.
        var entry: Int?
        var operation: Operation?
    }

    /// A workload call given to the session core.
    struct Call {
        var operation: Operation
        var entry: Int?
        var watcher: WatcherID?
    }

    let index: Int
    unowned let cluster: Cluster
    let history: History
    let verdict: Verdict
    var random: SimRandom
    var workload: ClientWorkload
    let requestedTimeoutMs: Int32
    let tickMs: Int64

    /// The session core; nil between sessions.
    private(set) var session: ClientSession?
    /// When the next session starts (while `session` is nil).
    private var startAtMs: Int64 = 0
    /// Silent until then.
    private var silentUntilMs: Int64?
    /// The connection the core has open (or is opening): its attempt number and id.
    private var current: (attempt: UInt64, connection: ConnectionID)?
    /// Requests on the current connection, oldest first.
    private(set) var waiting: Deque<Waiting> = []
    private var calls: [RequestToken: Call] = [:]
    private var nextToken: RequestToken = 1
    /// The call being submitted: its request leaves in the step `submit` returns.
    private var submitting: RequestToken?
    /// The reply being handed to the core: the entry it answers and its zxid.
    private var answering: (entry: Int, zxid: Zxid)?
    /// Watchers asked for and not yet confirmed by a reply.
    private var askedWatchers: Set<WatcherID> = []
    /// Watches the core holds, each with its current record (index into history.watches).
    private var liveWatches: [WatcherID: Int] = [:]
    private var nextWatcher: WatcherID = 1
    /// The session id the core was given (0 before its first connect).
    private(set) var sessionId: Int64 = 0
    private var lastReplyZxid: Zxid = 0
    /// The current session ended by the answer to its own closeSession, or by a resume answered
    /// "expired"; otherwise the core gave it up locally (its close found no member in time).
    private var sessionEndKnown = false

    var nextOperationAtMs: Int64 = 0
    /// Issue workload operations; off once everything is healed.
    var issuing = true
    /// The probe (a write and a read) sent after healing, and whether it was answered.
    var probeEntries: [Int] = []
    var probeWanted = false
    var stopped = false
    var probing = false
    /// A fixed list of operations instead of the workload (the setup client), each sent until
    /// it succeeds (or finds its node already there).
    var script: [Operation]? {
        didSet { scriptLeft = script ?? [] }
    }
    /// Script operations not answered OK (or NODEEXISTS) yet. They are pipelined: FIFO order
    /// makes a parent's create land before its children's.
    var scriptLeft: [Operation] = []
    var scriptDone: Bool { script != nil && scriptLeft.isEmpty }
    /// Draws for closing the session from another member, apart from `random`.
    var elsewhereRandom: SimRandom
    let closeElsewhereProbability: Double
    /// The second connection closing this client's session from another member, if any.
    var elsewhere: (connection: ConnectionID, session: Int64, entry: Int?, xid: Int32)?

    init(index: Int, cluster: Cluster, history: History, verdict: Verdict, spec: WorkloadSpec, seed: UInt64, timeoutMs: Int32, tickMs: Int64) {
        self.index = index
        self.cluster = cluster
        self.history = history
        self.verdict = verdict
        self.random = SimRandom.derive(seed, "client\(index)")
        self.workload = ClientWorkload(spec: spec, client: index, random: SimRandom.derive(seed, "workload\(index)"))
        self.requestedTimeoutMs = timeoutMs
        self.tickMs = tickMs
        self.elsewhereRandom = SimRandom.derive(seed, "close-elsewhere\(index)")
        self.closeElsewhereProbability = elsewhereRandom.pick([0, 0.001, 0.004])
    }

    var phase: Phase {
        if let until = silentUntilMs { return .silent(untilMs: until, connection: current?.connection) }
        guard let session else { return .idle(retryAtMs: startAtMs) }
        if session.connectedHost != nil, let current { return .connected(current.connection) }
        if waiting.contains(where: { $0.operation == .closeSession }) { return .closing(current?.connection) }
        return .connecting(current?.connection)
    }

    var isConnected: Bool { silentUntilMs == nil && session?.connectedHost != nil && current != nil }

    /// The connection the session core has open, nil while silent or between sessions.
    var connection: ConnectionID? { silentUntilMs == nil ? current?.connection : nil }

    /// The probe was answered and nothing but a ping is outstanding: the ensemble serves this
    /// client.
    var isSettled: Bool {
        isConnected && waiting.allSatisfy({ $0.entry == nil }) && !probeWanted && !probeEntries.isEmpty
            && probeEntries.allSatisfy { history.entries[$0].response != nil }
    }

    func start(atMs: Int64) {
        startAtMs = atMs
        cluster.at(atMs) { [weak self] in self?.tick() }
    }

    // MARK: - Timer

    private func tick() {
        guard !stopped else { return }
        let now = cluster.nowMs
        if let until = silentUntilMs {
            if now >= until { restartFresh() }
        } else if session == nil {
            if now >= startAtMs { startSession() }
        } else {
            drive { $0.tick(nowMs: now) }
            issue()
        }
        cluster.after(max(tickMs / 4, 5)) { [weak self] in self?.tick() }
    }

    // MARK: - The session core

    /// A new session core over the current members, shuffled by this client's stream.
    private func startSession() {
        let hosts = cluster.members.map { HostAddress(host: "n\($0)", port: Int($0)) }
        var configuration = ClientSession.Configuration(sessionTimeoutMs: requestedTimeoutMs)
        configuration.connectTimeoutMs = max(Int64(requestedTimeoutMs) / Int64(hosts.count), 2 * tickMs)
        configuration.reconnectDelayMs = random.int(5...100)
        session = ClientSession(hosts: hosts, configuration: configuration, generator: &random)
        sessionId = 0
        lastReplyZxid = 0
        sessionEndKnown = false
        drive { $0.start(nowMs: cluster.nowMs) }
    }

    /// Gives `input` to the session core and performs the step it returns.
    private func drive(_ input: (inout ClientSession) -> ClientStep) {
        guard session != nil else { return }
        let step = input(&session!)
        perform(step)
    }

    private func perform(_ step: ClientStep) {
        var opened: UInt64?
        for action in step.actions {
            switch action {
            case .connect(let host, let attempt):
                if let current { cluster.clientClose(current.connection) }
                waiting.removeAll()
                reprobeIfLost()
                var assigned: ConnectionID = 0
                let id = cluster.openConnection(to: Int64(host.port)) { [weak self] delivery in
                    self?.receive(delivery, on: assigned)
                }
                assigned = id
                current = (attempt, id)
                opened = attempt
            case .send(let frame):
                send(frame)
            case .closeConnection:
                if let current { cluster.clientClose(current.connection) }
                current = nil
                waiting.removeAll()
                reprobeIfLost()
            case .watchEvent(let event, let watchers):
                for watcher in watchers {
                    guard let record = liveWatches.removeValue(forKey: watcher) else { continue }
                    history.watches[record].fired = (event.type.rawValue, cluster.eventsHandled)
                }
            case .complete(let token, let result):
                complete(token, result)
            case .watchersEnded(let watchers, _):
                for watcher in watchers {
                    askedWatchers.remove(watcher)
                    liveWatches[watcher] = nil
                }
            case .stateChanged(let state):
                stateChanged(state)
            }
        }
        // The simulated network has no separate TCP handshake: the connection is up at once (a
        // refused one closes after the client latency).
        if let attempt = opened, session != nil, current?.attempt == attempt {
            drive { $0.connectionEstablished(attempt: attempt, nowMs: cluster.nowMs) }
        }
    }

    /// Encodes the core's frame, decodes it as the replica's input, and records what leaves.
    private func send(_ frame: ClientFrame) {
        guard let current else { return }
        let id = current.connection
        let input: ReplicaInput
        do {
            input = try frame.replicaInput(on: id)
            if case .request(let xid, let request) = frame { observeSent(xid: xid, request, on: id) }
        } catch {
            verdict.fail("client.codec", "client \(index) could not decode its own frame \(frame): \(error)")
            return
        }
        cluster.clientSend(id, input)
    }

    private func observeSent(xid: Int32, _ request: Request, on id: ConnectionID) {
        switch request {
        case .setWatches2(let watches):
            // The core re-registers its watches on the new connection: each gets a new record,
            // relative to the zxid sent.
            for (watcher, record) in liveWatches.sorted(by: { $0.key < $1.key }) {
                let old = history.watches[record]
                liveWatches[watcher] = history.watches.count
                history.watches.append(
                    WatchRecord(
                        client: index, connection: id, path: old.path, kind: old.kind, zxid: watches.relativeZxid,
                        setAt: cluster.eventsHandled, fired: nil, reregistered: true))
            }
            waiting.append(Waiting(xid: xid, entry: nil, operation: nil))
        case .closeSession:
            let entry = history.begin(client: index, session: sessionId, connection: id, xid: xid, .closeSession, atMs: cluster.nowMs)
            waiting.append(Waiting(xid: xid, entry: entry, operation: .closeSession))
        default:
            if xid < 0 {
                waiting.append(Waiting(xid: xid, entry: nil, operation: nil))
                return
            }
            guard let token = submitting, var call = calls[token] else {
                verdict.fail("client.protocol", "client \(index) session core sent xid \(xid) \(request) that no call asked for")
                return
            }
            let entry = history.begin(client: index, session: sessionId, connection: id, xid: xid, call.operation, atMs: cluster.nowMs)
            call.entry = entry
            calls[token] = call
            waiting.append(Waiting(xid: xid, entry: entry, operation: call.operation))
        }
    }

    private func complete(_ token: RequestToken, _ result: Result<Response, ErrorCode>) {
        guard let call = calls.removeValue(forKey: token) else { return }
        let watcher = call.watcher
        defer { if let watcher { askedWatchers.remove(watcher) } }
        // Failed without a reply (connectionLoss, sessionExpired): unknown, left open.
        guard let entry = call.entry, let answering, answering.entry == entry else { return }
        let outcome: Outcome
        switch result {
        case .success(let response): outcome = .ok(response)
        case .failure(let code): outcome = .failed(code)
        }
        history.end(entry, outcome, zxid: answering.zxid, atMs: cluster.nowMs)
        workload.observe(call.operation, outcome)
        if script != nil {
            switch outcome {
            case .ok, .failed(.nodeExists): scriptLeft.removeAll { $0 == call.operation }
            default: break
            }
        }
        if let watcher, askedWatchers.contains(watcher), let current {
            // The core registered the watch (it did not end the watcher before completing).
            let kind: WatchRecord.Kind
            let path: String
            switch call.operation {
            case .getData(let p, true):
                kind = .data
                path = p
            case .exists(let p, true):
                kind = .exists
                path = p
            case .getChildren(let p, true):
                kind = .children
                path = p
            default:
                return
            }
            liveWatches[watcher] = history.watches.count
            history.watches.append(
                WatchRecord(
                    client: index, connection: current.connection, path: path, kind: kind, zxid: answering.zxid,
                    setAt: cluster.eventsHandled, fired: nil))
        }
    }

    private func stateChanged(_ state: ConnectionState) {
        guard let session else { return }
        switch state {
        case .connected:
            sessionId = session.sessionId
            history.sessions[sessionId] = SessionRecord(
                id: sessionId, client: index, timeoutMs: Int64(session.negotiatedTimeoutMs), start: history.tick())
        case .expired, .closed, .authFailed:
            if sessionId != 0 {
                if sessionEndKnown || state == .expired {
                    if history.sessions[sessionId]?.end == nil { history.sessions[sessionId]?.end = history.tick() }
                } else if history.sessions[sessionId]?.end == nil {
                    // The core gave the session up without the ensemble's word: it expires there.
                    history.sessions[sessionId]?.abandonedAtMs = cluster.nowMs
                }
            }
            endSession(restartInMs: state == .closed ? random.int(10...300) : random.int(10...200))
        case .connecting, .connectedReadOnly, .suspended, .reconnected:
            break
        }
    }

    /// The session is over: a new one starts after `restartInMs`, as a restarted application's.
    private func endSession(restartInMs: Int64) {
        reprobeIfLost()
        if let current { cluster.clientClose(current.connection) }
        current = nil
        waiting.removeAll()
        session = nil
        sessionId = 0
        lastReplyZxid = 0
        askedWatchers.removeAll()
        liveWatches.removeAll()
        issuing = !probing
        startAtMs = cluster.nowMs + restartInMs
    }

    /// A probe lost with its connection (or its session) is sent again on the next one.
    private func reprobeIfLost() {
        if probing && probeEntries.contains(where: { history.entries[$0].response == nil }) { probeWanted = true }
    }

    /// After going silent: a brand-new session, as a restarted application would.
    private func restartFresh() {
        silentUntilMs = nil
        if let current { cluster.clientClose(current.connection) }
        current = nil
        waiting.removeAll()
        calls.removeAll()
        session = nil
        sessionId = 0
        askedWatchers.removeAll()
        liveWatches.removeAll()
        issuing = !probing
        reprobeIfLost()
        startAtMs = cluster.nowMs
    }

    // MARK: - The wire, observed

    private func receive(_ delivery: Cluster.ClientDelivery, on delivered: ConnectionID) {
        // Only the current connection speaks to this client: anything else belongs to one the
        // core has given up on. A silent client reads nothing.
        guard !stopped, silentUntilMs == nil, session != nil, let current, current.connection == delivered else { return }
        let now = cluster.nowMs
        switch delivery {
        case .closed:
            drive { $0.connectionLost(attempt: current.attempt, nowMs: now) }
        case .frame(let frame):
            guard observe(frame, on: current.connection) else { return }
            let step = session!.received(payload: frame.payload, attempt: current.attempt, nowMs: now)
            if case .notification(_, let event) = frame, !step.actions.contains(where: { if case .watchEvent = $0 { return true } else { return false } }) {
                verdict.fail("client.watch", "client \(index) on connection \(current.connection) got \(EventType(rawValue: event.type).map { "\($0)" } ?? "\(event.type)") for \(event.path) without a watch set for it")
                return
            }
            perform(step)
            answering = nil
            if case .reply = frame { issue() }
        }
    }

    /// Checks a frame from the current connection against what no correct ensemble produces and
    /// records replies; false when it is a violation.
    private func observe(_ frame: ServerFrame, on id: ConnectionID) -> Bool {
        switch frame {
        case .connect(let response):
            if response.timeoutMs <= 0 {
                sessionEndKnown = true
            } else if sessionId != 0, response.sessionId != sessionId {
                verdict.fail("client.protocol", "client \(index) resumed session \(hex(sessionId)) but got \(hex(response.sessionId))")
                return false
            }
            return true
        case .notification(_, let event):
            guard EventType(rawValue: event.type) != nil else {
                verdict.fail("client.watch", "client \(index) got an event of unknown type \(event.type)")
                return false
            }
            return true
        case .reply(let header, let response):
            guard let head = waiting.first else {
                verdict.fail("client.reply-order", "client \(index) session \(hex(sessionId)) got reply xid \(header.xid) with nothing outstanding")
                return false
            }
            guard head.xid == header.xid else {
                verdict.fail(
                    "client.reply-order",
                    "client \(index) session \(hex(sessionId)) expected the reply to xid \(head.xid) (\(head.operation?.description ?? "ping")) but got xid \(header.xid)"
                )
                return false
            }
            waiting.removeFirst()
            if header.zxid > 0 {
                if header.zxid < lastReplyZxid {
                    verdict.fail(
                        "client.zxid-monotonic",
                        "client \(index) session \(hex(sessionId)) got reply xid \(header.xid) at zxid \(hex(header.zxid)) after one at \(hex(lastReplyZxid))")
                    return false
                }
                lastReplyZxid = header.zxid
            }
            history.repliesByConnection[id, default: []].append((cluster.eventsHandled, header.zxid))
            guard let entry = head.entry else { return true }
            if head.operation == .closeSession {
                // The core completes its close without the reply's zxid: record it here.
                let code = ErrorCode(rawValue: header.err) ?? .systemError
                history.end(entry, code == .ok ? .ok(response) : .failed(code), zxid: header.zxid, atMs: cluster.nowMs)
                if code == .ok {
                    sessionEndKnown = true
                    history.sessions[sessionId]?.closedByClient = true
                }
                return true
            }
            answering = (entry, header.zxid)
            return true
        }
    }

    // MARK: - Requests

    private func submit(_ operation: Operation) {
        let token = nextToken
        nextToken += 1
        var watcher: WatcherID?
        switch operation {
        case .getData(_, true), .exists(_, true), .getChildren(_, true):
            watcher = nextWatcher
            nextWatcher += 1
            askedWatchers.insert(watcher!)
        default:
            break
        }
        calls[token] = Call(operation: operation, entry: nil, watcher: watcher)
        submitting = token
        drive { $0.submit(ClientCall(operation.request, watcher: watcher), token: token, nowMs: cluster.nowMs) }
        submitting = nil
    }

    /// Sends workload operations while the pipeline has room.
    private func issue() {
        // Nothing may follow a closeSession on its connection.
        guard isConnected, case .connected = phase else { return }
        if probeWanted {
            probeWanted = false
            let path = WorkloadSpec.probe(index)
            var entries: [Int] = []
            for operation in [
                Operation.setData(path: path, data: Array("probe-\(index)-\(nextToken)".utf8), version: -1),
                .getData(path: path, watch: false),
            ] {
                let token = nextToken
                submit(operation)
                if let entry = calls[token]?.entry { entries.append(entry) }
            }
            probeEntries = entries
            return
        }
        if script != nil {
            if calls.isEmpty { for operation in scriptLeft { submit(operation) } }
            return
        }
        guard issuing else { return }
        while isConnected && calls.count < workload.spec.pipelineMax && cluster.nowMs >= nextOperationAtMs {
            if random.chance(workload.spec.abandonProbability) {
                goSilent()
                return
            }
            if random.chance(workload.spec.closeProbability) {
                issuing = false
                drive { $0.close(token: nil, nowMs: cluster.nowMs) }
                return
            }
            if elsewhere == nil, sessionId != 0, cluster.members.count > 1, elsewhereRandom.chance(closeElsewhereProbability) {
                closeFromElsewhere()
            }
            submit(workload.next())
            let think = random.int(workload.spec.thinkMs)
            nextOperationAtMs = cluster.nowMs + think
        }
    }

    /// Stops talking, keeping the connection open: the session must expire on its own.
    private func goSilent() {
        if sessionId != 0 { history.sessions[sessionId]?.abandonedAtMs = cluster.nowMs }
        let timeoutMs = Int64(session?.negotiatedTimeoutMs ?? 0)
        silentUntilMs = cluster.nowMs + 3 * max(timeoutMs, Int64(requestedTimeoutMs))
    }

    // MARK: - Closing the session from another member

    /// Opens a second connection to another member with this session's id and password and
    /// closes the session there; the first connection carries on until its member closes it.
    private func closeFromElsewhere() {
        guard let session, let server = session.connectedHost.map({ Int64($0.port) }) else { return }
        let other = elsewhereRandom.pick(cluster.members.filter { $0 != server })
        var assigned: ConnectionID = 0
        let id = cluster.openConnection(to: other) { [weak self] delivery in
            self?.receiveElsewhere(delivery, on: assigned)
        }
        assigned = id
        // cxids are per session: take the next one from the session core's own counter.
        let xid = self.session!.reserveXid()
        elsewhere = (id, sessionId, nil, xid)
        let request = ConnectRequest(
            lastZxidSeen: session.lastZxidSeen, timeoutMs: requestedTimeoutMs, sessionId: sessionId, password: session.password)
        cluster.clientSend(id, .connect(id, request))
    }

    private func receiveElsewhere(_ delivery: Cluster.ClientDelivery, on id: ConnectionID) {
        guard !stopped, var current = elsewhere, current.connection == id else { return }
        func finish() {
            cluster.clientClose(id)
            elsewhere = nil
        }
        switch delivery {
        case .closed:
            // Whether a close sent took effect stays unknown in the history.
            finish()
        case .frame(.connect(let response)):
            guard response.timeoutMs > 0 else { return finish() }
            current.entry = history.begin(
                client: index, session: current.session, connection: id, xid: current.xid, .closeSession, atMs: cluster.nowMs)
            elsewhere = current
            cluster.clientSend(id, .request(id, RequestHeader(xid: current.xid, type: OpCode.closeSession.rawValue), .closeSession))
        case .frame(.reply(let header, let response)):
            guard let entry = current.entry else { return finish() }
            let code = ErrorCode(rawValue: header.err) ?? .systemError
            history.end(entry, code == .ok ? .ok(response) : .failed(code), zxid: header.zxid, atMs: cluster.nowMs)
            if code == .ok {
                if history.sessions[current.session]?.end == nil { history.sessions[current.session]?.end = history.tick() }
                history.sessions[current.session]?.closedByClient = true
            }
            finish()
        case .frame(.notification):
            break
        }
    }

    // MARK: - Watches

    static func fires(_ type: EventType, _ kind: WatchRecord.Kind) -> Bool {
        switch (type, kind) {
        case (.nodeCreated, .exists), (.nodeDataChanged, .data), (.nodeDataChanged, .exists), (.nodeDeleted, _),
            (.nodeChildrenChanged, .children):
            return true
        default:
            return false
        }
    }

    // MARK: - Phases

    /// Everything is healed: no more workload; revive a silent client; send the probe.
    func beginProbe() {
        probing = true
        issuing = false
        probeWanted = true
        if silentUntilMs != nil { restartFresh() }
        issue()
    }

    func stop() { stopped = true }

    /// Stops for good without closing the session, which must then expire.
    func abandon() {
        if sessionId != 0 { history.sessions[sessionId]?.abandonedAtMs = cluster.nowMs }
        stopped = true
    }
}
