import NIOCore
import ZKClientCore
import ZKCore
import ZKProtocol
import ZKRecipesCore

/// A simulated process running one `CoordinationProgram` (a recipe contender, a SparkLite master
/// or worker) on the Swift client's session core, against the simulated ensemble: the same
/// program values `ZKRecipes.ProgramRunner` runs on NIO, here in virtual time.
///
/// It does what the NIO shell does — performs the program's calls through `ClientSession`, sets
/// and delivers its watches, keeps its timers, feeds it the session's states (with
/// `presumedExpired` once the connection has been down for a whole negotiated timeout) and, when
/// a session ends, starts a new one for the same program (as Curator's client does) — and what a
/// real process suffers:
/// - `crash(downMs:)`: the process dies (its session is left to expire) and starts again later
///   with a fresh program from `makeProgram`;
/// - `pause(ms:)`: the process stalls (a long GC pause, SIGSTOP): no ticks, nothing read,
///   timers held back; when the pause outlasts the session timeout, the session expires behind
///   the program's back.
///
/// Frames cross between the session core and the replicas as bytes, through both codecs.
/// Every observation and every session event given to the program is reported to `listener`
/// with the session id it happened in.
public final class ProgramClient<Program: CoordinationProgram> {
    public typealias Observation = Program.Observation

    /// What the client reports to its listener (the checkers).
    public enum Report {
        case observed(Observation)
        /// The program was given this session event (after it handled it).
        case session(SessionEvent)
        /// The process crashed (its program and its session's hold on anything are gone).
        case crashed
        /// A new incarnation of the program started.
        case started(incarnation: Int)
    }

    public let index: Int
    public let name: String
    unowned let cluster: Cluster
    let makeProgram: (Int) -> Program
    let listener: (ProgramClient, Report) -> Void
    var random: SimRandom
    let requestedTimeoutMs: Int32
    let tickMs: Int64

    /// The program now running (nil while crashed).
    public private(set) var program: Program?
    public private(set) var incarnation = 0
    private(set) var session: ClientSession?
    /// The session id given to the program now (0 before the first connect).
    public private(set) var sessionId: Int64 = 0
    private var current: (attempt: UInt64, connection: ConnectionID)?
    private var watchers: [WatcherID: CallID] = [:]
    private var nextWatcher: WatcherID = 1
    /// Bumped by a crash: timers and deliveries of an earlier life are dropped.
    private var life = 0
    /// Bumped when the session is suspended or connected: a pending presumedExpired is stale.
    private var suspension = 0
    private var crashed = false
    private(set) var pausedUntilMs: Int64?
    /// Timers that fired during a pause, delivered when it ends.
    private var heldTimers: [TimerID] = []
    /// presumedExpired came due during a pause.
    private var heldPresume = false
    /// What arrived during a pause, read when it ends (the socket buffers it).
    private var heldDeliveries: [(Cluster.ClientDelivery, ConnectionID)] = []
    public private(set) var stopped = false
    /// The program asked to finish.
    public private(set) var finished = false

    public init(
        index: Int, name: String, cluster: Cluster, seed: UInt64, timeoutMs: Int32, tickMs: Int64,
        makeProgram: @escaping (Int) -> Program, listener: @escaping (ProgramClient, Report) -> Void
    ) {
        self.index = index
        self.name = name
        self.cluster = cluster
        self.random = SimRandom.derive(seed, "program-client\(index)")
        self.requestedTimeoutMs = timeoutMs
        self.tickMs = tickMs
        self.makeProgram = makeProgram
        self.listener = listener
    }

    public var isConnected: Bool { !crashed && pausedUntilMs == nil && session?.connectedHost != nil && current != nil }
    public var isRunning: Bool { !crashed && pausedUntilMs == nil && !stopped }
    /// The connection the session core has open.
    public var connection: ConnectionID? { crashed ? nil : current?.connection }
    /// The session's negotiated timeout (the requested one until negotiated).
    public var negotiatedTimeoutMs: Int64 {
        let negotiated = Int64(session?.negotiatedTimeoutMs ?? 0)
        return negotiated > 0 ? negotiated : Int64(requestedTimeoutMs)
    }

    public func start(atMs: Int64) {
        cluster.at(atMs) { [weak self] in
            guard let self else { return }
            self.boot()
            self.tick()
        }
    }

    /// Stops for good (the end of a run); the session is left as it is.
    public func stop() { stopped = true }

    // MARK: - Faults

    /// The process dies now and starts again after `downMs` with a fresh program.
    public func crash(downMs: Int64) {
        guard !crashed, !stopped else { return }
        crashed = true
        life += 1
        if let current { cluster.clientClose(current.connection) }
        current = nil
        session = nil
        program = nil
        watchers.removeAll()
        heldTimers.removeAll()
        heldPresume = false
        heldDeliveries.removeAll()
        pausedUntilMs = nil
        listener(self, .crashed)
        let life = self.life
        cluster.after(downMs) { [weak self] in
            guard let self, self.life == life, !self.stopped else { return }
            self.crashed = false
            self.boot()
        }
    }

    /// The process stalls for `ms`: nothing runs, nothing is read.
    public func pause(ms: Int64) {
        guard !crashed, !stopped, pausedUntilMs == nil else { return }
        pausedUntilMs = cluster.nowMs + ms
    }

    /// Ends a pause now (the nemesis heals).
    public func resume() {
        guard pausedUntilMs != nil else { return }
        pausedUntilMs = nil
        let held = heldTimers
        heldTimers.removeAll()
        let presume = heldPresume
        heldPresume = false
        let deliveries = heldDeliveries
        heldDeliveries.removeAll()
        for (delivery, connection) in deliveries { receive(delivery, on: connection) }
        drive { $0.tick(nowMs: cluster.nowMs) }
        if presume, session?.connectionState == .suspended { feed(.session(.presumedExpired)) }
        for id in held { feed(.timer(id)) }
    }

    /// A crashed process starts again now (the nemesis heals).
    public func reviveNow() {
        guard crashed, !stopped else { return }
        life += 1
        crashed = false
        boot()
    }

    // MARK: - Life

    private func boot() {
        incarnation += 1
        finished = false
        program = makeProgram(incarnation)
        listener(self, .started(incarnation: incarnation))
        startSession()
        feed(.start)
    }

    private func startSession() {
        let hosts = cluster.members.map { HostAddress(host: "n\($0)", port: Int($0)) }
        var configuration = ClientSession.Configuration(sessionTimeoutMs: requestedTimeoutMs)
        configuration.connectTimeoutMs = max(Int64(requestedTimeoutMs) / Int64(max(hosts.count, 1)), 2 * tickMs)
        configuration.reconnectDelayMs = random.int(5...100)
        session = ClientSession(hosts: hosts, configuration: configuration, generator: &random)
        sessionId = 0
        watchers.removeAll()
        drive { $0.start(nowMs: cluster.nowMs) }
    }

    private func tick() {
        guard !stopped else { return }
        let now = cluster.nowMs
        if let until = pausedUntilMs, now >= until { resume() }
        if !crashed, pausedUntilMs == nil, session != nil { drive { $0.tick(nowMs: now) } }
        cluster.after(max(tickMs / 4, 5)) { [weak self] in self?.tick() }
    }

    // MARK: - The program

    private func feed(_ input: ProgramInput) {
        guard program != nil, !finished, !stopped else { return }
        let actions = program!.handle(input, nowMs: cluster.nowMs)
        // The listener hears of the session event once the program has acted on it.
        defer { if case .session(let event) = input { listener(self, .session(event)) } }
        for action in actions {
            guard program != nil, !finished else { break }
            switch action {
            case .observe(let observation):
                listener(self, .observed(observation))
            case .finish:
                finished = true
            case .timer(let id, let afterMs):
                let life = self.life
                cluster.after(max(afterMs, 0)) { [weak self] in
                    guard let self, self.life == life, !self.crashed, !self.stopped else { return }
                    if self.pausedUntilMs != nil { self.heldTimers.append(id) } else { self.feed(.timer(id)) }
                }
            case .call(let id, let request, let watch):
                var watcher: WatcherID?
                if watch {
                    watcher = nextWatcher
                    nextWatcher += 1
                    watchers[watcher!] = id
                }
                drive { $0.submit(ClientCall(request, watcher: watcher), token: id, nowMs: cluster.nowMs) }
            }
        }
    }

    // MARK: - The session core

    private func drive(_ input: (inout ClientSession) -> ClientStep) {
        guard session != nil else { return }
        let step = input(&session!)
        perform(step)
    }

    private func perform(_ step: ClientStep) {
        var opened: UInt64?
        for action in step.actions {
            guard session != nil else { return }
            switch action {
            case .connect(let host, let attempt):
                if let current { cluster.clientClose(current.connection) }
                let life = self.life
                var assigned: ConnectionID = 0
                let id = cluster.openConnection(to: Int64(host.port)) { [weak self] delivery in
                    guard let self, self.life == life else { return }
                    self.receive(delivery, on: assigned)
                }
                assigned = id
                current = (attempt, id)
                opened = attempt
            case .send(let frame):
                send(frame)
            case .closeConnection:
                if let current { cluster.clientClose(current.connection) }
                current = nil
            case .watchEvent(let event, let ids):
                for watcher in ids {
                    guard let call = watchers.removeValue(forKey: watcher) else { continue }
                    feed(.watch(call, type: event.type, path: event.path))
                }
            case .complete(let token, let result):
                feed(.reply(token, result))
            case .watchersEnded(let ids, _):
                for watcher in ids { watchers[watcher] = nil }
            case .stateChanged(let state):
                stateChanged(state)
            }
        }
        if let attempt = opened, session != nil, current?.attempt == attempt {
            drive { $0.connectionEstablished(attempt: attempt, nowMs: cluster.nowMs) }
        }
    }

    private func stateChanged(_ state: ConnectionState) {
        guard let session else { return }
        switch state {
        case .connecting:
            return
        case .connected, .connectedReadOnly:
            suspension += 1
            sessionId = session.sessionId
            feed(.session(.connected))
        case .reconnected:
            suspension += 1
            feed(.session(.reconnected))
        case .suspended:
            suspension += 1
            let mark = suspension, life = self.life
            let timeoutMs = Int64(session.negotiatedTimeoutMs > 0 ? session.negotiatedTimeoutMs : requestedTimeoutMs)
            cluster.after(timeoutMs) { [weak self] in
                guard let self, self.life == life, self.suspension == mark, !self.crashed else { return }
                if self.pausedUntilMs != nil { self.heldPresume = true } else { self.feed(.session(.presumedExpired)) }
            }
            feed(.session(.suspended))
        case .expired, .closed, .authFailed:
            suspension += 1
            feed(.session(state == .closed ? .closed : .expired))
            // As Curator's client does: a new session for the same program.
            if let current { cluster.clientClose(current.connection) }
            current = nil
            self.session = nil
            let life = self.life
            cluster.after(random.int(10...200)) { [weak self] in
                guard let self, self.life == life, !self.crashed, !self.stopped else { return }
                self.startSession()
            }
        }
    }

    // MARK: - The wire

    private func send(_ frame: ClientFrame) {
        guard let current else { return }
        do {
            cluster.clientSend(current.connection, try frame.replicaInput(on: current.connection))
        } catch {
            preconditionFailure("\(name) could not decode its own frame \(frame): \(error)")
        }
    }

    private func receive(_ delivery: Cluster.ClientDelivery, on delivered: ConnectionID) {
        // A stalled process reads nothing: what arrives meanwhile waits in the socket.
        if pausedUntilMs != nil, !crashed {
            heldDeliveries.append((delivery, delivered))
            return
        }
        guard !stopped, !crashed, session != nil, let current, current.connection == delivered else { return }
        switch delivery {
        case .closed:
            drive { $0.connectionLost(attempt: current.attempt, nowMs: cluster.nowMs) }
        case .frame(let frame):
            drive { $0.received(payload: frame.payload, attempt: current.attempt, nowMs: cluster.nowMs) }
        }
    }
}
