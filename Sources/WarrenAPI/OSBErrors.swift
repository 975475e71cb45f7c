import EnvironmentModel
import HTTPServer
import Logging

/// An Open Service Broker error: `{"error": CODE, "description": TEXT}`, the body every /v2
/// failure has (the specification's codes where it names one: AsyncRequired,
/// ConcurrencyError; otherwise Warren's own, in the same style).
struct OSBError: Error, Sendable {
    var status: Int
    var error: String
    var description: String
    var headers: [(String, String)] = []

    func response() -> HTTPResponse {
        var all = HTTPHeaders(headers)
        all.replace("Content-Type", "application/json")
        return HTTPResponse(status: status, headers: all, body: JSON.encode(Body(error: error, description: description)))
    }

    private struct Body: Encodable {
        var error: String
        var description: String
    }

    static func badRequest(_ description: String) -> OSBError {
        OSBError(status: 400, error: "BadRequest", description: description)
    }

    static let duplicateAuthorization = OSBError(status: 400, error: "BadRequest", description: DuplicateAuthorization.detail)

    static let unauthorized = OSBError(
        status: 401, error: "Unauthorized",
        description: "send the platform's credentials with HTTP basic authentication",
        headers: [("WWW-Authenticate", "Basic realm=\"warren-osb\"")])

    static func notFound(_ description: String) -> OSBError {
        OSBError(status: 404, error: "NotFound", description: description)
    }

    static func conflict(_ description: String) -> OSBError {
        OSBError(status: 409, error: "Conflict", description: description)
    }

    static func preconditionFailed(_ description: String) -> OSBError {
        OSBError(status: 412, error: "PreconditionFailed", description: description)
    }

    static func asyncRequired(_ description: String) -> OSBError {
        OSBError(status: 422, error: "AsyncRequired", description: description)
    }

    static func concurrency(_ description: String) -> OSBError {
        OSBError(status: 422, error: "ConcurrencyError", description: description)
    }

    /// Something of the instance is there, but Warren cannot act on it (see
    /// `OSBInstanceLookup`): a failure the platform sees and retries, never "gone".
    static func unverifiable(_ description: String) -> OSBError {
        OSBError(status: 500, error: "InstanceNotVerifiable", description: description)
    }

    static func unprocessable(_ description: String) -> OSBError {
        OSBError(status: 422, error: "UnprocessableEntity", description: description)
    }

    /// Any error a handler throws, as an OSB error: Warren's problems keep their status and
    /// their detail (a 400 names every offending field in it); the rest goes through the same
    /// mapping as /v1, so a broker failure leaks nothing here either.
    static func from(_ error: any Error, logger: Logger) -> OSBError {
        if let error = error as? OSBError { return error }
        let problem = ErrorMapping.problem(for: error, logger: logger)
        let code = switch problem.kind {
        case .malformedJSON, .invalidField, .duplicateAuthorization: "BadRequest"
        case .unauthorized: "Unauthorized"
        case .notFound: "NotFound"
        case .methodNotAllowed: "MethodNotAllowed"
        case .conflict, .recordInvalid, .messagesPending, .protected: "Conflict"
        case .quotaExceeded: "QuotaExceeded"
        case .rateLimited: "RateLimited"
        case .unsupportedMediaType: "UnsupportedMediaType"
        case .brokerError: "BrokerError"
        case .brokerUnavailable: "BrokerUnavailable"
        case .internal: "InternalError"
        }
        var description = problem.detail
        if let step = problem.step { description += " (step: \(step))" }
        return OSBError(status: problem.status, error: code, description: description, headers: problem.headers.filter { $0.0 == "Retry-After" })
    }
}
