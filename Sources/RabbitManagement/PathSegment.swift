import WireFormat

/// Percent-encoding of management API path segments and query parts.
///
/// Everything but RFC 3986 unreserved characters (ALPHA DIGIT - . _ ~) is encoded, byte by byte
/// of the UTF-8 form: a vhost named "a/b" must travel as one segment "a%2Fb", and the default
/// vhost "/" is "%2F". "+" becomes "%2B": the broker decodes it back to "+" (it would also take
/// a literal "+", since it never reads "+" as a space in a path), so full encoding is the one rule
/// with no exceptions.
enum PathSegment {
    /// Throws `.invalidRequest` for "", "." and "..": the broker answers 405 or a redirect for
    /// those instead of treating them as names, and libcurl would collapse dot segments.
    static func encode(_ segment: String) throws(ManagementError) -> String {
        guard segment != "", segment != ".", segment != ".." else {
            throw ManagementError(
                code: .invalidRequest,
                summary: "name \"\(segment)\" cannot be used in a management API path")
        }
        return PercentEncoding.encode(segment)
    }

    /// "/api/seg1/seg2?k=v&k2=v2", every part encoded.
    static func path(_ segments: [String], query: [(String, String)]) throws(ManagementError) -> String {
        var path = "/api"
        for segment in segments {
            path += "/"
            path += try encode(segment)
        }
        if !query.isEmpty {
            path += "?" + query.map { PercentEncoding.encode($0.0) + "=" + PercentEncoding.encode($0.1) }.joined(separator: "&")
        }
        return path
    }
}
