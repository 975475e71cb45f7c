/// What a team asks for: the topology of one environment. Validated by the API layer
/// (`EnvironmentSpec.validate`) before anything reaches the broker.
public struct EnvironmentSpec: Sendable, Hashable, Codable {
    public enum ExchangeType: String, Sendable, Codable, CaseIterable {
        case direct, topic, fanout, headers
    }

    public enum QueueType: String, Sendable, Codable, CaseIterable {
        case quorum, classic
    }

    public struct Exchange: Sendable, Hashable, Codable {
        public var name: String
        public var type: ExchangeType
        public init(name: String, type: ExchangeType) {
            self.name = name
            self.type = type
        }
    }

    public struct Queue: Sendable, Hashable, Codable {
        public var name: String
        public var type: QueueType
        public init(name: String, type: QueueType) {
            self.name = name
            self.type = type
        }
    }

    public var name: String
    public var exchange: Exchange
    public var queue: Queue
    public var routingKey: String

    /// Defaults follow the original design: a durable direct exchange and a durable queue
    /// (quorum: it survives restarts and works in a cluster), all named after the environment.
    public init(
        name: String,
        exchange: Exchange? = nil,
        queue: Queue? = nil,
        routingKey: String? = nil
    ) {
        self.name = name
        self.exchange = exchange ?? Exchange(name: name, type: .direct)
        self.queue = queue ?? Queue(name: name, type: .quorum)
        self.routingKey = routingKey ?? name
    }

    enum CodingKeys: String, CodingKey {
        case name, exchange, queue
        case routingKey = "routing_key"
    }

    /// The fields whose values differ between two specs, named as in the API ("queue.type").
    public func differences(from other: EnvironmentSpec) -> [String] {
        var fields: [String] = []
        if name != other.name { fields.append("name") }
        if exchange.name != other.exchange.name { fields.append("exchange.name") }
        if exchange.type != other.exchange.type { fields.append("exchange.type") }
        if queue.name != other.queue.name { fields.append("queue.name") }
        if queue.type != other.queue.type { fields.append("queue.type") }
        if routingKey != other.routingKey { fields.append("routing_key") }
        return fields
    }
}
