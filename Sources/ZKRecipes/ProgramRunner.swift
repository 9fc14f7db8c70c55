import Foundation
import ZKClient
import ZKRecipesCore

/// Runs a `CoordinationProgram` on a `ZooKeeperClient`: performs its calls (each as its own
/// task, so replies come back in the order the server sends them), sets and follows the watches
/// it asks for, keeps its timers on the real clock, feeds it the session's states — with
/// `presumedExpired` after the connection has been down for a whole session timeout — and
/// publishes its observations.
///
/// A `ZooKeeperClient` is one session: after `expired` the program hears nothing more from this
/// runner; to go on, start a new client and runner (SparkLite's `SparkService` does, as the
/// simulator's `ProgramClient` does by itself).
///
/// The simulator runs the same program values on a `ClientSession`; everything the program
/// decides is in the program, nothing here.
public actor ProgramRunner<Program: CoordinationProgram> {
    public typealias Observation = Program.Observation

    let client: ZooKeeperClient
    var program: Program
    let clock = ContinuousClock()
    let started: ContinuousClock.Instant
    var tasks: [UInt64: Task<Void, Never>] = [:]
    var nextTask: UInt64 = 0
    var sessionTask: Task<Void, Never>?
    var presumeTask: Task<Void, Never>?
    var finished = false
    let continuation: AsyncStream<Observation>.Continuation
    /// What the program observes, in order; ends when the program finishes or the runner stops.
    public nonisolated let observations: AsyncStream<Observation>

    public init(client: ZooKeeperClient, program: Program) {
        self.client = client
        self.program = program
        self.started = ContinuousClock.now
        (observations, continuation) = AsyncStream<Observation>.makeStream()
    }

    /// Starts the program and follows the session's states.
    public func start() {
        guard sessionTask == nil, !finished else { return }
        let states = client.states
        sessionTask = Task { [weak self] in
            for await state in states {
                guard let self, let event = sessionEvent(state) else { continue }
                await self.session(event)
            }
        }
        feed(.start)
    }

    /// Stops feeding the program: its outstanding calls, watches and timers are dropped.
    public func stop() {
        finished = true
        sessionTask?.cancel()
        presumeTask?.cancel()
        for task in tasks.values { task.cancel() }
        tasks.removeAll()
        continuation.finish()
    }

    /// The program as it is now (for inspection).
    public var current: Program { program }

    /// Gives the program an input from outside (a program-specific command is made with a timer
    /// or a call; this is for tests that inject session events).
    public func feed(_ input: ProgramInput) {
        guard !finished else { return }
        let nowMs = Int64((clock.now - started).components.seconds * 1000)
            + (clock.now - started).components.attoseconds / 1_000_000_000_000_000
        for action in program.handle(input, nowMs: nowMs) { perform(action) }
    }

    func session(_ event: SessionEvent) {
        presumeTask?.cancel()
        presumeTask = nil
        if event == .suspended {
            let timeoutMs = max(Int(client.negotiatedSessionTimeoutMs), 1)
            presumeTask = Task { [weak self] in
                try? await Task.sleep(for: .milliseconds(timeoutMs))
                guard !Task.isCancelled, let self else { return }
                await self.feed(.session(.presumedExpired))
            }
        }
        feed(.session(event))
    }

    func perform(_ action: ProgramAction<Observation>) {
        guard !finished else { return }
        switch action {
        case .observe(let observation):
            continuation.yield(observation)
        case .finish:
            stop()
        case .timer(let id, let afterMs):
            spawn { runner in
                try? await Task.sleep(for: .milliseconds(max(afterMs, 0)))
                guard !Task.isCancelled else { return }
                await runner.feed(.timer(id))
            }
        case .call(let id, let request, let watch):
            let client = self.client
            spawn { runner in
                let (result, oneShot) = await client.send(request, watch: watch)
                guard !Task.isCancelled else { return }
                await runner.feed(.reply(id, result))
                guard let oneShot, let event = try? await oneShot.event(), !Task.isCancelled else { return }
                await runner.feed(.watch(id, type: event.type, path: event.path))
            }
        }
    }

    func spawn(_ body: @escaping @Sendable (ProgramRunner) async -> Void) {
        let key = nextTask
        nextTask += 1
        tasks[key] = Task { [weak self] in
            guard let self else { return }
            await body(self)
            await self.done(key)
        }
    }

    func done(_ key: UInt64) { tasks[key] = nil }
}
