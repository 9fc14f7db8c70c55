import DequeModule
import ZKCore
import ZKProtocol

/// A simulated ZooKeeper client: one session at a time, following the client rules of the
/// ZooKeeper library.
///
/// - one connection at a time; on connection loss it reconnects to another member with its
///   session id, password and the last zxid it has seen (so it never goes back in time);
/// - requests leave in order with increasing xids; replies must come back in the same order;
/// - it pings when idle for a third of the session timeout and gives a connection up as dead
///   after two thirds of it without a word, as the Java client does;
/// - a connect answered "expired" ends the session: the client starts a new one;
/// - a request whose reply never came is left "unknown" in the history: it may or may not have
///   taken effect (the library would report CONNECTIONLOSS and not retry);
/// - now and then it goes silent (stops pinging) to let its session expire, or closes its
///   session, and later starts over with a new one;
/// - now and then it closes its session through a second connection to another member, as tests
///   that end a session do, while it goes on working on the first: the member holding that one
///   must close it (`SessionChecker`), and the client learns on reconnecting that its session
///   ended.
///
/// What the client observes that no correct ensemble can produce (replies out of order, zxids
/// going backwards, a watch event nobody asked for) is reported as a violation at once.
final class SimClient {
    enum Phase {
        /// Not connected; `retryAtMs` is when to try next.
        case idle(retryAtMs: Int64)
        case connecting(ConnectionID, sinceMs: Int64)
        case connected(ConnectionID)
        /// Silent until `untilMs`: sends nothing, ignores everything; the connection is left
        /// open for the replica to close when the session expires.
        case silent(untilMs: Int64, connection: ConnectionID?)
    }

    struct Waiting {
        var xid: Int32
        /// History entry, nil for a ping.
        var entry: Int?
        var operation: Operation?
    }

    let index: Int
    unowned let cluster: Cluster
    let history: History
    let verdict: Verdict
    var random: SimRandom
    var workload: ClientWorkload
    let requestedTimeoutMs: Int32
    private(set) var phase: Phase = .idle(retryAtMs: 0)
    var sessionId: Int64 = 0
    var password: [UInt8] = [UInt8](repeating: 0, count: 16)
    var timeoutMs: Int64 = 0
    var lastZxidSeen: Zxid = 0
    var lastReplyZxid: Zxid = 0
    var nextXid: Int32 = 1
    var waiting: Deque<Waiting> = []
    var lastHeardMs: Int64 = 0
    var lastSentMs: Int64 = 0
    var nextOperationAtMs: Int64 = 0
    var server: Int64
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
    var closingSession = false
    /// Watches set on the current connection and not fired yet (indices into history.watches).
    var openWatches: [Int] = []
    let tickMs: Int64
    /// Draws for closing the session from another member, apart from `random` so that adding
    /// them left every other draw of a seed as it was.
    var elsewhereRandom: SimRandom
    let closeElsewhereProbability: Double
    /// The second connection closing this client's session from another member, if any.
    var elsewhere: (connection: ConnectionID, session: Int64, entry: Int?)?

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
        self.server = cluster.members[0]
        self.server = random.pick(cluster.members)
    }

    var isConnected: Bool {
        if case .connected = phase { return true }
        return false
    }

    var connection: ConnectionID? {
        switch phase {
        case .connecting(let id, _), .connected(let id): return id
        default: return nil
        }
    }

    /// The probe was answered and nothing but a ping is outstanding: the ensemble serves this
    /// client.
    var isSettled: Bool {
        isConnected && waiting.allSatisfy({ $0.entry == nil }) && !probeWanted && !probeEntries.isEmpty
            && probeEntries.allSatisfy { history.entries[$0].response != nil }
    }

    func start(atMs: Int64) {
        phase = .idle(retryAtMs: atMs)
        cluster.at(atMs) { [weak self] in self?.tick() }
    }

    // MARK: - Timer

    private func tick() {
        guard !stopped else { return }
        let now = cluster.nowMs
        switch phase {
        case .idle(let retryAtMs):
            if now >= retryAtMs { connect() }
        case .connecting(let id, let sinceMs):
            let connectTimeoutMs = max(Int64(requestedTimeoutMs) / Int64(cluster.members.count), 2 * tickMs)
            if now - sinceMs > connectTimeoutMs { lose(id, reason: "connect timeout") }
        case .connected(let id):
            let readTimeoutMs = timeoutMs * 2 / 3
            if now - lastHeardMs > readTimeoutMs {
                lose(id, reason: "read timeout")
            } else {
                if now - lastSentMs >= readTimeoutMs / 2 { ping(id) }
                issue()
            }
        case .silent(let untilMs, _):
            if now >= untilMs { restartFresh() }
        }
        cluster.after(max(tickMs / 4, 5)) { [weak self] in self?.tick() }
    }

    // MARK: - Connecting

    private func connect() {
        if cluster.members.count > 1 {
            let others = cluster.members.filter { $0 != server }
            server = random.pick(others)
        }
        var assigned: ConnectionID = 0
        let id = cluster.openConnection(to: server) { [weak self] delivery in
            self?.receive(delivery, on: assigned)
        }
        assigned = id
        phase = .connecting(id, sinceMs: cluster.nowMs)
        let request = ConnectRequest(
            lastZxidSeen: lastZxidSeen, timeoutMs: requestedTimeoutMs, sessionId: sessionId, password: password)
        cluster.clientSend(id, .connect(id, request))
        lastSentMs = cluster.nowMs
        waiting.removeAll()
        openWatches.removeAll()
    }

    private func receive(_ delivery: Cluster.ClientDelivery, on delivered: ConnectionID) {
        // Only the current connection speaks to this client: anything else belongs to one it
        // has given up on.
        guard !stopped, let id = connection, id == delivered else { return }
        switch delivery {
        case .closed:
            lose(id, reason: "closed")
        case .frame(let frame):
            lastHeardMs = cluster.nowMs
            switch frame {
            case .connect(let response): connected(id, response)
            case .reply(let header, let response): reply(id, header, response)
            case .notification(_, let event): notification(id, event)
            }
        }
    }

    private func connected(_ id: ConnectionID, _ response: ConnectResponse) {
        guard case .connecting(let current, _) = phase, current == id else {
            verdict.fail("client.protocol", "client \(index) got a connect response on connection \(id) outside connecting")
            return
        }
        if response.timeoutMs <= 0 {
            // The session is gone: the library reports EXPIRED; the application starts over.
            if sessionId != 0, history.sessions[sessionId]?.end == nil { history.sessions[sessionId]?.end = history.tick() }
            cluster.clientClose(id)
            newSession()
            phase = .idle(retryAtMs: cluster.nowMs + random.int(10...200))
            return
        }
        if sessionId == 0 {
            sessionId = response.sessionId
            password = response.password
            history.sessions[sessionId] = SessionRecord(
                id: sessionId, client: index, timeoutMs: Int64(response.timeoutMs), start: history.tick())
        } else if response.sessionId != sessionId {
            verdict.fail("client.protocol", "client \(index) resumed session \(hex(sessionId)) but got \(hex(response.sessionId))")
            return
        }
        timeoutMs = Int64(response.timeoutMs)
        phase = .connected(id)
        lastHeardMs = cluster.nowMs
        issue()
    }

    private func newSession() {
        reprobeIfLost()
        sessionId = 0
        password = [UInt8](repeating: 0, count: 16)
        lastZxidSeen = 0
        lastReplyZxid = 0
        nextXid = 1
    }

    /// The connection is gone: what was waiting is unknown now; try another member soon.
    private func lose(_ id: ConnectionID, reason: String) {
        cluster.clientClose(id)
        waiting.removeAll()
        openWatches.removeAll()
        reprobeIfLost()
        if closingSession {
            // Whether the close went through, the next connect tells (expired, or resumed).
            closingSession = false
            issuing = !probing
        }
        phase = .idle(retryAtMs: cluster.nowMs + random.int(5...100))
    }

    /// A probe lost with its connection (or its session) is sent again on the next one.
    private func reprobeIfLost() {
        if probing && probeEntries.contains(where: { history.entries[$0].response == nil }) { probeWanted = true }
    }

    /// After going silent or closing: a brand-new session, as a restarted application would.
    private func restartFresh() {
        if let id = connection { cluster.clientClose(id) }
        if case .silent(_, let id?) = phase { cluster.clientClose(id) }
        closingSession = false
        issuing = !probing
        newSession()
        waiting.removeAll()
        openWatches.removeAll()
        phase = .idle(retryAtMs: cluster.nowMs)
    }

    // MARK: - Requests

    private func ping(_ id: ConnectionID) {
        waiting.append(Waiting(xid: SpecialXid.ping, entry: nil, operation: nil))
        cluster.clientSend(id, .request(id, RequestHeader(xid: SpecialXid.ping, type: OpCode.ping.rawValue), .ping))
        lastSentMs = cluster.nowMs
    }

    private func send(_ id: ConnectionID, _ operation: Operation) -> Int {
        let xid = nextXid
        nextXid += 1
        let entry = history.begin(
            client: index, session: sessionId, connection: id, xid: xid, operation, atMs: cluster.nowMs)
        waiting.append(Waiting(xid: xid, entry: entry, operation: operation))
        let request = operation.request
        cluster.clientSend(id, .request(id, RequestHeader(xid: xid, type: request.opcode), request))
        lastSentMs = cluster.nowMs
        return entry
    }

    /// Sends workload operations while the pipeline has room.
    private func issue() {
        // Nothing may follow a closeSession on its connection.
        guard case .connected(let id) = phase, !closingSession else { return }
        if probeWanted {
            probeWanted = false
            let path = WorkloadSpec.probe(index)
            probeEntries = [
                send(id, .setData(path: path, data: Array("probe-\(index)-\(nextXid)".utf8), version: -1)),
                send(id, .getData(path: path, watch: false)),
            ]
            return
        }
        if script != nil {
            if waiting.isEmpty { for operation in scriptLeft { _ = send(id, operation) } }
            return
        }
        guard issuing else { return }
        while waiting.count < workload.spec.pipelineMax && cluster.nowMs >= nextOperationAtMs {
            if random.chance(workload.spec.abandonProbability) {
                goSilent()
                return
            }
            if random.chance(workload.spec.closeProbability) {
                _ = send(id, .closeSession)
                closingSession = true
                issuing = false
                return
            }
            if elsewhere == nil, sessionId != 0, cluster.members.count > 1, elsewhereRandom.chance(closeElsewhereProbability) {
                closeFromElsewhere()
            }
            _ = send(id, workload.next())
            let think = random.int(workload.spec.thinkMs)
            nextOperationAtMs = cluster.nowMs + think
        }
    }

    /// Stops talking, keeping the connection open: the session must expire on its own.
    private func goSilent() {
        if sessionId != 0 { history.sessions[sessionId]?.abandonedAtMs = cluster.nowMs }
        waiting.removeAll()
        openWatches.removeAll()
        let silentMs = 3 * max(timeoutMs, Int64(requestedTimeoutMs))
        phase = .silent(untilMs: cluster.nowMs + silentMs, connection: connection)
    }

    // MARK: - Closing the session from another member

    /// Opens a second connection to another member with this session's id and password and
    /// closes the session there; the first connection carries on until its member closes it.
    private func closeFromElsewhere() {
        let other = elsewhereRandom.pick(cluster.members.filter { $0 != server })
        var assigned: ConnectionID = 0
        let id = cluster.openConnection(to: other) { [weak self] delivery in
            self?.receiveElsewhere(delivery, on: assigned)
        }
        assigned = id
        elsewhere = (id, sessionId, nil)
        let request = ConnectRequest(lastZxidSeen: lastZxidSeen, timeoutMs: requestedTimeoutMs, sessionId: sessionId, password: password)
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
            // cxids are per session: take the next one from the session's own counter.
            let xid = nextXid
            nextXid += 1
            current.entry = history.begin(
                client: index, session: current.session, connection: id, xid: xid, .closeSession, atMs: cluster.nowMs)
            elsewhere = current
            cluster.clientSend(id, .request(id, RequestHeader(xid: xid, type: OpCode.closeSession.rawValue), .closeSession))
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

    // MARK: - Replies and events

    private func reply(_ id: ConnectionID, _ header: ReplyHeader, _ response: Response) {
        guard case .connected = phase else {
            verdict.fail("client.protocol", "client \(index) got reply xid \(header.xid) on connection \(id) before its session")
            return
        }
        guard let head = waiting.first else {
            verdict.fail("client.reply-order", "client \(index) session \(hex(sessionId)) got reply xid \(header.xid) with nothing outstanding")
            return
        }
        guard head.xid == header.xid else {
            verdict.fail(
                "client.reply-order",
                "client \(index) session \(hex(sessionId)) expected the reply to xid \(head.xid) (\(head.operation?.description ?? "ping")) but got xid \(header.xid)"
            )
            return
        }
        waiting.removeFirst()
        if header.zxid > 0 {
            if header.zxid < lastReplyZxid {
                verdict.fail(
                    "client.zxid-monotonic",
                    "client \(index) session \(hex(sessionId)) got reply xid \(header.xid) at zxid \(hex(header.zxid)) after one at \(hex(lastReplyZxid))")
                return
            }
            lastReplyZxid = header.zxid
            lastZxidSeen = max(lastZxidSeen, header.zxid)
        }
        history.repliesByConnection[id, default: []].append((cluster.eventsHandled, header.zxid))
        guard let entry = head.entry, let operation = head.operation else { return }
        let code = ErrorCode(rawValue: header.err) ?? .systemError
        let outcome: Outcome = code == .ok ? .ok(response) : .failed(code)
        history.end(entry, outcome, zxid: header.zxid, atMs: cluster.nowMs)
        workload.observe(operation, outcome)
        if script != nil, code == .ok || code == .nodeExists { scriptLeft.removeAll { $0 == operation } }
        noteWatch(id, operation, outcome, zxid: header.zxid)
        if case .closeSession = operation, code == .ok {
            history.sessions[sessionId]?.end = history.tick()
            history.sessions[sessionId]?.closedByClient = true
            cluster.clientClose(id)
            newSession()
            closingSession = false
            issuing = !probing
            phase = .idle(retryAtMs: cluster.nowMs + random.int(10...300))
            return
        }
        issue()
    }

    private func noteWatch(_ id: ConnectionID, _ operation: Operation, _ outcome: Outcome, zxid: Zxid) {
        let kind: WatchRecord.Kind
        let path: String
        switch (operation, outcome) {
        case (.getData(let p, true), .ok):
            kind = .data
            path = p
        case (.exists(let p, true), .ok), (.exists(let p, true), .failed(.noNode)):
            kind = .exists
            path = p
        case (.getChildren(let p, true), .ok):
            kind = .children
            path = p
        default:
            return
        }
        openWatches.append(history.watches.count)
        history.watches.append(
            WatchRecord(client: index, connection: id, path: path, kind: kind, zxid: zxid, setAt: cluster.eventsHandled, fired: nil))
    }

    private func notification(_ id: ConnectionID, _ event: WatcherEvent) {
        guard let type = EventType(rawValue: event.type) else {
            verdict.fail("client.watch", "client \(index) got an event of unknown type \(event.type)")
            return
        }
        var matched = false
        openWatches.removeAll { index in
            let watch = history.watches[index]
            guard watch.path == event.path, Self.fires(type, watch.kind) else { return false }
            history.watches[index].fired = (event.type, cluster.eventsHandled)
            matched = true
            return true
        }
        if !matched {
            verdict.fail("client.watch", "client \(index) on connection \(id) got \(type) for \(event.path) without a watch set for it")
        }
    }

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
        if case .silent = phase { restartFresh() }
        issue()
    }

    func stop() { stopped = true }

    /// Stops for good without closing the session, which must then expire.
    func abandon() {
        if sessionId != 0 { history.sessions[sessionId]?.abandonedAtMs = cluster.nowMs }
        stopped = true
    }
}
