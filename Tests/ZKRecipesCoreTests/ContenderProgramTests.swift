import XCTest
import ZKProtocol
@testable import ZKRecipesCore

/// The contender programs driven by hand: the calls they make, and what they make of each answer.
final class ContenderProgramTests: XCTestCase {
    typealias Action = ProgramAction<RecipeObservation>

    func calls(_ actions: [Action]) -> [(CallID, Request, Bool)] {
        actions.compactMap { if case .call(let id, let request, let watch) = $0 { return (id, request, watch) } else { return nil } }
    }

    func observations(_ actions: [Action]) -> [RecipeObservation] {
        actions.compactMap { if case .observe(let observation) = $0 { return observation } else { return nil } }
    }

    func timers(_ actions: [Action]) -> [TimerID] {
        actions.compactMap { if case .timer(let id, _) = $0 { return id } else { return nil } }
    }

    func stat(version: Int32) -> Stat {
        var stat = Stat()
        stat.version = version
        return stat
    }

    // MARK: - Counter

    func testCounterWritesWithTheVersionItRead() {
        var counter = CounterIncrementer(.init(path: "/c", seed: 1))
        XCTAssertTrue(calls(counter.handle(.start, nowMs: 0)).isEmpty, "nothing goes out before the session connects")
        let read = calls(counter.handle(.session(.connected), nowMs: 0))
        XCTAssertEqual(read.map(\.1), [.getData(path: "/c", watch: false)])
        let write = calls(counter.handle(.reply(read[0].0, .success(.getData(data: CuratorValues.encodeLong(41), stat: stat(version: 7)))), nowMs: 0))
        XCTAssertEqual(write.map(\.1), [.setData(path: "/c", data: CuratorValues.encodeLong(42), version: 7)])
        let done = counter.handle(.reply(write[0].0, .success(.stat(stat(version: 8)))), nowMs: 0)
        XCTAssertEqual(observations(done), [.incremented(resource: "/c", value: 42)])
        XCTAssertEqual(timers(done).count, 1, "thinks before the next increment")
        XCTAssertEqual(counter.confirmed, 1)
    }

    func testCounterRereadsAfterBadVersionAndCreatesWhenMissing() {
        var counter = CounterIncrementer(.init(path: "/c", seed: 1))
        _ = counter.handle(.start, nowMs: 0)
        let read = calls(counter.handle(.session(.connected), nowMs: 0))
        let create = calls(counter.handle(.reply(read[0].0, .failure(.noNode)), nowMs: 0))
        guard case .create2(let request) = create.first?.1 else { return XCTFail("expected a create, got \(create)") }
        XCTAssertEqual(request.data, CuratorValues.encodeLong(1))
        // Someone else created it first: read again, never overwrite.
        let reread = calls(counter.handle(.reply(create[0].0, .failure(.nodeExists)), nowMs: 0))
        XCTAssertEqual(reread.map(\.1), [.getData(path: "/c", watch: false)])
        let write = calls(counter.handle(.reply(reread[0].0, .success(.getData(data: CuratorValues.encodeLong(1), stat: stat(version: 0)))), nowMs: 0))
        let again = calls(counter.handle(.reply(write[0].0, .failure(.badVersion)), nowMs: 0))
        XCTAssertEqual(again.map(\.1), [.getData(path: "/c", watch: false)])
    }

    func testCounterReportsALostWriteAsUnknownAndNeverRetriesIt() {
        var counter = CounterIncrementer(.init(path: "/c", seed: 1))
        _ = counter.handle(.start, nowMs: 0)
        let read = calls(counter.handle(.session(.connected), nowMs: 0))
        let write = calls(counter.handle(.reply(read[0].0, .success(.getData(data: CuratorValues.encodeLong(5), stat: stat(version: 5)))), nowMs: 0))
        _ = counter.handle(.session(.suspended), nowMs: 0)
        let lost = counter.handle(.reply(write[0].0, .failure(.connectionLoss)), nowMs: 0)
        XCTAssertEqual(observations(lost), [.incrementUnknown(resource: "/c")])
        XCTAssertTrue(calls(lost).isEmpty)
        // Back: a fresh read (a new increment), not the old write again.
        let back = calls(counter.handle(.session(.reconnected), nowMs: 0))
        XCTAssertEqual(back.map(\.1), [.getData(path: "/c", watch: false)])
    }

    // MARK: - Queue

    func testConsumerTakesItemsInSequenceOrderAndOwnsOnlyWhatItDeleted() {
        var consumer = QueueConsumer(path: "/q")
        _ = consumer.handle(.start, nowMs: 0)
        let list = calls(consumer.handle(.session(.connected), nowMs: 0))
        XCTAssertEqual(list.map(\.1), [.getChildren(path: "/q", watch: true)])
        XCTAssertEqual(list.first?.2, true)
        let read = calls(consumer.handle(.reply(list[0].0, .success(.getChildren(children: ["queue-0000000002", "queue-0000000001"]))), nowMs: 0))
        XCTAssertEqual(read.map(\.1), [.getData(path: "/q/queue-0000000001", watch: false)])
        let data = QueueItemCodec.encode([Array("a".utf8)])
        let delete = calls(consumer.handle(.reply(read[0].0, .success(.getData(data: data, stat: Stat()))), nowMs: 0))
        XCTAssertEqual(delete.map(\.1), [.delete(path: "/q/queue-0000000001", version: -1)])
        // Someone else deleted it first: not ours; on to the next.
        let next = consumer.handle(.reply(delete[0].0, .failure(.noNode)), nowMs: 0)
        XCTAssertTrue(observations(next).isEmpty)
        XCTAssertEqual(calls(next).map(\.1), [.getData(path: "/q/queue-0000000002", watch: false)])
        let delete2 = calls(consumer.handle(.reply(calls(next)[0].0, .success(.getData(data: data, stat: Stat()))), nowMs: 0))
        let taken = consumer.handle(.reply(delete2[0].0, .success(.empty)), nowMs: 0)
        XCTAssertEqual(observations(taken), [.consumed(resource: "/q", item: "queue-0000000002", data: data)])
        // Empty now: it waits for the listing's watch.
        XCTAssertTrue(calls(taken).isEmpty)
        let relist = calls(consumer.handle(.watch(list[0].0, type: .nodeChildrenChanged, path: "/q"), nowMs: 0))
        XCTAssertEqual(relist.map(\.1), [.getChildren(path: "/q", watch: true)])
    }

    // MARK: - Lock contender

    func testLockContenderCreatesParentsAsContainersThenHoldsAndReleases() {
        let configuration = LockContender.Configuration(lock: .init(basePath: "/a/lock"), holdMs: 10...10, thinkMs: 0...0, seed: 3)
        var contender = LockContender(configuration)
        let create = calls(contender.handle(.start, nowMs: 0))
        guard case .create2(let request) = create.first?.1 else { return XCTFail("expected create2, got \(create)") }
        XCTAssertTrue(request.path.hasPrefix("/a/lock/_c_"))
        XCTAssertEqual(request.flags, CreateMode.ephemeralSequential.rawValue)
        _ = contender.handle(.session(.connected), nowMs: 0)
        let parent = calls(contender.handle(.reply(create[0].0, .failure(.noNode)), nowMs: 0))
        guard case .createContainer(let first) = parent.first?.1 else { return XCTFail("expected a container, got \(parent)") }
        XCTAssertEqual(first.path, "/a")
        let parent2 = calls(contender.handle(.reply(parent[0].0, .failure(.nodeExists)), nowMs: 0))
        guard case .createContainer(let second) = parent2.first?.1 else { return XCTFail("expected a container, got \(parent2)") }
        XCTAssertEqual(second.path, "/a/lock")
        let retry = calls(contender.handle(.reply(parent2[0].0, .success(.create(path: "/a/lock"))), nowMs: 0))
        guard case .create2(let again) = retry.first?.1 else { return XCTFail("expected the create again, got \(retry)") }
        XCTAssertEqual(again.path, request.path, "the same protected name, so a lost reply can be found again")
        let ours = again.path + "0000000004"
        let list = calls(contender.handle(.reply(retry[0].0, .success(.create2(path: ours, stat: Stat()))), nowMs: 0))
        XCTAssertEqual(list.map(\.1), [.getChildren(path: "/a/lock", watch: false)])
        let held = contender.handle(.reply(list[0].0, .success(.getChildren(children: [CuratorNames.nodeName(ours)]))), nowMs: 0)
        XCTAssertEqual(observations(held).count, 1)
        guard case .holder(_, .held(let token))? = observations(held).first else { return XCTFail("\(held)") }
        XCTAssertEqual(token.sequence, 4)
        let timer = timers(held)
        XCTAssertEqual(timer.count, 1)
        let release = contender.handle(.timer(timer[0]), nowMs: 10)
        XCTAssertEqual(observations(release), [.releasing(resource: "/a/lock")])
        XCTAssertEqual(calls(release).map(\.1), [.delete(path: ours, version: -1)])
        let released = contender.handle(.reply(calls(release)[0].0, .success(.empty)), nowMs: 10)
        XCTAssertEqual(observations(released), [.holder(resource: "/a/lock", .released)])
        XCTAssertEqual(contender.cycles, 1)
    }

    func testLockContenderStartsOverWithAFreshMachineOnANewSession() {
        let configuration = LockContender.Configuration(lock: .init(basePath: "/l"), holdMs: 10...10, thinkMs: 0...0, seed: 3)
        var contender = LockContender(configuration)
        let create = calls(contender.handle(.start, nowMs: 0))
        _ = contender.handle(.session(.connected), nowMs: 0)
        let list = calls(contender.handle(.reply(create[0].0, .success(.create2(path: "/l/x-lock-0000000001", stat: Stat()))), nowMs: 0))
        _ = contender.handle(.reply(list[0].0, .success(.getChildren(children: ["x-lock-0000000001"]))), nowMs: 0)
        let expired = contender.handle(.session(.expired), nowMs: 5)
        XCTAssertEqual(observations(expired), [.holder(resource: "/l", .lost(.sessionExpired))])
        let fresh = contender.handle(.session(.connected), nowMs: 50)
        XCTAssertEqual(calls(fresh).count, 1, "a new attempt on the new session")
        if case .create2 = calls(fresh).first?.1 {} else { XCTFail("\(fresh)") }
    }
}

/// Found by the simulator's recipe seeds (quick seeds 13 and 19): a create whose reply was lost
/// is sent again when the listing does not show it yet, and both can commit. The node of the
/// lost one is ours too; left alone it would block every waiter behind it until the session ends.
final class LockMachineLeftoverTests: XCTestCase {
    func testALostCreateThatCommitsBesideItsRetryIsDeleted() {
        let base = "/l"
        let uuid = "11111111-2222-4333-8444-555555555555"
        var machine = LockMachine(.init(basePath: base))
        let prefix = "_c_\(uuid)-lock-"
        XCTAssertEqual(machine.handle(.acquire(uuid: uuid)), [.report(.waiting), .create(path: "\(base)/\(prefix)", data: [], mode: .ephemeralSequential)])
        // The reply is lost; the listing does not show the node yet: create again.
        XCTAssertEqual(machine.handle(.failed(.connectionLoss)), [.getChildren(base)])
        XCTAssertEqual(machine.handle(.children(["_c_other-lock-0000000003"])), [.create(path: "\(base)/\(prefix)", data: [], mode: .ephemeralSequential)])
        XCTAssertEqual(machine.handle(.created(path: "\(base)/\(prefix)0000000016", stat: Stat())), [.getChildren(base)])
        // The lost create committed meanwhile (15): delete it, then look again.
        let out = machine.handle(.children(["_c_other-lock-0000000003", "\(prefix)0000000015", "\(prefix)0000000016"]))
        XCTAssertEqual(out, [.delete("\(base)/\(prefix)0000000015")])
        XCTAssertEqual(machine.handle(.deleted("\(base)/\(prefix)0000000015")), [.getChildren(base)])
        XCTAssertEqual(machine.handle(.children(["\(prefix)0000000016"])), [.report(.held(FencingToken(sequence: 16, czxid: 0, path: "\(base)/\(prefix)0000000016")))])
        // A leftover that shows up in a later attempt of the same session is deleted too.
        XCTAssertEqual(machine.handle(.release), [.delete("\(base)/\(prefix)0000000016")])
        XCTAssertEqual(machine.handle(.deleted("\(base)/\(prefix)0000000016")), [.report(.released)])
        let next = "aaaaaaaa-2222-4333-8444-555555555555"
        _ = machine.handle(.acquire(uuid: next))
        XCTAssertEqual(machine.handle(.created(path: "\(base)/_c_\(next)-lock-0000000020", stat: Stat())), [.getChildren(base)])
        XCTAssertEqual(machine.handle(.children(["\(prefix)0000000017", "_c_\(next)-lock-0000000020"])), [.delete("\(base)/\(prefix)0000000017")])
    }
}
