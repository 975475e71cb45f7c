/// Message framing: which requests are acceptable once their head is complete, and how long
/// their body is. Content-Length is the only body framing this server reads.
extension HTTPRequestParser {
    /// Checks the complete head and works out how the body is framed (RFC 9112 §6).
    static func frame(
        _ requestLine: RequestLine, fields: [(String, String)], consumed: Int, limits: HTTPParserLimits
    ) -> HTTPParseResult {
        let headers = HTTPHeaders(fields)
        let isHTTP11 = requestLine.version == "HTTP/1.1"

        // RFC 9112 §3.2: a server MUST respond 400 to an HTTP/1.1 request that lacks a Host
        // field, and to any request with more than one.
        let hostCount = headers.values("Host").count
        if hostCount > 1 { return .invalid(status: 400, detail: "The request has more than one Host header.") }
        if hostCount == 0 && isHTTP11 {
            return .invalid(status: 400, detail: "An HTTP/1.1 request must carry a Host header.")
        }

        let contentLengths = headers.values("Content-Length")
        let transferEncodings = headers.values("Transfer-Encoding")
        if !transferEncodings.isEmpty {
            // RFC 9112 §6.1: a message with both is a smuggling attempt or a broken proxy; a
            // server MAY reject it and MUST close the connection after responding.
            if !contentLengths.isEmpty {
                return .invalid(status: 400, detail: "The request has both Content-Length and Transfer-Encoding.")
            }
            // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 request means faulty framing;
            // the server MUST treat the message as such and close the connection.
            if !isHTTP11 {
                return .invalid(status: 400, detail: "Transfer-Encoding is not allowed in an HTTP/1.0 request.")
            }
            let codings = listElements(transferEncodings).map { $0.lowercased() }
            // RFC 9112 §6.1: a coding the server does not understand SHOULD get 501. We decode
            // none, so anything but plain chunked is 501. (A non-final chunked would also
            // justify 400 by §6.3; either way the connection closes.)
            if codings.isEmpty || codings.contains(where: { $0 != "chunked" }) {
                return .invalid(status: 501, detail: "Transfer codings other than chunked are not implemented.")
            }
            // RFC 9112 §7: chunked MUST NOT be applied more than once.
            if codings.count > 1 {
                return .invalid(status: 400, detail: "The chunked transfer coding is applied more than once.")
            }
            // RFC 9110 §15.5.12: 411 asks for a Content-Length, which is the framing we read.
            return .invalid(status: 411, detail: "Chunked request bodies are not supported; send the body with a Content-Length header.")
        }

        var contentLength = 0
        if !contentLengths.isEmpty {
            // RFC 9112 §6.3: Content-Length = 1*DIGIT. Several fields (or a list) are only
            // acceptable if every value is the same (RFC 9110 §8.6); otherwise 400 and close.
            let values = listElements(contentLengths)
            guard !values.isEmpty, values.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy(\.isDigit) }) else {
                return .invalid(status: 400, detail: "The Content-Length header is not a non-negative decimal number.")
            }
            guard values.allSatisfy({ $0 == values[0] }) else {
                return .invalid(status: 400, detail: "The request has conflicting Content-Length values.")
            }
            // Leading zeros are digits too; more than 18 significant digits overflows Int and
            // is far past any limit.
            let digits = values[0].drop { $0 == "0" }
            guard digits.count <= 18, let length = Int(digits.isEmpty ? "0" : String(digits)),
                  length <= limits.maxBodyBytes
            else {
                return .invalid(status: 413, detail: "The request body is larger than the \(limits.maxBodyBytes) bytes this server accepts.")
            }
            contentLength = length
        }

        // RFC 9112 §9.3: HTTP/1.1 persists unless "close" is sent; HTTP/1.0 persists only with
        // "keep-alive" (RFC 9112 §C.2.2).
        let connectionOptions = listElements(headers.values("Connection")).map { $0.lowercased() }
        let keepAlive = !connectionOptions.contains("close")
            && (isHTTP11 || connectionOptions.contains("keep-alive"))
        // RFC 9110 §10.1.1: a server MUST ignore a 100-continue expectation in HTTP/1.0.
        let expectsContinue = isHTTP11
            && headers.values("Expect").contains { $0.lowercased() == "100-continue" }

        return .complete(
            HTTPRequestHead(
                method: requestLine.method, path: requestLine.path, query: requestLine.query,
                version: requestLine.version, headers: headers, contentLength: contentLength,
                keepAlive: keepAlive, expectsContinue: expectsContinue),
            consumed: consumed)
    }

    /// RFC 9110 §5.6.1: `#element` lists, comma-separated, with OWS; empty elements ignored.
    private static func listElements(_ values: [String]) -> [Substring] {
        values.flatMap { $0.split(separator: ",", omittingEmptySubsequences: true) }
            .map { $0.trimmingOWS() }
            .filter { !$0.isEmpty }
    }
}

/// A whole request (head and Content-Length body) from one buffer.
enum HTTPRequestParseResult: Sendable {
    case complete(HTTPRequest, consumed: Int)
    case incomplete
    case invalid(status: Int, detail: String)
}

extension HTTPRequestParser {
    /// Parses a head and its body from a buffer in one go: a pure function for tests and
    /// fuzzing. The server takes the same steps incrementally (`EventLoop.process`).
    static func parseRequest(_ bytes: [UInt8], limits: HTTPParserLimits = HTTPParserLimits()) -> HTTPRequestParseResult {
        switch parse(bytes, limits: limits) {
        case .incomplete:
            return .incomplete
        case .invalid(let status, let detail):
            return .invalid(status: status, detail: detail)
        case .complete(let head, let consumed):
            guard bytes.count - consumed >= head.contentLength else { return .incomplete }
            let body = Array(bytes[consumed..<(consumed + head.contentLength)])
            return .complete(head.request(body: body), consumed: consumed + head.contentLength)
        }
    }
}

extension HTTPRequestHead {
    func request(body: [UInt8]) -> HTTPRequest {
        HTTPRequest(method: method, path: path, query: query, version: version, headers: headers, body: body)
    }
}
