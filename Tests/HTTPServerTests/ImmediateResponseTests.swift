import Glibc
@testable import HTTPServer
import Locking
import Testing

/// Answers "/now..." on the event loop (`respondImmediately`) and everything else as a Task
/// (EchoResponder), counting the Task calls: a server that ignored the immediate answer would
/// show them.
struct MixedResponder: HTTPResponder {
    let echo = EchoResponder()
    let taskCalls = PThreadMutex(0)

    func respondImmediately(to request: HTTPRequest) -> HTTPResponse? {
        guard request.path.hasPrefix("/now") else { return nil }
        let text = "now \(request.method) \(request.path) body=\(String(decoding: request.body, as: UTF8.self))"
        return HTTPResponse(status: 200, headers: ["Content-Type": "text/plain"], body: Array(text.utf8))
    }

    func respond(to request: HTTPRequest) async -> HTTPResponse {
        taskCalls.withLock { $0 += 1 }
        return await echo.respond(to: request)
    }
}

@Suite struct ImmediateResponseTests {
    @Test func immediateAndTaskAnswersKeepTheirOrder() async throws {
        let responder = MixedResponder()
        let server = try startServer(responder: responder)
        let port = server.port
        let (texts, head) = try await offPool {
            let client = try RawClient(port: port)
            try client.send(
                "GET /now/1 HTTP/1.1\r\nHost: t\r\n\r\n"
                    + "GET /slow?ms=100 HTTP/1.1\r\nHost: t\r\n\r\n"
                    + "POST /now/3 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
                    + "GET /later HTTP/1.1\r\nHost: t\r\n\r\n"
                    + "HEAD /now/5 HTTP/1.1\r\nHost: t\r\n\r\n"
                    + "GET /now/6 HTTP/1.1\r\nHost: t\r\n\r\n")
            var texts = try (0..<4).map { _ in try client.readResponse().text }
            let head = try client.readResponse(bodyless: true)
            texts.append(try client.readResponse().text)
            return (texts, head)
        }
        await server.shutdown()
        #expect(texts == [
            "now GET /now/1 body=", "GET /slow query=ms=100 body=", "now POST /now/3 body=abc",
            "GET /later query=- body=", "now GET /now/6 body=",
        ])
        #expect(head.status == 200)
        #expect(head.headers["Content-Length"] == "\("now HEAD /now/5 body=".utf8.count)")
        #expect(head.text.isEmpty)
        #expect(responder.taskCalls.withLock { $0 } == 2)
    }

    /// Thousands of requests in one write, each answered at once. Each answer is written from
    /// inside the loop that parses the buffer; were the next request parsed from inside that
    /// write (as a Task's answer is), the stack would grow with every request in the buffer.
    @Test func thousandsOfPipelinedImmediateRequestsAreAnsweredInOrder() async throws {
        let responder = MixedResponder()
        let server = try startServer(responder: responder)
        let port = server.port
        let count = 4_000
        let client = try RawClient(port: port)
        var batch = ""
        for index in 0..<count { batch += "GET /now/\(index) HTTP/1.1\r\nHost: t\r\n\r\n" }
        // Sent from a thread of its own while another reads: the answers outgrow the socket
        // buffers long before the requests are all sent.
        async let sent: Void = offPool { [batch] in try client.send(batch) }
        let mismatches = try await offPool {
            var mismatches = 0
            for index in 0..<count where try client.readResponse().text != "now GET /now/\(index) body=" {
                mismatches += 1
            }
            return mismatches
        }
        try await sent
        // The server still serves, on this connection and a new one.
        let after = try await offPool {
            try client.send("GET /later HTTP/1.1\r\nHost: t\r\n\r\n")
            let again = try client.readResponse().text
            let fresh = try RawClient(port: port)
            try fresh.send("GET /now/fresh HTTP/1.1\r\nHost: t\r\n\r\n")
            return [again, try fresh.readResponse().text]
        }
        await server.shutdown()
        #expect(mismatches == 0)
        #expect(after == ["GET /later query=- body=", "now GET /now/fresh body="])
        #expect(responder.taskCalls.withLock { $0 } == 1)
    }
}
