import FoundationEssentials
import HTTPServer
import Logging

/// What an Open Service Broker handler gets: the request, the platform that sent it (from its
/// basic credentials) and the team the platform provisions for.
struct OSBContext: Sendable {
    var request: HTTPRequest
    var parameters: RouteParameters
    var platform: String
    var team: String
    var logger: Logger
}

extension RequestPipeline {
    typealias OSBHandler = @Sendable (OSBContext) async throws -> HTTPResponse

    /// The /v2 counterpart of `route`: the same request id, metrics and log line, but HTTP
    /// basic authentication against the platforms file (without one, every /v2 request is
    /// answered 401: /v2 stays routed so a platform learns it is not let in rather than that
    /// the path does not exist), the API version header, and OSB error bodies.
    func osbRoute(_ pattern: StaticString, platforms: PlatformStore?, _ handler: @escaping OSBHandler) -> Router.Handler {
        let route = pattern.description
        return { request, parameters in
            let started = ContinuousClock.now
            let requestID = RequestID.of(request)
            var logger = self.logger
            logger[metadataKey: "request_id"] = .string(requestID)
            var team: String?
            var response: HTTPResponse
            do {
                // Credentials first: whoever is not a platform learns nothing, not even which
                // API versions Warren speaks. Two sets of them are not looked at (as on /v1).
                if DuplicateAuthorization.present(in: request.headers) { throw OSBError.duplicateAuthorization }
                guard let found = platforms?.platform(forAuthorization: request.headers["Authorization"]) else {
                    throw OSBError.unauthorized
                }
                team = found.team
                logger[metadataKey: "team"] = .string(found.team)
                logger[metadataKey: "platform"] = .string(found.platform)
                try OSBVersion.check(request.headers["X-Broker-API-Version"])
                if let identity = OSBOriginatingIdentity.decode(request.headers["X-Broker-API-Originating-Identity"]) {
                    // For the audit trail: who at the platform asked (as the platform says).
                    logger[metadataKey: "originating_identity"] = "\(identity)"
                    logger.info("platform request", metadata: ["method": "\(request.method)", "route": "\(route)"])
                }
                let context = OSBContext(request: request, parameters: parameters, platform: found.platform, team: found.team, logger: logger)
                response = try await handler(context)
            } catch {
                response = OSBError.from(error, logger: logger).response()
            }
            return finish(request, response, route: route, team: team, requestID: requestID, started: started)
        }
    }
}

/// `X-Broker-API-Version: MAJOR.MINOR`: Warren speaks 2.13 and later 2.x (it answers the
/// GET endpoints of 2.14 and takes the rotation of 2.17; nothing it needs from a platform is
/// newer than 2.13). Missing, malformed, older or another major version: 412.
enum OSBVersion {
    static let minimumMinor = 13

    static func check(_ header: String?) throws(OSBError) {
        guard let header else {
            throw OSBError.preconditionFailed("send X-Broker-API-Version (2.\(minimumMinor) or later)")
        }
        let parts = header.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.count <= 4 && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
              let major = Int(parts[0]), let minor = Int(parts[1]), major == 2, minor >= minimumMinor
        else {
            throw OSBError.preconditionFailed("X-Broker-API-Version must be 2.\(minimumMinor) or a later 2.x")
        }
    }
}

/// `X-Broker-API-Originating-Identity: PLATFORM BASE64(JSON)`: who at the platform asked.
/// Logged for the audit trail and never trusted (any platform can write anything there): it
/// decides nothing. Bounded in size and reduced to printable ASCII before it reaches a log line.
enum OSBOriginatingIdentity {
    static func decode(_ header: String?) -> String? {
        guard let header, header.utf8.count <= 4096 else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2 else { return nil }
        let platform = printable(String(parts[0]), limit: 64)
        guard let data = Data(base64Encoded: String(parts[1])) else { return "\(platform) (value is not base64)" }
        return "\(platform) \(printable(String(decoding: data, as: UTF8.self), limit: 512))"
    }

    private static func printable(_ text: String, limit: Int) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.prefix(limit).map { $0.isASCII && $0.value >= 0x20 && $0.value < 0x7F ? $0 : "?" }))
    }
}
