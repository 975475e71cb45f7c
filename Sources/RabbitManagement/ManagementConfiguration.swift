/// How to reach one RabbitMQ cluster's management API.
///
/// `baseURLs` are nodes of the same cluster: any of them answers for all. A call that cannot
/// connect to one node (refused, DNS failure, connect timeout, TLS handshake failure) is sent to
/// the next one; the node that last answered is tried first on the next call.
public struct ManagementConfiguration: Sendable {
    /// e.g. `["http://127.0.0.1:15672"]`. A path prefix (reverse proxy) is allowed; `/api/...` is
    /// appended to it. Credentials in the URL are rejected: they go in `username`/`password`.
    public var baseURLs: [String]
    public var username: String
    /// Sent only as the basic-auth credential; never logged, never put in an error message.
    public var password: String
    /// Budget for a whole call, failover attempts included (CURLOPT_TIMEOUT_MS per attempt gets
    /// what is left of it).
    public var requestTimeout: Duration = .seconds(10)
    /// CURLOPT_CONNECTTIMEOUT_MS per node: short, so that a dead node fails over quickly.
    public var connectTimeout: Duration = .seconds(3)
    /// https: CA bundle to verify the broker with (CURLOPT_CAINFO). Nil: the system store.
    /// Peer and host verification are always on.
    public var caFile: String? = nil
    /// Optional client certificate and key (PEM) for brokers that require mutual TLS.
    public var clientCertFile: String? = nil
    public var clientKeyFile: String? = nil
    /// Upper bound on the size of one response body; larger answers fail as `.invalidResponse`.
    public var maxResponseBytes: Int = 32 << 20

    public init(baseURLs: [String], username: String, password: String) {
        self.baseURLs = baseURLs
        self.username = username
        self.password = password
    }
}

extension ManagementConfiguration: CustomStringConvertible {
    /// Safe to log: the password is left out.
    public var description: String {
        "ManagementConfiguration(baseURLs: \(baseURLs), username: \(username), password: <redacted>)"
    }
}

extension ManagementConfiguration {
    /// Checks the URLs and returns them without a trailing "/", or throws `.invalidConfiguration`.
    func validatedBaseURLs() throws(ManagementError) -> [String] {
        guard !baseURLs.isEmpty else {
            throw ManagementError(code: .invalidConfiguration, summary: "no management URL configured")
        }
        return try baseURLs.map { (raw: String) throws(ManagementError) -> String in
            var url = raw
            while url.hasSuffix("/") { url.removeLast() }
            let lower = url.lowercased()
            guard lower.hasPrefix("http://") || lower.hasPrefix("https://") else {
                throw ManagementError(
                    code: .invalidConfiguration,
                    summary: "management URL must start with http:// or https://")
            }
            let afterScheme = url[url.index(url.firstIndex(of: ":")!, offsetBy: 3)...]
            let authority = afterScheme.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
            // Never echo the URL here: if it has userinfo, it may hold a password.
            guard !authority.contains("@") else {
                throw ManagementError(
                    code: .invalidConfiguration,
                    summary: "management URL must not contain credentials; use username and password")
            }
            guard !authority.isEmpty, !url.contains("?"), !url.contains("#") else {
                throw ManagementError(
                    code: .invalidConfiguration,
                    summary: "management URL must be scheme://host[:port][/prefix]")
            }
            return url
        }
    }
}
