import Foundation
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ZKOperations
import ZKTesting

/// The HTTP control API of `minizk ensemble --control ADDR`: the operations of `TestEnsemble`
/// as JSON endpoints, for tests in any language (see docs/testing.md).
///
/// Every answer is JSON; an operation that fails answers 4xx/5xx with `{"error": "..."}`.
enum ControlAPI {
    struct Info: Codable, Sendable {
        var connectString: String
        var members: [TestEnsemble.Member]
        var control: String?
        var pid: Int32
        var clock: String
        var storage: String
    }

    struct Partition: Codable { var groups: [[Int64]] }
    struct Advance: Codable { var ms: Int64 }
    struct Ok: Codable { var ok = true }
    struct ErrorBody: Codable { var error: String }
    struct Dropped: Codable { var closed: Int }
    struct ClockNow: Codable { var nowMs: Int64; var manual: Bool }
    struct LeaderBody: Codable { var leader: TestEnsemble.Member? }
    struct MemberBody: Codable { var member: TestEnsemble.Member? }

    static func info(_ ensemble: TestEnsemble, control: String?) -> Info {
        Info(
            connectString: ensemble.connectString, members: ensemble.members, control: control, pid: getpid(),
            clock: ensemble.clock.rawValue, storage: ensemble.storage.rawValue)
    }

    static func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data(#"{"error":"encoding failed"}"#.utf8)
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func decode<T: Decodable>(_ type: T.Type, _ request: Request) async throws -> T {
        var request = request
        let body = try await request.collectBody(upTo: 64 << 20)
        do {
            return try JSONDecoder().decode(T.self, from: Data(body.readableBytesView))
        } catch {
            throw ControlError.badRequest("the body is not the JSON expected: \(error)")
        }
    }

    enum ControlError: Error {
        case badRequest(String)
        case notFound(String)
    }

    /// Runs an operation and turns its outcome, or its error, into a JSON response.
    static func answer<T: Encodable>(_ body: () async throws -> T) async -> Response {
        do {
            return json(try await body())
        } catch ControlError.badRequest(let message) {
            return json(ErrorBody(error: message), status: .badRequest)
        } catch ControlError.notFound(let message) {
            return json(ErrorBody(error: message), status: .notFound)
        } catch let error as TestEnsembleError {
            switch error {
            case .unknownSession, .notRunning: return json(ErrorBody(error: "\(error)"), status: .notFound)
            case .notManual, .badPath: return json(ErrorBody(error: "\(error)"), status: .badRequest)
            default: return json(ErrorBody(error: "\(error)"), status: .serviceUnavailable)
            }
        } catch {
            return json(ErrorBody(error: "\(error)"), status: .internalServerError)
        }
    }

    static func memberId(_ context: BasicRequestContext, _ ensemble: TestEnsemble) throws -> Int64 {
        guard let id = context.parameters.get("id", as: Int64.self), ensemble.members.contains(where: { $0.id == id }) else {
            throw ControlError.notFound("no such member: \(context.parameters.get("id") ?? "")")
        }
        return id
    }

    /// Session ids as decimal or 0x-prefixed hexadecimal.
    static func sessionId(_ text: String?) throws -> Int64 {
        guard let text else { throw ControlError.badRequest("no session id") }
        if text.lowercased().hasPrefix("0x"), let value = UInt64(text.dropFirst(2), radix: 16) { return Int64(bitPattern: value) }
        if let value = Int64(text) { return value }
        throw ControlError.badRequest("not a session id: \(text)")
    }

    static func router(_ ensemble: TestEnsemble, control: @escaping @Sendable () -> String?) -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/") { _, _ in json(info(ensemble, control: control())) }
        router.get("/members") { _, _ in await answer { try await ensemble.status() } }
        router.get("/leader") { _, _ in await answer { LeaderBody(leader: try await ensemble.leader()) } }
        router.post("/members/:id/kill") { _, context in
            await answer { try await ensemble.kill(try memberId(context, ensemble)); return Ok() }
        }
        router.post("/members/:id/restart") { _, context in
            await answer { try await ensemble.restart(try memberId(context, ensemble)); return Ok() }
        }
        router.post("/members/:id/pause") { _, context in
            await answer { try await ensemble.pause(try memberId(context, ensemble)); return Ok() }
        }
        router.post("/members/:id/resume") { _, context in
            await answer { try await ensemble.resume(try memberId(context, ensemble)); return Ok() }
        }
        router.post("/members/:id/isolate") { _, context in
            await answer { await ensemble.isolate(try memberId(context, ensemble)); return Ok() }
        }
        router.post("/members/:id/drop-connections") { request, context in
            await answer {
                let session = try request.uri.queryParameters.get("session").map { try sessionId($0) }
                return Dropped(closed: try await ensemble.dropConnections(of: try memberId(context, ensemble), session: session))
            }
        }
        router.post("/kill-leader") { _, _ in await answer { try await ensemble.killLeader() } }
        router.post("/stop") { _, _ in await answer { try await ensemble.stop(); return Ok() } }
        router.post("/start") { _, _ in await answer { try await ensemble.start(); return Ok() } }
        router.post("/partition") { request, _ in
            await answer {
                let partition = try await decode(Partition.self, request)
                await ensemble.partition(partition.groups)
                return Ok()
            }
        }
        router.post("/heal") { _, _ in await answer { await ensemble.heal(); return Ok() } }
        router.post("/await-ready") { _, _ in await answer { try await ensemble.awaitReady(); return Ok() } }
        router.get("/sessions") { _, _ in await answer { try await ensemble.sessions() } }
        router.get("/sessions/:session/member") { _, context in
            await answer { MemberBody(member: try await ensemble.member(connectedTo: try sessionId(context.parameters.get("session")))) }
        }
        router.post("/sessions/:session/expire") { _, context in
            await answer { try await ensemble.expireSession(try sessionId(context.parameters.get("session"))); return Ok() }
        }
        router.post("/sessions/:session/close") { _, context in
            await answer { try await ensemble.closeSession(try sessionId(context.parameters.get("session"))); return Ok() }
        }
        router.post("/sessions/:session/drop-connections") { _, context in
            await answer { Dropped(closed: try await ensemble.dropConnections(ofSession: try sessionId(context.parameters.get("session")))) }
        }
        router.get("/clock") { _, _ in json(ClockNow(nowMs: ensemble.nowMs, manual: ensemble.manualClock != nil)) }
        router.post("/clock/advance") { request, _ in
            await answer {
                let advance = try await decode(Advance.self, request)
                guard advance.ms >= 0 else { throw ControlError.badRequest("ms must not be negative") }
                try await ensemble.advance(by: advance.ms)
                return ClockNow(nowMs: ensemble.nowMs, manual: true)
            }
        }
        router.post("/reset") { _, _ in await answer { try await ensemble.reset(); return Ok() } }
        router.post("/load") { request, _ in
            await answer {
                try await ensemble.load(tree: try await decode([String: String].self, request))
                return Ok()
            }
        }
        router.get("/dump") { _, _ in await answer { try await ensemble.dump() } }
        return router
    }
}

extension EnsembleCommand {
    /// A test ensemble with the HTTP control API.
    func runControlled() async throws {
        let logger = replica.makeLogger()
        let signals = TerminationSignals()
        let address = ControlAddress(control!)!
        let base = try replica.replicaConfig(clientPort: basePort)
        let started = ContinuousClock.now
        let ensemble = try await TestEnsemble.start(
            members: nodes, storage: inMemory ? .inMemory : .temporaryDirectory, clock: TestEnsemble.Clock(rawValue: clock)!,
            tickMs: base.tickMs, host: replica.host, basePort: basePort, configure: { $0 = base }, options: replica.serverOptions,
            logger: logger)
        // With --admin-port, member N's admin server (port + N - 1) answers for whichever server
        // runs as member N now, and every one serves the console of the whole ensemble. They
        // start once the control API serves, after the line(s) that announce it.
        let console: Console? = replica.adminPort == nil ? nil : Console(members: {
            var members: [ConsoleMember] = []
            for member in ensemble.members {
                members.append(ConsoleMember(
                    id: member.id, host: member.host, clientPort: member.port, server: await ensemble.server(member.id)))
            }
            return members
        })
        let endpoints = NIOLockedValueBox<[OperationsEndpoints]>([])
        let adminPort = replica.adminPort
        let adminHost = replica.host
        let bound = NIOLockedValueBox<String?>(nil)
        let (running, runningContinuation) = AsyncStream<Void>.makeStream()
        let app = Application(
            router: ControlAPI.router(ensemble, control: { bound.withLockedValue { $0 } }),
            configuration: .init(address: .hostname(address.host, port: address.port)),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? address.port
                bound.withLockedValue { $0 = "http://\(address.host):\(port)" }
                runningContinuation.yield()
                runningContinuation.finish()
            },
            logger: {
                // The HTTP server's own log: its shutdown on cancellation is reported as an error.
                var quiet = logger
                quiet.logLevel = .critical
                return quiet
            }())
        let json = self.json
        let nodes = self.nodes
        let stop: StopReason = try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.run() }
            for await _ in running { break }
            let controlAddress = bound.withLockedValue { $0 }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                let line = try encoder.encode(ControlAPI.info(ensemble, control: controlAddress))
                printLine(String(decoding: line, as: UTF8.self))
            } else {
                printLine("MiniZK test ensemble of \(nodes) replicas, serving after \(ContinuousClock.now - started)")
                printLine(ensemble.connectString)
                printLine("control: \(controlAddress ?? "?")")
            }
            if let console, let adminPort {
                await console.monitor.start()
                for (index, member) in ensemble.members.enumerated() {
                    let started = try await OperationsEndpoints.start(
                        serving: { await ensemble.server(member.id) }, index: index, host: adminHost, metricsPort: nil,
                        adminPort: adminPort, context: AdminCommands.Context(clientHost: adminHost), console: console,
                        memberId: member.id, logger: logger)
                    endpoints.withLockedValue { $0.append(started) }
                }
            }
            let stop = await signals.wait()
            group.cancelAll()
            return stop
        }
        await console?.monitor.stop()
        for endpoint in endpoints.withLockedValue({ $0 }) { await endpoint.stop() }
        try await ensemble.close()
        try stop.exit(logger: logger)
    }

}
