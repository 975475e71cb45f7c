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
