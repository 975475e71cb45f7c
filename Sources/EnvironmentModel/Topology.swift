package import RabbitManagement
import WireFormat

/// The broker objects a spec turns into, beyond what the spec names itself: the queue
/// arguments and policy for its options, and for dead-lettering an exchange "{exchange}.dlx"
/// and a queue "{queue}.dlq" per dead-lettering queue, bound by the queue's name.
package struct Topology: Sendable {
    package struct ExchangePlan: Sendable, Hashable {
        package var name: String
        package var type: String
        /// Only a super stream's exchange has one (`x-super-stream`).
        package var arguments: [String: JSONValue] = [:]
    }

    package struct QueuePlan: Sendable, Hashable {
        package var name: String
        package var arguments: [String: JSONValue]
    }

    package struct BindingPlan: Sendable, Hashable {
        package var exchange: String
        package var queue: String
        package var routingKey: String
        package var arguments: [String: JSONValue]
    }

    /// One per queue with settings a policy holds (see Topology+Policies.swift).
    package struct PolicyPlan: Sendable, Hashable {
        package var name: String
        package var pattern: String
        package var definition: [String: JSONValue]
    }

    package var exchanges: [ExchangePlan]
    package var queues: [QueuePlan]
    package var bindings: [BindingPlan]
    package var policies: [PolicyPlan]

    package init(_ spec: EnvironmentSpec) {
        let deadLetterExchange = Topology.deadLetterExchange(of: spec)
        exchanges = [ExchangePlan(name: spec.exchange.name, type: spec.exchange.type.rawValue)]
        queues = []
        policies = []
        bindings = spec.bindings.map { binding in
            BindingPlan(
                exchange: spec.exchange.name, queue: binding.queue, routingKey: binding.routingKey,
                arguments: binding.arguments.mapValues { JSONValue.string($0) })
        }
        if spec.queues.contains(where: \.deadLetter) {
            exchanges.append(ExchangePlan(name: deadLetterExchange, type: EnvironmentSpec.ExchangeType.direct.rawValue))
        }
        for queue in spec.queues {
            queues.append(QueuePlan(name: queue.name, arguments: Topology.arguments(of: queue)))
            let definition = Topology.policyDefinition(of: queue, deadLetterExchange: deadLetterExchange)
            if !definition.isEmpty {
                policies.append(PolicyPlan(name: Topology.policyName(of: queue.name), pattern: "^\(Role.escaped(queue.name))$", definition: definition))
            }
            if let deadLetterQueue = queue.deadLetterQueue {
                queues.append(QueuePlan(name: deadLetterQueue, arguments: ["x-queue-type": .string(queue.type.rawValue)]))
                bindings.append(BindingPlan(exchange: deadLetterExchange, queue: deadLetterQueue, routingKey: queue.name, arguments: [:]))
            }
        }
        addSuperStreams(of: spec)
    }

    /// Every queue Warren declares for this spec, the claim queue included: what a vhost's
    /// max-queues limit must leave room for.
    var queueCount: Int { queues.count + 1 }

    package static func deadLetterExchange(of spec: EnvironmentSpec) -> String {
        "\(spec.exchange.name).dlx"
    }

    /// The queue arguments: only what the broker cannot change on a queue that exists (its
    /// type, priorities, single active consumer: the settings `QueueSetting.all` holds as
    /// arguments). Everything else is in the queue's policy, so it can change in place, and a
    /// client redeclaring the queue with just `x-queue-type` (or, for a classic queue, nothing)
    /// is equivalent. `durable` is not an argument: it is always sent as true.
    static func arguments(of queue: EnvironmentSpec.Queue) -> [String: JSONValue] {
        var arguments: [String: JSONValue] = [:]
        for setting in QueueSetting.all {
            for key in setting.broker where !key.inPolicy {
                if let value = key.value(queue, "") { arguments[key.key] = value }
            }
        }
        return arguments
    }
}

/// What a user of an environment may do. `full` is the default; `producer` may only publish to
/// the environment's exchange; `consumer` may only consume from its queues (dead-letter queues
/// included). The narrowest permissions RabbitMQ can express: "^$" matches no resource name
/// (the default exchange is checked as "amq.default", so it is refused too).
public enum Role: String, Sendable, Hashable, Codable, CaseIterable {
    case full, producer, consumer

    package struct Permissions: Hashable {
        package var configure: String
        package var write: String
        package var read: String
    }

    package func permissions(for spec: EnvironmentSpec) -> Permissions {
        switch self {
        case .full:
            // Everything but Warren's own names ("warren.claim"): a tenant can neither delete
            // nor redeclare nor bind nor read them. PCRE, anchored, with a negative lookahead.
            let all = "^(?!\(Role.escaped(EnvironmentNaming.reservedResourcePrefix))).*"
            return Permissions(configure: all, write: all, read: all)
        case .producer:
            return Permissions(configure: "^$", write: Role.producerWrite(for: spec), read: "^$")
        case .consumer:
            let names = spec.queues.flatMap { [$0.name] + ($0.deadLetterQueue.map { [$0] } ?? []) } + spec.superStreamReads
            return Permissions(configure: "^$", write: "^$", read: "^(\(names.map(Role.escaped).joined(separator: "|")))$")
        }
    }

    /// The role whose permissions these are (anything else with configure rights is `full`,
    /// the `.*` of environments made before Warren's names were kept out of reach included).
    package static func of(_ permission: PermissionInfo) -> Role {
        if permission.configure != "^$" { return .full }
        return permission.write != "^$" ? .producer : .consumer
    }

    /// A name as a literal in a regex: every character that is not a letter or digit gets a
    /// backslash (PCRE allows that for any such character), so "jobs.v1" matches only itself.
    package static func escaped(_ name: String) -> String {
        var out = ""
        for character in name {
            if !(character.isLetter || character.isNumber) || !character.isASCII { out.append("\\") }
            out.append(character)
        }
        return out
    }
}
