import EnvironmentModel
import Provisioning
import WireFormat

/// Response bodies, mirroring the schemas in openapi.yaml (keys are snake_cased on encoding).
struct ExchangeBody: Encodable {
    var name: String
    var type: String
    var durable = true
}

/// A queue with the settings it was given, each as `QueueSetting.answerField` names it
/// (absent ones are left out).
struct QueueBody: Encodable {
    var name: String
    var durable = true
    var settings: [String: JSONValue]

    init(_ queue: EnvironmentSpec.Queue) {
        name = queue.name
        settings = queue.answerFields
    }

    private typealias Key = StringCodingKey

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(name, forKey: Key("name"))
        try container.encode(durable, forKey: Key("durable"))
        for (field, value) in settings { try container.encode(value, forKey: Key(field)) }
    }
}

struct BindingBody: Encodable {
    var queue: String
    var routingKey: String
    var arguments: [String: String]?

    init(_ binding: EnvironmentSpec.Binding) {
        queue = binding.queue
        routingKey = binding.routingKey
        arguments = binding.arguments.isEmpty ? nil : binding.arguments
    }
}

/// Limits as asked (a blueprint's), or in force (an environment's: every field, the
/// operator's ceilings included).
struct LimitsBody: Encodable {
    var maxQueues: Int?
    var maxConnections: Int?
    var maxBytes: Int?
    var maxQueueBytes: Int?
    var maxQueueLength: Int?
    var maxUsers: Int?
    var maxUserConnections: Int?
    var maxUserChannels: Int?

    static func of(_ limits: EnvironmentSpec.Limits) -> LimitsBody? {
        limits.isEmpty ? nil : LimitsBody(maxQueues: limits.maxQueues, maxConnections: limits.maxConnections, maxBytes: limits.maxBytes)
    }

    static func inForce(_ limits: LimitsInForce) -> LimitsBody {
        LimitsBody(
            maxQueues: limits.maxQueues, maxConnections: limits.maxConnections, maxBytes: limits.maxBytes,
            maxQueueBytes: limits.maxQueueBytes, maxQueueLength: limits.maxQueueLength, maxUsers: limits.maxUsers,
            maxUserConnections: limits.maxUserConnections, maxUserChannels: limits.maxUserChannels)
    }
}

struct CredentialsBody: Encodable {
    var username: String
    var password: String
    var role: String

    init(_ credentials: IssuedCredentials) {
        username = credentials.username
        password = credentials.password
        role = credentials.role.name
    }
}

/// An agent as the create named it: `publish` and `consume` left out when empty.
struct AgentBody: Encodable {
    var name: String
    var publish: [String]?
    var consume: [String]?

    init(_ agent: EnvironmentSpec.Agent) {
        name = agent.name
        publish = agent.publish.isEmpty ? nil : agent.publish
        consume = agent.consume.isEmpty ? nil : agent.consume
    }
}

struct ConnectionBody: Encodable {
    var host: String
    var port: Int
    var vhost: String
    var uri: String
    /// Where a stream protocol client connects (see `StreamConnections`).
    var stream: StreamConnectionBody?
}

struct StreamConnectionBody: Encodable {
    var host: String
    var port: Int
    var uri: String
}

/// Where clients connect: what Warren tells them, not where Warren reaches the broker.
public struct AMQPEndpoint: Sendable {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    func connection(vhost: String, credentials: IssuedCredentials? = nil) -> ConnectionBody {
        var userinfo = ""
        if let credentials {
            userinfo = "\(PercentEncoding.encode(credentials.username)):\(PercentEncoding.encode(credentials.password))@"
        }
        return ConnectionBody(
            host: host, port: port, vhost: vhost,
            uri: "amqp://\(userinfo)\(authority)/\(PercentEncoding.encode(vhost))")
    }

    /// The stream protocol's address on the same host as AMQP, at the broker's stream port.
    func stream(port: Int, vhost: String, credentials: IssuedCredentials? = nil) -> StreamConnectionBody {
        var userinfo = ""
        if let credentials {
            userinfo = "\(PercentEncoding.encode(credentials.username)):\(PercentEncoding.encode(credentials.password))@"
        }
        let authority = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        return StreamConnectionBody(host: host, port: port, uri: "rabbitmq-stream://\(userinfo)\(authority)/\(PercentEncoding.encode(vhost))")
    }

    /// `host:port` as a URI has it (an IPv6 address in brackets).
    var authority: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

/// The topology of a spec as every view shows it (environments and blueprints), encoded flat
/// into the enclosing object.
struct TopologyBody: Encodable {
    var exchange: ExchangeBody
    var queues: [QueueBody]
    var bindings: [BindingBody]
    var limits: LimitsBody?
    var superStreams: [SuperStreamBody]?

    /// `limits`: in force for an environment; nil shows the spec's own (a blueprint's).
    init(_ spec: EnvironmentSpec, limits: LimitsBody? = nil) {
        exchange = ExchangeBody(name: spec.exchange.name, type: spec.exchange.type.rawValue)
        queues = spec.queues.map(QueueBody.init)
        bindings = spec.bindings.map(BindingBody.init)
        self.limits = limits ?? LimitsBody.of(spec.limits)
        superStreams = spec.superStreams.isEmpty ? nil : spec.superStreams.map {
            SuperStreamBody(name: $0.name, partitions: $0.partitions, streams: $0.partitionNames)
        }
    }
}

/// A super stream: its exchange's name, and its partition streams in order.
struct SuperStreamBody: Encodable {
    var name: String
    var partitions: Int
    var streams: [String]
}

/// What every view of an environment shows: its spec and where it lives.
struct EnvironmentSummaryBody: Encodable {
    var id: String
    var name: String
    var team: String
    var vhost: String
    var topology: TopologyBody
    /// The primary queue and its routing key: the single-queue view.
    var queue: QueueBody
    var routingKey: String
    /// Things worth knowing about how the spec was applied.
    var notes: [String]?
    var createdAt: String
    /// The Open Service Broker instance, when a platform provisioned the environment.
    var platform: PlatformBody?
    /// Whether the environment is protected from deletion; always shown.
    var protected: Bool
    /// The agents' roles, when it has some.
    var agents: [AgentBody]?

    func encode(to encoder: any Encoder) throws {
        try topology.encode(to: encoder)
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(protected, forKey: .protected)
        try container.encode(id, forKey: .id)
        try container.encode(name, forKey: .name)
        try container.encode(team, forKey: .team)
        try container.encode(vhost, forKey: .vhost)
        try container.encode(queue, forKey: .queue)
        try container.encode(routingKey, forKey: .routingKey)
        try container.encodeIfPresent(notes, forKey: .notes)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encodeIfPresent(platform, forKey: .platform)
        try container.encodeIfPresent(agents, forKey: .agents)
    }

    enum Keys: String, CodingKey { case id, name, team, vhost, queue, routingKey, notes, createdAt, platform, protected, agents }

    /// `release`: the broker's, when the environment is protected (see `ProtectionNotes`).
    init(_ environment: Environment, ceilings: Ceilings, release: BrokerVersion?) {
        let spec = environment.spec
        id = environment.name
        name = environment.name
        team = environment.team
        vhost = environment.vhost
        topology = TopologyBody(spec, limits: .inForce(ceilings.inForce(spec.limits)))
        queue = QueueBody(spec.queue)
        routingKey = spec.routingKey
        let priorityNotes = spec.queues.filter { $0.maxPriority != nil }.map {
            $0.type == .classic
                ? "queue \($0.name) is a classic queue with priorities up to \($0.maxPriority ?? 0) (quorum queues take priorities only from RabbitMQ 4.0)"
                : "queue \($0.name) is a quorum queue: messages of priority 5 and above are delivered first (two levels; max_priority sets no more)"
        }
        // A limit without a dead-letter queue drops what passes it: say so, never silently.
        let dropNotes = spec.queues.filter { $0.deliveryLimit != nil && !$0.deadLetter }.map {
            "queue \($0.name) delivers a message at most \($0.deliveryLimit ?? 0) times, then drops it: set dead_letter to keep such messages in \($0.name).dlq"
        }
        // A ceiling reached refuses publishes, unless the team chose to drop the oldest.
        let headNotes = spec.queues.filter { $0.overflow == .dropHead }.map {
            "queue \($0.name) drops its oldest messages when it reaches its max_length or the operator's ceiling (limits.max_queue_length, limits.max_queue_bytes), confirmed ones included"
        }
        let allNotes = priorityNotes + dropNotes + headNotes + ProtectionNotes.release(spec.protected, release)
        notes = allNotes.isEmpty ? nil : allNotes
        createdAt = environment.createdAt
        platform = environment.platform.map { PlatformBody(instanceId: $0.instanceID, platform: $0.platform, planId: $0.planID) }
        protected = spec.protected
        agents = spec.agents.isEmpty ? nil : spec.agents.map(AgentBody.init)
    }

    /// Adds notes after the summary's own.
    mutating func note(_ more: [String]) {
        guard !more.isEmpty else { return }
        notes = (notes ?? []) + more
    }
}

/// Which Open Service Broker instance an environment is (its context stays in the record).
struct PlatformBody: Encodable {
    var instanceId: String
    var platform: String
    var planId: String
}

struct EnvironmentListBody: Encodable {
    var items: [EnvironmentSummaryBody]
}

/// The answer to a create: everything a client needs to connect, the passwords included.
struct CreatedEnvironmentBody: Encodable {
    var summary: EnvironmentSummaryBody
    var status = "ready"
    var credentials: CredentialsBody
    var connection: ConnectionBody
    /// Extra credentials asked for with `roles`, and each agent's, by role.
    var roleCredentials: [String: CredentialsBody]?
    /// One Secret per set issued, when `?secret=kubernetes` asked for them; absent otherwise.
    var kubernetesSecrets: [KubernetesSecret]?

    init(_ result: CreateResult, endpoint: AMQPEndpoint, ceilings: Ceilings, release: BrokerVersion?, secrets: SecretRequest? = nil) {
        summary = EnvironmentSummaryBody(result.environment, ceilings: ceilings, release: release)
        status = result.pending ? "creating" : "ready"
        let full = result.credentials.first { $0.role == .full } ?? result.credentials[0]
        credentials = CredentialsBody(full)
        connection = endpoint.connection(vhost: summary.vhost, credentials: full)
        let others = result.credentials.filter { $0.role != .full }
        roleCredentials = others.isEmpty ? nil : Dictionary(others.map { ($0.role.name, CredentialsBody($0)) }, uniquingKeysWith: { a, _ in a })
        // Every set issued, whatever its role, in the order the answer issued them.
        kubernetesSecrets = secrets?.render(result.credentials.map {
            KubernetesSecret.Source(environment: result.environment.name, vhost: summary.vhost, credentials: $0, endpoint: endpoint)
        })
    }

    func encode(to encoder: any Encoder) throws {
        try summary.encode(to: encoder)
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(status, forKey: .status)
        try container.encode(credentials, forKey: .credentials)
        try container.encode(connection, forKey: .connection)
        try container.encodeIfPresent(roleCredentials, forKey: .roleCredentials)
        try container.encodeIfPresent(kubernetesSecrets, forKey: .kubernetesSecrets)
    }

    enum Keys: String, CodingKey { case status, credentials, connection, roleCredentials, kubernetesSecrets }
}

/// The answer to GET of one environment: what exists on the broker now. Never a password
/// (but a reconcile that had to make a new user adds its credentials).
struct EnvironmentDetailBody: Encodable {
    struct Resources: Encodable {
        var vhost, exchange, queue, binding, user: Bool
    }

    var summary: EnvironmentSummaryBody
    var status: String
    var users: [String]
    var userRoles: [String: String]
    var revocations: [String: String]?
    var resources: Resources
    var missing: [String]
    var connection: ConnectionBody
    var credentials: CredentialsBody?
    /// Why the record cannot be trusted, when it cannot (status `degraded`).
    var reason: String?

    init(_ health: EnvironmentHealth, endpoint: AMQPEndpoint, ceilings: Ceilings, release: BrokerVersion?) {
        summary = EnvironmentSummaryBody(health.environment, ceilings: ceilings, release: release)
        summary.note(ProtectionNotes.drift(health, release: release))
        status = switch health.state {
        case .deleting: "deleting"
        case .failed: "failed"
        // Not yet complete is not degraded while the create is under way.
        case .creating where health.recordProblem == nil: "creating"
        case .creating, .ready: health.isComplete ? "ready" : "degraded"
        }
        users = health.users.map(\.name)
        userRoles = Dictionary(health.users.map { ($0.name, $0.role.name) }, uniquingKeysWith: { a, _ in a })
        revocations = health.revocations.isEmpty ? nil : health.revocations
        let r = health.resources
        resources = Resources(vhost: r.vhost, exchange: r.exchange, queue: r.queue, binding: r.binding, user: r.user)
        missing = r.missing
        connection = endpoint.connection(vhost: summary.vhost)
        reason = health.recordProblem.map { "the environment's record cannot be trusted (\($0)); Warren changes nothing of it until an operator has looked" }
            ?? health.failureReason.map { "the create could not finish: \($0); DELETE removes what is left" }
    }

    func encode(to encoder: any Encoder) throws {
        try summary.encode(to: encoder)
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(status, forKey: .status)
        try container.encode(users, forKey: .users)
        try container.encode(userRoles, forKey: .userRoles)
        try container.encodeIfPresent(revocations, forKey: .revocations)
        try container.encode(resources, forKey: .resources)
        try container.encode(missing, forKey: .missing)
        try container.encode(connection, forKey: .connection)
        try container.encodeIfPresent(credentials, forKey: .credentials)
        try container.encodeIfPresent(reason, forKey: .reason)
    }

    enum Keys: String, CodingKey { case status, users, userRoles, revocations, resources, missing, connection, credentials, reason }
}

/// What answers say of a protected environment's protection besides `protected: true`, in
/// `notes`: where the broker's release cannot protect a vhost (before RabbitMQ 4.1), that Warren
/// alone does; where it can, and a GET finds a ready environment's vhost unprotected on the
/// broker right now, that reconcile puts the broker's protection back (a create puts it in
/// place last, so one still `creating` is not said to lack it).
enum ProtectionNotes {
    /// The broker's release, read (once per process, then kept) only when one of the
    /// environments is protected: an answer about unprotected ones costs no broker call more.
    static func release(of environments: [Environment], _ provisioner: Provisioner) async throws -> BrokerVersion? {
        guard environments.contains(where: \.spec.protected) else { return nil }
        return try await provisioner.brokerRelease()
    }

    static func release(_ protected: Bool, _ release: BrokerVersion?) -> [String] {
        guard protected, let release, !BrokerRelease.protectsVhosts(release) else { return [] }
        return ["protected by Warren alone: this broker runs RabbitMQ \(release), which cannot protect a vhost from deletion (4.1 and later can), so a delete made on the broker itself (rabbitmqctl delete_vhost, the management API) is not refused"]
    }

    static func drift(_ health: EnvironmentHealth, release: BrokerVersion?) -> [String] {
        guard health.environment.spec.protected, let release, BrokerRelease.protectsVhosts(release),
              health.brokerProtected == false, health.state == .ready
        else { return [] }
        return ["the broker does not protect this environment's vhost from deletion right now (lifted on the broker, or a protection whose broker half did not finish): Warren still refuses to delete it, and POST /v1/environments/\(health.environment.name)/reconcile protects it on the broker again"]
    }
}
