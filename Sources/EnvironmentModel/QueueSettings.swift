import WireFormat

/// Everything Warren knows about one setting of a queue, in one place. The API's decoder, the
/// validation, the answer body, the record, the broker's arguments and policy, the list of
/// what cannot change after creation, the rules of each RabbitMQ release and the test fake
/// all read this table (`QueueSetting.all`), so a setting is added or changed here, and a test
/// holds openapi.yaml's queue schemas to it.
public struct QueueSetting: Sendable {
    /// What values the API takes (openapi.yaml's `type`, `minimum`/`maximum`, `enum`).
    public enum Kind: Sendable, Equatable {
        case integer(ClosedRange<Int>)
        case boolean
        case choice([String])

        /// The JSON Schema type of a value.
        public var schemaType: String {
            switch self {
            case .integer: "integer"
            case .boolean: "boolean"
            case .choice: "string"
            }
        }
    }

    /// Where the broker holds the setting: a queue argument ("x-max-priority"), fixed when the
    /// queue is declared, or a key of the queue's policy ("message-ttl"), which the broker
    /// applies to a queue that exists.
    public struct BrokerKey: Sendable {
        public var key: String
        public var inPolicy: Bool
        /// The value for this queue; nil leaves the key out.
        var value: @Sendable (EnvironmentSpec.Queue, _ deadLetterExchange: String) -> JSONValue?

        static func argument(_ key: String, _ value: @escaping @Sendable (EnvironmentSpec.Queue) -> JSONValue?) -> BrokerKey {
            BrokerKey(key: key, inPolicy: false) { queue, _ in value(queue) }
        }

        static func policy(_ key: String, _ value: @escaping @Sendable (EnvironmentSpec.Queue, String) -> JSONValue?) -> BrokerKey {
            BrokerKey(key: key, inPolicy: true, value: value)
        }

        /// The name the key has as a queue argument: a policy's "message-ttl" is "x-message-ttl".
        public var argumentName: String { inPolicy ? "x-\(key)" : key }
    }

    /// What the RabbitMQ releases do with the setting.
    public enum ReleaseRule: Sendable {
        /// Every release Warren runs on takes it as it is.
        case every
        /// Only this release and later take it; elsewhere a request that sets it is refused
        /// (400), never sent (an older broker refuses the policy key, or ignores the argument).
        case since(BrokerVersion)
        /// The release changes how the queue is made (what the broker would do unasked,
        /// written into the spec, so the record and the answer say it): see `explicit(for:)`.
        case adjusts(@Sendable (inout EnvironmentSpec.Queue, BrokerVersion) -> Void)
    }

    /// The field in API bodies, and the key in the record (the vhost's description).
    public var field: String
    public var kind: Kind
    /// Reads the setting off a queue; nil when it is not set. A setting that is always in the
    /// record (the type, the booleans) never reads nil.
    var read: @Sendable (EnvironmentSpec.Queue) -> JSONValue?
    /// Sets it on a queue; nil (left out of a body) sets the default.
    var write: @Sendable (inout EnvironmentSpec.Queue, JSONValue?) -> Void
    /// Rules beyond the kind's range, as reasons for this field, checked before the range.
    var rules: @Sendable (EnvironmentSpec.Queue) -> [String] = { _ in [] }
    /// The field the answer shows it as (openapi.yaml's `Queue`), its JSON Schema type, and
    /// its value there (nil leaves it out).
    public var answerField: String
    public var answerType: String
    var answer: @Sendable (EnvironmentSpec.Queue) -> JSONValue?
    public var broker: [BrokerKey]
    /// A queue argument: the broker cannot change it on a queue that exists, so a PATCH that
    /// changes it is a 409 (Warren never deletes a queue that may hold messages).
    public var fixedAfterCreation: Bool
    public var release: ReleaseRule

    /// Whether the queue sets it at all (a boolean that is false does not).
    func isSet(on queue: EnvironmentSpec.Queue) -> Bool {
        guard let value = read(queue) else { return false }
        return value != .bool(false)
    }
}

extension QueueSetting {
    /// An optional whole number held in `keyPath`, shown in the answer as it is.
    static func integer(
        _ field: String, _ range: ClosedRange<Int>, _ keyPath: WritableKeyPath<EnvironmentSpec.Queue, Int?> & Sendable,
        broker: [BrokerKey], fixed: Bool = false, release: ReleaseRule = .every,
        rules: @escaping @Sendable (EnvironmentSpec.Queue) -> [String] = { _ in [] }
    ) -> QueueSetting {
        QueueSetting(
            field: field, kind: .integer(range),
            read: { $0[keyPath: keyPath].map(JSONValue.int) }, write: { $0[keyPath: keyPath] = $1?.intValue }, rules: rules,
            answerField: field, answerType: "integer", answer: { $0[keyPath: keyPath].map(JSONValue.int) },
            broker: broker, fixedAfterCreation: fixed, release: release)
    }

    /// The reason of a setting only a quorum queue takes, on any other.
    public static let needsQuorum = "needs a quorum queue"

    /// The table, in the order fields are checked and named (an answer's keys are sorted).
    public static let all: [QueueSetting] = [
        QueueSetting(
            field: "type", kind: .choice(EnvironmentSpec.QueueType.allCases.map(\.rawValue)),
            read: { .string($0.type.rawValue) },
            write: { $0.type = $1?.stringValue.flatMap(EnvironmentSpec.QueueType.init) ?? .quorum },
            answerField: "type", answerType: "string", answer: { .string($0.type.rawValue) },
            broker: [.argument("x-queue-type") { .string($0.type.rawValue) }],
            fixedAfterCreation: true, release: .every),

        .integer(
            "delivery_limit", 1...1_000_000, \.deliveryLimit,
            broker: [.policy("delivery-limit") { queue, _ in queue.deliveryLimit.map(JSONValue.int) }],
            // RabbitMQ 4.0 gave quorum queues a limit of 20 when none is set (see BrokerRelease).
            release: .adjusts { queue, version in
                if queue.type == .quorum, queue.deliveryLimit == nil { queue.deliveryLimit = BrokerRelease.quorumDefaultDeliveryLimit(major: version.major) }
            },
            rules: { $0.type != .quorum ? [QueueSetting.needsQuorum] : [] }),

        // Makes objects of its own ("{queue}.dlq", "{exchange}.dlx": see Topology), and the
        // answer names the queue rather than saying true.
        QueueSetting(
            field: "dead_letter", kind: .boolean,
            read: { .bool($0.deadLetter) }, write: { $0.deadLetter = $1?.boolValue ?? false },
            rules: { $0.type == .stream ? [QueueSetting.notForStreams("nothing is dead-lettered from a stream: messages stay until retention removes them")] : [] },
            answerField: "dead_letter_queue", answerType: "string", answer: { $0.deadLetterQueue.map(JSONValue.string) },
            broker: [
                .policy("dead-letter-exchange") { queue, exchange in queue.deadLetter ? .string(exchange) : nil },
                .policy("dead-letter-routing-key") { queue, _ in queue.deadLetter ? .string(queue.name) : nil },
            ],
            fixedAfterCreation: false, release: .every),

        .integer(
            "message_ttl_ms", 0...(1 << 32), \.messageTTLMilliseconds,
            broker: [.policy("message-ttl") { queue, _ in queue.messageTTLMilliseconds.map(JSONValue.int) }],
            rules: { $0.type == .stream ? [QueueSetting.notForStreams("use max_age_seconds")] : [] }),

        .integer(
            "max_length", 0...(1 << 40), \.maxLength,
            broker: [.policy("max-length") { queue, _ in queue.maxLength.map(JSONValue.int) }],
            rules: { $0.type == .stream ? [QueueSetting.notForStreams("use max_length_bytes")] : [] }),

        QueueSetting(
            field: "overflow", kind: .choice(EnvironmentSpec.Overflow.allCases.map(\.rawValue)),
            read: { $0.overflow.map { .string($0.rawValue) } },
            write: { $0.overflow = $1?.stringValue.flatMap(EnvironmentSpec.Overflow.init) },
            rules: { queue in
                var reasons: [String] = []
                if queue.type == .stream { return [QueueSetting.notForStreams("a stream discards its oldest segments at its retention")] }
                if queue.overflow == .rejectPublishDLX, queue.type == .quorum { reasons.append("reject-publish-dlx needs a classic queue") }
                if queue.overflow != nil, queue.maxLength == nil { reasons.append("needs max_length") }
                return reasons
            },
            answerField: "overflow", answerType: "string", answer: { $0.overflow.map { .string($0.rawValue) } },
            broker: [.policy("overflow") { queue, _ in queue.overflow.map { .string($0.rawValue) } }],
            fixedAfterCreation: false, release: .every),

        .integer(
            "max_priority", 1...255, \.maxPriority,
            // Quorum queues refuse the argument; from 4.0 they order by priority without it.
            broker: [.argument("x-max-priority") { queue in queue.type == .classic ? queue.maxPriority.map(JSONValue.int) : nil }],
            fixed: true,
            // Before 4.0 only a classic queue has priorities: such a queue is made classic.
            release: .adjusts { queue, version in
                if queue.maxPriority != nil, queue.type == .quorum, !BrokerRelease.quorumPriorities(major: version.major) { queue.type = .classic }
            },
            rules: { $0.type == .stream ? [QueueSetting.notForStreams("a stream keeps the order messages came in")] : [] }),

        QueueSetting(
            field: "single_active_consumer", kind: .boolean,
            read: { .bool($0.singleActiveConsumer) }, write: { $0.singleActiveConsumer = $1?.boolValue ?? false },
            rules: { $0.type == .stream ? [QueueSetting.notForStreams("a stream client asks for a single active consumer when it subscribes (stream protocol)")] : [] },
            answerField: "single_active_consumer", answerType: "boolean", answer: { $0.singleActiveConsumer ? .bool(true) : nil },
            broker: [.argument("x-single-active-consumer") { $0.singleActiveConsumer ? .bool(true) : nil }],
            fixedAfterCreation: true, release: .every),

        // How long a delivery may stay unacknowledged before the broker gives up on the
        // consumer (the node's default is 30 minutes; long jobs need more). A policy key, so
        // PATCH changes it in place. As measured: RabbitMQ 3.10 refuses the key in a policy
        // (and ignores the queue argument); 4.0 enforces it on both queue types by closing
        // the channel (checked once a minute); 4.3 enforces it on quorum queues only, at the
        // moment, by cancelling the consumer and returning the message, and ignores it on a
        // classic queue (it refuses the argument there). So quorum queues only, everywhere.
        .integer(
            "consumer_timeout_ms", 1000...604_800_000, \.consumerTimeoutMilliseconds,
            broker: [.policy("consumer-timeout") { queue, _ in queue.consumerTimeoutMilliseconds.map(JSONValue.int) }],
            release: .since(BrokerVersion(major: 3, minor: 12)),
            rules: { $0.type != .quorum ? [QueueSetting.needsQuorum] : [] }),
    ] + QueueSetting.streamSettings
}

extension EnvironmentSpec.Queue {
    /// A queue named `name` with the settings given by API field (the rest their defaults).
    public init(name: String, settings: [String: JSONValue]) {
        self.init(name: name)
        for setting in QueueSetting.all { setting.write(&self, settings[setting.field]) }
    }

    /// The problems of the queue's settings, as (API field, reason): each setting's own rules,
    /// then its range.
    public func problems(field: String) -> [(field: String, reason: String)] {
        var problems: [(field: String, reason: String)] = []
        for setting in QueueSetting.all where setting.isSet(on: self) {
            let name = "\(field).\(setting.field)"
            problems += setting.rules(self).map { (name, $0) }
            if case .integer(let range) = setting.kind, let value = setting.read(self)?.intValue, !range.contains(value) {
                problems.append((name, "must be from \(range.lowerBound) to \(range.upperBound)"))
            }
        }
        return problems
    }

    /// The settings a queue that exists cannot take from `other`: the API fields that differ
    /// and are fixed after creation.
    package func fixedFields(differingFrom other: EnvironmentSpec.Queue) -> [String] {
        QueueSetting.all.filter { $0.fixedAfterCreation && $0.read(self) != $0.read(other) }.map(\.field)
    }

    /// The answer's fields for the queue's settings (those left out are absent).
    public var answerFields: [String: JSONValue] {
        var fields: [String: JSONValue] = [:]
        for setting in QueueSetting.all { fields[setting.answerField] = setting.answer(self) }
        return fields
    }
}

/// The record's coding of a queue (in the vhost's description and the claim queue), keyed by
/// each setting's `field`. It writes exactly what the compiler-made coding of the named fields
/// wrote before the table (the claim's hash is over these bytes): the settings that always have
/// a value (type, booleans) always, the others only when set; and it reads every record that
/// coding wrote, refusing what it refused (a missing type, an unknown overflow).
extension EnvironmentSpec.Queue {
    private typealias Key = StringCodingKey

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        self.init(name: try container.decode(String.self, forKey: Key("name")))
        let defaults = EnvironmentSpec.Queue(name: "")
        for setting in QueueSetting.all {
            let key = Key(setting.field)
            let required = setting.read(defaults) != nil
            // As an optional: absent or null is not set. The others must be there.
            if !required {
                guard container.contains(key), try !container.decodeNil(forKey: key) else { continue }
            }
            let value: JSONValue
            switch setting.kind {
            case .integer: value = .int(try container.decode(Int.self, forKey: key))
            case .boolean: value = .bool(try container.decode(Bool.self, forKey: key))
            case .choice(let choices):
                let text = try container.decode(String.self, forKey: key)
                guard choices.contains(text) else {
                    throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: "\(setting.field) \(text) is not one of \(choices)")
                }
                value = .string(text)
            }
            setting.write(&self, value)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(name, forKey: Key("name"))
        for setting in QueueSetting.all {
            guard let value = setting.read(self) else { continue }
            try container.encode(value, forKey: Key(setting.field))
        }
    }
}
