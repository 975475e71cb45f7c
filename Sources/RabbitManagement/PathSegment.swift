/// Percent-encoding of management API path segments and query parts.
///
/// Everything but RFC 3986 unreserved characters (ALPHA DIGIT - . _ ~) is encoded, byte by byte
/// of the UTF-8 form: a vhost named "a/b" must travel as one segment "a%2Fb", and the default
/// vhost "/" is "%2F". "+" becomes "%2B": the broker decodes it back to "+" (it would also take
/// a literal "+", since it never reads "+" as a space in a path), so full encoding is the one rule
/// with no exceptions.
public enum PathSegment {
    /// Throws `.invalidRequest` for "", "." and "..": the broker answers 405 or a redirect for
    /// those instead of treating them as names, and libcurl would collapse dot segments.
    static func encode(_ segment: String) throws(ManagementError) -> String {
        guard segment != "", segment != ".", segment != ".." else {
            throw ManagementError(
                code: .invalidRequest,
                summary: "name \"\(segment)\" cannot be used in a management API path")
        }
        return percentEncode(segment)
    }

    /// RFC 3986 percent-encoding of everything but the unreserved characters; also what the
    /// API layer uses for the parts of the AMQP URIs it hands out.
    public static func percentEncode(_ text: String) -> String {
        var out = [UInt8]()
        out.reserveCapacity(text.utf8.count)
        let hex = Array("0123456789ABCDEF".utf8)
        for byte in text.utf8 {
            if isUnreserved(byte) {
                out.append(byte)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0F)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// "/api/seg1/seg2?k=v&k2=v2", every part encoded.
    static func path(_ segments: [String], query: [(String, String)]) throws(ManagementError) -> String {
        var path = "/api"
        for segment in segments {
            path += "/"
            path += try encode(segment)
        }
        if !query.isEmpty {
            path += "?" + query.map { percentEncode($0.0) + "=" + percentEncode($0.1) }.joined(separator: "&")
        }
        return path
    }
}
