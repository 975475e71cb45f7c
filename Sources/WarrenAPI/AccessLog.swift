import Logging

/// The access line: one per answered request, with the same fields whatever the route.
public struct AccessLogEntry: Sendable {
    public var requestID: String
    /// "-" on unauthenticated routes.
    public var team: String
    /// The request's method as sent (the metric label is from a closed set; the log keeps it).
    public var method: String
    /// The route pattern, or "unmatched".
    public var route: String
    public var status: Int
    /// Rounded to hundredths.
    public var durationMilliseconds: Double

    public init(requestID: String, team: String, method: String, route: String, status: Int, durationMilliseconds: Double) {
        self.requestID = requestID
        self.team = team
        self.method = method
        self.route = route
        self.status = status
        self.durationMilliseconds = durationMilliseconds
    }
}

/// Where access lines go. The default is the request logger at `info` (message "request",
/// fields request_id, team, method, route, status, duration_ms). The executable gives its own
/// writer that formats the same JSON line straight into bytes: through swift-log the line cost
/// about a tenth of the server's CPU on `/healthz` (a metadata dictionary, merged, sorted and
/// interpolated per request; BENCHMARKS.md).
public protocol AccessLog: Sendable {
    func record(_ entry: AccessLogEntry)
}

/// Access lines through a swift-log `Logger`, for embedders and tests without their own.
struct LoggerAccessLog: AccessLog {
    let logger: Logger

    func record(_ entry: AccessLogEntry) {
        logger.info("request", metadata: [
            "request_id": .string(entry.requestID), "team": .string(entry.team), "method": .string(entry.method),
            "route": .string(entry.route), "status": .string(String(entry.status)),
            "duration_ms": .string(String(entry.durationMilliseconds)),
        ])
    }
}
