import NIOConcurrencyHelpers
import ZKClient
import ZKRecipesCore

/// Drives a `LockMachine` with a `ZooKeeperClient`: performs its commands, feeds back their
/// results, its predecessor watches and the session's states, and publishes its holder state.
actor LockRunner {
    let client: ZooKeeperClient
    var machine: LockMachine
    let states: Broadcast<HolderState>
    var sessionTask: Task<Void, Never>?
    var presumeTask: Task<Void, Never>?
    var watchTasks: [Task<Void, Never>] = []
    /// Join again after a hold was dropped while the session lives (a latch candidate stays a
    /// candidate, as Curator's `LeaderLatch` does on reconnection).
    var rejoinAfterDrop = false

    init(client: ZooKeeperClient, configuration: LockMachine.Configuration) {
        self.client = client
        self.machine = LockMachine(configuration)
        self.states = Broadcast(.idle)
    }

    /// Starts following the session (once).
    func start() {
        guard sessionTask == nil else { return }
        let states = client.states
        sessionTask = Task { [weak self] in
            for await state in states {
                guard let self, let event = sessionEvent(state) else { continue }
                await self.session(event)
            }
        }
    }

    func stop() {
        sessionTask?.cancel()
        presumeTask?.cancel()
        for task in watchTasks { task.cancel() }
        watchTasks.removeAll()
    }

    func session(_ event: SessionEvent) {
        presumeTask?.cancel()
        presumeTask = nil
        if event == .suspended {
            // Disconnected for a whole session timeout: the ensemble has expired the session.
            let timeoutMs = max(Int(client.negotiatedSessionTimeoutMs), 1)
            presumeTask = Task { [weak self] in
                try? await Task.sleep(for: .milliseconds(timeoutMs))
                guard !Task.isCancelled, let self else { return }
                await self.send(.session(.presumedExpired))
            }
        }
        send(.session(event))
    }

    func send(_ input: LockMachine.Input) {
        for command in machine.handle(input) { perform(command) }
        if rejoinAfterDrop, machine.phase == .idle, case .lost(.connectionSuspended) = machine.state {
            for command in machine.handle(.acquire(uuid: systemUUID())) { perform(command) }
        }
    }

    func setRejoinAfterDrop(_ value: Bool) { rejoinAfterDrop = value }

    var phase: LockMachine.Phase { machine.phase }
    var holdCount: Int { machine.holdCount }

    func perform(_ command: LockMachine.Command) {
        let client = self.client
        switch command {
        case .report(let state):
            states.publish(state)
        case .create(let path, let data, let mode):
            Task {
                do {
                    let (created, stat) = try await client.createCreatingParents(path, data: data, mode: mode)
                    self.send(.created(path: created, stat: stat))
                } catch {
                    await self.fail(error)
                }
            }
        case .getChildren(let path):
            Task {
                do {
                    let children = try await client.getChildren(path)
                    self.send(.children(children))
                } catch ZooKeeperError.noNode {
                    self.send(.children([]))
                } catch {
                    await self.fail(error)
                }
            }
        case .watchData(let path):
            Task {
                do {
                    let (_, _, watch) = try await client.getData(path, watch: true)
                    self.send(.predecessorExists(path))
                    if let watch { self.follow(watch, path) }
                } catch ZooKeeperError.noNode {
                    self.send(.predecessorGone(path))
                } catch {
                    await self.fail(error)
                }
            }
        case .delete(let path):
            Task {
                do {
                    try await client.delete(path)
                    self.send(.deleted(path))
                } catch ZooKeeperError.noNode {
                    self.send(.deleted(path))
                } catch {
                    await self.fail(error)
                }
            }
        }
    }

    func follow(_ watch: OneShotWatch, _ path: String) {
        watchTasks.removeAll { $0.isCancelled }
        watchTasks.append(Task {
            if (try? await watch.event()) != nil { self.send(.watchFired(path)) }
        })
    }

    /// Feeds a failure back; one that may pass once connected is fed when the client is.
    func fail(_ error: any Error) async {
        let code = (error as? ZooKeeperError)?.code ?? .systemError
        if (error as? ZooKeeperError)?.isRetryable == true { await awaitConnection(client) }
        send(.failed(code))
    }
}
