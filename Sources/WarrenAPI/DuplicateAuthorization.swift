import HTTPServer

/// A request with more than one `Authorization` header field is refused 400 on /v1 and /v2,
/// before any of them is looked up. Proxies and servers disagree on which one counts (the first,
/// the last, both joined with a comma), so a request that carries two could be authenticated as
/// one caller in front of Warren and another inside it. The answer is the same whatever the
/// values are, so it says nothing about any token or credentials.
enum DuplicateAuthorization {
    static let detail = "send exactly one Authorization header"

    static func present(in headers: HTTPHeaders) -> Bool {
        headers.values("Authorization").count > 1
    }
}
