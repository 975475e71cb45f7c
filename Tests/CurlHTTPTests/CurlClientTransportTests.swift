import FoundationEssentials
import HTTPTypes
import OpenAPIRuntime
import Testing
import WarrenClient

/// The transport as the generated client uses it, against the project's own server.
@Suite struct CurlClientTransportTests {
    private func transport(_ configure: (inout CurlClientTransport.Configuration) -> Void = { _ in }) throws -> CurlClientTransport {
        var configuration = CurlClientTransport.Configuration()
        // Bounds on what must happen, not on speed: a busy machine never comes near them.
        configuration.timeout = .seconds(120)
        configuration.connectTimeout = .seconds(60)
        configure(&configuration)
        return try CurlClientTransport(configuration: configuration, logger: quietLogger)
    }

    private func failure(_ body: () async throws -> Void) async -> CurlTransportError? {
        do {
            try await body()
            Issue.record("expected a CurlTransportError")
        } catch let error as CurlTransportError {
            return error
        } catch {
            Issue.record("expected a CurlTransportError, got \(error)")
        }
        return nil
    }

    @Test func requestAndResponseThroughHTTPTypes() async throws {
        let transport = try transport()
        defer { transport.shutdown() }
        try await withEchoServer { server in
            let payload = #"{"name":"orders","queues":["a"]}"#
            let request = HTTPRequest(
                method: .post, scheme: nil, authority: nil, path: "/v1/echo?team=a%20b&x=1",
                headerFields: [
                    .authorization: "Bearer token-1", .contentType: "application/json",
                    .accept: "application/json", .contentLength: "\(payload.utf8.count)",
                ])
            // A base URL with a path prefix and a trailing slash, as a server URL may have.
            let (response, body) = try await transport.send(
                request, body: HTTPBody(payload), baseURL: URL(string: server.url + "/api/")!, operationID: "echo")

            #expect(response.status.code == 201)
            #expect(response.headerFields[.contentType] == "application/problem+json")
            #expect(response.headerFields[.location] == "/v1/things/42")
            let received = try await String(collecting: try #require(body), upTo: 1 << 20)
            #expect(received == payload)

            let seen = try #require(server.seen.last)
            #expect(seen.method == "POST")
            #expect(seen.path == "/api/v1/echo")
            #expect(seen.query == "team=a%20b&x=1")
            #expect(seen.header("Authorization") == "Bearer token-1")
            #expect(seen.header("Content-Type") == "application/json")
            #expect(seen.header("Accept") == "application/json")
            #expect(seen.headers.values("Content-Length") == ["\(payload.utf8.count)"])
            #expect(seen.body == Array(payload.utf8))
        }
    }

    @Test func getWithoutBodyAndHeadWithoutAnswerBody() async throws {
        let transport = try transport()
        defer { transport.shutdown() }
        try await withEchoServer { server in
            let base = URL(string: server.url)!
            let (got, gotBody) = try await transport.send(
                HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/big?bytes=5"),
                body: nil, baseURL: base, operationID: "get")
            #expect(got.status == .ok)
            #expect(try await [UInt8](collecting: try #require(gotBody), upTo: 100) == Array("xxxxx".utf8))
            #expect(server.seen.last?.body == [])

            // The answer announces 5 bytes it does not send: read as a GET, it would never end.
            let (head, headBody) = try await transport.send(
                HTTPRequest(method: .head, scheme: nil, authority: nil, path: "/big?bytes=5"),
                body: nil, baseURL: base, operationID: "head")
            #expect(head.status == .ok)
            #expect(headBody == nil)
        }
    }

    @Test func refusedConnectionNamesTheURL() async throws {
        let transport = try transport()
        defer { transport.shutdown() }
        let refusing = try RefusingPort()
        let error = await failure {
            _ = try await transport.send(
                HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/v1/environments?team=a",
                            headerFields: [.authorization: "Bearer secret-token"]),
                body: nil, baseURL: URL(string: refusing.url)!, operationID: "list")
        }
        #expect(error?.kind == .transferFailed)
        #expect(error?.url == refusing.url + "/v1/environments?team=a")
        let description = error.map { "\($0)" } ?? ""
        #expect(description.hasPrefix("GET \(refusing.url)/v1/environments?team=a failed: "))
        #expect(description.contains("Connection refused"))
        #expect(!description.contains("secret-token"))
    }

    @Test func oversizedResponseFails() async throws {
        let transport = try transport { $0.maxResponseBytes = 65_536 }
        defer { transport.shutdown() }
        try await withEchoServer { server in
            let error = await failure {
                _ = try await transport.send(
                    HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/big?bytes=300000"),
                    body: nil, baseURL: URL(string: server.url)!, operationID: "big")
            }
            #expect(error?.kind == .responseTooLarge)
            #expect(error?.url == server.url + "/big?bytes=300000")
        }
    }

    @Test func oversizedRequestBodyIsNotSent() async throws {
        let transport = try transport { $0.maxRequestBytes = 16 }
        defer { transport.shutdown() }
        try await withEchoServer { server in
            let error = await failure {
                _ = try await transport.send(
                    HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/v1/echo"),
                    body: HTTPBody(String(repeating: "y", count: 17)), baseURL: URL(string: server.url)!, operationID: "post")
            }
            #expect(error?.kind == .invalidRequest)
            #expect(server.seen.isEmpty)
        }
    }

    @Test func credentialsInTheBaseURLAreRefused() async throws {
        let transport = try transport()
        defer { transport.shutdown() }
        let error = await failure {
            _ = try await transport.send(
                HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/v1/x"),
                body: nil, baseURL: URL(string: "http://admin:hunter2@127.0.0.1:1")!, operationID: "x")
        }
        #expect(error?.kind == .invalidRequest)
        #expect(!(error.map { "\($0)" } ?? "hunter2").contains("hunter2"))
    }

    @Test func cancellationEndsTheTransfer() async throws {
        let transport = try transport()
        defer { transport.shutdown() }
        let silent = try SilentServer()
        let pending = Task {
            try await transport.send(
                HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/v1/slow"),
                body: nil, baseURL: URL(string: silent.url)!, operationID: "slow")
        }
        // Most likely in flight by then; cancelled before it was submitted ends the same way.
        try await Task.sleep(for: .milliseconds(100))
        pending.cancel()
        await #expect(throws: CancellationError.self) { _ = try await pending.value }
    }

    @Test func shutdownFailsLaterRequests() async throws {
        let transport = try transport()
        let copy = transport
        transport.shutdown()
        let error = await failure {
            _ = try await copy.send(
                HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/v1/x"),
                body: nil, baseURL: URL(string: "http://127.0.0.1:1")!, operationID: "x")
        }
        #expect(error?.kind == .shutdown)
    }
}
