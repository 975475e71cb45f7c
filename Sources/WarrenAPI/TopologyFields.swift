import EnvironmentModel
import WireFormat

/// Decodes the topology part of a request body (exchange, queues, bindings, limits), shared by
/// create, PATCH and blueprint files.
enum TopologyFields {
    /// A queue object's fields: its name and each setting of `QueueSetting.all`.
    static let queueKeys: Set<String> = Set(["name"] + QueueSetting.all.map(\.field))

    static func exchange(_ object: [String: JSONValue], defaultName: String, errors: inout [Problem.FieldError]) -> EnvironmentSpec.Exchange {
        var fields = JSONFields(object, path: "exchange.")
        let name = fields.string("name")
        let type = fields.choice("type", EnvironmentSpec.ExchangeType.self)
        fields.rejectUnknown(allowed: ["name", "type"])
        errors += fields.errors
        return EnvironmentSpec.Exchange(name: name ?? defaultName, type: type ?? .direct)
    }

    /// One queue object: each setting read as its `kind` says (a field left out, or of the
    /// wrong type, takes its default). A queue names no type is quorum; one that asks for
    /// priorities is made classic where the broker's quorum queues have none (see
    /// `EnvironmentSpec.explicit`).
    static func queue(_ object: [String: JSONValue], path: String, defaultName: String?, errors: inout [Problem.FieldError]) -> EnvironmentSpec.Queue {
        var fields = JSONFields(object, path: path)
        let name = fields.string("name", required: defaultName == nil)
        var settings: [String: JSONValue] = [:]
        for setting in QueueSetting.all {
            switch setting.kind {
            case .integer: settings[setting.field] = fields.integer(setting.field).map(JSONValue.int)
            case .boolean: settings[setting.field] = fields.bool(setting.field).map(JSONValue.bool)
            case .choice(let choices):
                guard let raw = fields.string(setting.field) else { continue }
                if choices.contains(raw) {
                    settings[setting.field] = .string(raw)
                } else {
                    fields.fail(setting.field, "must be one of \(choices.joined(separator: ", "))")
                }
            }
        }
        let queue = EnvironmentSpec.Queue(name: name ?? defaultName ?? "", settings: settings)
        fields.rejectUnknown(allowed: queueKeys)
        errors += fields.errors
        return queue
    }

    /// The most items a `queues` or `bindings` array of any body may have (openapi.yaml's
    /// `maxItems`), counted as sent: a binding listed twice still counts twice here.
    static let maxQueues = 32
    static let maxBindings = 64

    static func queues(_ items: [JSONValue], errors: inout [Problem.FieldError]) -> [EnvironmentSpec.Queue] {
        if items.count > maxQueues {
            errors.append(Problem.FieldError(field: "queues", reason: "may have at most \(maxQueues) queues"))
        }
        return items.enumerated().compactMap { index, item in
            guard case .object(let object) = item else {
                errors.append(Problem.FieldError(field: "queues[\(index)]", reason: "must be an object"))
                return nil
            }
            return queue(object, path: "queues[\(index)].", defaultName: nil, errors: &errors)
        }
    }

    /// The bindings of a body, each once: a binding listed twice (`{"queue": "a"}` and
    /// `{"queue": "a", "routing_key": ""}` are the same binding) is made once, as the broker
    /// would, rather than refused: a schema cannot say when two items are the same binding.
    static func bindings(_ items: [JSONValue], errors: inout [Problem.FieldError]) -> [EnvironmentSpec.Binding] {
        if items.count > maxBindings {
            errors.append(Problem.FieldError(field: "bindings", reason: "may have at most \(maxBindings) bindings"))
        }
        var seen = Set<EnvironmentSpec.Binding>()
        return items.enumerated().compactMap { index, item in
            guard case .object(let object) = item else {
                errors.append(Problem.FieldError(field: "bindings[\(index)]", reason: "must be an object"))
                return nil
            }
            var fields = JSONFields(object, path: "bindings[\(index)].")
            let queue = fields.string("queue", required: true)
            let key = fields.string("routing_key")
            let arguments = fields.stringMap("arguments")
            // Header names are AMQP short strings (at most 255 bytes): printable ASCII keeps
            // characters and bytes the same, so the schema's length is the broker's.
            if let arguments, arguments.keys.contains(where: { !isHeaderName($0) }) {
                fields.fail("arguments", "header names must be 1-255 printable ASCII characters")
            }
            fields.rejectUnknown(allowed: ["queue", "routing_key", "arguments"])
            errors += fields.errors
            guard let queue else { return nil }
            let binding = EnvironmentSpec.Binding(queue: queue, routingKey: key ?? "", arguments: arguments ?? [:])
            return seen.insert(binding).inserted ? binding : nil
        }
    }

    /// 1-255 characters from ' ' to '~' (openapi.yaml: `^[ -~]{1,255}$`).
    static func isHeaderName(_ name: String) -> Bool {
        (1...255).contains(name.utf8.count) && name.utf8.allSatisfy { (0x20...0x7E).contains($0) }
    }

    static func limits(_ object: [String: JSONValue], errors: inout [Problem.FieldError]) -> EnvironmentSpec.Limits {
        var fields = JSONFields(object, path: "limits.")
        let limits = EnvironmentSpec.Limits(
            maxQueues: fields.integer("max_queues"), maxConnections: fields.integer("max_connections"), maxBytes: fields.integer("max_bytes"))
        fields.rejectUnknown(allowed: ["max_queues", "max_connections", "max_bytes"])
        errors += fields.errors
        return limits
    }

    /// Bindings for queues given without any: each bound by its own name (fanout and headers
    /// exchanges ignore the key; a headers binding without headers takes every message).
    /// A name given twice gets one binding (the queues themselves are refused as named twice,
    /// and that is the one problem to report).
    static func defaultBindings(for queues: [EnvironmentSpec.Queue]) -> [EnvironmentSpec.Binding] {
        var seen = Set<String>()
        return queues.filter { seen.insert($0.name).inserted }.map { EnvironmentSpec.Binding(queue: $0.name, routingKey: $0.name) }
    }

    /// `super_streams`: a list of `{name, partitions}`.
    static func superStreams(_ value: JSONValue, errors: inout [Problem.FieldError]) -> [EnvironmentSpec.SuperStream] {
        guard case .array(let items) = value else {
            errors.append(.init(field: "super_streams", reason: "must be a list"))
            return []
        }
        var superStreams: [EnvironmentSpec.SuperStream] = []
        for (index, item) in items.enumerated() {
            guard case .object(let object) = item else {
                errors.append(.init(field: "super_streams[\(index)]", reason: "must be an object"))
                continue
            }
            var fields = JSONFields(object, path: "super_streams[\(index)].")
            let name = fields.string("name", required: true)
            let partitions = fields.integer("partitions")
            if partitions == nil, object["partitions"] == nil { fields.fail("partitions", "is required") }
            fields.rejectUnknown(allowed: ["name", "partitions"])
            errors += fields.errors
            if let name, let partitions { superStreams.append(.init(name: name, partitions: partitions)) }
        }
        return superStreams
    }
}
