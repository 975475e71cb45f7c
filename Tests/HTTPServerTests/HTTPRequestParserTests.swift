import Testing
@testable import HTTPServer

private let limits = HTTPParserLimits(maxRequestLineBytes: 64, maxHeaderBytes: 128, maxBodyBytes: 100)

private func parse(_ text: String) -> HTTPParseResult {
    HTTPRequestParser.parse(Array(text.utf8), limits: limits)
}

private func status(_ result: HTTPParseResult) -> Int? {
    if case .invalid(let status, _) = result { return status }
    return nil
}

private let post = "POST /v1/items?dry=1 HTTP/1.1\r\nHost: example\r\nContent-Length: 11\r\nContent-Type: text/plain\r\n\r\nhello world"

@Suite("HTTP request parser")
struct HTTPRequestParserTests {
    @Test("every proper prefix of a valid request is incomplete", arguments: 0..<post.utf8.count)
    func prefixIsIncomplete(length: Int) {
        let result = HTTPRequestParser.parseRequest(Array(post.utf8.prefix(length)), limits: limits)
        guard case .incomplete = result else {
            Issue.record("prefix of \(length) bytes gave \(result)")
            return
        }
    }

    @Test func wholeRequestParses() throws {
        let result = HTTPRequestParser.parseRequest(Array((post + "GET /next").utf8), limits: limits)
        guard case .complete(let request, let consumed) = result else {
            Issue.record("got \(result)")
            return
        }
        #expect(consumed == post.utf8.count)
        #expect(request.method == "POST")
        #expect(request.path == "/v1/items")
        #expect(request.query == "dry=1")
        #expect(request.version == "HTTP/1.1")
        #expect(request.headers["content-type"] == "text/plain")
        #expect(request.headers.count == 3)
        #expect(request.body == Array("hello world".utf8))
    }

    /// Feeding a growing buffer a byte at a time must give the same head as one call: the
    /// parser resumes where it stopped instead of starting over.
    @Test func byteAtATimeMatchesOneShot() throws {
        let bytes = Array(post.utf8)
        var parser = HTTPRequestParser(limits: limits)
        var result = HTTPParseResult.incomplete
        for count in 1...bytes.count {
            result = parser.parse(Array(bytes[..<count]))
            if case .incomplete = result { continue }
            break
        }
        guard case .complete(let head, let consumed) = result,
              case .complete(let expected, let expectedConsumed) = parse(post)
        else {
            Issue.record("got \(result)")
            return
        }
        #expect(head == expected)
        #expect(consumed == expectedConsumed)
        #expect(consumed == post.utf8.count - 11)
    }

    @Test(arguments: [
        // (request, method, path, query, keepAlive, contentLength)
        ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET", "/", nil, true, 0),
        ("GET /a/b%2Fc?x=1&y=%20 HTTP/1.1\r\nHost: a\r\n\r\n", "GET", "/a/b%2Fc", "x=1&y=%20", true, 0),
        ("GET /a? HTTP/1.1\r\nHost: a\r\n\r\n", "GET", "/a", "", true, 0),
        ("GET /a?b?c HTTP/1.1\r\nHost: a\r\n\r\n", "GET", "/a", "b?c", true, 0),
        ("PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n", "PURGE", "/x", nil, true, 0),
        ("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", "GET", "/", nil, false, 0),
        ("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, CLOSE\r\n\r\n", "GET", "/", nil, false, 0),
        ("GET / HTTP/1.0\r\n\r\n", "GET", "/", nil, false, 0),
        ("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "GET", "/", nil, true, 0),
        ("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET", "/", nil, true, 0),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", "POST", "/", nil, true, 5),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7, 7\r\n\r\n", "POST", "/", nil, true, 7),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0042\r\n\r\n", "POST", "/", nil, true, 42),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n", "POST", "/", nil, true, 100),
    ] as [(String, String, String, String?, Bool, Int)])
    func validHead(request: String, method: String, path: String, query: String?, keepAlive: Bool, contentLength: Int) {
        guard case .complete(let head, let consumed) = parse(request) else {
            Issue.record("got \(parse(request))")
            return
        }
        #expect(head.method == method)
        #expect(head.path == path)
        #expect(head.query == query)
        #expect(head.keepAlive == keepAlive)
        #expect(head.contentLength == contentLength)
        #expect(consumed == request.utf8.count)
    }

    @Test func fieldValuesAreTrimmedAndKeepOrder() {
        guard case .complete(let head, _) = parse("GET / HTTP/1.1\r\nHost: a\r\nX-A:   one  \r\nx-a:\ttwo\r\nX-Empty:\r\n\r\n") else {
            Issue.record("not complete")
            return
        }
        #expect(head.headers.values("X-A") == ["one", "two"])
        #expect(head.headers["x-empty"] == "")
    }

    @Test func obsTextInValueIsAccepted() {
        let bytes = Array("GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf".utf8) + [0xC3, 0xA9] + Array("\r\n\r\n".utf8)
        guard case .complete(let head, _) = HTTPRequestParser.parse(bytes, limits: limits) else {
            Issue.record("not complete")
            return
        }
        #expect(head.headers["X-Name"] == "café")
    }

    @Test func expectContinueOnlyCountsForHTTP11() {
        guard case .complete(let head11, _) = parse("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"),
              case .complete(let head10, _) = parse("PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
        else {
            Issue.record("not complete")
            return
        }
        #expect(head11.expectsContinue)
        #expect(!head10.expectsContinue)
    }

    @Test(arguments: [
        ("NUL in method", "G\0ET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("separator in method", "GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("empty method", " / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("CTL in target", "GET /a\u{1}b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("fragment in target", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("absolute-form target", "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("asterisk-form target", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("no version", "GET /\r\nHost: a\r\n\r\n", 400),
        ("garbled version", "GET / HTTX/1.1\r\nHost: a\r\n\r\n", 400),
        ("long version", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400),
        ("HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        ("HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505),
        ("CTL in header value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\u{1}b\r\n\r\n", 400),
        ("NUL in header value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 400),
        ("DEL in header value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\u{7F}\r\n\r\n", 400),
        ("lone CR in header value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400),
        ("obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n  b\r\n\r\n", 400),
        ("whitespace before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
        ("empty field name", "GET / HTTP/1.1\r\nHost: a\r\n: a\r\n\r\n", 400),
        ("no colon", "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400),
        ("bare LF after request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
        ("bare LF ending the head", "GET / HTTP/1.1\r\nHost: a\n\n", 400),
        ("bare LF alone", "\n", 400),
        ("too many empty lines first", "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("missing Host on 1.1", "GET / HTTP/1.1\r\nX: a\r\n\r\n", 400),
        ("two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("two Hosts on 1.0", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("CL and TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("two different CLs", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400),
        ("CL list disagreeing", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\n", 400),
        ("negative CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
        ("signed CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", 400),
        ("non-numeric CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n", 400),
        ("hex CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", 400),
        ("empty CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400),
        ("CL over the limit", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n", 413),
        ("CL overflowing Int", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", 413),
        ("chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 411),
        ("chunked, any case", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", 411),
        ("chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
        ("gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        ("gzip, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        ("TE on HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("request line over the limit", "GET /\(String(repeating: "a", count: 64)) HTTP/1.1\r\nHost: a\r\n\r\n", 414),
        ("request line over the limit, no CRLF yet", "GET /\(String(repeating: "a", count: 64))", 414),
        ("header section over the limit", "GET / HTTP/1.1\r\nHost: a\r\nX: \(String(repeating: "b", count: 130))\r\n\r\n", 431),
        ("header section over the limit, no CRLF yet", "GET / HTTP/1.1\r\nHost: a\r\nX: \(String(repeating: "b", count: 130))", 431),
        ("many small headers over the limit", "GET / HTTP/1.1\r\n" + String(repeating: "X: y\r\n", count: 30), 431),
    ])
    func invalid(_ name: String, request: String, expected: Int) {
        let result = parse(request)
        #expect(status(result) == expected, "\(name): \(result)")
    }

    /// Limits are inclusive: exactly at the limit is fine, one byte over is not.
    @Test func limitsAreExact() {
        let target = "/" + String(repeating: "a", count: 64 - "GET  HTTP/1.1".count - 1)
        let atLimit = "GET \(target) HTTP/1.1"
        #expect(atLimit.utf8.count == 64)
        if case .complete = parse(atLimit + "\r\nHost: a\r\n\r\n") {} else { Issue.record("at the limit was refused") }
        #expect(status(parse("GET \(target)a HTTP/1.1\r\nHost: a\r\n\r\n")) == 414)
        // A request line that fills the limit, with its CR but not yet its LF, is still fine.
        if case .incomplete = parse(atLimit + "\r") {} else { Issue.record("a pending CR counted against the limit") }
    }

    @Test func problemDetailsExplainTheRefusal() {
        guard case .invalid(_, let detail) = parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n") else {
            Issue.record("not refused")
            return
        }
        #expect(detail.contains("Content-Length"))
    }
}
