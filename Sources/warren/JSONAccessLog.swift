import Logging
import WarrenAPI

/// The access line, formatted straight into bytes: the same JSON object `JSONLogHandler`
/// writes for `logger.info("request", metadata: ...)` (same keys, same order, same escaping),
/// without building, merging and sorting a metadata dictionary per request.
struct JSONAccessLog: AccessLog {
    let label: String
    /// Lines are written only at `info` and below, as the logger's would be.
    let enabled: Bool
    let writer: LogWriter

    init(label: String, level: Logger.Level, writer: LogWriter = .standardError) {
        self.label = label
        self.enabled = level <= .info
        self.writer = writer
    }

    func record(_ entry: AccessLogEntry) {
        guard enabled else { return }
        var out = JSONLine.start(level: .info, logger: label, message: "request")
        // Sorted by key, as the handler sorts metadata.
        JSONLine.member("duration_ms", String(entry.durationMilliseconds), into: &out)
        JSONLine.member("method", entry.method, into: &out)
        JSONLine.member("request_id", entry.requestID, into: &out)
        JSONLine.member("route", entry.route, into: &out)
        JSONLine.member("status", String(entry.status), into: &out)
        JSONLine.member("team", entry.team, into: &out)
        JSONLine.end(&out)
        writer.append(out)
    }
}
