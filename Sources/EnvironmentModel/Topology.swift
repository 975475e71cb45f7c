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
