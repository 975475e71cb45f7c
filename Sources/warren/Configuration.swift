import EnvironmentModel
import FoundationEssentials
import Provisioning

#if canImport(Glibc)
import Glibc
#endif

/// Warren's settings, all from environment variables (documented in README.md). A bad value
/// stops start-up with one line that names the variable.
struct Configuration {
    struct Invalid: Error {
        var variable: String
        var reason: String
    }

    var listenHost = "127.0.0.1"
    var listenPort = 8080
    var managementURLs = ["http://127.0.0.1:15672"]
    var managementUser = "guest"
    var managementPassword = "guest"
    var managementTimeoutMilliseconds = 10_000
    var managementCAFile: String?
    var managementClientCertFile: String?
    var managementClientKeyFile: String?
    var amqpHost = "127.0.0.1"
    var amqpPort = 5672
    var tokensFile = ""
    /// WARREN_ALLOW_NO_TEAMS=1: a tokens file that gives no team is taken (at start-up and on
    /// reload) instead of refused; for a Warren that serves only /v2, or that has every token
    /// revoked on purpose.
    var allowNoTeams = false
    var blueprintsFile: String?
    var maxBodyBytes = 1 << 20
    var maxConnections = 4096
    var logLevel = "info"
    var sweepIntervalSeconds = 30
    var sweepGraceSeconds = 120
    /// How often `UsageCollector` reads the broker's alarms and the teams' use for /metrics.
    var usageIntervalSeconds = 15
    var createDeadlineSeconds = 60
    var maxEnvironmentsPerTeam = 100
    var ceilings = Ceilings()
    var headerTimeoutMilliseconds = 10_000
    var bodyTimeoutMilliseconds = 30_000
    var idleTimeoutMilliseconds = 60_000
    /// Open Service Broker (/v2): the platforms file, and the secret binding passwords are
    /// derived from (both or neither).
    var osbPlatformsFile: String?
    var osbSecret: [UInt8] = []
    /// During a secret rotation, the secret before `osbSecret`: what it sealed and derived is
    /// still recognised, and records sealed with it are resealed with the new one at start-up.
    var osbPreviousSecret: [UInt8]?
    /// Start even when records on the broker are sealed with neither secret (the old one is
    /// lost): those instances then answer errors on /v2 and can be removed through /v1.
    var osbAllowUnverifiedSeals = false

    static func fromEnvironment(_ env: [String: String]) throws(Invalid) -> Configuration {
        var config = Configuration()
        if let listen = env["WARREN_LISTEN"] {
            (config.listenHost, config.listenPort) = try hostPort(listen, variable: "WARREN_LISTEN")
        }
        if let urls = env["WARREN_MANAGEMENT_URL"] {
            config.managementURLs = urls.split(separator: ",").map { String($0).trimmed }.filter { !$0.isEmpty }
            guard !config.managementURLs.isEmpty,
                  config.managementURLs.allSatisfy({ $0.hasPrefix("http://") || $0.hasPrefix("https://") })
            else {
                throw Invalid(variable: "WARREN_MANAGEMENT_URL", reason: "expected one or more comma-separated http:// or https:// URLs")
            }
            config.managementURLs = config.managementURLs.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        }
        if let user = env["WARREN_MANAGEMENT_USER"] {
            guard !user.isEmpty else { throw Invalid(variable: "WARREN_MANAGEMENT_USER", reason: "must not be empty") }
            config.managementUser = user
        }
        if let file = env["WARREN_MANAGEMENT_PASSWORD_FILE"] {
            config.managementPassword = try readSecret(file, variable: "WARREN_MANAGEMENT_PASSWORD_FILE")
        } else if let password = env["WARREN_MANAGEMENT_PASSWORD"] {
            config.managementPassword = password
        } else if config.managementUser != "guest" {
            // guest/guest is the loopback-only default of a fresh broker; any other user needs its password.
            throw Invalid(variable: "WARREN_MANAGEMENT_PASSWORD_FILE", reason: "required when WARREN_MANAGEMENT_USER is set (or WARREN_MANAGEMENT_PASSWORD)")
        }
        if let timeout = env["WARREN_MANAGEMENT_TIMEOUT_MS"] {
            config.managementTimeoutMilliseconds = try integer(timeout, variable: "WARREN_MANAGEMENT_TIMEOUT_MS", in: 100...600_000)
        }
        config.managementCAFile = try readableFile(env, "WARREN_MANAGEMENT_CA_FILE")
        config.managementClientCertFile = try readableFile(env, "WARREN_MANAGEMENT_CLIENT_CERT_FILE")
        config.managementClientKeyFile = try readableFile(env, "WARREN_MANAGEMENT_CLIENT_KEY_FILE")
        if (config.managementClientCertFile == nil) != (config.managementClientKeyFile == nil) {
            throw Invalid(variable: "WARREN_MANAGEMENT_CLIENT_CERT_FILE", reason: "needs WARREN_MANAGEMENT_CLIENT_KEY_FILE too, and the other way round")
        }
        if let host = env["WARREN_AMQP_HOST"] {
            guard !host.isEmpty, !host.contains(where: { $0 == "/" || $0 == "@" || $0.isWhitespace }) else {
                throw Invalid(variable: "WARREN_AMQP_HOST", reason: "expected a host name or address")
            }
            config.amqpHost = host
        }
        if let port = env["WARREN_AMQP_PORT"] {
            config.amqpPort = try integer(port, variable: "WARREN_AMQP_PORT", in: 1...65535)
        }
        guard let tokens = env["WARREN_TOKENS_FILE"], !tokens.isEmpty else {
            throw Invalid(variable: "WARREN_TOKENS_FILE", reason: "required: a file of 'TEAM SHA256HEX' lines")
        }
        config.tokensFile = tokens
        config.allowNoTeams = try flag(env, "WARREN_ALLOW_NO_TEAMS", meaning: "allow a tokens file without any team")
        config.blueprintsFile = try readableFile(env, "WARREN_BLUEPRINTS_FILE")
        if let bytes = env["WARREN_MAX_BODY_BYTES"] {
            config.maxBodyBytes = try integer(bytes, variable: "WARREN_MAX_BODY_BYTES", in: 1024...(64 << 20))
        }
        if let connections = env["WARREN_MAX_CONNECTIONS"] {
            config.maxConnections = try integer(connections, variable: "WARREN_MAX_CONNECTIONS", in: 1...1_000_000)
        }
        if let level = env["WARREN_LOG_LEVEL"] {
            guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(level) else {
                throw Invalid(variable: "WARREN_LOG_LEVEL", reason: "expected trace, debug, info, notice, warning, error or critical")
            }
            config.logLevel = level
        }
        if let interval = env["WARREN_SWEEP_INTERVAL_SECONDS"] {
            config.sweepIntervalSeconds = try integer(interval, variable: "WARREN_SWEEP_INTERVAL_SECONDS", in: 1...86_400)
        }
        if let interval = env["WARREN_USAGE_INTERVAL_SECONDS"] {
            config.usageIntervalSeconds = try integer(interval, variable: "WARREN_USAGE_INTERVAL_SECONDS", in: 1...86_400)
        }
        if let grace = env["WARREN_SWEEP_GRACE_SECONDS"] {
            config.sweepGraceSeconds = try integer(grace, variable: "WARREN_SWEEP_GRACE_SECONDS", in: 1...86_400)
        }
        if let deadline = env["WARREN_CREATE_DEADLINE_SECONDS"] {
            config.createDeadlineSeconds = try integer(deadline, variable: "WARREN_CREATE_DEADLINE_SECONDS", in: 1...3_600)
        }
        if let quota = env["WARREN_MAX_ENVIRONMENTS_PER_TEAM"] {
            config.maxEnvironmentsPerTeam = try integer(quota, variable: "WARREN_MAX_ENVIRONMENTS_PER_TEAM", in: 1...100_000)
        }
        try config.readCeilings(env)
        if let value = env["WARREN_HEADER_TIMEOUT_MS"] {
            config.headerTimeoutMilliseconds = try integer(value, variable: "WARREN_HEADER_TIMEOUT_MS", in: 100...600_000)
        }
        if let value = env["WARREN_BODY_TIMEOUT_MS"] {
            config.bodyTimeoutMilliseconds = try integer(value, variable: "WARREN_BODY_TIMEOUT_MS", in: 100...600_000)
        }
        if let value = env["WARREN_IDLE_TIMEOUT_MS"] {
            config.idleTimeoutMilliseconds = try integer(value, variable: "WARREN_IDLE_TIMEOUT_MS", in: 100...3_600_000)
        }
        try config.readOSB(env)
        return config
    }

    /// The operator's ceilings (see `Ceilings`): each variable sets one, the rest keep their
    /// defaults.
    private mutating func readCeilings(_ env: [String: String]) throws(Invalid) {
        for setting in Ceilings.settings {
            let variable = "WARREN_CEILING_" + setting.name.uppercased()
            guard let text = env[variable] else { continue }
            ceilings[keyPath: setting.key] = try Self.integer(text, variable: variable, in: setting.range)
        }
    }

    /// The secret must be long enough that binding passwords cannot be guessed from it: 32
    /// bytes, the size of the HMAC-SHA256 key that derives them.
    static let minimumOSBSecretBytes = 32

    private mutating func readOSB(_ env: [String: String]) throws(Invalid) {
        osbPlatformsFile = try Self.readableFile(env, "WARREN_OSB_PLATFORMS_FILE")
        guard let path = env["WARREN_OSB_SECRET_FILE"] else {
            if osbPlatformsFile != nil {
                throw Invalid(variable: "WARREN_OSB_SECRET_FILE", reason: "required when WARREN_OSB_PLATFORMS_FILE is set: binding passwords are derived from it")
            }
            return
        }
        let secret = Array(try Self.readSecret(path, variable: "WARREN_OSB_SECRET_FILE").utf8)
        guard secret.count >= Self.minimumOSBSecretBytes else {
            throw Invalid(variable: "WARREN_OSB_SECRET_FILE", reason: "the secret must be at least \(Self.minimumOSBSecretBytes) bytes (e.g. `openssl rand -hex 32`); got \(secret.count)")
        }
        osbSecret = secret
        if let previousPath = env["WARREN_OSB_PREVIOUS_SECRET_FILE"] {
            let previous = Array(try Self.readSecret(previousPath, variable: "WARREN_OSB_PREVIOUS_SECRET_FILE").utf8)
            guard previous != secret else {
                throw Invalid(variable: "WARREN_OSB_PREVIOUS_SECRET_FILE", reason: "it holds the same secret as WARREN_OSB_SECRET_FILE: a rotation needs the new secret there and the old one here")
            }
            osbPreviousSecret = previous
        }
        osbAllowUnverifiedSeals = try Self.flag(env, "WARREN_OSB_ALLOW_UNVERIFIED_SEALS", meaning: "start although records are sealed with another secret")
    }

    /// An operator's explicit yes: `1`, or `0`/unset for no. Only the two spellings: "yes" or
    /// "true" read as allowed would be a guess.
    private static func flag(_ env: [String: String], _ variable: String, meaning: String) throws(Invalid) -> Bool {
        switch env[variable] {
        case nil, "0"?: return false
        case "1"?: return true
        case let other?: throw Invalid(variable: variable, reason: "expected 1 (\(meaning)) or 0, got '\(other)'")
        }
    }

    /// The longest one broker call can take: the management timeout, once per node tried.
    var longestCallMilliseconds: Int {
        managementTimeoutMilliseconds * managementURLs.count
    }

    private static func readableFile(_ env: [String: String], _ variable: String) throws(Invalid) -> String? {
        guard let path = env[variable] else { return nil }
        guard access(path, R_OK) == 0 else { throw Invalid(variable: variable, reason: "cannot read \(path)") }
        return path
    }

    private static func hostPort(_ text: String, variable: String) throws(Invalid) -> (String, Int) {
        guard let colon = text.lastIndex(of: ":") else {
            throw Invalid(variable: variable, reason: "expected HOST:PORT, got '\(text)'")
        }
        let host = String(text[..<colon])
        var addr = in_addr()
        guard inet_pton(AF_INET, host, &addr) == 1 else {
            throw Invalid(variable: variable, reason: "expected an IPv4 address before the port, got '\(host)'")
        }
        return (host, try integer(String(text[text.index(after: colon)...]), variable: variable, in: 0...65535))
    }

    private static func integer(_ text: String, variable: String, in range: ClosedRange<Int>) throws(Invalid) -> Int {
        guard let value = Int(text), range.contains(value) else {
            throw Invalid(variable: variable, reason: "expected a whole number from \(range.lowerBound) to \(range.upperBound), got '\(text)'")
        }
        return value
    }

    private static func readSecret(_ path: String, variable: String) throws(Invalid) -> String {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path)) else {
            throw Invalid(variable: variable, reason: "cannot read \(path)")
        }
        // Editors and `echo` add a final newline that is not part of the secret.
        let secret = String(decoding: data, as: UTF8.self).trimmed
        guard !secret.isEmpty else { throw Invalid(variable: variable, reason: "\(path) is empty") }
        return secret
    }
}

extension String {
    var trimmed: String {
        String(self.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}
