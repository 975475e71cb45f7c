import WireFormat
/// A failed management call.
///
/// `summary` is short and safe to show to users of our own API: it never holds the broker's raw
/// reason or a credential. `brokerReason` holds what the broker said, for logs only (it can be
/// an Erlang term rendered as JSON, or HTML-escaped text).
public struct ManagementError: Error, Sendable, CustomStringConvertible {
    /// The kind of failure. A struct with a private representation rather than an enum, so that
    /// kinds can be added without breaking callers that switch over them.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case unreachable, timeout, tls, unauthorized, notFound, badRequest, conflict
            case brokerFailure, unexpectedStatus, invalidResponse, invalidRequest
            case invalidConfiguration, shutdown
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// Connection refused, DNS failure, TLS handshake failure, connection lost, all nodes down.
        public static let unreachable = Code(.unreachable)
        /// The call's `requestTimeout` (or a node's connect timeout) ran out.
        public static let timeout = Code(.timeout)
        /// The broker's certificate (or our client certificate) failed verification.
        public static let tls = Code(.tls)
        /// 401 (bad credential, missing tag, `amq.*` names) or 403.
        public static let unauthorized = Code(.unauthorized)
        /// 404.
        public static let notFound = Code(.notFound)
        /// 400: inequivalent arguments, absent vhost or user for permissions, invalid values.
        public static let badRequest = Code(.badRequest)
        /// 409 or 412 (e.g. a deletion-protected vhost).
        public static let conflict = Code(.conflict)
        /// 5xx.
        public static let brokerFailure = Code(.brokerFailure)
        /// Any other non-2xx status (e.g. 405).
        public static let unexpectedStatus = Code(.unexpectedStatus)
        /// A 2xx answer whose body is not the JSON we expect, or is too large.
        public static let invalidResponse = Code(.invalidResponse)
        /// Rejected before sending: an unusable path segment ("", ".", "..") or body.
        public static let invalidRequest = Code(.invalidRequest)
        /// The `ManagementConfiguration` cannot be used.
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// The client was shut down before the call completed.
        public static let shutdown = Code(.shutdown)

        public var description: String { base.rawValue }
    }

    public let code: Code
    /// The broker's HTTP status, when it answered.
    public var status: Int?
    /// Short and safe to show: no broker reason, no credentials.
    public var summary: String
    /// The broker's raw `error`/`reason`, for logs only.
    public var brokerReason: String?

    public init(code: Code, status: Int? = nil, summary: String, brokerReason: String? = nil) {
        self.code = code
        self.status = status
        self.summary = summary
        self.brokerReason = brokerReason
    }


    public var description: String { summary }
}

extension ManagementError {
    /// Maps a non-2xx answer. `operation` names the call ("PUT queue") for the summary; the body
    /// feeds only `brokerReason`.
    static func http(status: Int, operation: String, body: [UInt8]) -> ManagementError {
        let code: Code
        switch status {
        case 400: code = .badRequest
        case 401, 403: code = .unauthorized
        case 404: code = .notFound
        case 409, 412: code = .conflict
        case 500...599: code = .brokerFailure
        default: code = .unexpectedStatus
        }
        return ManagementError(
            code: code, status: status,
            summary: "management API answered \(status) for \(operation)",
            brokerReason: brokerReason(from: body))
    }

    /// `{"error": e, "reason": r}` -> "e: r", where r may be any JSON (an Erlang term such as
    /// `["no_such_user","x"]` is rendered compactly). Non-JSON bodies are kept, truncated.
    static func brokerReason(from body: [UInt8]) -> String? {
        guard !body.isEmpty else { return nil }
        if case .object(let fields)? = try? JSONValue.decode(body) {
            let error = fields["error"].map(Self.render)
            let reason = fields["reason"].map(Self.render)
            switch (error, reason) {
            case let (e?, r?): return "\(e): \(r)"
            case let (e?, nil): return e
            case let (nil, r?): return r
            case (nil, nil): break
            }
        }
        let text = String(decoding: body.prefix(512), as: UTF8.self)
        return body.count > 512 ? text + "..." : text
    }

    private static func render(_ value: JSONValue) -> String {
        if case .string(let s) = value { return s }
        return value.compactJSON
    }
}
