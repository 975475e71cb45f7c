import Provisioning
import WireFormat

/// Decodes the topology part of a request body (exchange, queues, bindings, limits), shared by
/// create, PATCH and blueprint files.
enum TopologyFields {
    static let queueKeys: Set<String> = [
        "name", "type", "delivery_limit", "dead_letter", "message_ttl_ms", "max_length", "overflow",
        "single_active_consumer", "max_priority",
    ]

    static func exchange(_ object: [String: JSONValue], defaultName: String, errors: inout [Problem.FieldError]) -> EnvironmentSpec.Exchange {
        var fields = JSONFields(object, path: "exchange.")
        let name = fields.string("name")
        let type = fields.choice("type", EnvironmentSpec.ExchangeType.self)
        fields.rejectUnknown(allowed: ["name", "type"])
        errors += fields.errors
        return EnvironmentSpec.Exchange(name: name ?? defaultName, type: type ?? .direct)
    }

    /// One queue object. A queue names no type is quorum; one that asks for priorities is made
    /// classic where the broker's quorum queues have none (see `EnvironmentSpec.explicit`).
    static func queue(_ object: [String: JSONValue], path: String, defaultName: String?, errors: inout [Problem.FieldError]) -> EnvironmentSpec.Queue {
        var fields = JSONFields(object, path: path)
        let name = fields.string("name", required: defaultName == nil)
        let type = fields.choice("type", EnvironmentSpec.QueueType.self)
        let priority = fields.integer("max_priority")
        let queue = EnvironmentSpec.Queue(
            name: name ?? defaultName ?? "",
            type: type ?? .quorum,
            deliveryLimit: fields.integer("delivery_limit"),
            deadLetter: fields.bool("dead_letter") ?? false,
            messageTTLMilliseconds: fields.integer("message_ttl_ms"),
            maxLength: fields.integer("max_length"),
            overflow: fields.choice("overflow", EnvironmentSpec.Overflow.self),
            singleActiveConsumer: fields.bool("single_active_consumer") ?? false,
            maxPriority: priority)
        fields.rejectUnknown(allowed: queueKeys)
        errors += fields.errors
        return queue
    }

    static func queues(_ items: [JSONValue], errors: inout [Problem.FieldError]) -> [EnvironmentSpec.Queue] {
        items.enumerated().compactMap { index, item in
            guard case .object(let object) = item else {
                errors.append(Problem.FieldError(field: "queues[\(index)]", reason: "must be an object"))
                return nil
            }
            return queue(object, path: "queues[\(index)].", defaultName: nil, errors: &errors)
        }
    }

    static func bindings(_ items: [JSONValue], errors: inout [Problem.FieldError]) -> [EnvironmentSpec.Binding] {
        items.enumerated().compactMap { index, item in
            guard case .object(let object) = item else {
                errors.append(Problem.FieldError(field: "bindings[\(index)]", reason: "must be an object"))
                return nil
            }
            var fields = JSONFields(object, path: "bindings[\(index)].")
            let queue = fields.string("queue", required: true)
            let key = fields.string("routing_key")
            let arguments = fields.stringMap("arguments")
            fields.rejectUnknown(allowed: ["queue", "routing_key", "arguments"])
            errors += fields.errors
            guard let queue else { return nil }
            return EnvironmentSpec.Binding(queue: queue, routingKey: key ?? "", arguments: arguments ?? [:])
        }
    }

    static func limits(_ object: [String: JSONValue], errors: inout [Problem.FieldError]) -> EnvironmentSpec.Limits {
        var fields = JSONFields(object, path: "limits.")
        let limits = EnvironmentSpec.Limits(maxQueues: fields.integer("max_queues"), maxConnections: fields.integer("max_connections"))
        fields.rejectUnknown(allowed: ["max_queues", "max_connections"])
        errors += fields.errors
        return limits
    }

    /// Bindings for queues given without any: each bound by its own name (fanout and headers
    /// exchanges ignore the key; a headers binding without headers takes every message).
    static func defaultBindings(for queues: [EnvironmentSpec.Queue]) -> [EnvironmentSpec.Binding] {
        queues.map { EnvironmentSpec.Binding(queue: $0.name, routingKey: $0.name) }
    }
}
