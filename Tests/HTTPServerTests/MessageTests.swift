import Testing
@testable import HTTPServer

@Suite("Headers, problem responses and serialization")
struct MessageTests {
    @Test func headersLookUpCaseInsensitivelyAndKeepOrder() {
        var headers = HTTPHeaders([("Content-Type", "a"), ("X-Many", "1")])
        headers.add("x-many", "2")
        #expect(headers["content-type"] == "a")
        #expect(headers["CONTENT-TYPE"] == "a")
        #expect(headers["Content-Typ"] == nil)
        #expect(headers.values("X-MANY") == ["1", "2"])
        headers.replace("X-Many", "3")
        #expect(headers.values("x-many") == ["3"])
        #expect(headers.map(\.name) == ["Content-Type", "X-Many"])
        headers.replace("New", "n")
        #expect(headers["new"] == "n")
        headers.remove("content-type")
        #expect(headers.count == 2)
        // "@" and "`" differ by 0x20 but are not letters.
        #expect(!HTTPHeaders.sameName("a@", "a`"))
    }

    @Test func problemBodyIsEscapedJSON() {
        let response = HTTPResponse.problem(status: 400, detail: "bad \"quote\" \\ and\nnewline \u{1}")
        #expect(response.headers["Content-Type"] == "application/problem+json")
        #expect(String(decoding: response.body, as: UTF8.self)
            == #"{"type":"about:blank","title":"Bad Request","status":400,"detail":"bad \"quote\" \\ and\nnewline \u0001"}"#)
    }

    private func text(_ response: HTTPResponse, isHEAD: Bool = false, keepAlive: Bool = true) -> String {
        String(decoding: HTTPResponseSerializer.serialize(response, isHEAD: isHEAD, keepAlive: keepAlive, date: "DATE"), as: UTF8.self)
    }

    @Test func serializerOwnsFramingHeaders() {
        let response = HTTPResponse(
            status: 201,
            headers: ["Content-Length": "999", "Transfer-Encoding": "chunked", "Connection": "upgrade", "X-A": "b"],
            body: Array("hello".utf8))
        #expect(text(response) == "HTTP/1.1 201 Created\r\nX-A: b\r\nContent-Length: 5\r\nConnection: keep-alive\r\nDate: DATE\r\n\r\nhello")
        #expect(text(response, isHEAD: true, keepAlive: false)
            == "HTTP/1.1 201 Created\r\nX-A: b\r\nContent-Length: 5\r\nConnection: close\r\nDate: DATE\r\n\r\n")
    }

    @Test func serializerDropsFieldsThatWouldSplitTheResponse() {
        let response = HTTPResponse(status: 200, headers: ["X-Evil": "a\r\nSet-Cookie: x", "Bad Name": "v", "Ok": "v"])
        #expect(text(response) == "HTTP/1.1 200 OK\r\nOk: v\r\nContent-Length: 0\r\nConnection: keep-alive\r\nDate: DATE\r\n\r\n")
    }

    @Test func noContentHasNoBodyAndNoLength() {
        #expect(text(HTTPResponse(status: 204, body: [1, 2])) == "HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\nDate: DATE\r\n\r\n")
    }

    @Test func impossibleStatusBecomes500() {
        #expect(text(HTTPResponse(status: 42)).hasPrefix("HTTP/1.1 500 Internal Server Error\r\n"))
    }

    @Test func dateIsIMFFixdate() {
        #expect(HTTPDateCache.format(784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")
    }
}
