import EnvironmentModel
import WireFormat

/// Decodes a create body's `agents`: `[{"name", "publish": [pattern], "consume": [queue]}]`.
/// What the values may be is `EnvironmentSpec.validate()`'s to say (it knows the exchange and
/// the queues); here only the shape.
enum AgentFields {
    static func agents(_ items: [JSONValue], errors: inout [Problem.FieldError]) -> [EnvironmentSpec.Agent] {
        items.enumerated().compactMap { index, item in
            guard case .object(let object) = item else {
                errors.append(Problem.FieldError(field: "agents[\(index)]", reason: "must be an object"))
                return nil
            }
            var fields = JSONFields(object, path: "agents[\(index)].")
            let name = fields.string("name", required: true)
            let publish = strings(&fields, "publish")
            let consume = strings(&fields, "consume")
            fields.rejectUnknown(allowed: ["name", "publish", "consume"])
            errors += fields.errors
            guard let name else { return nil }
            return EnvironmentSpec.Agent(name: name, publish: publish, consume: consume)
        }
    }

    private static func strings(_ fields: inout JSONFields, _ key: String) -> [String] {
        guard let items = fields.array(key) else { return [] }
        // Left out means none; an empty list says nothing either, and is refused so that the
        // schema can say "publishes or consumes something" (two properties at least).
        if items.isEmpty { fields.fail(key, "must not be empty (leave it out for none)") }
        var strings: [String] = []
        for (index, item) in items.enumerated() {
            guard case .string(let value) = item else {
                fields.fail("\(key)[\(index)]", "must be a string")
                continue
            }
            strings.append(value)
        }
        return strings
    }
}
