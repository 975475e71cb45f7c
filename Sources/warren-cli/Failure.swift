import Foundation
import OpenAPIRuntime
import WarrenClient

/// The exit statuses a script can rely on. The root command's `--help` and docs/cli.md list
/// them; keep the three in step.
enum ExitStatus: Int32, CaseIterable {
    case success = 0
    case unexpected = 1
    case usage = 2
    case notFound = 3
    case conflict = 4
    case invalid = 5
    case notAuthorized = 6
    case busy = 7
    case unreachable = 8

    /// What the status means, as `--help` and docs/cli.md say it. One line of at most 70
    /// characters each: ArgumentParser wraps longer ones without their indentation.
    var meaning: String {
        switch self {
        case .success: "success"
        case .unexpected: "unexpected: an answer this client does not expect (a 500), or a bug"
        case .usage: "usage: a missing or invalid argument, no token, an unreadable file"
        case .notFound: "not found (404): no such environment or user for the team"
        case .conflict: "conflict (409): another spec exists, messages pending, ..."
        case .invalid: "refused as invalid (400, 413, 415, 422, ...), or a --file off schema"
        case .notAuthorized: "not authorized (401, 403): a wrong token, or a quota reached"
        case .busy: "busy or unavailable (429, 502, 503, ...): try again later"
        case .unreachable: "Warren unreachable: no connection, a timeout, no HTTP answer"
        }
    }

    /// The status a refusal with this HTTP status ends the command with.
    init(httpStatus: Int) {
        switch httpStatus {
        case 404: self = .notFound
        case 409: self = .conflict
        // 414 and 431 (a request target or header fields too long) are the HTTP layer's
        // refusals of a request as it was sent, like 413: sending it again changes nothing.
        case 400, 413, 414, 415, 422, 431: self = .invalid
        case 401, 403: self = .notAuthorized
        // Worth trying again later: the request itself was fine. 408 and 504 are what a proxy
        // in front of Warren answers when Warren is slow.
        case 408, 429, 502, 503, 504: self = .busy
        default: self = .unexpected
        }
    }
}

/// A failure the command explains itself: the message for stderr (without the `error: `
/// prefix; it may run over several lines) and the status to exit with.
struct CLIFailure: Error {
    let status: ExitStatus
    let message: String

    init(_ status: ExitStatus, _ message: String) {
        self.status = status
        self.message = message
    }

    /// Whether `explaining` knows the error: this tool's own, or one from talking to Warren.
    static func isExplained(_ error: any Error) -> Bool {
        error is CLIFailure || error is ClientError || error is WarrenProblem || error is CurlTransportError
            || error is DecodingError || error is EncodingError || error is CancellationError
    }

    /// What to say about an error a command threw.
    ///
    /// Never `String(describing:)` a `ClientError`: its description lists every request header,
    /// the Authorization header with the token among them. Only the parts below are printed.
    static func explaining(_ error: any Error) -> CLIFailure {
        if let failure = error as? CLIFailure { return failure }
        if let problem = WarrenProblem.in(error) {
            // title (status): detail, a line per errors[] entry, and Retry-After when given.
            return CLIFailure(ExitStatus(httpStatus: problem.status), problem.description)
        }
        let clientError = error as? ClientError
        let cause = clientError?.underlyingError ?? error
        if let transport = cause as? CurlTransportError {
            // The description names the method and URL, never a header.
            switch transport.kind {
            case .invalidRequest:
                return CLIFailure(.usage, "the request could not be sent: \(transport)")
            case .timeout where transport.detail.lowercased().contains("connect"):
                return CLIFailure(.unreachable, "Warren is unreachable: \(transport)")
            case .timeout:
                // The request may have reached Warren, which may still complete it.
                return CLIFailure(.unreachable, """
                    Warren did not answer in time: \(transport)
                      the request may still take effect; `warren-cli get NAME` or `warren-cli list` shows what happened
                    """)
            case .responseTooLarge:
                return CLIFailure(.unexpected, "Warren's answer is too large: \(transport)")
            default:
                return CLIFailure(.unreachable, "Warren is unreachable: \(transport)")
            }
        }
        if cause is CancellationError {
            return CLIFailure(.unexpected, "the request was cancelled")
        }
        if let clientError {
            var message = "Warren's answer to \(clientError.operationID) could not be read"
            if let status = clientError.response?.status.code { message += " (HTTP \(status))" }
            if let decoding = cause as? DecodingError {
                message += ": " + describe(decoding)
            } else {
                message += ": \(clientError.causeDescription)"
            }
            return CLIFailure(.unexpected, message)
        }
        return CLIFailure(.unexpected, String(describing: error))
    }

    /// An answer the generated client has no case for (no problem document, or a status the
    /// operation does not document): said as such, with the status deciding the exit status.
    static func undocumented(_ statusCode: Int, _ payload: UndocumentedPayload) -> CLIFailure {
        let contentType = payload.headerFields[.contentType] ?? "no content type"
        var message = "Warren answered HTTP \(statusCode) (\(contentType)), which this command does not expect"
        if let retryAfter = payload.headerFields[.retryAfter] { message += "\n  try again in \(retryAfter) s" }
        let status = ExitStatus(httpStatus: statusCode)
        return CLIFailure(status == .success ? .unexpected : status, message)
    }
}

/// A decoding error as a person reads it: the dotted path of the field (`queues[0].type`), then
/// what is wrong with it.
func describe(_ error: DecodingError) -> String {
    func path(_ keys: [any CodingKey]) -> String {
        var text = ""
        for key in keys {
            if let index = key.intValue {
                text += "[\(index)]"
            } else {
                text += (text.isEmpty ? "" : ".") + key.stringValue
            }
        }
        return text.isEmpty ? "the document" : text
    }
    switch error {
    case .keyNotFound(let key, let context):
        return "\(path(context.codingPath + [key])): is required"
    case .valueNotFound(_, let context):
        return "\(path(context.codingPath)): must not be null"
    case .typeMismatch(let type, let context):
        return "\(path(context.codingPath)): has the wrong type (expected \(type))"
    case .dataCorrupted(let context):
        // swift-openapi-runtime's refusal of a key the schema does not name.
        if context.debugDescription.hasPrefix("Additional properties are disabled") {
            return "\(path(context.codingPath)): is not a field of this document"
        }
        return "\(path(context.codingPath)): \(context.debugDescription)"
    @unknown default:
        return "\(error)"
    }
}
