import Logging
import ZKOperations
import ZKServer

/// The metrics endpoint and admin server of the servers a command runs.
struct OperationsEndpoints {
    private(set) var servers: [OperationsHTTPServer] = []

    /// Starts them for `server` (member `index` of the servers this command runs, from 0): member
    /// N serves on `port + N - 1` unless the port is 0 (a free one each). Prints where they serve.
    /// The admin server also serves `console` (at `/console`) when given.
    static func start(
        for server: MiniZKServer, index: Int = 0, host: String, metricsPort: Int?, adminPort: Int?,
        context: AdminCommands.Context, console: Console? = nil, memberId: Int64? = nil, logger: Logger
    ) async throws -> OperationsEndpoints {
        try await start(
            serving: { server }, index: index, host: host, metricsPort: metricsPort, adminPort: adminPort,
            context: context, console: console, memberId: memberId, logger: logger)
    }

    /// The same for a member whose server changes (a test ensemble restarts members); `serving`
    /// gives the running one, nil while it does not run. Without a server at start, no metrics.
    static func start(
        serving: @escaping @Sendable () async -> MiniZKServer?, index: Int = 0, host: String, metricsPort: Int?,
        adminPort: Int?, context: AdminCommands.Context, console: Console? = nil, memberId: Int64? = nil, logger: Logger
    ) async throws -> OperationsEndpoints {
        var endpoints = OperationsEndpoints()
        do {
            if let metricsPort, let server = await serving() {
                let port = metricsPort == 0 ? 0 : metricsPort + index
                let http = try await OperationsHTTPServer.start(
                    router: MetricsEndpoint.router(server), host: host, port: port, logger: logger)
                endpoints.servers.append(http)
                printLine("metrics: \(http.url)/metrics")
            }
            if let adminPort {
                let port = adminPort == 0 ? 0 : adminPort + index
                let http = try await OperationsHTTPServer.start(
                    router: AdminEndpoint.router(serving: serving, context: context, console: console, selfId: memberId ?? Int64(index + 1)),
                    host: host, port: port, logger: logger)
                endpoints.servers.append(http)
                printLine("admin: \(http.url)/commands")
                if console != nil { printLine("console: \(http.url)/console") }
            }
        } catch {
            await endpoints.stop()
            throw error
        }
        return endpoints
    }

    func stop() async {
        for server in servers { await server.stop() }
    }
}
