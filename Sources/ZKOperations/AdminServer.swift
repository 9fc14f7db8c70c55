import Hummingbird
import Logging
import NIOCore
import ZKProtocol
import ZKServer

/// An HTTP server on Hummingbird that runs until `stop()`: the metrics endpoint or the admin
/// server of one MiniZK server.
public final class OperationsHTTPServer: Sendable {
    public let host: String
    /// The port bound (the real one when 0 was asked for).
    public let port: Int
    private let task: Task<Void, any Error>

    private init(host: String, port: Int, task: Task<Void, any Error>) {
        self.host = host
        self.port = port
        self.task = task
    }

    public enum StartError: Error, CustomStringConvertible {
        case notBound(host: String, port: Int, reason: String)
        public var description: String {
            switch self {
            case .notBound(let host, let port, let reason): return "could not serve HTTP on \(host):\(port): \(reason)"
            }
        }
    }

    /// Binds `host:port` (0: a free port) and serves `router` until `stop()`.
    public static func start(
        router: Router<BasicRequestContext>, host: String, port: Int, logger: Logger
    ) async throws -> OperationsHTTPServer {
        let (bound, continuation) = AsyncStream<Int>.makeStream()
        var quiet = logger
        // Hummingbird reports its shutdown on cancellation as an error.
        quiet.logLevel = .critical
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in
                continuation.yield(channel.localAddress?.port ?? port)
                continuation.finish()
            },
            logger: quiet)
        let task = Task {
            defer { continuation.finish() }
            try await app.run()
        }
        for await boundPort in bound {
            return OperationsHTTPServer(host: host, port: boundPort, task: task)
        }
        let reason: String
        switch await task.result {
        case .failure(let error): reason = "\(error)"
        case .success: reason = "the server stopped"
        }
        throw StartError.notBound(host: host, port: port, reason: reason)
    }

    public var url: String { "http://\(host):\(port)" }

    /// Stops serving and waits until the port is closed.
    public func stop() async {
        task.cancel()
        _ = await task.result
    }
}

/// The routes of ZooKeeper's metrics provider: the Prometheus text format at `/metrics` (and `/`).
public enum MetricsEndpoint {
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public static func router(_ server: MiniZKServer) -> Router<BasicRequestContext> {
        let router = Router()
        let handler: @Sendable (Request, BasicRequestContext) async throws -> Response = { _, _ in
            do {
                let text = try await server.prometheusText()
                var headers = HTTPFields()
                headers[.contentType] = contentType
                return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
            } catch {
                return Response(status: .serviceUnavailable, body: ResponseBody(byteBuffer: ByteBuffer(string: "\(error)\n")))
            }
        }
        router.get("/metrics", use: handler)
        router.get("/", use: handler)
        return router
    }
}

/// The routes of ZooKeeper's admin server: `/commands` lists the commands, `/commands/<name>`
/// answers one as JSON (query parameters are its arguments); with a console, its page and JSON
/// under `/console`.
public enum AdminEndpoint {
    public static func router(
        _ server: MiniZKServer, context: AdminCommands.Context, console: Console? = nil, selfId: Int64? = nil
    ) -> Router<BasicRequestContext> {
        router(serving: { server }, context: context, console: console, selfId: selfId)
    }

    /// The same for a member whose server changes (a test ensemble restarts members): `serving`
    /// gives the running server, nil while the member does not run (commands then answer an error).
    public static func router(
        serving: @escaping @Sendable () async -> MiniZKServer?, context: AdminCommands.Context, console: Console? = nil,
        selfId: Int64? = nil
    ) -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/commands") { _, _ in
            var html = ""
            for command in AdminCommands.commands.sorted(by: { $0.primary < $1.primary }) {
                html += "<a href=\"/commands/\(command.primary)\">\(command.primary)</a>\n<br/>\n"
            }
            var headers = HTTPFields()
            headers[.contentType] = "text/html"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: html)))
        }
        router.get("/commands/:name") { request, requestContext in
            let name = requestContext.parameters.get("name") ?? ""
            var arguments: [String: String] = [:]
            for (key, value) in request.uri.queryParameters { arguments[String(key)] = String(value) }
            guard let server = await serving() else {
                let body = JSONValue.object([("command", .string(name)), ("error", .string("the member is not running"))])
                var headers = HTTPFields()
                headers[.contentType] = "application/json"
                return Response(status: .serviceUnavailable, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body.text)))
            }
            return await answer(server, name: name, context: context, arguments: arguments)
        }
        if let console { ConsoleEndpoint.addRoutes(to: router, console: console, selfId: selfId) }
        return router
    }

    /// Runs one command: its side effects on the server first (the resets, the trace mask), then
    /// the answer from a snapshot taken after them.
    static func answer(
        _ server: MiniZKServer, name: String, context: AdminCommands.Context, arguments: [String: String]
    ) async -> Response {
        let body: JSONValue
        do {
            switch AdminCommands.command(named: name)?.primary {
            case "connection_stat_reset"?: _ = try await server.answer(.crst)
            case "stat_reset"?: _ = try await server.answer(.srst)
            case "set_trace_mask"?:
                if let mask = arguments["traceMask"].flatMap({ Int64($0) }) { _ = try await server.answer(.stmk, argument: mask) }
            default: break
            }
            let primary = AdminCommands.command(named: name)?.primary
            let snapshot = try await server.operationsSnapshot(
                digest: primary == "hash", watchesByConnection: primary == "watches" || primary == "watches_by_path")
            body = AdminCommands.answer(name, snapshot: snapshot, context: context, arguments: arguments)
                ?? AdminCommands.unknown(name)
        } catch {
            body = .object([("command", .string(name)), ("error", .string("\(error)"))])
        }
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body.text)))
    }
}
