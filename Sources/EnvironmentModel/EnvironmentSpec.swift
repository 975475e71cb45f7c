/// What a team asks for: the topology of one environment. Validated before anything reaches
/// the broker (`validate()`); turned into broker objects by `Topology`.
public struct EnvironmentSpec: Sendable, Hashable, Codable {
    public enum ExchangeType: String, Sendable, Codable, CaseIterable {
        case direct, topic, fanout, headers
    }

    public enum QueueType: String, Sendable, Codable, CaseIterable {
        /// An append-only log (RabbitMQ 3.9 and later): consumers read from an offset, and
        /// messages stay until retention (`max_age_seconds`, `max_length_bytes`) removes them.
        case quorum, classic, stream
    }

    /// What a full queue does with one more message (RabbitMQ's `x-overflow`).
    public enum Overflow: String, Sendable, Codable, CaseIterable {
        case dropHead = "drop-head"
        case rejectPublish = "reject-publish"
        case rejectPublishDLX = "reject-publish-dlx"
    }

    public struct Exchange: Sendable, Hashable, Codable {
        public var name: String
        public var type: ExchangeType
        public init(name: String, type: ExchangeType) {
            self.name = name
            self.type = type
        }
    }

    /// A queue and its settings. What each setting means, how the API, the record and the
    /// broker name it, and what each release does with it is in one table, `QueueSetting.all`
    /// (QueueSettings.swift); its record coding too.
    public struct Queue: Sendable, Hashable, Codable {
        public var name: String
        public var type: QueueType
        /// Quorum only: deliveries of one message before it is dead-lettered (or dropped).
        public var deliveryLimit: Int?
        /// Rejected, expired and over-limit messages go to a queue "{name}.dlq" Warren makes.
        public var deadLetter: Bool
        public var messageTTLMilliseconds: Int?
        public var maxLength: Int?
        public var overflow: Overflow?
        public var singleActiveConsumer: Bool
        /// 1-255. A classic queue takes it as `x-max-priority`; a quorum queue has priorities only
        /// from RabbitMQ 4.0, in two levels (5 and above first) and without this argument, so on
        /// an older broker such a queue is made classic (see `explicit(forMajorVersion:)`).
        public var maxPriority: Int?
        /// How long a delivery may stay unacknowledged before the broker closes the channel.
        public var consumerTimeoutMilliseconds: Int?
        /// Streams only: retention by age (a policy's `max-age`) and by size (`max-length-bytes`),
        /// and the size of one segment file (fixed at declaration: see StreamSettings.swift).
        public var maxAgeSeconds: Int?
        public var maxLengthBytes: Int?
        public var streamMaxSegmentSizeBytes: Int?

        public init(
            name: String, type: QueueType = .quorum, deliveryLimit: Int? = nil, deadLetter: Bool = false,
            messageTTLMilliseconds: Int? = nil, maxLength: Int? = nil, overflow: Overflow? = nil,
            singleActiveConsumer: Bool = false, maxPriority: Int? = nil, consumerTimeoutMilliseconds: Int? = nil
        ) {
            self.name = name
            self.type = type
            self.deliveryLimit = deliveryLimit
            self.deadLetter = deadLetter
            self.messageTTLMilliseconds = messageTTLMilliseconds
            self.maxLength = maxLength
            self.overflow = overflow
            self.singleActiveConsumer = singleActiveConsumer
            self.maxPriority = maxPriority
            self.consumerTimeoutMilliseconds = consumerTimeoutMilliseconds
        }

        /// The queue dead letters go to, when it has one.
        public var deadLetterQueue: String? { deadLetter ? "\(name).dlq" : nil }
    }

    /// A super stream (see SuperStreams.swift): an exchange and `partitions` streams.
    public struct SuperStream: Sendable, Hashable, Codable {
        public var name: String
        public var partitions: Int

        public init(name: String, partitions: Int) {
            self.name = name
            self.partitions = partitions
        }
    }

    public struct Binding: Sendable, Hashable, Codable {
        public var queue: String
        /// The routing key, or topic pattern; ignored by fanout and headers exchanges.
        public var routingKey: String
        /// Headers exchanges only: the headers to match, and "x-match": "all" or "any".
        public var arguments: [String: String]

        public init(queue: String, routingKey: String, arguments: [String: String] = [:]) {
            self.queue = queue
            self.routingKey = routingKey
            self.arguments = arguments
        }

        enum CodingKeys: String, CodingKey {
            case queue, arguments
            case routingKey = "routing_key"
        }
    }

    /// What the team asked for below the operator's ceilings (see `Ceilings.inForce`); a
    /// limit left out is the ceiling. Enforced by the broker.
    public struct Limits: Sendable, Hashable, Codable {
        public var maxQueues: Int?
        public var maxConnections: Int?
        /// Bytes of messages in the environment's queues together.
        public var maxBytes: Int?

        public init(maxQueues: Int? = nil, maxConnections: Int? = nil, maxBytes: Int? = nil) {
            self.maxQueues = maxQueues
            self.maxConnections = maxConnections
            self.maxBytes = maxBytes
        }

        public var isEmpty: Bool { maxQueues == nil && maxConnections == nil && maxBytes == nil }

        /// The fewest bytes an environment may ask for: below this, a queue could not hold one
        /// ordinary message.
        public static let minimumBytes = 1 << 16

        enum CodingKeys: String, CodingKey {
            case maxQueues = "max_queues"
            case maxConnections = "max_connections"
            case maxBytes = "max_bytes"
        }
    }

    public var name: String
    public var exchange: Exchange
    /// At least one; the first is the environment's primary queue.
    public var queues: [Queue]
    public var bindings: [Binding]
    public var limits: Limits
    /// Whether the environment is protected from deletion: Warren refuses to delete it (and
    /// from RabbitMQ 4.1 so does the broker, see `BrokerRelease.protectsVhosts`) until a PATCH
    /// lifts it. Part of the spec, so a create that asks otherwise than the environment stands
    /// is a conflict like any other difference, and racing creates that differ in it are told
    /// apart by their claims.
    public var protected = false
    /// Named roles of an agent system, each with credentials of its own (see `Agent`).
    public var agents: [Agent] = []
    /// Super streams, made at creation; none in records written before they existed.
    public var superStreams: [SuperStream] = []

    /// Defaults follow the original design: a durable direct exchange and a durable queue
    /// (quorum: it survives restarts and works in a cluster), bound with a routing key, all
    /// named after the environment.
    public init(
        name: String,
        exchange: Exchange? = nil,
        queue: Queue? = nil,
        routingKey: String? = nil
    ) {
        let queue = queue ?? Queue(name: name)
        self.init(
            name: name, exchange: exchange ?? Exchange(name: name, type: .direct), queues: [queue],
            bindings: [Binding(queue: queue.name, routingKey: routingKey ?? name)])
    }

    public init(name: String, exchange: Exchange, queues: [Queue], bindings: [Binding], limits: Limits = Limits()) {
        self.name = name
        self.exchange = exchange
        self.queues = queues
        self.bindings = bindings
        self.limits = limits
    }

    /// The primary queue (the first), as the single-queue API shows it.
    public var queue: Queue {
        get { queues[0] }
        set {
            for index in bindings.indices where bindings[index].queue == queues[0].name { bindings[index].queue = newValue.name }
            queues[0] = newValue
        }
    }

    /// The queues a consumer may read: every queue and its dead-letter queue.
    public var consumableQueues: [String] {
        queues.flatMap { [$0.name] + ($0.deadLetterQueue.map { [$0] } ?? []) }
    }

    /// The routing key of the primary queue's first binding ("" when it has none).
    public var routingKey: String {
        get { bindings.first { $0.queue == queues[0].name }?.routingKey ?? "" }
        set {
            if let index = bindings.firstIndex(where: { $0.queue == queues[0].name }) { bindings[index].routingKey = newValue }
        }
    }

    enum CodingKeys: String, CodingKey {
        case name, exchange, queues, bindings, limits, protected, agents
        case superStreams = "super_streams"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        exchange = try container.decode(Exchange.self, forKey: .exchange)
        queues = try container.decode([Queue].self, forKey: .queues)
        bindings = try container.decode([Binding].self, forKey: .bindings)
        limits = try container.decode(Limits.self, forKey: .limits)
        // Records written before protection existed have none: unprotected.
        protected = try container.decodeIfPresent(Bool.self, forKey: .protected) ?? false
        agents = try container.decodeIfPresent([Agent].self, forKey: .agents) ?? []
        superStreams = try container.decodeIfPresent([SuperStream].self, forKey: .superStreams) ?? []
    }

    /// `protected` is written only when true (and `agents` only when there are some), so a spec
    /// without them encodes as it did before the fields existed: its claim hash
    /// (`EnvironmentRecord.claimHash(of:)`) stays the same,
    /// and creates of one spec racing on Warrens of either release still claim alike.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(exchange, forKey: .exchange)
        try container.encode(queues, forKey: .queues)
        try container.encode(bindings, forKey: .bindings)
        try container.encode(limits, forKey: .limits)
        if protected { try container.encode(true, forKey: .protected) }
        if !agents.isEmpty { try container.encode(agents, forKey: .agents) }
        // Likewise written only when there are some: the claim hash of every other spec stays.
        if !superStreams.isEmpty { try container.encode(superStreams, forKey: .superStreams) }
    }

    /// The fields whose values differ between two specs, named as in the API ("queues[jobs]").
    public func differences(from other: EnvironmentSpec) -> [String] {
        var fields: [String] = []
        if name != other.name { fields.append("name") }
        if exchange.name != other.exchange.name { fields.append("exchange.name") }
        if exchange.type != other.exchange.type { fields.append("exchange.type") }
        if queues.count == 1, other.queues.count == 1 {
            // The single-queue form: name the fields as that form does.
            let (a, b) = (queues[0], other.queues[0])
            if a.name != b.name { fields.append("queue.name") }
            if a.type != b.type { fields.append("queue.type") }
            var options = a
            (options.name, options.type) = (b.name, b.type)
            // A delivery limit belongs to quorum queues (on RabbitMQ 4 Warren writes in the
            // broker's default): with another type it differs as a consequence, not on its own.
            if a.type != b.type { options.deliveryLimit = b.deliveryLimit }
            if options != b { fields.append("queue") }
        } else {
            let mine = Dictionary(queues.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
            let theirs = Dictionary(other.queues.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
            for name in Set(mine.keys).union(theirs.keys).sorted() where mine[name] != theirs[name] {
                fields.append("queues[\(name)]")
            }
        }
        if bindings.count == 1, other.bindings.count == 1 {
            if bindings[0].routingKey != other.bindings[0].routingKey { fields.append("routing_key") }
            if bindings[0].arguments != other.bindings[0].arguments { fields.append("bindings") }
        } else if Set(bindings) != Set(other.bindings) {
            fields.append("bindings")
        }
        if limits != other.limits { fields.append("limits") }
        if protected != other.protected { fields.append("protected") }
        if agents != other.agents { fields.append("agents") }
        if superStreams != other.superStreams { fields.append("super_streams") }
        return fields
    }
}
