import WireFormat

/// A policy as the broker lists it (operator policies and user policies alike).
public struct PolicyInfo: Sendable, Hashable {
    public var vhost: String
    public var name: String
    public var pattern: String
    public var priority: Int
    public var applyTo: String
    public var definition: [String: JSONValue]

    public init(vhost: String, name: String, pattern: String, priority: Int = 0, applyTo: String = "queues", definition: [String: JSONValue]) {
        self.vhost = vhost
        self.name = name
        self.pattern = pattern
        self.priority = priority
        self.applyTo = applyTo
        self.definition = definition
    }
}

/// One node's alarms and the resources they watch (bytes).
public struct NodeInfo: Sendable, Hashable {
    public var name: String
    public var memoryAlarm: Bool
    public var diskAlarm: Bool
    public var memoryUsed: Int?
    public var memoryLimit: Int?
    public var diskFree: Int?
    public var diskFreeLimit: Int?

    public init(
        name: String, memoryAlarm: Bool = false, diskAlarm: Bool = false, memoryUsed: Int? = nil, memoryLimit: Int? = nil,
        diskFree: Int? = nil, diskFreeLimit: Int? = nil
    ) {
        self.name = name
        self.memoryAlarm = memoryAlarm
        self.diskAlarm = diskAlarm
        self.memoryUsed = memoryUsed
        self.memoryLimit = memoryLimit
        self.diskFree = diskFree
        self.diskFreeLimit = diskFreeLimit
    }
}

/// What one vhost's queues hold.
public struct QueueTotals: Sendable, Hashable {
    public var queues = 0
    public var messages = 0
    public var messageBytes = 0

    public init(queues: Int = 0, messages: Int = 0, messageBytes: Int = 0) {
        self.queues = queues
        self.messages = messages
        self.messageBytes = messageBytes
    }
}

extension PolicyInfo {
    init(json: JSONValue) throws(ManagementError) {
        let f = try JSONFields(json, what: "policy")
        self.init(
            vhost: try f.string("vhost"), name: try f.string("name"), pattern: try f.string("pattern"),
            priority: f.int("priority") ?? 0, applyTo: f.optionalString("apply-to") ?? "all", definition: f.object("definition"))
    }
}

extension NodeInfo {
    init(json: JSONValue) throws(ManagementError) {
        let f = try JSONFields(json, what: "node")
        self.init(
            name: try f.string("name"), memoryAlarm: f.bool("mem_alarm", default: false), diskAlarm: f.bool("disk_free_alarm", default: false),
            memoryUsed: f.int("mem_used"), memoryLimit: f.int("mem_limit"), diskFree: f.int("disk_free"),
            diskFreeLimit: f.int("disk_free_limit"))
    }
}

/// One queue's figures as the broker's statistics show them (they lag by its stats interval,
/// 5 s by default). A queue declared in the last seconds has none yet: its counts and rates
/// are then 0 (RabbitMQ 3.10 shows a new quorum queue's counts only after about 10 s).
public struct QueueStatistics: Sendable, Hashable {
    public var name: String
    public var messagesReady: Int
    public var messagesUnacknowledged: Int
    public var consumers: Int
    /// Messages per second, published to the queue and delivered from it (consumed or fetched).
    public var publishRate: Double
    public var deliverRate: Double

    public init(
        name: String, messagesReady: Int = 0, messagesUnacknowledged: Int = 0, consumers: Int = 0,
        publishRate: Double = 0, deliverRate: Double = 0
    ) {
        self.name = name
        self.messagesReady = messagesReady
        self.messagesUnacknowledged = messagesUnacknowledged
        self.consumers = consumers
        self.publishRate = publishRate
        self.deliverRate = deliverRate
    }
}

extension QueueStatistics {
    /// The columns `ManagementClient.queueStatistics(vhost:)` asks for. Nested fields are named
    /// by dotted paths, which the management API takes on 3.10, 4.0 and 4.3 alike.
    static let columns = "name,messages_ready,messages_unacknowledged,consumers,"
        + "message_stats.publish_details.rate,message_stats.deliver_get_details.rate"

    init(json: JSONValue) throws(ManagementError) {
        let f = try JSONFields(json, what: "queue")
        let stats = f.object("message_stats")
        func rate(_ key: String) -> Double {
            switch stats[key]?["rate"] {
            case .number(let value)?: value.isFinite ? max(0, value) : 0
            case .int(let value)?: Double(max(0, value))
            default: 0
            }
        }
        self.init(
            name: try f.string("name"), messagesReady: max(0, f.int("messages_ready") ?? 0),
            messagesUnacknowledged: max(0, f.int("messages_unacknowledged") ?? 0), consumers: max(0, f.int("consumers") ?? 0),
            publishRate: rate("publish_details"), deliverRate: rate("deliver_get_details"))
    }
}
