import CurlHTTP
import Glibc
import Testing

/// CurlHTTP against the project's own server and a few raw sockets. The timeouts bound what
/// must happen eventually (a broken loop fails instead of hanging); nothing here measures speed.
@Suite struct CurlMultiLoopTests {
    private func request(
        _ url: String, method: String = "GET", headerLines: [String] = [], body: [UInt8]? = nil,
        credentials: TransferRequest.BasicCredentials? = nil, maxResponseBytes: Int = 1 << 20,
        maxHeaderBytes: Int = 64 << 10
    ) -> TransferRequest {
        TransferRequest(
            url: url, method: method, headerLines: headerLines, body: body, credentials: credentials,
            timeoutMilliseconds: 120_000, connectTimeoutMilliseconds: 60_000,
            maxResponseBytes: maxResponseBytes, maxHeaderBytes: maxHeaderBytes)
    }

    private func finished(_ outcome: TransferOutcome) throws -> TransferResult {
        guard case .finished(let result) = outcome else { throw SupportError("expected a finished transfer, got \(outcome)") }
        return result
    }

    @Test func statusHeadersAndBodyBothWays() async throws {
        let loop = try CurlMultiLoop(maxConnections: 4, logger: quietLogger)
        defer { loop.shutdown() }
        try await withEchoServer { server in
            let body = Array(#"{"name":"orders"}"#.utf8)
            // "Expect: 100-continue" makes the server send an interim "100 Continue" first.
            let result = try finished(await loop.perform(request(
                server.url + "/v1/echo?team=a%20b&x=1", method: "POST",
                headerLines: ["Authorization: Bearer token-1", "Content-Type: application/json", "X-Empty;",
                              "Expect: 100-continue"],
                body: body)))

            #expect(result.isComplete)
            #expect(result.status == 201)
            #expect(result.body == body)
            #expect(result.headers.contains(HeaderField(name: "Content-Type", value: "application/problem+json")))
            #expect(result.headers.contains(HeaderField(name: "Location", value: "/v1/things/42")))
            #expect(result.headers.filter { $0.name.lowercased() == "content-length" } == [HeaderField(name: "Content-Length", value: "\(body.count)")])
            #expect(!result.headers.contains { $0.name.hasPrefix("HTTP/") || $0.name.isEmpty })

            let seen = try #require(server.seen.last)
            #expect(seen.method == "POST")
            #expect(seen.path == "/v1/echo")
            #expect(seen.query == "team=a%20b&x=1")
            #expect(seen.header("Authorization") == "Bearer token-1")
            #expect(seen.header("Content-Type") == "application/json")
            #expect(seen.header("X-Empty") == "")
            #expect(seen.body == body)
        }
    }

    /// Only what the caller asks for: no Content-Type of libcurl's own, no 100-continue, no
    /// Authorization without credentials.
    @Test func nothingAddedToTheCallersHeaders() async throws {
        let loop = try CurlMultiLoop(maxConnections: 4, logger: quietLogger)
        defer { loop.shutdown() }
        try await withEchoServer { server in
            let result = try finished(await loop.perform(request(server.url + "/v1/plain", method: "PUT", body: Array("abc".utf8))))
            #expect(result.status == 201)
            let seen = try #require(server.seen.last)
            #expect(seen.method == "PUT")
            #expect(seen.body == Array("abc".utf8))
            #expect(!seen.hasHeader("Content-Type"))
            #expect(!seen.hasHeader("Expect"))
            #expect(!seen.hasHeader("Authorization"))
        }
    }

    @Test func credentialsGoAsBasicAuthNotInTheURL() async throws {
        let loop = try CurlMultiLoop(maxConnections: 4, logger: quietLogger)
        defer { loop.shutdown() }
        try await withEchoServer { server in
            let result = try finished(await loop.perform(request(
                server.url + "/v1/who", credentials: .init(username: "guest", password: "s3cret"))))
            #expect(result.status == 201)
            let seen = try #require(server.seen.last)
            #expect(seen.header("Authorization") == "Basic Z3Vlc3Q6czNjcmV0")  // guest:s3cret
            #expect(seen.path == "/v1/who")
        }
        #expect(!"\(TransferRequest.BasicCredentials(username: "guest", password: "s3cret"))".contains("s3cret"))
    }

    /// An interim response's fields, folded lines and trailers: the result holds the final
    /// response's fields only, each whole.
    @Test func onlyTheFinalResponsesHeadersRemain() async throws {
        let loop = try CurlMultiLoop(maxConnections: 4, logger: quietLogger)
        defer { loop.shutdown() }
        let server = try OneShotServer(answer:
            "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\nX-Interim: yes\r\n\r\n"
            + "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Folded: first\r\n  second\r\n"
            + "Transfer-Encoding: chunked\r\nTrailer: X-Checksum\r\nConnection: close\r\n\r\n"
            + "2\r\nok\r\n0\r\nX-Checksum: abc\r\n\r\n")
        let result = try finished(await loop.perform(request(server.url + "/hints")))
        #expect(result.isComplete)
        #expect(result.status == 200)
        #expect(result.body == Array("ok".utf8))
        #expect(result.headers == [
            HeaderField(name: "Content-Type", value: "text/plain"),
            HeaderField(name: "X-Folded", value: "first second"),
            HeaderField(name: "Transfer-Encoding", value: "chunked"),
            HeaderField(name: "Trailer", value: "X-Checksum"),
            HeaderField(name: "Connection", value: "close"),
        ])
    }

    @Test func oversizedBodyIsCutOff() async throws {
        let loop = try CurlMultiLoop(maxConnections: 4, logger: quietLogger)
        defer { loop.shutdown() }
        try await withEchoServer { server in
            let result = try finished(await loop.perform(request(server.url + "/big?bytes=300000", maxResponseBytes: 65_536)))
            #expect(!result.isComplete)
            #expect(result.responseTooLarge)
            #expect(result.body.count <= 65_536)

            let fits = try finished(await loop.perform(request(server.url + "/big?bytes=65536", maxResponseBytes: 65_536)))
            #expect(fits.isComplete)
            #expect(fits.body.count == 65_536)
        }
    }

    @Test func oversizedHeadersAreCutOff() async throws {
        let loop = try CurlMultiLoop(maxConnections: 4, logger: quietLogger)
        defer { loop.shutdown() }
        try await withEchoServer { server in
            // About 23 KB of fields: over a 4 KiB bound, within the default one. Only counts are
            // compared, so that a failure does not print 200 fields.
            let cut = try finished(await loop.perform(request(server.url + "/many-headers?count=200", maxHeaderBytes: 4096)))
            let (cutComplete, cutTooLarge, cutFields) = (cut.isComplete, cut.responseTooLarge, cut.headers.count)
            #expect(!cutComplete)
            #expect(cutTooLarge)
            #expect(cutFields < 200)

            let whole = try finished(await loop.perform(request(server.url + "/many-headers?count=200")))
            let (wholeComplete, fillers) = (whole.isComplete, whole.headers.filter { $0.name.hasPrefix("X-Filler-") }.count)
            #expect(wholeComplete)
            #expect(fillers == 200)
        }
    }

    @Test func refusedConnectionIsAnOutcome() async throws {
        let loop = try CurlMultiLoop(maxConnections: 4, logger: quietLogger)
        defer { loop.shutdown() }
        let refusing = try RefusingPort()
        let result = try finished(await loop.perform(request(refusing.url + "/v1/x")))
        #expect(!result.isComplete)
        #expect(!result.timedOut)
        #expect(!result.responseTooLarge)
        #expect(result.osErrno == ECONNREFUSED)
        #expect(result.requestBytes == 0)
        #expect(result.status == 0)
    }

    /// A line break would smuggle a header (or a whole request) past the caller's checks.
    @Test func headerLineWithALineBreakIsRefused() async throws {
        let loop = try CurlMultiLoop(maxConnections: 4, logger: quietLogger)
        defer { loop.shutdown() }
        for line in ["X-A: b\r\nX-Injected: 1", "X-A: b\nX-Injected: 1"] {
            await #expect {
                _ = try await loop.perform(request("http://127.0.0.1:1/", headerLines: [line]))
            } throws: { error in
                (error as? CurlError)?.kind == .option
            }
        }
    }

    @Test func shutdownEndsLaterTransfers() async throws {
        let loop = try CurlMultiLoop(maxConnections: 4, logger: quietLogger)
        loop.shutdown()
        let outcome = try await loop.perform(request("http://127.0.0.1:1/"))
        guard case .shutdown = outcome else {
            Issue.record("expected .shutdown, got \(outcome)")
            return
        }
    }
}
