import Glibc
@testable import HTTPServer
import Locking
import Logging
import Testing

/// The server on 127.0.0.1, a free port, and raw POSIX client sockets. Client I/O runs off
/// the cooperative pool (`offPool`) so it cannot starve the responders.
@Suite("Live server")
struct LiveServerTests {
    @Test func getRoundTrip() async throws {
        let server = try startServer()
        let port = server.port
        #expect(port > 0)
        let response = try await offPool {
            let client = try RawClient(port: port)
            try client.send("GET /hello?name=x HTTP/1.1\r\nHost: test\r\n\r\n")
            return try client.readResponse()
        }
        await server.shutdown()
        #expect(response.status == 200)
        #expect(response.text == "GET /hello query=name=x body=")
        // The handler's wrong Content-Length (999) is replaced by the real one.
        #expect(response.headers.values("Content-Length") == ["\(response.body.count)"])
        #expect(response.headers["Connection"] == "keep-alive")
        #expect(response.headers["Content-Type"] == "text/plain")
        #expect(response.headers["Date"]?.hasSuffix(" GMT") == true)
    }

    @Test func keepAliveServesSeveralRequestsThenHonoursClose() async throws {
        let server = try startServer()
        let port = server.port
        let (first, second, third, closed) = try await offPool {
            let client = try RawClient(port: port)
            try client.send("GET /one HTTP/1.1\r\nHost: t\r\n\r\n")
            let first = try client.readResponse()
            try client.send("POST /two HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody")
            let second = try client.readResponse()
            try client.send("GET /three HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            let third = try client.readResponse()
            return (first, second, third, try client.readsEOF())
        }
        await server.shutdown()
        #expect(first.text == "GET /one query=- body=")
        #expect(second.text == "POST /two query=- body=body")
        #expect(third.text == "GET /three query=- body=")
        #expect(third.headers["Connection"] == "close")
        #expect(closed)
    }

    @Test func http10ClosesUnlessKeepAliveIsAsked() async throws {
        let server = try startServer()
        let port = server.port
        let (kept, closed) = try await offPool {
            let client = try RawClient(port: port)
            try client.send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            let kept = try client.readResponse()
            try client.send("GET /b HTTP/1.0\r\n\r\n")
            let closed = try client.readResponse()
            #expect(try client.readsEOF())
            return (kept, closed)
        }
        await server.shutdown()
        #expect(kept.headers["Connection"] == "keep-alive")
        #expect(closed.headers["Connection"] == "close")
        #expect(closed.text == "GET /b query=- body=")
    }

    /// The first request is slow; if responses were written as they finish, /fast would
    /// overtake it. They must come back in request order.
    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        let server = try startServer()
        let port = server.port
        let texts = try await offPool {
            let client = try RawClient(port: port)
            try client.send(
                "GET /slow?ms=150 HTTP/1.1\r\nHost: t\r\n\r\n"
                    + "POST /fast HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
                    + "GET /last HTTP/1.1\r\nHost: t\r\n\r\n")
            return try (0..<3).map { _ in try client.readResponse().text }
        }
        await server.shutdown()
        #expect(texts == ["GET /slow query=ms=150 body=", "POST /fast query=- body=abc", "GET /last query=- body="])
    }

    @Test func headGetsTheLengthButNoBody() async throws {
        let server = try startServer()
        let port = server.port
        let (head, next) = try await offPool {
            let client = try RawClient(port: port)
            try client.send("HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n")
            let head = try client.readResponse(bodyless: true)
            // Had body bytes been sent, they would now be read as the next status line.
            try client.send("GET /y HTTP/1.1\r\nHost: t\r\n\r\n")
            return (head, try client.readResponse())
        }
        await server.shutdown()
        #expect(head.headers["Content-Length"] == "\("HEAD /x query=- body=".utf8.count)")
        #expect(next.text == "GET /y query=- body=")
    }

    @Test func bodyArrivingInPiecesAndExpectContinue() async throws {
        let server = try startServer()
        let port = server.port
        let (interim, final) = try await offPool {
            let client = try RawClient(port: port)
            try client.send("PUT /up HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n")
            let interim = try client.readResponse()
            try client.send("hello")
            usleep(20_000)
            try client.send("world")
            return (interim, try client.readResponse())
        }
        await server.shutdown()
        #expect(interim.status == 100)
        #expect(final.text == "PUT /up query=- body=helloworld")
    }

    @Test func oversizedContentLengthIs413WithoutReadingTheBody() async throws {
        let server = try startServer { $0.maxBodyBytes = 1000 }
        let port = server.port
        let (response, closed) = try await offPool {
            let client = try RawClient(port: port)
            try client.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n")
            let response = try client.readResponse()
            return (response, try client.readsEOF())
        }
        await server.shutdown()
        #expect(response.status == 413)
        #expect(response.headers["Content-Type"] == "application/problem+json")
        #expect(response.headers["Connection"] == "close")
        #expect(response.text.hasPrefix(#"{"type":"about:blank","title":"Content Too Large","status":413,"detail":""#))
        #expect(closed)
    }

    @Test func malformedRequestGetsProblemAndClose() async throws {
        let server = try startServer()
        let port = server.port
        let (response, closed) = try await offPool {
            let client = try RawClient(port: port)
            try client.send("GET / HTTP/1.1\r\n\r\n")
            let response = try client.readResponse()
            return (response, try client.readsEOF())
        }
        await server.shutdown()
        #expect(response.status == 400)
        #expect(response.text.contains("Host"))
        #expect(response.headers["Connection"] == "close")
        #expect(closed)
    }

    @Test func slowHeadIs408AndClose() async throws {
        let server = try startServer { $0.headerTimeout = .milliseconds(300) }
        let port = server.port
        let (response, closed, waited) = try await offPool {
            // Before connecting: the server's clock starts at accept, so a delay on this thread
            // between connecting and reading the clock cannot make the wait look short.
            let start = monotonicNanoseconds()
            let client = try RawClient(port: port)
            try client.send("GET / HTTP/1.1\r\nHo")
            let response = try client.readResponse()
            return (response, try client.readsEOF(), elapsed(since: start))
        }
        await server.shutdown()
        #expect(response.status == 408)
        #expect(response.headers["Content-Type"] == "application/problem+json")
        #expect(closed)
        // No upper bound of its own: the client gives up after its receive timeout.
        #expect(waited >= .milliseconds(280))
    }

    @Test func slowBodyIs408() async throws {
        let server = try startServer { $0.bodyTimeout = .milliseconds(300) }
        let port = server.port
        let response = try await offPool {
            let client = try RawClient(port: port)
            try client.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
            return try client.readResponse()
        }
        await server.shutdown()
        #expect(response.status == 408)
    }

    /// An idle keep-alive connection is closed without a response (a 408 there would be
    /// misread by a client that just decided to reuse it).
    @Test func idleKeepAliveClosesSilently() async throws {
        let server = try startServer { $0.idleTimeout = .milliseconds(300) }
        let port = server.port
        let closed = try await offPool {
            let client = try RawClient(port: port)
            try client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            _ = try client.readResponse()
            return try client.readsEOF()
        }
        await server.shutdown()
        #expect(closed)
    }

    @Test func connectionsPastTheCapGetA503() async throws {
        let server = try startServer { $0.maxConnections = 2 }
        let port = server.port
        let (refused, refusedClosed, afterFreeing) = try await offPool {
            // Two connections that are certainly accepted: each has been answered.
            var held = try (0..<2).map { _ in try RawClient(port: port) }
            for client in held {
                try client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                _ = try client.readResponse()
            }
            let third = try RawClient(port: port)
            let refused = try third.readResponse()
            let refusedClosed = try third.readsEOF()
            // Freeing a slot lets a new connection in again, once the server saw the close: tried
            // until a deadline that only a server that never frees the slot reaches (50 tries
            // 10 ms apart bounded how fast a busy machine gets there).
            held.removeFirst()
            var status = 0
            let deadline = monotonicNanoseconds() + 30_000_000_000
            while status != 200 && monotonicNanoseconds() < deadline {
                let client = try RawClient(port: port)
                try client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                status = (try? client.readResponse().status) ?? 0
                if status != 200 { usleep(10_000) }
            }
            return (refused, refusedClosed, status)
        }
        await server.shutdown()
        #expect(refused.status == 503)
        #expect(refused.headers["Connection"] == "close")
        #expect(refused.headers["Content-Type"] == "application/problem+json")
        #expect(refusedClosed)
        #expect(afterFreeing == 200)
    }

    /// The responder holds the request until the test lets it go, so the check does not depend
    /// on timing: a 400 ms sleep raced the test's own polling on a loaded machine, and shutdown
    /// could begin with most of the sleep already gone.
    @Test func shutdownWaitsForTheInFlightResponse() async throws {
        let responder = GatedResponder()
        let server = try startServer(responder: responder)
        let port = server.port
        let client = try RawClient(port: port)
        try client.send("GET /held HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(await eventually { responder.arrived })
        let stopped = PThreadMutex(false)
        let stopping = Task {
            await server.shutdown()
            stopped.withLock { $0 = true }
        }
        // Shutdown must not return while the response is still being made.
        try await Task.sleep(for: .milliseconds(200))
        #expect(!stopped.withLock { $0 })
        responder.release()
        await stopping.value
        // The response was written before shutdown returned: it is in the socket buffer now.
        let (response, closed) = try await offPool { (try client.readResponse(), try client.readsEOF()) }
        #expect(response.status == 200)
        #expect(response.text == "released GET /held")
        #expect(response.headers["Connection"] == "close")
        #expect(closed)
        // The listener is gone.
        #expect(throws: ClientError.self) { try RawClient(port: port) }
        // Idempotent.
        await server.shutdown()
    }

    /// The first loop accepts and hands connections to every loop in turn: with six held
    /// requests on six connections each loop holds two in flight; all are counted against the
    /// server's connection limit, and shutdown waits for every loop's responses.
    ///
    /// A loop says `Connection: close` in the responses it writes once it has begun shutting
    /// down; one written before says keep-alive, and the connection then closes as idle. So the
    /// responses are held until every loop has shown that it is shutting down, by closing an idle
    /// connection of its own. (Requests that slept 300 ms raced the shutdown: on a loaded
    /// machine the responses were often written before it began.)
    @Test(arguments: [1, 3])
    func everyLoopServesAndShutdownWaitsForAll(loops: Int) async throws {
        let responder = GatedResponder()
        let server = try startServer(responder: responder) {
            $0.eventLoops = loops
            // The idle connections below send nothing: they must not meet a 408 first.
            $0.headerTimeout = .seconds(120)
        }
        let port = server.port
        let clients = try await offPool {
            try (0..<6).map { index in
                let client = try RawClient(port: port)
                try client.send("GET /held/\(index) HTTP/1.1\r\nHost: t\r\n\r\n")
                return client
            }
        }
        #expect(await eventually { responder.arrivals == 6 })
        #expect(server.openConnections == 6)
        // Dealt out after six (a multiple of `loops`), these go to the first loop, the second,
        // and so on. Counted means accepted and dealt, so each will reach its loop.
        let idle = try await offPool { try (0..<loops).map { _ in try RawClient(port: port) } }
        #expect(await eventually { server.openConnections == 6 + loops })
        let stopped = PThreadMutex(false)
        let stopping = Task {
            await server.shutdown()
            stopped.withLock { $0 = true }
        }
        let idleClosed = try await offPool { try idle.map { try $0.readsEOF() } }
        #expect(idleClosed == Array(repeating: true, count: loops))
        // Every loop is shutting down, and none may stop while its responses are still held.
        #expect(!stopped.withLock { $0 })
        responder.release()
        await stopping.value
        // Written before shutdown returned: in the socket buffers now.
        let answers = try await offPool { try clients.map { (try $0.readResponse(), try $0.readsEOF()) } }
        for (index, (response, closed)) in answers.enumerated() {
            #expect(response.status == 200)
            #expect(response.text == "released GET /held/\(index)")
            #expect(response.headers["Connection"] == "close")
            #expect(closed)
        }
        #expect(server.openConnections == 0)
    }

    @Test func shutdownClosesIdleConnectionsAtOnce() async throws {
        let server = try startServer {
            $0.idleTimeout = .seconds(60)
            $0.shutdownTimeout = .seconds(60)
        }
        let port = server.port
        let client = try await offPool {
            let client = try RawClient(port: port)
            try client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            _ = try client.readResponse()
            return client
        }
        let start = monotonicNanoseconds()
        await server.shutdown()
        // Waiting for the idle connection would take one of the 60 s timeouts (the idle one less
        // the moments since the response); half of that is a margin no busy machine needs.
        #expect(elapsed(since: start) < .seconds(30))
        #expect(try await offPool { try client.readsEOF() })
    }

    @Test func portInUseIsAClearError() async throws {
        let server = try startServer()
        defer { Task { await server.shutdown() } }
        var configuration = HTTPServerConfiguration()
        configuration.port = server.port
        let second = HTTPServer(configuration: configuration, responder: EchoResponder(), logger: quietLogger)
        let error = try #require(throws: SocketError.self) { try second.start() }
        #expect(error.isAddressInUse)
        #expect(error.description.contains("bind"))
        #expect(throws: HTTPServerError.alreadyStarted) { try server.start() }
    }

    @Test func badHostIsAClearError() {
        var configuration = HTTPServerConfiguration()
        configuration.host = "localhost"
        let server = HTTPServer(configuration: configuration, responder: EchoResponder(), logger: quietLogger)
        #expect(throws: HTTPServerError.invalidAddress("localhost")) { try server.start() }
    }

    @Test func logsNeverCarryBodiesOrAuthorization() async throws {
        let recorder = LogRecorder()
        var logger = Logger(label: "test") { _ in recorder }
        logger.logLevel = .trace
        let server = HTTPServer(configuration: { var c = HTTPServerConfiguration(); c.port = 0; return c }(),
                                responder: EchoResponder(), logger: logger)
        try server.start()
        let port = server.port
        _ = try await offPool {
            let client = try RawClient(port: port)
            try client.send("POST /login HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer s3cret-token\r\nContent-Length: 11\r\n\r\nhunter2-pwd")
            return try client.readResponse()
        }
        await server.shutdown()
        let text = recorder.lines.joined(separator: "\n")
        #expect(text.contains("/login"))
        #expect(!text.contains("s3cret-token"))
        #expect(!text.contains("hunter2-pwd"))
    }
}

/// An in-memory log handler (swift-log's advice for asserting on logs in tests).
final class LogRecorder: LogHandler, Sendable {
    private let storage = PThreadMutex<[String]>([])
    var lines: [String] { storage.withLock { $0 } }

    var metadata: Logger.Metadata {
        get { [:] }
        set {}
    }
    var logLevel: Logger.Level {
        get { .trace }
        set {}
    }
    subscript(metadataKey _: String) -> Logger.Metadata.Value? {
        get { nil }
        set {}
    }

    func log(event: LogEvent) {
        storage.withLock { $0.append("\(event.level) \(event.message) \(event.metadata ?? [:])") }
    }
}
