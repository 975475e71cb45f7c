import Glibc

/// Turns a response into the exact bytes for the wire: head and body in ONE buffer, so the
/// server hands it to the kernel in one send. Two sends (head, then body) interact with
/// Nagle/delayed ACK and can stall a response by ~40 ms.
enum HTTPResponseSerializer {
    /// - Parameters:
    ///   - isHEAD: RFC 9110 §9.3.2: the same head as for GET (Content-Length included), no body.
    ///   - keepAlive: sent as `Connection: keep-alive` or `Connection: close`.
    ///   - date: the IMF-fixdate for the `Date` field, added if the handler set none.
    static func serialize(_ response: HTTPResponse, isHEAD: Bool, keepAlive: Bool, date: String?) -> [UInt8] {
        // A status outside 200...599 cannot be a final response (1xx are interim, RFC 9110
        // §15.2); answering it would desynchronise the client, so it becomes a 500.
        let status = (200...599).contains(response.status) ? response.status : 500
        // RFC 9110 §6.4.1: 204 and 304 never have content; §8.6: no Content-Length in 204.
        let bodyless = status == 204 || status == 304
        let body = bodyless || isHEAD ? [] : response.body

        var out: [UInt8] = []
        out.reserveCapacity(128 + response.headers.count * 40 + body.count)
        out.append(contentsOf: "HTTP/1.1 \(status) \(HTTPResponse.reasonPhrase(for: status))\r\n".utf8)
        var hasDate = false
        for (name, value) in response.headers {
            // The server owns the framing: handler-set framing fields are replaced, never
            // trusted (a wrong Content-Length would desynchronise the connection).
            if HTTPHeaders.sameName(name, "Content-Length") || HTTPHeaders.sameName(name, "Transfer-Encoding")
                || HTTPHeaders.sameName(name, "Connection") {
                continue
            }
            // A name that is not a token, or a value with CR/LF, would let a handler (or data
            // it echoes) inject headers or split the response; such fields are dropped.
            guard !name.isEmpty, name.utf8.allSatisfy(\.isTokenChar),
                  value.utf8.allSatisfy({ $0 == .htab || ($0 >= 0x20 && $0 != 0x7F) })
            else { continue }
            if HTTPHeaders.sameName(name, "Date") { hasDate = true }
            appendField(name, value, to: &out)
        }
        if !bodyless {
            appendField("Content-Length", String(response.body.count), to: &out)
        }
        appendField("Connection", keepAlive ? "keep-alive" : "close", to: &out)
        if !hasDate, let date { appendField("Date", date, to: &out) }
        out.append(.cr)
        out.append(.lf)
        out.append(contentsOf: body)
        return out
    }

    /// RFC 9110 §15.2.1: the interim response a client asked for with `Expect: 100-continue`.
    static let continueResponse: [UInt8] = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    private static func appendField(_ name: String, _ value: String, to out: inout [UInt8]) {
        out.append(contentsOf: name.utf8)
        out.append(UInt8(ascii: ":"))
        out.append(.sp)
        out.append(contentsOf: value.utf8)
        out.append(.cr)
        out.append(.lf)
    }
}

/// Formats the `Date` field (RFC 9110 §5.6.7 IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT"),
/// re-rendering at most once a second. Used only by the event-loop thread.
struct HTTPDateCache {
    private var second: time_t = -1
    private var text = ""

    mutating func current() -> String {
        let now = time(nil)
        if now != second {
            second = now
            text = Self.format(now)
        }
        return text
    }

    static func format(_ seconds: time_t) -> String {
        var t = seconds
        var parts = tm()
        gmtime_r(&t, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
