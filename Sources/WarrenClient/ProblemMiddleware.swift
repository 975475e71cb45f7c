import Foundation
import HTTPTypes
import OpenAPIRuntime

/// A refusal Warren explained: the problem document (RFC 9457) of a 4xx or 5xx answer.
public struct WarrenProblem: Error, Sendable, CustomStringConvertible {
    public let problem: Components.Schemas.Problem
    /// Seconds to wait before trying again, when the answer said (429, 503).
    public let retryAfter: Int?

    public var status: Int { problem.status }
    /// The part of `type` after `urn:warren:problem:` (`not-found`, `conflict`, ...).
    public var code: String {
        let prefix = "urn:warren:problem:"
        return problem._type.hasPrefix(prefix) ? String(problem._type.dropFirst(prefix.count)) : problem._type
    }

    public var description: String {
        var text = "\(problem.title) (\(problem.status))"
        if let detail = problem.detail, !detail.isEmpty { text += ": \(detail)" }
        for error in problem.errors ?? [] { text += "\n  \(error.field): \(error.reason)" }
        if let retryAfter { text += "\n  try again in \(retryAfter) s" }
        return text
    }
}

/// Turns every `application/problem+json` answer into a thrown `WarrenProblem`, so code that
/// only cares about success (a command-line tool, a script) handles the success cases of an
/// operation's output and lets every refusal surface as one error type. Code that wants each
/// documented refusal as a typed case of the output leaves this middleware out.
///
/// The generated client wraps what a middleware throws in `ClientError`; `WarrenProblem.in(_:)`
/// unwraps it.
public struct ProblemMiddleware: ClientMiddleware {
    /// A problem document is small; an answer claiming to be one but larger is not read whole.
    static let maxProblemBytes = 64 * 1024

    public init() {}

    public func intercept(
        _ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, URL) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        let (response, responseBody) = try await next(request, body, baseURL)
        guard response.status.code >= 400,
              let contentType = response.headerFields[.contentType],
              contentType.lowercased().hasPrefix("application/problem+json"),
              let responseBody
        else { return (response, responseBody) }
        let bytes = try await Data(collecting: responseBody, upTo: Self.maxProblemBytes)
        guard let problem = try? JSONDecoder().decode(Components.Schemas.Problem.self, from: bytes) else {
            // Not the document it claims to be: hand it on untouched, as the generated code's
            // `undocumented` case or decoding error will report it.
            return (response, HTTPBody(bytes))
        }
        let retryAfter = response.headerFields[.retryAfter].flatMap { Int($0) }
        throw WarrenProblem(problem: problem, retryAfter: retryAfter)
    }
}

extension WarrenProblem {
    /// The problem behind an error the generated client threw, if it was one.
    public static func `in`(_ error: any Error) -> WarrenProblem? {
        if let problem = error as? WarrenProblem { return problem }
        if let clientError = error as? ClientError { return clientError.underlyingError as? WarrenProblem }
        return nil
    }
}
