import Foundation
import HTTPTypes
import OpenAPIRuntime
import Testing
import WarrenClient

/// The hand-written middlewares of WarrenClient, each given a stub `next` in place of the
/// transport: what they send on, and what they make of an answer. No network.
@Suite struct MiddlewareTests {
    private let baseURL = URL(string: "http://warren.test")!

    /// A `next` that records the request it was handed and answers `response` with `body`.
    private final class Stub: @unchecked Sendable {
        private let lock = NSLock()
        private var _requests: [HTTPRequest] = []
        let response: HTTPResponse
        let body: [UInt8]?

        init(status: Int, headers: HTTPFields = [:], body: String? = nil) {
            response = HTTPResponse(status: .init(code: status), headerFields: headers)
            self.body = body.map { Array($0.utf8) }
        }

        var requests: [HTTPRequest] { lock.withLock { _requests } }

        func next(_ request: HTTPRequest, _ body: HTTPBody?, _ url: URL) async throws -> (HTTPResponse, HTTPBody?) {
            lock.withLock { _requests.append(request) }
            return (response, self.body.map { HTTPBody($0) })
        }
    }

    private func request(_ fields: HTTPFields = [:]) -> HTTPRequest {
        HTTPRequest(method: .get, scheme: "http", authority: "warren.test", path: "/v1/environments", headerFields: fields)
    }

    private func send(_ middleware: some ClientMiddleware, _ stub: Stub, _ fields: HTTPFields = [:]) async throws -> (HTTPResponse, HTTPBody?) {
        try await middleware.intercept(
            request(fields), body: nil, baseURL: baseURL, operationID: "listEnvironments", next: stub.next)
    }

    private func text(_ body: HTTPBody?) async throws -> String? {
        guard let body else { return nil }
        return try await String(collecting: body, upTo: 1 << 20)
    }

    private static let problemJSON: HTTPFields = [.contentType: "application/problem+json"]

    // MARK: authentication

    @Test func bearerTokenSetsTheAuthorizationHeader() async throws {
        let stub = Stub(status: 200)
        _ = try await send(BearerTokenMiddleware(token: "s3cret-token"), stub)
        #expect(stub.requests.count == 1)
        #expect(stub.requests.first?.headerFields[.authorization] == "Bearer s3cret-token")
    }

    @Test func bearerTokenReplacesAnAuthorizationHeaderAlreadyThere() async throws {
        // Warren answers 400 to a request with two Authorization headers: there must be one.
        let stub = Stub(status: 200)
        _ = try await send(BearerTokenMiddleware(token: "new"), stub, [.authorization: "Bearer old"])
        let fields = try #require(stub.requests.first).headerFields
        #expect(fields[values: .authorization] == ["Bearer new"])
    }

    @Test func basicAuthenticationSetsTheEncodedCredentials() async throws {
        let stub = Stub(status: 200)
        _ = try await send(BasicAuthenticationMiddleware(username: "cf-a", password: "pa:ss"), stub)
        // base64("cf-a:pa:ss"): the password is not split at its own colon.
        #expect(stub.requests.first?.headerFields[.authorization] == "Basic Y2YtYTpwYTpzcw==")
    }

    // MARK: problems

    @Test func problemDocumentIsThrownWithItsFields() async throws {
        var headers = Self.problemJSON
        headers[.retryAfter] = "7"
        let stub = Stub(status: 400, headers: headers, body: """
            {"type": "urn:warren:problem:invalid-field", "title": "Invalid field", "status": 400,
             "detail": "The request has 2 invalid fields.",
             "errors": [{"field": "name", "reason": "must start with a lowercase letter or a digit"},
                        {"field": "queue.type", "reason": "must be one of: quorum, classic"}]}
            """)
        let thrown = await #expect(throws: WarrenProblem.self) { try await send(ProblemMiddleware(), stub) }
        let problem = try #require(thrown)
        #expect(problem.status == 400)
        #expect(problem.code == "invalid-field")
        #expect(problem.problem.title == "Invalid field")
        #expect(problem.problem.detail == "The request has 2 invalid fields.")
        #expect(problem.problem.errors?.map(\.field) == ["name", "queue.type"])
        #expect(problem.retryAfter == 7)
        #expect(problem.description == """
            Invalid field (400): The request has 2 invalid fields.
              name: must start with a lowercase letter or a digit
              queue.type: must be one of: quorum, classic
              try again in 7 s
            """)
    }

    @Test func problemOfTheHTTPLayerKeepsItsType() async throws {
        // about:blank (the HTTP layer's own problems) has no urn:warren:problem: slug to strip.
        let stub = Stub(status: 503, headers: [.contentType: "application/problem+json; charset=utf-8", .retryAfter: "1"],
                        body: #"{"type": "about:blank", "title": "Service Unavailable", "status": 503}"#)
        let thrown = await #expect(throws: WarrenProblem.self) { try await send(ProblemMiddleware(), stub) }
        let problem = try #require(thrown)
        #expect(problem.code == "about:blank")
        #expect(problem.retryAfter == 1)
        #expect(problem.description == "Service Unavailable (503)\n  try again in 1 s")
    }

    @Test func problemWithoutRetryAfterHasNone() async throws {
        let stub = Stub(status: 404, headers: Self.problemJSON,
                        body: #"{"type": "urn:warren:problem:not-found", "title": "Not found", "status": 404, "detail": "no environment x"}"#)
        let thrown = await #expect(throws: WarrenProblem.self) { try await send(ProblemMiddleware(), stub) }
        #expect(thrown?.retryAfter == nil)
        #expect(thrown?.description == "Not found (404): no environment x")
    }

    @Test func successPassesThroughUntouched() async throws {
        let body = #"{"items": []}"#
        let stub = Stub(status: 200, headers: [.contentType: "application/json"], body: body)
        let (response, responseBody) = try await send(ProblemMiddleware(), stub)
        #expect(response == stub.response)
        #expect(try await text(responseBody) == body)
    }

    @Test func successWithAProblemContentTypeStillPassesThrough() async throws {
        // Only a 4xx or 5xx is a refusal, whatever the content type says.
        let body = #"{"type": "about:blank", "title": "odd", "status": 400}"#
        let stub = Stub(status: 201, headers: Self.problemJSON, body: body)
        let (response, responseBody) = try await send(ProblemMiddleware(), stub)
        #expect(response.status.code == 201)
        #expect(try await text(responseBody) == body)
    }

    @Test func refusalThatIsNotAProblemPassesThroughUntouched() async throws {
        let body = "<html>bad gateway</html>"
        let stub = Stub(status: 404, headers: [.contentType: "text/html"], body: body)
        let (response, responseBody) = try await send(ProblemMiddleware(), stub)
        #expect(response == stub.response)
        #expect(try await text(responseBody) == body)
    }

    @Test func documentThatIsNotAProblemIsHandedOnWithItsBytes() async throws {
        // Claims to be a problem but lacks `title`: the generated code reports it, not this one.
        let body = #"{"type": "urn:warren:problem:x", "status": 409}"#
        let stub = Stub(status: 409, headers: Self.problemJSON, body: body)
        let (response, responseBody) = try await send(ProblemMiddleware(), stub)
        #expect(response.status.code == 409)
        #expect(try await text(responseBody) == body)
    }

    @Test func problemIsFoundInsideTheGeneratedClientsError() async throws {
        let stub = Stub(status: 409, headers: Self.problemJSON,
                        body: #"{"type": "urn:warren:problem:conflict", "title": "Conflict", "status": 409}"#)
        let thrown = await #expect(throws: WarrenProblem.self) { try await send(ProblemMiddleware(), stub) }
        let problem = try #require(thrown)
        // What the generated client throws when a middleware throws.
        let wrapped = ClientError(
            operationID: "createEnvironment", operationInput: "input", causeDescription: "Middleware threw an error",
            underlyingError: problem)
        #expect(WarrenProblem.in(wrapped)?.code == "conflict")
        #expect(WarrenProblem.in(problem)?.status == 409)
        #expect(WarrenProblem.in(CancellationError()) == nil)
        let otherCause = ClientError(
            operationID: "createEnvironment", operationInput: "input", causeDescription: "Transport threw an error",
            underlyingError: CancellationError())
        #expect(WarrenProblem.in(otherCause) == nil)
    }
}
