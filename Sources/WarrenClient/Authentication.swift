import Foundation
import HTTPTypes
import OpenAPIRuntime

/// The generated client leaves authentication to middleware: openapi.yaml declares the schemes
/// (`bearerAuth` for /v1, `basicAuth` for /v2) and the generator does not act on them.
///
/// `/v1`: a team's token, as `Authorization: Bearer {token}`.
public struct BearerTokenMiddleware: ClientMiddleware {
    private let token: String

    public init(token: String) {
        self.token = token
    }

    public func intercept(
        _ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, URL) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        var request = request
        request.headerFields[.authorization] = "Bearer \(token)"
        return try await next(request, body, baseURL)
    }
}

/// `/v2` (Open Service Broker): a platform's credentials, as HTTP basic authentication.
public struct BasicAuthenticationMiddleware: ClientMiddleware {
    private let header: String

    public init(username: String, password: String) {
        header = "Basic " + Data("\(username):\(password)".utf8).base64EncodedString()
    }

    public func intercept(
        _ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, URL) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        var request = request
        request.headerFields[.authorization] = header
        return try await next(request, body, baseURL)
    }
}
