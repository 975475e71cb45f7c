import Provisioning
import RabbitManagement

/// Turns a POST /v1/environments body into a valid `EnvironmentSpec`, or a 400 that names
/// every offending field. Decoded by hand over a JSON tree rather than with Codable, so unknown
/// fields, nulls and wrong types each get their own precise message.
enum CreateEnvironmentRequest {
    static func decode(_ body: [UInt8]) throws(Problem) -> EnvironmentSpec {
        let tree: JSONValue
        do {
            tree = try StrictJSON.parse(body)
        } catch {
            throw Problem.malformedJSON("the body is not valid JSON: \(error.reason) at byte \(error.offset)")
        }
        guard case .object(let object) = tree else {
            throw Problem.malformedJSON("the body must be a JSON object")
        }

        var errors: [Problem.FieldError] = []
        var fields = Fields(object: object, path: "", errors: [])
        let name = fields.string("name", required: true)
        let exchange = fields.object("exchange")
        let queue = fields.object("queue")
        let routingKey = fields.string("routing_key")
        fields.rejectUnknown(allowed: ["name", "exchange", "queue", "routing_key"])
        errors += fields.errors

        var exchangeSpec: EnvironmentSpec.Exchange?
        if let exchange {
            var sub = Fields(object: exchange, path: "exchange.", errors: [])
            let exchangeName = sub.string("name")
            let type = sub.choice("type", EnvironmentSpec.ExchangeType.self)
            sub.rejectUnknown(allowed: ["name", "type"])
            errors += sub.errors
            exchangeSpec = EnvironmentSpec.Exchange(name: exchangeName ?? name ?? "", type: type ?? .direct)
        }
        var queueSpec: EnvironmentSpec.Queue?
        if let queue {
            var sub = Fields(object: queue, path: "queue.", errors: [])
            let queueName = sub.string("name")
            let type = sub.choice("type", EnvironmentSpec.QueueType.self)
            sub.rejectUnknown(allowed: ["name", "type"])
            errors += sub.errors
            queueSpec = EnvironmentSpec.Queue(name: queueName ?? name ?? "", type: type ?? .quorum)
        }
        // Check the values too, even when some fields already failed, so one answer names
        // every problem; a field with a type error is not reported twice.
        let spec = EnvironmentSpec(name: name ?? "", exchange: exchangeSpec, queue: queueSpec, routingKey: routingKey)
        let typed = Set(errors.map(\.field))
        for problem in spec.validate() where !typed.contains(problem.field) {
            // A default derived from a bad name is not a field of its own the caller sent.
            let sent = problem.field == "name" || fieldWasSent(problem.field, object)
            if sent { errors.append(Problem.FieldError(field: problem.field, reason: problem.reason)) }
        }
        guard errors.isEmpty else { throw Problem.invalidFields(errors) }
        return spec
    }

    private static func fieldWasSent(_ path: String, _ object: [String: JSONValue]) -> Bool {
        let parts = path.split(separator: ".").map(String.init)
        guard parts.count == 2 else { return object[path] != nil }
        guard case .object(let inner) = object[parts[0]] else { return false }
        return inner[parts[1]] != nil
    }

    /// Reads typed fields out of one JSON object, collecting a message per bad field.
    private struct Fields {
        let object: [String: JSONValue]
        let path: String
        var errors: [Problem.FieldError]

        mutating func string(_ key: String, required: Bool = false) -> String? {
            switch object[key] {
            case .string(let value): return value
            case nil where !required: return nil
            case nil: fail(key, "is required")
            case .null: fail(key, "must be a string, not null")
            default: fail(key, "must be a string")
            }
            return nil
        }

        mutating func object(_ key: String) -> [String: JSONValue]? {
            switch object[key] {
            case .object(let value): return value
            case nil: return nil
            case .null: fail(key, "must be an object, not null")
            default: fail(key, "must be an object")
            }
            return nil
        }

        mutating func choice<T: RawRepresentable & CaseIterable>(_ key: String, _: T.Type) -> T? where T.RawValue == String {
            guard let raw = string(key) else { return nil }
            if let value = T(rawValue: raw) { return value }
            fail(key, "must be one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
            return nil
        }

        mutating func rejectUnknown(allowed: Set<String>) {
            for key in object.keys.sorted() where !allowed.contains(key) {
                fail(key, "is not a known field")
            }
        }

        private mutating func fail(_ key: String, _ reason: String) {
            errors.append(Problem.FieldError(field: path + key, reason: reason))
        }
    }
}
