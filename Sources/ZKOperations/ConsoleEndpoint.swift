import Hummingbird
import NIOCore
import ZKServer

/// The web console's routes on the admin server: `GET /console` (the page, self-contained: no
/// external script, style or font) and the JSON it polls under `/console/api/`.
public enum ConsoleEndpoint {
    /// Adds the console's routes to an admin server's router. `selfId` is the member whose admin
    /// server this is (the page marks it).
    public static func addRoutes(to router: Router<BasicRequestContext>, console: Console, selfId: Int64?) {
        router.get("/console") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/html; charset=utf-8"
            headers[.cacheControl] = "no-store"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: ConsolePage.html)))
        }
        router.get("/console/api/ensemble") { _, _ in json(await console.ensemble(selfId: selfId)) }
        router.get("/console/api/tree") { request, _ in
            let query = request.uri.queryParameters
            let path = query.get("path") ?? "/"
            let member = query.get("member").flatMap { Int64($0) }
            let offset = query.get("offset").flatMap { Int($0) } ?? 0
            let limit = query.get("limit").flatMap { Int($0) } ?? Console.defaultPageSize
            do {
                return json(try await console.tree(path: path, memberId: member, offset: offset, limit: limit))
            } catch let error as Console.TreeError {
                let status: HTTPResponse.Status
                switch error {
                case .badPath: status = .badRequest
                case .noMember: status = .serviceUnavailable
                }
                return json(.object([("error", .string(error.description))]), status: status)
            } catch {
                return json(.object([("error", .string("\(error)"))]), status: .serviceUnavailable)
            }
        }
        router.get("/console/api/sessions") { _, _ in json(await console.sessions()) }
        router.get("/console/api/series") { request, _ in
            let since = request.uri.queryParameters.get("since").flatMap { Int64($0) } ?? 0
            return json(await console.monitor.seriesJSON(sinceMs: since))
        }
        router.get("/console/api/events") { _, _ in json(await console.monitor.eventsJSON()) }
    }

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: value.text)))
    }
}
