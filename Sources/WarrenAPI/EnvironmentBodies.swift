import Provisioning
import RabbitManagement

/// Response bodies, mirroring the schemas in openapi.yaml (keys are snake_cased on encoding).
struct ExchangeBody: Encodable {
    var name: String
    var type: String
    var durable = true
}

struct QueueBody: Encodable {
    var name: String
    var type: String
    var durable = true
}

struct CredentialsBody: Encodable {
    var username: String
    var password: String
}

struct ConnectionBody: Encodable {
    var host: String
    var port: Int
    var vhost: String
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
            userinfo = "\(PathSegment.percentEncode(credentials.username)):\(PathSegment.percentEncode(credentials.password))@"
        }
        let authority = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        return ConnectionBody(
            host: host, port: port, vhost: vhost,
            uri: "amqp://\(userinfo)\(authority)/\(PathSegment.percentEncode(vhost))")
    }
}

struct EnvironmentSummaryBody: Encodable {
    var id: String
    var name: String
    var team: String
    var vhost: String
    var exchange: ExchangeBody
    var queue: QueueBody
    var routingKey: String
    var createdAt: String

    init(_ environment: Environment) {
        let spec = environment.spec
        id = environment.name
        name = environment.name
        team = environment.team
        vhost = environment.vhost
        exchange = ExchangeBody(name: spec.exchange.name, type: spec.exchange.type.rawValue)
        queue = QueueBody(name: spec.queue.name, type: spec.queue.type.rawValue)
        routingKey = spec.routingKey
        createdAt = environment.createdAt
    }
}

struct EnvironmentListBody: Encodable {
    var items: [EnvironmentSummaryBody]
}

/// The answer to a create: everything a client needs to connect, the password included.
struct CreatedEnvironmentBody: Encodable {
    var id, name, team, status, vhost: String
    var exchange: ExchangeBody
    var queue: QueueBody
    var routingKey: String
    var createdAt: String
    var credentials: CredentialsBody
    var connection: ConnectionBody

    init(_ result: CreateResult, endpoint: AMQPEndpoint) {
        let summary = EnvironmentSummaryBody(result.environment)
        id = summary.id
        name = summary.name
        team = summary.team
        status = "ready"
        vhost = summary.vhost
        exchange = summary.exchange
        queue = summary.queue
        routingKey = summary.routingKey
        createdAt = summary.createdAt
        credentials = CredentialsBody(username: result.credentials.username, password: result.credentials.password)
        connection = endpoint.connection(vhost: summary.vhost, credentials: result.credentials)
    }
}

/// The answer to GET of one environment: what exists on the broker now. Never a password.
struct EnvironmentDetailBody: Encodable {
    struct Resources: Encodable {
        var vhost, exchange, queue, binding, user: Bool
    }

    var id, name, team, status, vhost: String
    var exchange: ExchangeBody
    var queue: QueueBody
    var routingKey: String
    var createdAt: String
    var users: [String]
    var resources: Resources
    var missing: [String]
    var connection: ConnectionBody
    /// Only in the answer to a repair that had to make a new user.
    var credentials: CredentialsBody?

    init(_ health: EnvironmentHealth, endpoint: AMQPEndpoint) {
        let summary = EnvironmentSummaryBody(health.environment)
        id = summary.id
        name = summary.name
        team = summary.team
        status = health.isComplete ? "ready" : "degraded"
        vhost = summary.vhost
        exchange = summary.exchange
        queue = summary.queue
        routingKey = summary.routingKey
        createdAt = summary.createdAt
        users = health.users
        let r = health.resources
        resources = Resources(vhost: r.vhost, exchange: r.exchange, queue: r.queue, binding: r.binding, user: r.user)
        missing = r.missing
        connection = endpoint.connection(vhost: summary.vhost)
    }
}
