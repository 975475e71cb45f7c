import WireFormat
/// What the typed calls return. Plain values with public initialisers, so that other modules can
/// build fakes of them.

public struct Overview: Sendable, Hashable {
    public var rabbitmqVersion: String
    public var managementVersion: String?
    public var erlangVersion: String?
    public var clusterName: String?
    public var node: String?

    public init(rabbitmqVersion: String, managementVersion: String? = nil, erlangVersion: String? = nil,
                clusterName: String? = nil, node: String? = nil) {
        self.rabbitmqVersion = rabbitmqVersion
        self.managementVersion = managementVersion
        self.erlangVersion = erlangVersion
        self.clusterName = clusterName
        self.node = node
    }
}

public struct WhoAmI: Sendable, Hashable {
    public var name: String
    public var tags: [String]

    public init(name: String, tags: [String]) {
        self.name = name
        self.tags = tags
    }
}

public struct VhostInfo: Sendable, Hashable {
    public var name: String
    public var description: String
    public var tags: [String]
    /// Node name -> "running", "stopped", ... Empty if the broker did not say.
    public var clusterState: [String: String]
    /// Nil when unset (the broker reports "undefined").
    public var defaultQueueType: String?
    /// Whether the broker refuses to delete the vhost (`protected_from_deletion`, RabbitMQ 4.1
    /// and later); nil when the broker does not say (earlier releases).
    public var protectedFromDeletion: Bool?

    public init(name: String, description: String = "", tags: [String] = [], clusterState: [String: String] = [:],
                defaultQueueType: String? = nil, protectedFromDeletion: Bool? = nil) {
        self.name = name
        self.description = description
        self.tags = tags
        self.clusterState = clusterState
        self.defaultQueueType = defaultQueueType
        self.protectedFromDeletion = protectedFromDeletion
    }

    /// True when every node reports the vhost running: only then can it be used safely.
    public var isRunning: Bool {
        !clusterState.isEmpty && clusterState.values.allSatisfy { $0 == "running" }
    }
}

public struct UserInfo: Sendable, Hashable {
    public var name: String
    public var tags: [String]

    public init(name: String, tags: [String] = []) {
        self.name = name
        self.tags = tags
    }
}

public struct PermissionInfo: Sendable, Hashable {
    public var user: String
    public var vhost: String
    public var configure: String
    public var write: String
    public var read: String

    public init(user: String, vhost: String, configure: String, write: String, read: String) {
        self.user = user
        self.vhost = vhost
        self.configure = configure
        self.write = write
        self.read = read
    }
}

public struct ExchangeInfo: Sendable, Hashable {
    public var vhost: String
    public var name: String
    public var type: String
    public var durable: Bool
    public var autoDelete: Bool
    public var `internal`: Bool
    public var arguments: [String: JSONValue]

    public init(vhost: String = "", name: String, type: String, durable: Bool, autoDelete: Bool = false,
                internal: Bool = false, arguments: [String: JSONValue] = [:]) {
        self.vhost = vhost
        self.name = name
        self.type = type
        self.durable = durable
        self.autoDelete = autoDelete
        self.internal = `internal`
        self.arguments = arguments
    }
}

public struct QueueInfo: Sendable, Hashable {
    public var vhost: String
    public var name: String
    public var durable: Bool
    public var autoDelete: Bool
    /// Owned by one connection (and gone with it).
    public var exclusive: Bool
    public var arguments: [String: JSONValue]
    /// "classic", "quorum", "stream": the broker's `type` field, else `x-queue-type`, else classic.
    public var type: String
    /// Absent right after a declare, until statistics arrive.
    public var messages: Int?
    /// e.g. "running"; absent on some versions right after a declare.
    public var state: String?

    public init(vhost: String = "", name: String, durable: Bool, autoDelete: Bool = false,
                arguments: [String: JSONValue] = [:], type: String = "classic", messages: Int? = nil,
                state: String? = nil, exclusive: Bool = false) {
        self.vhost = vhost
        self.name = name
        self.durable = durable
        self.autoDelete = autoDelete
        self.exclusive = exclusive
        self.arguments = arguments
        self.type = type
        self.messages = messages
        self.state = state
    }
}

public struct BindingInfo: Sendable, Hashable {
    public var vhost: String
    public var source: String
    public var destination: String
    public var destinationType: String
    public var routingKey: String
    /// Names this binding in a binding URL (derived from routing key and arguments by the broker).
    public var propertiesKey: String
    public var arguments: [String: JSONValue]

    public init(vhost: String = "", source: String, destination: String, destinationType: String = "queue",
                routingKey: String, propertiesKey: String, arguments: [String: JSONValue] = [:]) {
        self.vhost = vhost
        self.source = source
        self.destination = destination
        self.destinationType = destinationType
        self.routingKey = routingKey
        self.propertiesKey = propertiesKey
        self.arguments = arguments
    }
}
