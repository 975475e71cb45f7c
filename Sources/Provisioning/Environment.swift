/// An environment as Warren knows it from the broker: its record plus where it lives.
public struct Environment: Sendable, Hashable {
    public var team: String
    public var vhost: String
    public var spec: EnvironmentSpec
    public var createdAt: String
    /// The Open Service Broker instance this environment is, when a platform provisioned it.
    public var platform: PlatformInstance?
    /// The blueprint whose ceilings it has, when that blueprint has ceilings of its own.
    public var tier: String?

    public var name: String { spec.name }

    public init(team: String, vhost: String, spec: EnvironmentSpec, createdAt: String, platform: PlatformInstance? = nil) {
        self.team = team
        self.vhost = vhost
        self.spec = spec
        self.createdAt = createdAt
        self.platform = platform
    }

    init(record: EnvironmentRecord, vhost: String) {
        self.init(team: record.team, vhost: vhost, spec: record.spec, createdAt: record.createdAt, platform: record.platform)
        tier = record.tier
    }
}

/// Credentials issued by a create. The password exists only here and in the API response.
public struct IssuedCredentials: Sendable, Hashable {
    public var username: String
    public var password: String
    public var role: Role

    public init(username: String, password: String, role: Role = .full) {
        self.username = username
        self.password = password
        self.role = role
    }
}

public struct CreateResult: Sendable {
    public var environment: Environment
    /// One set for each role asked for, in that order.
    public var credentials: [IssuedCredentials]
    /// False when the environment already existed with the same spec (a repeated create).
    public var created: Bool
    /// True when the environment is still being made in the background (an asynchronous
    /// create): its record says `creating`, and these credentials work once it is `ready`.
    public var pending = false
}

/// One environment checked against the broker: which of its parts exist right now.
public struct EnvironmentHealth: Sendable {
    public struct Resources: Sendable, Hashable {
        public var vhost = true
        public var exchange: Bool
        public var queue: Bool
        public var binding: Bool
        public var user: Bool

        /// The API names of the parts that are missing, in a fixed order.
        public var missing: [String] {
            [("vhost", vhost), ("exchange", exchange), ("queue", queue), ("binding", binding), ("user", user)]
                .filter { !$0.1 }.map(\.0)
        }
    }

    public var environment: Environment
    /// The users Warren made for this environment that still hold permissions on its vhost,
    /// by name, with their role.
    public var users: [(name: String, role: Role)]
    public var resources: Resources
    /// Users due to be revoked (by the janitor) at the given RFC 3339 time.
    public var revocations: [String: String]
    /// Where the environment is in its life (`deleting` once a DELETE has begun).
    public var state: EnvironmentRecord.State
    /// Why an asynchronous create failed (state `failed`).
    public var failureReason: String?
    /// Why the environment's record cannot be trusted, when it cannot: then nothing else here
    /// comes from the record (`environment.spec` is the default for the name) and Warren
    /// changes nothing of it.
    public var recordProblem: String?

    public var isComplete: Bool { resources.missing.isEmpty && recordProblem == nil }

    init(
        environment: Environment, users: [(name: String, role: Role)], resources: Resources,
        revocations: [String: String], state: EnvironmentRecord.State
    ) {
        self.environment = environment
        self.users = users
        self.resources = resources
        self.revocations = revocations
        self.state = state
    }

    /// What stands for a time a record that cannot be trusted would have given: the epoch.
    static let unknownTime = "1970-01-01T00:00:00Z"

    /// An environment whose record cannot be trusted: only its users (found by name) and the
    /// reason; every part the record would name counts as missing.
    init(invalid environment: Environment, users: [(name: String, role: Role)], reason: String) {
        self.init(
            environment: environment, users: users,
            resources: Resources(exchange: false, queue: false, binding: false, user: !users.isEmpty), revocations: [:], state: .ready)
        recordProblem = reason
    }
}
