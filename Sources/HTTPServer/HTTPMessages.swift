/// A request as the server hands it to the responder: the head parsed and checked
/// (RFC 9112), the body read in full (Content-Length framing only).
public struct HTTPRequest: Sendable {
    /// As sent, e.g. "GET"; token characters only (RFC 9110 §9.1: methods are case-sensitive).
    public var method: String
    /// The raw path of the origin-form request-target, without "?query"; NOT percent-decoded.
    public var path: String
    /// The raw text after the first "?", or nil when the target has none.
    public var query: String?
    /// "HTTP/1.1" or "HTTP/1.0".
    public var version: String
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(
        method: String = "GET", path: String = "/", query: String? = nil, version: String = "HTTP/1.1",
        headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.version = version
        self.headers = headers
        self.body = body
    }
}

/// A response from the responder. The server adds `Content-Length` and `Connection` itself
/// (any the handler set are replaced), and `Date` when the handler set none.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(status: Int, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

public protocol HTTPResponder: Sendable {
    /// Runs as a Task on Swift's concurrency pool; its response goes back to the event loop.
    func respond(to request: HTTPRequest) async -> HTTPResponse

    /// A response that needs no waiting, made on the event loop's own thread, or nil to have
    /// `respond(to:)` called as usual. For answers that take microseconds and block on nothing
    /// (a health check, a constant body, a refusal): the request then costs no Task, no
    /// wake-up of the loop and no change of the socket's epoll interest. Whatever it does holds
    /// up every other connection of that loop meanwhile. The default is nil.
    func respondImmediately(to request: HTTPRequest) -> HTTPResponse?
}

extension HTTPResponder {
    public func respondImmediately(to request: HTTPRequest) -> HTTPResponse? { nil }
}

extension HTTPResponse {
    /// An RFC 9457 problem response:
    /// `{"type":"about:blank","title":"<reason phrase>","status":N,"detail":"..."}`
    /// with `Content-Type: application/problem+json`. `title` defaults to the reason phrase.
    public static func problem(
        status: Int, detail: String, title: String? = nil, type: String = "about:blank",
        headers: HTTPHeaders = HTTPHeaders()
    ) -> HTTPResponse {
        var json = "{\"type\":"
        appendJSONString(type, to: &json)
        json += ",\"title\":"
        appendJSONString(title ?? reasonPhrase(for: status), to: &json)
        json += ",\"status\":\(status),\"detail\":"
        appendJSONString(detail, to: &json)
        json += "}"
        var headers = headers
        headers.replace("Content-Type", "application/problem+json")
        return HTTPResponse(status: status, headers: headers, body: Array(json.utf8))
    }

    /// The RFC 9110 §15 reason phrase for `status`, or a generic one for unknown codes.
    public static func reasonPhrase(for status: Int) -> String {
        switch status {
        case 100: "Continue"
        case 101: "Switching Protocols"
        case 200: "OK"
        case 201: "Created"
        case 202: "Accepted"
        case 203: "Non-Authoritative Information"
        case 204: "No Content"
        case 205: "Reset Content"
        case 206: "Partial Content"
        case 300: "Multiple Choices"
        case 301: "Moved Permanently"
        case 302: "Found"
        case 303: "See Other"
        case 304: "Not Modified"
        case 307: "Temporary Redirect"
        case 308: "Permanent Redirect"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 402: "Payment Required"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 406: "Not Acceptable"
        case 407: "Proxy Authentication Required"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 410: "Gone"
        case 411: "Length Required"
        case 412: "Precondition Failed"
        case 413: "Content Too Large"
        case 414: "URI Too Long"
        case 415: "Unsupported Media Type"
        case 416: "Range Not Satisfiable"
        case 417: "Expectation Failed"
        case 421: "Misdirected Request"
        case 422: "Unprocessable Content"
        case 423: "Locked"
        case 424: "Failed Dependency"
        case 425: "Too Early"
        case 426: "Upgrade Required"
        case 428: "Precondition Required"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 451: "Unavailable For Legal Reasons"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        case 505: "HTTP Version Not Supported"
        case 507: "Insufficient Storage"
        default:
            switch status {
            case 100..<200: "Informational"
            case 200..<300: "Success"
            case 300..<400: "Redirection"
            case 400..<500: "Client Error"
            default: "Server Error"
            }
        }
    }
}

/// Appends `value` as a JSON string literal (RFC 8259 §7): quotes, backslashes and every
/// control character escaped, so no detail text can break out of the string.
func appendJSONString(_ value: String, to out: inout String) {
    out.append("\"")
    for scalar in value.unicodeScalars {
        switch scalar {
        case "\"": out.append("\\\"")
        case "\\": out.append("\\\\")
        case "\n": out.append("\\n")
        case "\r": out.append("\\r")
        case "\t": out.append("\\t")
        case _ where scalar.value < 0x20 || scalar.value == 0x7F || scalar.value == 0x2028 || scalar.value == 0x2029:
            let hex = String(scalar.value, radix: 16)
            out.append("\\u" + String(repeating: "0", count: 4 - hex.count) + hex)
        default:
            out.unicodeScalars.append(scalar)
        }
    }
    out.append("\"")
}
