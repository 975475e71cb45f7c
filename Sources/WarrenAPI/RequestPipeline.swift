import CoreMetrics
import EnvironmentModel
import HTTPServer
import Logging
import Synchronization

/// What every request goes through around its handler: a request id (accepted from
/// X-Request-ID or made), authentication, the mapping of errors to problems, and one log line.
struct RequestPipeline: Sendable {
    typealias Handler = @Sendable (RequestContext) async throws -> HTTPResponse
    /// A handler that waits for nothing: it runs on the event loop's thread (see
    /// `HTTPResponder.respondImmediately`).
    typealias ImmediateHandler = @Sendable (RequestContext) throws -> HTTPResponse

    let tokens: TokenStore
    let logger: Logger
    let accessLog: any AccessLog

    /// `pattern` becomes the `route` metric label, so it is a `StaticString`: a literal of the
    /// route table, never something taken from a request (see MetricLabels).
    func route(_ pattern: StaticString, authenticated: Bool = true, _ handler: @escaping Handler) -> Router.Handler {
        let pattern = pattern.description
        return { request, parameters in
            let call = Call(self, request, route: pattern, authenticated: authenticated)
            do {
                return call.finish(try await handler(try call.context(parameters)))
            } catch {
                return call.finish(failure: error)
            }
        }
    }

    /// `route` for a handler that waits for nothing: the same request id, authentication,
    /// problems, metric and access line.
    func immediateRoute(
        _ pattern: StaticString, authenticated: Bool = true, _ handler: @escaping ImmediateHandler
    ) -> Router.ImmediateHandler {
        let pattern = pattern.description
        return { request, parameters in
            let call = Call(self, request, route: pattern, authenticated: authenticated)
            do {
                return call.finish(try handler(try call.context(parameters)))
            } catch {
                return call.finish(failure: error)
            }
        }
    }

    /// One request on its way through a route: when it began, its id and the caller's team
    /// (nil without authentication, or when the token was refused or never looked at).
    private struct Call {
        let pipeline: RequestPipeline
        let request: HTTPRequest
        let route: String
        let started = ContinuousClock.now
        let requestID: String
        let team: String?
        let ambiguous: Bool
        let refused: Bool

        init(_ pipeline: RequestPipeline, _ request: HTTPRequest, route: String, authenticated: Bool) {
            self.pipeline = pipeline
            self.request = request
            self.route = route
            requestID = RequestID.of(request)
            // Two Authorization headers are refused before either is looked up: which one a
            // proxy or Warren would take is a guess, and the answer then says nothing of either.
            ambiguous = authenticated && DuplicateAuthorization.present(in: request.headers)
            team = authenticated && !ambiguous ? pipeline.tokens.team(forAuthorization: request.headers["Authorization"]) : nil
            refused = authenticated && !ambiguous && team == nil
        }

        /// The handler's context; throws the 400 for two Authorization headers, the 401 when
        /// the token was refused.
        func context(_ parameters: RouteParameters) throws -> RequestContext {
            if ambiguous { throw Problem.duplicateAuthorization }
            if refused { throw Problem.unauthorized }
            return RequestContext(
                request: request, parameters: parameters, team: team ?? "", requestID: requestID, baseLogger: pipeline.logger)
        }

        func finish(failure error: any Error) -> HTTPResponse {
            let logger = RequestContext.logger(pipeline.logger, requestID: requestID, team: team)
            return finish(ErrorMapping.problem(for: error, logger: logger).response())
        }

        func finish(_ response: HTTPResponse) -> HTTPResponse {
            pipeline.finish(request, response, route: route, team: team, requestID: requestID, started: started)
        }
    }

    /// A request no route took (404, 405).
    func unrouted(_ request: HTTPRequest, _ problem: Problem) -> HTTPResponse {
        finish(request, problem.response(), route: MetricLabels.unmatchedRoute, team: nil, requestID: RequestID.of(request), started: .now)
    }

    func finish(
        _ request: HTTPRequest, _ response: HTTPResponse, route: String, team: String?,
        requestID: String, started: ContinuousClock.Instant
    ) -> HTTPResponse {
        var response = response
        response.headers.replace("X-Request-ID", requestID)
        let elapsed = (ContinuousClock.now - started).components
        let nanoseconds = elapsed.seconds * 1_000_000_000 + elapsed.attoseconds / 1_000_000_000
        // Labels from closed sets only (see MetricLabels): `route` is a route pattern or
        // "unmatched", `status` a code Warren chose; the log line below may keep the raw method.
        Timer(
            label: "warren_http_request_duration_seconds",
            dimensions: [
                ("method", MetricLabels.method(request.method)), ("route", route), ("status", String(response.status)),
            ]
        ).recordNanoseconds(nanoseconds)
        let milliseconds = Double(nanoseconds) / 1e6
        accessLog.record(AccessLogEntry(
            requestID: requestID, team: team ?? "-", method: request.method, route: route, status: response.status,
            durationMilliseconds: (milliseconds * 100).rounded() / 100))
        return response
    }
}

/// What a handler gets: the request, its path parameters, the authenticated team (empty on
/// unauthenticated routes) and a logger that carries the request id.
struct RequestContext: Sendable {
    var request: HTTPRequest
    var parameters: RouteParameters
    var team: String
    var requestID: String
    var baseLogger: Logger

    /// Made when a handler asks: most requests (`/healthz`, `/v1/blueprints`) never log, and
    /// setting a logger's metadata copies its handler's dictionary (2% of the server's CPU on
    /// `/healthz`, BENCHMARKS.md).
    var logger: Logger { Self.logger(baseLogger, requestID: requestID, team: team.isEmpty ? nil : team) }

    static func logger(_ base: Logger, requestID: String, team: String?) -> Logger {
        var logger = base
        logger[metadataKey: "request_id"] = .string(requestID)
        if let team { logger[metadataKey: "team"] = .string(team) }
        return logger
    }
}

/// X-Request-ID: the caller's, when it is a short printable token, else a new one.
enum RequestID {
    static func of(_ request: HTTPRequest) -> String {
        if let given = request.headers["X-Request-ID"], (1...128).contains(given.utf8.count),
           given.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
            return given
        }
        return next()
    }

    /// 16 hex digits, unique within the process: a counter passed through a bijective mix
    /// (splitmix64's finalizer) keyed by a random number drawn once. A request id only has to
    /// tell requests apart in the logs and traces; a getrandom(2) per request cost about 3% of
    /// the server's CPU on `/healthz` (BENCHMARKS.md). Unpredictability is not needed: nothing
    /// trusts the id.
    static func next() -> String {
        var value = counter.wrappingAdd(1, ordering: .relaxed).newValue &+ key
        value = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
        value = (value ^ (value >> 27)) &* 0x94D0_49BB_1331_11EB
        value ^= value >> 31
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    private static let key = UInt64.random(in: .min ... .max)
    private static let counter = Atomic<UInt64>(0)
}
