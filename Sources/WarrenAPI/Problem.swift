import FoundationEssentials
import HTTPServer

/// An RFC 9457 problem: the one shape every API error takes on the wire. Handlers throw it;
/// `RequestPipeline` turns it (and every other error, through `ErrorMapping`) into a response
/// in one place.
public struct Problem: Error, Sendable {
    public struct FieldError: Sendable, Hashable, Encodable {
        public var field: String
        public var reason: String
    }

    /// Which problem it is; its raw value is the last part of the type URI, e.g.
    /// "invalid-field" -> "urn:warren:problem:invalid-field". Typed, so that every mapping of
    /// problems (the /v2 error codes) is checked by the compiler to name them all.
    public enum Kind: String, Sendable, CaseIterable {
        case malformedJSON = "malformed-json"
        case invalidField = "invalid-field"
        case duplicateAuthorization = "duplicate-authorization"
        case unauthorized
        case notFound = "not-found"
        case methodNotAllowed = "method-not-allowed"
        case conflict
        case recordInvalid = "record-invalid"
        case messagesPending = "messages-pending"
        case protected
        case quotaExceeded = "quota-exceeded"
        case rateLimited = "rate-limited"
        case unsupportedMediaType = "unsupported-media-type"
        case brokerError = "broker-error"
        case brokerUnavailable = "broker-unavailable"
        case `internal`
    }

    public var status: Int
    public var kind: Kind
    public var title: String
    public var detail: String
    public var errors: [FieldError] = []
    /// For broker failures: the provisioning step that failed ("declare queue").
    public var step: String?
    public var headers: [(String, String)] = []

    public var slug: String { kind.rawValue }

    public static let contentType = "application/problem+json"

    public func response() -> HTTPResponse {
        var headers = HTTPHeaders(self.headers)
        headers.replace("Content-Type", Problem.contentType)
        return HTTPResponse(status: status, headers: headers, body: JSON.encode(Body(self)))
    }

    private struct Body: Encodable {
        var type: String
        var title: String
        var status: Int
        var detail: String
        var errors: [FieldError]?
        var step: String?

        init(_ problem: Problem) {
            type = "urn:warren:problem:\(problem.slug)"
            title = problem.title
            status = problem.status
            detail = problem.detail
            errors = problem.errors.isEmpty ? nil : problem.errors
            step = problem.step
        }
    }
}

extension Problem {
    static func malformedJSON(_ detail: String) -> Problem {
        Problem(status: 400, kind: .malformedJSON, title: "Malformed JSON", detail: detail)
    }

    static func invalidFields(_ errors: [FieldError]) -> Problem {
        let summary = errors.map { "\($0.field) \($0.reason)" }.joined(separator: "; ")
        return Problem(status: 400, kind: .invalidField, title: "Invalid field", detail: summary, errors: errors)
    }

    static func invalidField(_ field: String, _ reason: String) -> Problem {
        invalidFields([FieldError(field: field, reason: reason)])
    }

    static let duplicateAuthorization = Problem(
        status: 400, kind: .duplicateAuthorization, title: "Duplicate Authorization header",
        detail: DuplicateAuthorization.detail)

    static let unauthorized = Problem(
        status: 401, kind: .unauthorized, title: "Unauthorized",
        detail: "send a valid token as 'Authorization: Bearer <token>'",
        headers: [("WWW-Authenticate", "Bearer realm=\"warren\"")])

    static func notFound(_ detail: String) -> Problem {
        Problem(status: 404, kind: .notFound, title: "Not found", detail: detail)
    }

    static func methodNotAllowed(_ method: String, allowed: [String]) -> Problem {
        Problem(
            status: 405, kind: .methodNotAllowed, title: "Method not allowed",
            detail: "\(method) is not allowed here; allowed: \(allowed.joined(separator: ", "))",
            headers: [("Allow", allowed.joined(separator: ", "))])
    }

    static func conflict(_ detail: String, fields: [String], reason: String? = nil) -> Problem {
        Problem(
            status: 409, kind: .conflict, title: "Conflict", detail: detail,
            errors: fields.map { FieldError(field: $0, reason: reason ?? "differs from the existing environment") })
    }

    static func unsupportedMediaType(_ got: String?) -> Problem {
        Problem(
            status: 415, kind: .unsupportedMediaType, title: "Unsupported media type",
            detail: "send the body as application/json" + (got.map { " (got \($0))" } ?? " (no Content-Type was sent)"))
    }

    static func brokerUnavailable(_ detail: String, step: String? = nil, retryAfter: Int = 5) -> Problem {
        Problem(
            status: 503, kind: .brokerUnavailable, title: "Broker unavailable", detail: detail, step: step,
            headers: [("Retry-After", String(retryAfter))])
    }

    static func brokerError(_ detail: String, step: String?) -> Problem {
        Problem(status: 502, kind: .brokerError, title: "Broker error", detail: detail, step: step)
    }

    static let internalError = Problem(
        status: 500, kind: .internal, title: "Internal server error",
        detail: "an unexpected error occurred; it has been logged")
}

/// JSON encoding shared by every response body.
enum JSON {
    /// Property names become snake_case keys (`createdAt` -> `created_at`), unless `keysAsWritten`:
    /// documents of another's format (Kubernetes manifests: `apiVersion`) spell every key in
    /// their coding keys.
    static func encode(_ value: some Encodable, keysAsWritten: Bool = false) -> [UInt8] {
        let encoder = JSONEncoder()
        // Sorted keys: the same resource always reads the same, which diffs and caches like.
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        if !keysAsWritten { encoder.keyEncodingStrategy = .convertToSnakeCase }
        // Our response types hold only strings, numbers, booleans and arrays of them.
        return Array((try? encoder.encode(value)) ?? Data("{}".utf8))
    }

    static func response(_ status: Int, _ value: some Encodable, headers: [(String, String)] = [], keysAsWritten: Bool = false) -> HTTPResponse {
        var all = HTTPHeaders(headers)
        all.replace("Content-Type", "application/json")
        return HTTPResponse(status: status, headers: all, body: encode(value, keysAsWritten: keysAsWritten))
    }
}
