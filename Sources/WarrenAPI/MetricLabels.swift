/// Values for metric labels. Each distinct label value makes a metric series that lives until
/// the process exits, so a label must never carry a string a client chose: a client could make
/// series without bound (memory, and /metrics output). Every label value comes from a closed set.
enum MetricLabels {
    /// The methods of RFC 9110 §9.3 (and PATCH, RFC 5789): the only ones reported by name.
    static let standardMethods: Set<String> = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
    ]

    /// The `method` label: a standard method as itself, anything else `other`. The parser
    /// accepts any token as a method, and methods are case-sensitive (RFC 9110 §9.1), so
    /// `get` or `XJUNK0001` are `other` too.
    static func method(_ method: String) -> String {
        standardMethods.contains(method) ? method : "other"
    }

    /// The `route` label for a request no route took. Routed requests use their route's
    /// pattern, a string literal of the route table, never the request's path.
    static let unmatchedRoute = "unmatched"
}
