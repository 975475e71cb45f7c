/// Values captured by `{name}` segments of a route pattern, percent-decoded.
public struct RouteParameters: Sendable {
    private var values: [String: String]

    public init(_ values: [String: String] = [:]) {
        self.values = values
    }

    public subscript(name: String) -> String? { values[name] }
}

/// A small method + path router.
///
/// Matching rules:
/// - The raw path is split on "/" BEFORE percent-decoding, so "%2F" stays inside its segment
///   ("/v1/items/a%2Fb" gives `{id}` = "a/b"). Each segment is then decoded.
/// - A path with invalid percent-encoding ("%zz", a truncated "%4", or bytes that are not
///   UTF-8) matches nothing: `.notFound`. Callers that want a 400 instead can test the path
///   with `Router.percentDecode(_:)` first.
/// - Trailing slashes are significant: "/v1/items/" does not match "/v1/items" (it has an
///   extra empty segment), and a `{param}` never matches an empty segment.
/// - Literal segments beat parameters: with "/v1/items/{id}" and "/v1/items/search", the path
///   "/v1/items/search" goes to the latter, whatever order they were added in.
/// - HEAD falls back to the GET route when no HEAD route exists (RFC 9110 §9.3.2); the server
///   drops the body.
/// - A path that matches some route but not for this method is `.methodNotAllowed` with the
///   allowed methods (for the `Allow` header, RFC 9110 §15.5.6).
public struct Router: Sendable {
    public typealias Handler = @Sendable (HTTPRequest, RouteParameters) async -> HTTPResponse
    /// A handler that answers without waiting for anything (see `HTTPResponder.respondImmediately`).
    public typealias ImmediateHandler = @Sendable (HTTPRequest, RouteParameters) -> HTTPResponse

    public enum Match: Sendable {
        case found(Handler, RouteParameters, pattern: String)
        /// A route added with `add(_:_:immediate:)`.
        case immediate(ImmediateHandler, RouteParameters, pattern: String)
        case methodNotAllowed(allowed: [String])
        case notFound
    }

    private enum Action: Sendable {
        case async(Handler)
        case immediate(ImmediateHandler)
    }

    private enum Segment: Sendable, Equatable {
        case literal(String)
        case parameter(String)
    }

    private struct Route: Sendable {
        var method: String
        var pattern: String
        var segments: [Segment]
        var action: Action

        func match(_ parameters: RouteParameters) -> Match {
            switch action {
            case .async(let handler): .found(handler, parameters, pattern: pattern)
            case .immediate(let handler): .immediate(handler, parameters, pattern: pattern)
            }
        }
    }

    private var routes: [Route] = []
    /// Routes without parameters, by pattern and method: index into `routes` (the first added).
    private var literalRoutes: [String: [String: Int]] = [:]

    public init() {}

    /// Registers `handler` for `method` and `pattern`, e.g. `add("POST", "/v1/environments/{id}/reconcile")`.
    /// A segment of the form `{name}` captures one path segment. Literal segments are matched
    /// against the decoded request segment.
    public mutating func add(_ method: String, _ pattern: String, _ handler: @escaping Handler) {
        add(method, pattern, action: .async(handler))
    }

    /// Registers a handler that answers without waiting: `match` gives `.immediate` for it.
    public mutating func add(_ method: String, _ pattern: String, immediate handler: @escaping ImmediateHandler) {
        add(method, pattern, action: .immediate(handler))
    }

    private mutating func add(_ method: String, _ pattern: String, action: Action) {
        precondition(pattern.hasPrefix("/"), "route pattern must start with '/': \(pattern)")
        let segments = Self.split(pattern).map { raw -> Segment in
            if raw.hasPrefix("{") && raw.hasSuffix("}") && raw.count > 2 {
                return .parameter(String(raw.dropFirst().dropLast()))
            }
            return .literal(String(raw))
        }
        if segments.allSatisfy({ if case .literal = $0 { true } else { false } }), literalRoutes[pattern]?[method] == nil {
            literalRoutes[pattern, default: [:]][method] = routes.count
        }
        routes.append(Route(method: method, pattern: pattern, segments: segments, action: action))
    }

    public func match(method: String, path: String) -> Match {
        guard path.hasPrefix("/") else { return .notFound }
        // Most requests name a route without parameters (/healthz, /metrics, /v1/blueprints):
        // found without splitting, decoding and scanning the table. A path without "%" decodes
        // to itself, and a route of literals only is the most specific match there is, so the
        // answer is the one the scan below would give.
        if !path.utf8.contains(UInt8(ascii: "%")), let index = literalRoutes[path]?[method] {
            return routes[index].match(RouteParameters())
        }
        var decoded: [String] = []
        for raw in Self.split(path) {
            guard let segment = Self.percentDecode(raw) else { return .notFound }
            decoded.append(segment)
        }

        var best: (route: Route, parameters: [String: String])?
        var fallbackGET: (route: Route, parameters: [String: String])?
        var allowed: [String] = []
        for route in routes {
            guard let parameters = Self.bind(route.segments, to: decoded) else { continue }
            if !allowed.contains(route.method) { allowed.append(route.method) }
            if route.method == method {
                if best == nil || Self.isMoreSpecific(route.segments, than: best!.route.segments) {
                    best = (route, parameters)
                }
            } else if method == "HEAD" && route.method == "GET" {
                if fallbackGET == nil || Self.isMoreSpecific(route.segments, than: fallbackGET!.route.segments) {
                    fallbackGET = (route, parameters)
                }
            }
        }
        if let found = best ?? fallbackGET {
            return found.route.match(RouteParameters(found.parameters))
        }
        if allowed.isEmpty { return .notFound }
        if allowed.contains("GET") && !allowed.contains("HEAD") { allowed.append("HEAD") }
        return .methodNotAllowed(allowed: allowed.sorted())
    }

    /// Decodes %XX escapes (RFC 3986 §2.1); "+" stays "+" (that rule is for form bodies, not
    /// paths). Nil when an escape is malformed or the result is not valid UTF-8.
    public static func percentDecode<S: StringProtocol>(_ text: S) -> String? {
        let utf8 = Array(text.utf8)
        guard utf8.contains(UInt8(ascii: "%")) else { return String(text) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count)
        var index = 0
        while index < utf8.count {
            let byte = utf8[index]
            if byte == UInt8(ascii: "%") {
                guard index + 2 < utf8.count, let high = hexValue(utf8[index + 1]), let low = hexValue(utf8[index + 2]) else {
                    return nil
                }
                bytes.append(high << 4 | low)
                index += 3
            } else {
                bytes.append(byte)
                index += 1
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// "/a/b/" -> ["a", "b", ""]: the leading "/" is dropped, empty segments are kept.
    private static func split(_ path: String) -> [Substring] {
        path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
    }

    private static func bind(_ segments: [Segment], to path: [String]) -> [String: String]? {
        guard segments.count == path.count else { return nil }
        var parameters: [String: String] = [:]
        for (segment, value) in zip(segments, path) {
            switch segment {
            case .literal(let literal):
                guard literal == value else { return nil }
            case .parameter(let name):
                guard !value.isEmpty else { return nil }
                parameters[name] = value
            }
        }
        return parameters
    }

    /// At the first segment where they differ in kind, the literal wins.
    private static func isMoreSpecific(_ a: [Segment], than b: [Segment]) -> Bool {
        for (x, y) in zip(a, b) {
            switch (x, y) {
            case (.literal, .parameter): return true
            case (.parameter, .literal): return false
            default: continue
            }
        }
        return false
    }
}
