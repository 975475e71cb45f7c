import BrokerState
import EnvironmentModel
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
    /// Whether the broker protects the vhost from deletion right now; nil when it does not say
    /// (a release before 4.1, which cannot).
    public var brokerProtected: Bool?

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
