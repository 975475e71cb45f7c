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

    package init(record: EnvironmentRecord, vhost: String) {
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
